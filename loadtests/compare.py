"""`make bench-compare REV=<commit>`: the request path of the working tree against REV's, side
by side in one run: the buy endpoint and the two page-cache hits, /healthz as the control
(issue 12: an API library may cost the buy path at most 10 % of its requests/s against the views
it replaces; issue 20: every change to the request path is measured before it lands).

One stack (loadtests/rig.py, as `make bench` runs it) and one set of logged-in buyers; two web
processes side by side with the same settings and workers, one started from each tree. Both
answer the buy storm on one sale with no stock: every answer is a 409 sold_out from the memo or
the gate, where a framework's per-request cost shows (bench.py's storm-gate scenario and wrk
script; a sale sold out by a storm first would leave orders whose 202 wrk never read when it
stopped). Both also answer the sale list from @cache_page and a sale page from the page cache
(bench.py's list-cache-page and sale-page scenarios). /healthz is the control (the same view in
both trees unless that changed too).

Noise. On a machine others share, throughput moves by tens of percent within a minute, so the
trees take turns in short slices, ordered new old | old new | new old ... (each round's pair
swapped: neither tree always goes first, and a drift falls on both alike), and the ratio is the
median of the rounds' ratios; the median of the quiet rounds (no slice of the pair above
cpuload.NOISY) is given apart. Each slice also reports the web CPU per answer (the gunicorn
master and workers of the tree measured, from /proc): a neighbour slows the answers down but
barely changes what each one costs, so old / new of that figure is the quieter estimate of the
same ratio. Run the same code as both trees (REV = HEAD, nothing uncommitted) and the ratios
show the harness's own noise.

REV is exported with `git archive` into a temporary folder: nothing is added to the repository
(a killed run leaves no worktree entry behind). Both trees run on the working tree's venv and
Postgres schema (migrated by the working tree); REV's web uses its own qbuy_core (PYTHONPATH).

Prints each slice, then per scenario and connection count each tree's mean req/s, median
p50/p99 and web CPU per answer, and new / old; the buy storm and each page-cache hit PASS when
the median ratio of req/s is >= 0.90. Writes loadtests/results/compare.json. Exit 1 only when
the harness breaks or a run has real failures, unexpected answers or the sale breaks an
invariant; a MISS is reported, not an error.

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

from port_for import get_port

from loadtests import bench, cpuload, storm, wrk
from loadtests.cpuload import NOISY
from loadtests.rig import READY, Rig, deployed_settings, metrics_env
from tools.stack import ROOT, Process

THRESHOLD = 0.90  # new / old requests/s of the buy storm and the page-cache hits (issue 12)
STORM, CONTROL = bench.BY_KEY["storm-gate"], bench.BY_KEY["healthz"]
# The two page-cache hits every page view of a sale goes through (issue 20).
PAGES = (bench.BY_KEY["list-cache-page"], bench.BY_KEY["sale-page"])
TREES = ("new", "old")


@dataclass
class Tree:
    name: str  # "new" (the working tree) or "old" (REV)
    label: str
    commit: str
    web: Path  # its services/web, where its web process starts
    env: dict[str, str] = field(default_factory=dict)  # on top of the stack's web settings
    url: str = ""
    pid: int = 0  # its gunicorn master
    served_from: str = ""  # that master's working directory, read from /proc


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
    parser.add_argument("--rounds", type=int, default=8, help="turns of each tree (default 8)")
    parser.add_argument("--duration", type=int, default=4, help="seconds per slice (default 4)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds, unmeasured, per tree")
    bench.add_stack_options(parser)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.warmup < 1:
        parser.error("--rounds and --warmup must be at least 1")
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


def serve(r: Rig, tree: Tree, env: dict[str, str]) -> Process:
    """A web process of ``tree`` beside the stack's, on a port of its own."""
    port = get_port(None)
    env = {**env, **tree.env, **metrics_env(), "GUNICORN_BIND": f"127.0.0.1:{port}"}
    command = [str(tree.web / "start.sh")]
    proc = Process(f"web-{tree.name}", env, r.dir, READY["web"], command).start(timeout=90)
    tree.url, tree.pid = f"http://127.0.0.1:{port}", proc.proc.pid
    # start.sh execs gunicorn in its folder: the master's cwd says which tree answers.
    tree.served_from = os.readlink(f"/proc/{tree.pid}/cwd")
    if Path(tree.served_from).resolve() != tree.web.resolve():
        proc.stop()
        raise RuntimeError(f"web-{tree.name} runs in {tree.served_from}, not in {tree.web}")
    return proc


def order(rounds: int) -> list[tuple[int, str]]:
    """(round, tree) in turn: new old | old new | new old ... (each round's pair swapped, so
    that neither tree always goes first)."""
    pairs = [TREES if i % 2 == 0 else TREES[::-1] for i in range(rounds)]
    return [(i + 1, name) for i, pair in enumerate(pairs) for name in pair]


# -- the run ------------------------------------------------------------------------------------
CREATE_BUYERS = """
from django.contrib.auth.hashers import make_password
from accounts.models import User
unusable = make_password(None)  # as the code login makes them: SMS only
User.objects.bulk_create(
    [User(phone=p, password=unusable) for p in {phones}], ignore_conflicts=True
)
"""


def compare(workdir: Path, new: Tree, old: Tree, args: argparse.Namespace) -> dict:
    workdir.mkdir()
    trees = {"new": new, "old": old}
    settings = {**deployed_settings(), "BUY_STRATEGY": "gate"}
    if args.workers:
        settings["GUNICORN_WORKERS"] = str(args.workers)
    slices: list[tuple[int, str, bench.Run]] = []
    with Rig(workdir, settings=settings, redis_aof=True, supervise=False) as r:
        sessions_file = r.dir / "sessions.txt"
        report = {
            "threshold": THRESHOLD,
            "machine": bench.describe_machine(r),
            "gunicorn": bench.describe_gunicorn(r),
            "generator": {
                "tool": "wrk",
                "threads": args.threads,
                "connections": args.connections,
                "slice_s": args.duration,
                "rounds": args.rounds,
            },
        }
        # Only the two trees' processes answer from here on: the stack's own web would idle.
        r.processes["web"].stop()
        web_env = dict(r.processes["web"].env)
        webs = [serve(r, tree, web_env) for tree in trees.values()]
        try:
            # Logged in by the old tree: a session names the auth backend that made it, and an
            # older tree may not have the working tree's (it would answer every buy 401). Their
            # accounts are made first by the working tree, whose migrations made the tables: an
            # older tree's INSERT would leave out the columns added since.
            phones = [storm.phone(n) for n in range(args.sessions)]
            r.manage("shell", "-c", CREATE_BUYERS.format(phones=phones))
            count = bench.log_in(r, args.sessions, sessions_file, url=old.url)
            print(f"compare: {count} buyers logged in (by {old.label})", flush=True)
            sale = r.create_sale("bench-compare sold out", 0)
            url = STORM.path.format(sale=sale)
            r.manage("seed_demo", "--sales", "20", "-v0")  # a full page of sales to list
            page_sale = r.create_sale("bench-compare sale page", 100)
            measured = [
                (CONTROL, CONTROL.path),
                (STORM, url),
                *((page, page.path.format(sale=page_sale)) for page in PAGES),
            ]
            tokens = []
            for tree in trees.values():
                tokens += warm_up(tree, url, sessions_file, args).tokens
            for round_, name in order(args.rounds):
                tree = trees[name]
                print(f"compare: round {round_}, {name}: {tree.label}", flush=True)
                for scenario, path in measured:
                    sessions = sessions_file if scenario.mode == "storm" else None
                    for connections in args.connections:
                        run = measure(tree, scenario, path, connections, sessions, args)
                        tokens += run.tokens
                        slices.append((round_, name, run))
            pending, _ = r.wait_settled(sale, time.time(), bench.SETTLE_TIMEOUT)
            report["sale"] = {"pending": pending, **r.check(sale, tokens)}
        finally:
            for web in webs:
                web.stop()
    report["trees"] = {
        t.name: {"label": t.label, "commit": t.commit, "served_from": t.served_from}
        for t in trees.values()
    }
    report["order"] = [f"{i}:{name}" for i, name in order(args.rounds)]
    report["runs"] = [
        {"round": i, "tree": name, **asdict(run), "tokens": len(run.tokens)}
        for i, name, run in slices
    ]
    keys = [CONTROL.key, STORM.key, *(page.key for page in PAGES)]
    report["summary"] = summarize(report["runs"], keys, args.connections)
    report["problems"] = [
        *bench.problems([run for _, _, run in slices]),
        *(f"the sale: invariant: {v}" for v in report["sale"].get("violations", [])),
        *([f"the sale: {pending} orders still pending"] if report["sale"]["pending"] else []),
    ]
    return report


def warm_up(tree: Tree, path: str, sessions_file: Path, args) -> wrk.Result:
    """Every web worker of ``tree`` opens its Postgres and Redis connections, loads the gate's
    script and learns that the sale is sold out."""
    return bench.warm_storm(tree.url + path, sessions_file, args)


@dataclass
class Slice(bench.Run):
    web_cpu_ms: float | None = None  # CPU of the tree's gunicorn (master and workers) per answer
    tokens: list[str] = field(default_factory=list)  # orders answered 202 (none once sold out)


def measure(
    tree: Tree, scenario: bench.Scenario, path: str, connections: int, sessions, args
) -> Slice:
    """One slice: wrk's figures, the CPU others used, and the tree's web CPU per answer."""
    time.sleep(bench.PAUSE)
    before = cpuload.tree_cpu(tree.pid)
    result, others = bench.measured(
        tree.url + path,
        connections=connections,
        duration=args.duration,
        threads=args.threads,
        mode=scenario.mode,
        timeout=args.timeout,
        sessions=sessions,
        tally=scenario.tally,
    )
    used = cpuload.tree_cpu(tree.pid) - before
    run = bench._record(scenario, connections, result, others_cpu=others)
    return Slice(
        **asdict(run),
        web_cpu_ms=round(1000 * used / result.requests, 3) if result.requests else None,
        tokens=result.tokens,
    )


def summarize(runs: list[dict], keys: list[str], connections: list[int]) -> list[dict]:
    """Per scenario and connection count: each tree's figures over the rounds, and new / old as
    the median of the rounds' ratios (a round's two slices ran next to each other in time)."""
    rows = []
    for key in keys:
        for c in connections:
            mine = [x for x in runs if x["key"] == key and x["connections"] == c]
            by_tree = {
                name: sorted((x for x in mine if x["tree"] == name), key=lambda x: x["round"])
                for name in TREES
            }
            pairs = list(zip(by_tree["new"], by_tree["old"], strict=True))
            rps = [n["rps"] / o["rps"] for n, o in pairs if o["rps"]]
            quiet = [
                n["rps"] / o["rps"]
                for n, o in pairs
                if o["rps"] and max(n["others_cpu"], o["others_cpu"]) <= NOISY
            ]
            # CPU per answer: old / new, so that above 1 means the new tree is cheaper, as rps
            cpu = [o["web_cpu_ms"] / n["web_cpu_ms"] for n, o in pairs if _both(n, o)]
            ratio = statistics.median(rps) if rps else None
            result = "control"
            if key != CONTROL.key:
                result = "n/a" if ratio is None else "PASS" if ratio >= THRESHOLD else "MISS"
            rows.append(
                {
                    "key": key,
                    "title": bench.BY_KEY[key].title,
                    "connections": c,
                    **{name: _figures(xs) for name, xs in by_tree.items()},
                    "ratio": _rounded(ratio),
                    "per_round": [round(v, 3) for v in rps],
                    "quiet_ratio": _rounded(statistics.median(quiet) if quiet else None),
                    "quiet_rounds": len(quiet),
                    "cpu_ratio": _rounded(statistics.median(cpu) if cpu else None),
                    "result": result,
                    "noisy": any(x["others_cpu"] > NOISY for x in mine),
                }
            )
    return rows


def _both(new: dict, old: dict) -> bool:
    return bool(new.get("web_cpu_ms") and old.get("web_cpu_ms"))


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _figures(runs: list[dict]) -> dict:
    if not runs:
        return {"rps": 0.0, "p50_ms": None, "p99_ms": None, "web_cpu_ms": None, "others": None}
    cpu = [x["web_cpu_ms"] for x in runs if x.get("web_cpu_ms")]
    return {
        "rps": round(statistics.fmean(x["rps"] for x in runs), 1),
        "p50_ms": round(statistics.median(x["latency_ms"].get("p50", 0) for x in runs), 2),
        "p99_ms": round(statistics.median(x["latency_ms"].get("p99", 0) for x in runs), 2),
        "web_cpu_ms": round(statistics.median(cpu), 3) if cpu else None,
        "others": round(statistics.fmean(x["others_cpu"] for x in runs), 3),
    }


# -- output -------------------------------------------------------------------------------------
def format_summary(report: dict) -> str:
    m, g, gen = report["machine"], report["gunicorn"], report["generator"]
    lines = [
        "",
        f"compare: {m['cpu']}, {m['cores']} cores; each tree: gunicorn {g['workers']}"
        f" {g['worker_class']} workers; wrk {gen['threads']} threads, {gen['rounds']} rounds of"
        f" {gen['slice_s']}s slices",
        *(f"compare: {name} = {t['label']}" for name, t in report["trees"].items()),
        f"compare: order {' '.join(report['order'])}",
        "",
        f"{'scenario':<18}{'conns':>6}{'new req/s':>10}{'old req/s':>10}{'new/old':>8}"
        f"{'p50 new':>8}{'old':>6}{'p99 new':>8}{'old':>7}{'CPU ms new':>11}{'old':>6}"
        f"{'old/new':>8}{'others':>7}{'quiet':>11}  result",
    ]
    lines.append("-" * (len(lines[-1]) + 4))
    for row in report["summary"]:
        new, old = row["new"], row["old"]
        noisy = " (*)" if row["noisy"] else ""
        lines.append(
            f"{row['title'][:17]:<18}{row['connections']:>6}{new['rps']:>10.1f}{old['rps']:>10.1f}"
            f"{_x(row['ratio']):>8}{bench._ms(new['p50_ms']):>8}{bench._ms(old['p50_ms']):>6}"
            f"{bench._ms(new['p99_ms']):>8}{bench._ms(old['p99_ms']):>7}"
            f"{_x(new['web_cpu_ms'], 2):>11}{_x(old['web_cpu_ms'], 2):>6}"
            f"{_x(row['cpu_ratio']):>8}{_share(new['others'], old['others']):>7}"
            f"{_x(row['quiet_ratio']):>7} ({row['quiet_rounds']})  {row['result']}{noisy}"
        )
    lines += [
        "",
        "req/s: the mean over the rounds; new/old: the median of the rounds' ratios (each round's"
        " two slices ran one after the other); p50/p99 (ms) and the web CPU per answer (ms, the"
        " tree's gunicorn master and workers): medians over the rounds; CPU old/new above 1: the"
        " new tree is cheaper; others: the CPU share of processes outside the bench (mean);"
        f" quiet: new/old over the rounds whose two slices had others <= {NOISY:.0%} (how many).",
        f"The buy storm and the page-cache hits PASS when new/old >= {THRESHOLD:.2f}; /healthz"
        " is the control."
        f" Per round: {_per_round(report['summary'])}",
    ]
    sale = report.get("sale", {})
    lines.append(
        "The sale (no stock): invariants"
        f" {'ok' if sale.get('ok') else 'VIOLATED'}, orders {sale.get('orders')}"
    )
    if any(row["noisy"] for row in report["summary"]):
        lines.append(
            f"(*) other processes used more than {NOISY:.0%} of the CPU during some of the"
            " row's slices: req/s says less than the CPU per answer; run again on a quiet machine."
        )
    return "\n".join(lines)


def _x(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _share(*values: float | None) -> str:
    known = [v for v in values if v is not None]
    return f"{max(known):.0%}" if known else "-"


def _per_round(summary: list[dict]) -> str:
    return "; ".join(
        f"{row['key']}@{row['connections']} {' '.join(f'{v:.2f}' for v in row['per_round'])}"
        for row in summary
    )


if __name__ == "__main__":
    sys.exit(main())
