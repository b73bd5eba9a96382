"""`make bench-compare REV=<commit>`: the buy endpoint of the working tree against the same
endpoint at REV, side by side in one run (issue 12: an API library may cost the buy path at most
10 % of its requests/s against the views it replaces).

One stack (loadtests/rig.py, as `make bench` runs it) and one set of logged-in buyers; only the
web process changes: it is started from one tree, then from the other, on the same port, with
the same settings and the same workers. Each tree is measured with bench.py's own scenarios: the
buy storm (gate; a fresh sale per run, the stock sold in the first moments and every later
answer a 409 from the sold-out memo or the gate: where a framework's per-request cost shows) and
/healthz, the control (the same view in both trees unless that changed too).

The trees take turns in rounds ordered new old | old new | new old ...: a drift of the machine
through the run (a neighbour's load, a warming cache, a growing database) falls on both alike,
and a web process is restarted only when the other tree takes over. Run the same code as both
trees (REV = HEAD, nothing uncommitted) and the ratios show the harness's own noise.

REV is exported with `git archive` into a temporary folder: nothing is added to the repository
(a killed run leaves no worktree entry behind). Both trees run on the working tree's venv and
Postgres schema (migrated by the working tree); REV's web uses its own qbuy_core (PYTHONPATH).

Prints each run, then per scenario and connection count the mean req/s over the rounds, the
median p50/p99, and the ratio new / old with its per-round range; the buy storm PASSes when the
ratio is >= 0.90. Writes loadtests/results/compare.json. Exit 1 only when the harness breaks or
a run has real failures, unexpected answers or a broken invariant (bench.problems); a MISS is
reported, not an error.

`python -m loadtests.compare [--rev REV] [--rounds N] [--duration S] [--connections N ...]`
"""

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from loadtests import bench
from loadtests.cpuload import NOISY
from loadtests.rig import READY, Rig, deployed_settings
from tools.stack import ROOT, Process

THRESHOLD = 0.90  # new / old requests/s of the buy storm (issue 12)
STORM, CONTROL, ACCEPTED = (bench.BY_KEY[k] for k in ("storm-gate", "healthz", "accepted-gate"))


@dataclass
class Tree:
    name: str  # "new" (the working tree) or "old" (REV)
    label: str
    commit: str
    web: Path  # its services/web, where the web process starts
    env: dict[str, str] = field(default_factory=dict)  # on top of the stack's web settings
    served_from: str = ""  # the running gunicorn's working directory, read from /proc


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.results.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="qbuy-compare-") as tmp:
        old = export(args.rev, Path(tmp) / "old")
        report = compare(Path(tmp) / "rig", working_tree(), old, args)
    report["elapsed_s"] = round(time.monotonic() - started, 1)
    print(format_summary(report))
    out = args.results / "compare.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"compare: wrote {bench._shown(out)}; done in {report['elapsed_s']:.0f}s")
    for problem in report["problems"]:
        print(f"compare: FAILED: {problem}")
    return 1 if report["problems"] else 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", default="HEAD", help="the old tree: a commit (default HEAD)")
    parser.add_argument("--rounds", type=int, default=4, help="turns of each tree (default 4)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per run (default 10)")
    parser.add_argument("--connections", type=int, nargs="+", default=[64, 256])
    parser.add_argument(
        "--accepted",
        action="store_true",
        help="also accepted buys (through nginx, each buyer once; the worker's cost included)",
    )
    parser.add_argument("--sessions", type=int, default=1000, help="logged-in buyers (1000)")
    parser.add_argument("--stock", type=int, default=200, help="stock of a storm's sale (200)")
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count() or 2, help="wrk threads (the cores)"
    )
    parser.add_argument("--timeout", type=int, default=5, help="wrk: an answer later is a failure")
    parser.add_argument("--warmup", type=int, default=1, help="seconds, unmeasured, per start")
    parser.add_argument(
        "--workers", type=int, help="GUNICORN_WORKERS (default: the gunicorn config's)"
    )
    parser.add_argument("--results", type=Path, default=bench.RESULTS, help="where the file goes")
    args = parser.parse_args(argv)
    if args.stock >= args.sessions:
        parser.error("--stock must be below --sessions: the storm is mostly sold out answers")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


# -- the two trees ------------------------------------------------------------------------------
def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def working_tree() -> Tree:
    head = _git("rev-parse", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    label = f"working tree ({head[:7]}{', uncommitted changes' if dirty else ''})"
    return Tree("new", label, head, ROOT / "services/web")


def export(rev: str, dest: Path) -> Tree:
    """``rev``'s files (as committed) in ``dest``, and the tree that serves them."""
    try:
        commit = _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except subprocess.CalledProcessError:
        raise SystemExit(f"compare: --rev {rev}: no such commit") from None
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", commit],
        capture_output=True,
        check=True,
    ).stdout
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    subject = _git("log", "-1", "--format=%s", commit)
    return Tree(
        "old",
        f"{commit[:7]} ({subject[:60]})",
        commit,
        dest / "services/web",
        env={
            # The venv's editable qbuy_core is the working tree's; REV's own comes first.
            "PYTHONPATH": str(dest / "packages/qbuy-core/src"),
            # The static files collected from the working tree (git has none): the same
            # WhiteNoise table in both trees.
            "STATIC_ROOT": str(ROOT / "services/web/staticfiles"),
        },
    )


def serve(r: Rig, tree: Tree, base_env: dict[str, str]) -> None:
    """The stack's web process, stopped and started again from ``tree``."""
    r.processes["web"].stop()
    command = [str(tree.web / "start.sh")]
    env = {**base_env, **tree.env}
    r.processes["web"] = Process("web", env, r.dir, READY["web"], command).start(timeout=90)
    # start.sh execs gunicorn in its folder: the master's cwd says which tree answers.
    tree.served_from = os.readlink(f"/proc/{r.processes['web'].proc.pid}/cwd")
    if Path(tree.served_from).resolve() != tree.web.resolve():
        raise RuntimeError(f"web runs in {tree.served_from}, not in {tree.web}")


def order(rounds: int) -> list[tuple[int, str]]:
    """(round, tree) in turn: new old | old new | new old ... (each round's pair swapped, so
    that neither tree always goes first)."""
    pairs = [("new", "old") if i % 2 == 0 else ("old", "new") for i in range(rounds)]
    return [(i + 1, name) for i, pair in enumerate(pairs) for name in pair]


# -- the run ------------------------------------------------------------------------------------
def compare(workdir: Path, new: Tree, old: Tree, args: argparse.Namespace) -> dict:
    workdir.mkdir()
    trees = {"new": new, "old": old}
    settings = {**deployed_settings(), "BUY_STRATEGY": "gate"}
    if args.workers:
        settings["GUNICORN_WORKERS"] = str(args.workers)
    scenarios = [CONTROL, STORM, *([ACCEPTED] if args.accepted else [])]
    runs: list[tuple[int, str, bench.Run]] = []
    with Rig(workdir, settings=settings, nginx=args.accepted, redis_aof=True, supervise=False) as r:
        base_env = dict(r.processes["web"].env)
        sessions_file = r.dir / "sessions.txt"
        count = bench.log_in(r, args.sessions, sessions_file)
        print(f"compare: {count} buyers logged in", flush=True)
        report = {
            "trees": {},
            "threshold": THRESHOLD,
            "machine": bench.describe_machine(r),
            "gunicorn": bench.describe_gunicorn(r),
            "generator": {
                "tool": "wrk",
                "threads": args.threads,
                "connections": args.connections,
                "duration_s": args.duration,
                "rounds": args.rounds,
            },
            "order": [],
        }
        serving = None
        for round_, name in order(args.rounds):
            tree = trees[name]
            if serving != name:
                serve(r, tree, base_env)
                bench.warm_up_buys(r, sessions_file, args)
                serving = name
            print(f"compare: round {round_}, {name}: {tree.label}", flush=True)
            report["order"].append(f"{round_}:{name}")
            for scenario in scenarios:
                for connections in args.connections:
                    time.sleep(bench.PAUSE)
                    runs.append((round_, name, measure(r, scenario, connections, count, args)))
    report["trees"] = {
        t.name: {"label": t.label, "commit": t.commit, "served_from": t.served_from}
        for t in trees.values()
    }
    report["runs"] = [{"round": i, "tree": name, **asdict(x)} for i, name, x in runs]
    report["summary"] = summarize(report["runs"], [s.key for s in scenarios], args.connections)
    report["problems"] = [
        f"{name}, round {i}: {p}" for i, name, x in runs for p in bench.problems([x])
    ]
    return report


def measure(r: Rig, scenario: bench.Scenario, connections: int, count: int, args) -> bench.Run:
    if scenario.strategy:
        return bench.buy_run(r, scenario, connections, r.dir / "sessions.txt", count, args)
    result, others = bench.measured(
        r.web_url + scenario.path,
        connections=connections,
        duration=args.duration,
        threads=args.threads,
        timeout=args.timeout,
    )
    return bench._record(scenario, connections, result, others_cpu=others)


def summarize(runs: list[dict], keys: list[str], connections: list[int]) -> list[dict]:
    """Per scenario and connection count: each tree's figures over the rounds, the ratio new /
    old of the mean req/s and the range of the per-round ratios (the noise)."""
    rows = []
    for key in keys:
        for c in connections:
            mine = [x for x in runs if x["key"] == key and x["connections"] == c]
            by_tree = {
                name: sorted((x for x in mine if x["tree"] == name), key=lambda x: x["round"])
                for name in ("new", "old")
            }
            figures = {name: _figures(xs) for name, xs in by_tree.items()}
            old_rps, new_rps = figures["old"]["rps"], figures["new"]["rps"]
            ratio = new_rps / old_rps if old_rps else None
            per_round = [
                round(n["rps"] / o["rps"], 3)
                for n, o in zip(by_tree["new"], by_tree["old"], strict=True)
                if o["rps"]
            ]
            result = "control"
            if key != CONTROL.key:
                result = "n/a" if ratio is None else "PASS" if ratio >= THRESHOLD else "MISS"
            rows.append(
                {
                    "key": key,
                    "title": bench.BY_KEY[key].title,
                    "connections": c,
                    **figures,
                    "ratio": None if ratio is None else round(ratio, 3),
                    "per_round": per_round,
                    "result": result,
                    "noisy": any(x["others_cpu"] > NOISY for x in mine),
                }
            )
    return rows


def _figures(runs: list[dict]) -> dict:
    if not runs:
        return {"rps": 0.0, "p50_ms": None, "p99_ms": None, "others_cpu": None}
    return {
        "rps": round(statistics.fmean(x["rps"] for x in runs), 1),
        "p50_ms": round(statistics.median(x["latency_ms"].get("p50", 0) for x in runs), 2),
        "p99_ms": round(statistics.median(x["latency_ms"].get("p99", 0) for x in runs), 2),
        "others_cpu": round(max(x["others_cpu"] for x in runs), 3),
    }


# -- output -------------------------------------------------------------------------------------
def format_summary(report: dict) -> str:
    m, g = report["machine"], report["gunicorn"]
    lines = [
        "",
        f"compare: {m['cpu']}, {m['cores']} cores; gunicorn {g['workers']} {g['worker_class']}"
        f" workers; wrk {report['generator']['threads']} threads,"
        f" {report['generator']['duration_s']}s per run, {report['generator']['rounds']} rounds",
        *(f"compare: {name} = {t['label']}" for name, t in report["trees"].items()),
        f"compare: order {' '.join(report['order'])}",
        "",
        f"{'scenario':<26}{'conns':>6}{'new req/s':>11}{'old req/s':>11}{'new/old':>9}"
        f"{'new p50':>9}{'old p50':>9}{'new p99':>9}{'old p99':>9}  {'per round':<24}result",
    ]
    lines.append("-" * (len(lines[-1]) + 8))
    for row in report["summary"]:
        new, old = row["new"], row["old"]
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.3f}"
        per_round = " ".join(f"{v:.2f}" for v in row["per_round"])
        noisy = " (*)" if row["noisy"] else ""
        lines.append(
            f"{row['title']:<26}{row['connections']:>6}{new['rps']:>11.1f}{old['rps']:>11.1f}"
            f"{ratio:>9}{bench._ms(new['p50_ms']):>9}{bench._ms(old['p50_ms']):>9}"
            f"{bench._ms(new['p99_ms']):>9}{bench._ms(old['p99_ms']):>9}  {per_round:<24}"
            f"{row['result']}{noisy}"
        )
    lines += [
        "",
        f"req/s: the mean over the rounds; p50/p99 (ms): the median over the rounds; buy storm"
        f" PASS when new/old >= {THRESHOLD:.2f}; /healthz is the control.",
    ]
    if any(row["noisy"] for row in report["summary"]):
        lines.append(
            f"(*) other processes used more than {NOISY:.0%} of the CPU during at least one of"
            " the row's runs: the ratio says less; run again on a quiet machine."
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
