"""`make bench-compare` inside `make test`: a short real run (1 s slices, two rounds, a few
connections and buyers) of the working tree against HEAD, and the summary's arithmetic. No
speed is asserted: a run here only shows that both trees are served and measured."""

import json
import subprocess

import pytest

from loadtests import bench, compare
from tools.stack import ROOT

SMOKE = [
    "--rev=HEAD",
    "--rounds=2",
    "--duration=1",
    "--warmup=1",
    "--connections=8",
    "--sessions=40",
    "--workers=2",
]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    results = tmp_path_factory.mktemp("compare")
    code = compare.main([*SMOKE, f"--results={results}"])
    return code, json.loads((results / "compare.json").read_text())


# The control, the sold-out storm and the two page-cache hits (issue 20).
KEYS = ("healthz", "storm-gate", "list-cache-page", "sale-page")


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
    ).stdout


def test_both_trees_are_measured_in_every_round(smoke):
    code, report = smoke
    assert code == 0, report["problems"]
    assert report["order"] == ["1:new", "1:old", "2:old", "2:new"]
    seen = {(x["round"], x["tree"], x["key"]) for x in report["runs"]}
    assert seen == {(i, tree, key) for i in (1, 2) for tree in ("new", "old") for key in KEYS}
    for run in report["runs"]:
        expected = {str(s) for s in bench.BY_KEY[run["key"]].expected}
        assert run["requests"] > 0 and set(run["statuses"]) <= expected, run
        assert run["web_cpu_ms"] > 0, run
    # a sale with no stock: the storm measures the sold-out refusal, and sells nothing
    assert {s for x in report["runs"] if x["key"] == "storm-gate" for s in x["statuses"]} == {"409"}
    assert report["sale"]["ok"] and report["sale"]["orders"] == {}
    assert report["sale"]["pending"] == 0


def test_the_summary_gives_each_tree_s_figures_and_the_ratio(smoke):
    _, report = smoke
    rows = {row["key"]: row for row in report["summary"]}
    assert set(rows) == set(KEYS)
    for row in rows.values():
        for tree in ("new", "old"):
            assert row[tree]["rps"] > 0 and row[tree]["p99_ms"] > 0
            assert row[tree]["web_cpu_ms"] > 0
        assert len(row["per_round"]) == 2
        assert row["ratio"] == pytest.approx(sum(row["per_round"]) / 2, abs=1e-3)
        assert row["cpu_ratio"] > 0
    for key in KEYS[1:]:
        assert rows[key]["result"] in {"PASS", "MISS"}, key
    assert rows["healthz"]["result"] == "control"
    # The page-cache hits are hits in both trees.
    for run in report["runs"]:
        if run["key"] == "sale-page":
            assert run["tallies"].get("HIT", 0) > 0, run


def test_the_old_tree_is_served_from_the_exported_commit(smoke):
    _, report = smoke
    new, old = report["trees"]["new"], report["trees"]["old"]
    assert old["commit"] == _git("rev-parse", "HEAD").strip()
    assert new["served_from"] == str(ROOT / "services/web")
    assert old["served_from"].endswith("/old/services/web")
    assert not old["served_from"].startswith(str(ROOT))


def test_export_writes_the_commit_s_files(tmp_path):
    tree = compare.export("HEAD~1", tmp_path / "old")
    assert (tree.web / "manage.py").read_text() == _git("show", "HEAD~1:services/web/manage.py")
    assert (tmp_path / "old/README.md").read_text() == _git("show", "HEAD~1:README.md")
    assert (tree.web / "start.sh").stat().st_mode & 0o111  # git's mode: executable
    assert tree.env["PYTHONPATH"] == str(tmp_path / "old/packages/qbuy-core/src")


def test_an_unknown_rev_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no such commit"):
        compare.export("no-such-rev", tmp_path / "old")


def test_rounds_alternate_which_tree_goes_first():
    assert compare.order(3) == [
        (1, "new"),
        (1, "old"),
        (2, "old"),
        (2, "new"),
        (3, "new"),
        (3, "old"),
    ]


def _run(tree: str, round_: int, rps: float, cpu: float = 1.0, others: float = 0.0) -> dict:
    return {
        "key": "storm-gate",
        "connections": 64,
        "tree": tree,
        "round": round_,
        "rps": rps,
        "latency_ms": {"p50": 2.0, "p99": 10.0},
        "web_cpu_ms": cpu,
        "others_cpu": others,
    }


@pytest.mark.parametrize(
    ("new", "result"), [((90.0, 90.0, 20.0), "PASS"), ((89.0, 89.0, 200.0), "MISS")]
)
def test_the_buy_storm_passes_at_ninety_percent_of_the_old_rate(new, result):
    """The ratio is the median of the rounds' ratios: one round's outlier does not move it."""
    runs = [_run("old", i, 100.0) for i in (1, 2, 3)]
    runs += [_run("new", i, rps) for i, rps in enumerate(new, start=1)]
    (row,) = compare.summarize(runs, ["storm-gate"], [64])
    assert row["result"] == result
    assert row["ratio"] == pytest.approx(sorted(new)[1] / 100)
    assert row["per_round"] == [v / 100 for v in new]
    assert row["new"]["rps"] == pytest.approx(sum(new) / 3, abs=0.1)
    assert not row["noisy"]


def test_the_cpu_ratio_is_old_over_new_per_answer():
    runs = [_run("old", 1, 100.0, cpu=2.0), _run("new", 1, 50.0, cpu=2.5)]
    (row,) = compare.summarize(runs, ["storm-gate"], [64])
    assert row["cpu_ratio"] == 0.8 and row["new"]["web_cpu_ms"] == 2.5
    assert row["ratio"] == 0.5 and row["result"] == "MISS"


def test_a_slice_on_a_busy_machine_marks_its_row_and_leaves_the_quiet_ratio():
    runs = [_run("old", 1, 100.0), _run("new", 1, 50.0, others=0.5)]
    runs += [_run("old", 2, 100.0), _run("new", 2, 95.0)]
    (row,) = compare.summarize(runs, ["storm-gate"], [64])
    assert row["noisy"] and row["ratio"] == pytest.approx(0.725)
    assert row["quiet_ratio"] == 0.95 and row["quiet_rounds"] == 1
