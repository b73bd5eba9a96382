"""`make bench`: how fast each layer of qbuy answers, measured on this machine in one run.

The processes of `make local` on throwaway Postgres and Redis (loadtests/rig.py): nginx in
front, gunicorn with services/web/gunicorn.conf.py (one config for every scenario, the bare
Django project included), the Celery worker and beat. Production settings as `make up` runs
them on a laptop (plain HTTP), the page cache in a Redis of its own (CACHE_URL, as compose and
Kubernetes), no worker recycling (GUNICORN_MAX_REQUESTS=0), the rate limits raised through settings
(loadtests/limits.py) so the generator, one address, is not refused.

Each scenario runs for a fixed time at each connection count with wrk (loadtests/wrk.py says
why wrk): the machine's ceiling (nginx, a static file), the framework's (a bare Django view, no
middleware) and ours (/healthz); the sale list uncached, from @cache_page and from nginx's
micro-cache; the sale page from our page cache; the buy endpoint during a storm (most answers
409) and accepted buys only (and how long the worker needs after the last answer), once per
buy strategy (BUY_STRATEGY: gate, db-lock), restarting only the web process in between.

Prints a table and the target ratios (PASS/MISS: a miss is reported, not an error), writes
loadtests/results/bench.json and bench.png. Exit 1 only when the harness breaks, a scenario
that must have no real failures (every one but db-lock's) has some, an answer is one no
scenario expects (401, 403, 429...: the harness is wrong), or a sale breaks an invariant.

`python -m loadtests.bench [--duration S] [--connections N ...] [--only KEY ...]`
"""

import argparse
import contextlib
import json
import math
import os
import platform
import re
import runpy
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from unittest import mock

import psycopg
import redis
from port_for import get_port

from loadtests import cpuload, storm, wrk
from loadtests.cpuload import NOISY
from loadtests.rig import Rig, deployed_settings
from tools import devservers
from tools.stack import ROOT, Process

RESULTS = ROOT / "loadtests/results"
GUNICORN_CONF = ROOT / "services/web/gunicorn.conf.py"
BARE = ROOT / "loadtests/bare"
STRATEGIES = ("gate", "db-lock")
# A small file nginx serves itself (collectstatic fills the folder; Django's admin ships it).
STATIC_FILE = "/static/admin/img/icon-yes.svg"
SETTLE_TIMEOUT = 60.0  # seconds to wait for the orders of a buy run to settle
PAUSE = 1.0  # seconds between two runs: the previous run's connections close, the worker idles


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    server: str  # nginx, web (gunicorn directly) or bare (the bare project's gunicorn)
    path: str  # {sale}: the scenario's sale
    mode: str = "get"  # bench.lua's mode
    tally: str | None = None  # a response header whose values are counted
    hit: str | None = None  # the tally's value of a cache hit: a run mostly without is flagged
    expected: tuple[int, ...] = (200,)
    strategy: str | None = None
    note: str = ""
    web_env: tuple[tuple[str, str], ...] = ()  # settings the web process runs this scenario with
    stock: int | None = None  # a buy scenario's stock when not --stock (storm) or the buyers

    @property
    def failures_allowed(self) -> bool:
        # The textbook design is measured to show how it fails; everything else must not.
        return self.strategy == "db-lock"


SCENARIOS = [
    Scenario("static", "nginx: small static file", "nginx", STATIC_FILE),
    Scenario("bare", "bare Django view, no middleware", "bare", "/"),
    Scenario("healthz", "qbuy /healthz", "web", "/healthz"),
    Scenario(
        "list-uncached",
        "sale list, uncached",
        "web",
        "/sales/",
        web_env=(("SALE_LIST_CACHE_URL", "dummycache://"),),
        note="the list's @cache_page on Django's dummy cache (web restarted for it): every"
        " request renders the page (a new query string would only meet the 301 to /sales/)",
    ),
    Scenario("list-cache-page", "sale list, @cache_page hit", "web", "/sales/"),
    Scenario(
        "list-micro-cache",
        "sale list, nginx micro-cache hit",
        "nginx",
        "/sales/",
        tally="X-Micro-Cache",
        hit="HIT",
        note="anonymous (no cookie); X-Micro-Cache counted",
    ),
    Scenario(
        "sale-page",
        "sale page, page-cache hit",
        "web",
        "/sales/{sale}/",
        tally="X-Page-Cache",
        hit="HIT",
        note="warmed first; anonymous; X-Page-Cache counted",
    ),
    Scenario(
        "sale-page-busting",
        "sale page, a new query string each",
        "web",
        "/sales/{sale}/",
        mode="bust",
        expected=(301,),
        note="?bust=<n>, a new n per request, as a script draining the caches would send:"
        " each answered 301 to the bare path before the view or the cache",
    ),
    Scenario("login-web", "login page, straight to gunicorn", "web", "/login/"),
    Scenario(
        "login-nginx",
        "login page through nginx",
        "nginx",
        "/login/",
        tally="X-Micro-Cache",
        note="never cached (it sets the CSRF cookie): nginx passes each request on",
    ),
    *(
        Scenario(
            f"storm-{s}",
            f"buy storm ({s})",
            "web",
            "/api/sales/{sale}/buy",
            mode="storm",
            expected=(202, 409),
            strategy=s,
            note="every session asks again and again; a fresh sale per run",
        )
        for s in STRATEGIES
    ),
    Scenario(
        "soldout-gate",
        "sold out only (gate)",
        "web",
        "/api/sales/{sale}/buy",
        mode="storm",
        expected=(409,),
        strategy="gate",
        stock=0,
        note="the sale sold out before the run: every answer is 409 sold_out, in front of"
        " Django once the process knows (orders/soldout_edge.py)",
    ),
    *(
        Scenario(
            f"accepted-{s}",
            f"accepted buys ({s})",
            "nginx",
            "/api/sales/{sale}/buy",
            mode="once",
            expected=(202,),
            strategy=s,
            note="each session buys once, stock = sessions; through nginx, the buyers' path",
        )
        for s in STRATEGIES
    ),
]
BY_KEY = {s.key: s for s in SCENARIOS}


@dataclass
class Run:
    key: str
    title: str
    strategy: str | None
    connections: int
    server: str
    requests: int
    seconds: float
    rps: float
    latency_ms: dict[str, float]
    statuses: dict[int, int]
    errors: dict[str, int]
    socket_errors: dict[str, int]
    real_failures: int
    unexpected: dict[int, int]  # answers with a status the scenario does not expect (not 5xx)
    tallies: dict[str, int] = field(default_factory=dict)
    accepted: int = 0
    buyers: int | None = None  # accepted buys: how many buyers asked (each once)
    settle_s: float | None = None  # last order settled, seconds after the last answer
    pending: int | None = None  # orders still pending after SETTLE_TIMEOUT
    invariants: dict | None = None  # the checker's report (loadtests/rig.Rig.check)
    # buy runs: CPU ms per accepted order of each process (tree), from the first request to
    # the last order settled (CPU_PROCESSES), and their sum over ORDER_PROCESSES ("total")
    cpu_ms_per_order: dict[str, float] | None = None
    others_cpu: float = 0.0  # share of the machine's CPU used by processes not of the bench
    warnings: list[str] = field(default_factory=list)  # reported, not an error

    @property
    def violations(self) -> list[str]:
        return list((self.invariants or {}).get("violations", []))


# -- the run ------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scenarios = select(args.only, args.strategies)
    args.results.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="qbuy-bench-") as tmp:
        report = bench(Path(tmp), scenarios, args)
        if report["problems"]:  # the processes' logs, for a post-mortem
            kept = args.results / "bench-logs"
            shutil.rmtree(kept, ignore_errors=True)
            shutil.copytree(
                tmp,
                kept,
                ignore=shutil.ignore_patterns("*.jsonl", "sessions.txt", "beat-schedule*"),
            )
            report["logs"] = _shown(kept)
    report["elapsed_s"] = round(time.monotonic() - started, 1)
    print(format_report(report))
    (args.results / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    from loadtests import chart  # matplotlib: only once there is something to draw

    png = chart.draw(report, args.results / "bench.png")
    print(f"bench: wrote {_shown(args.results / 'bench.json')} and {_shown(png)}")
    print(f"bench: done in {report['elapsed_s']:.0f}s")
    for problem in report["problems"]:
        print(f"bench: FAILED: {problem}")
    if "logs" in report:
        print(f"bench: the processes' logs are kept in {report['logs']}")
    return 1 if report["problems"] else 0


def add_stack_options(parser: argparse.ArgumentParser) -> None:
    """The options `make bench` and `make bench-compare` share: connections, buyers, wrk and
    gunicorn, and where the results go."""
    parser.add_argument("--connections", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--sessions", type=int, default=1000, help="logged-in buyers (1000)")
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count() or 2, help="wrk threads (the cores)"
    )
    parser.add_argument("--timeout", type=int, default=5, help="wrk: an answer later is a failure")
    parser.add_argument(
        "--workers", type=int, help="GUNICORN_WORKERS (default: the gunicorn config's)"
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the files go")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per run (default 10)")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="KEY",
        help=f"scenarios whose key starts with KEY: {', '.join(BY_KEY)}",
    )
    parser.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    parser.add_argument("--stock", type=int, default=200, help="stock of a storm's sale (200)")
    parser.add_argument("--warmup", type=int, default=1, help="seconds, unmeasured, per scenario")
    add_stack_options(parser)
    args = parser.parse_args(argv)
    if args.stock >= args.sessions:
        parser.error("--stock must be below --sessions: the storm is mostly sold out answers")
    if args.only:
        unknown = [k for k in args.only if not any(key.startswith(k) for key in BY_KEY)]
        if unknown:
            parser.error(f"--only: no scenario starts with {', '.join(unknown)}")
    return args


def select(only: list[str] | None, strategies: list[str]) -> list[Scenario]:
    return [
        s
        for s in SCENARIOS
        if (not only or any(s.key.startswith(k) for k in only))
        and (s.strategy is None or s.strategy in strategies)
    ]


def bench(workdir: Path, scenarios: list[Scenario], args: argparse.Namespace) -> dict:
    settings = deployed_settings()
    strategies = list(dict.fromkeys(s.strategy for s in scenarios if s.strategy))
    if strategies:
        settings["BUY_STRATEGY"] = strategies[0]
    if args.workers:
        settings["GUNICORN_WORKERS"] = str(args.workers)
    # Redis with its append-only file, as compose runs it.
    with Rig(workdir, settings=settings, nginx=True, redis_aof=True, supervise=False) as r:
        report = {
            "machine": describe_machine(r),
            "gunicorn": describe_gunicorn(r),
            "settings": {
                k: r.env[k]
                for k in (*settings, "CACHE_URL", "GUNICORN_WORKERS", "CELERY_WORKER_CONCURRENCY")
                if k in r.env and k != "SECRET_KEY"
            },
            "generator": {
                "tool": "wrk",
                "version": _first_line([devservers.which("wrk"), "-v"]),
                "threads": args.threads,
                "connections": args.connections,
                "duration_s": args.duration,
                "timeout_s": args.timeout,
                "script": str(wrk.SCRIPT.relative_to(ROOT)),
            },
            "notes": notes(args),
        }
        print(format_header(report), flush=True)
        runs = page_runs(r, [s for s in scenarios if not s.strategy], args)
        runs += buy_runs(r, [s for s in scenarios if s.strategy], strategies, args)
    order = [s.key for s in SCENARIOS]  # a scenario's strategies side by side
    runs.sort(key=lambda x: (order.index(x.key), args.connections.index(x.connections)))
    report["runs"] = [_jsonable(asdict(x)) for x in runs]
    report["ratios"] = ratios(runs, args.connections)
    report["problems"] = problems(runs)
    return report


def page_runs(r: Rig, scenarios: list[Scenario], args) -> list[Run]:
    """The GET scenarios, each warmed up (unmeasured) then run at each connection count."""
    runs = []
    page_sale = None
    if any(s.key.startswith("list-") for s in scenarios):
        r.manage("seed_demo", "--sales", "20", "-v0")  # a full page of sales to list
    if any(s.key.startswith("sale-page") for s in scenarios):
        page_sale = r.create_sale("bench sale page", 100)
    for scenario in scenarios:
        with (
            bare_django(r) if scenario.server == "bare" else contextlib.nullcontext() as bare,
            web_settings(r, dict(scenario.web_env)),
        ):
            base = {"nginx": r.url, "web": r.web_url, "bare": bare}[scenario.server]
            url = base + scenario.path.format(sale=page_sale)
            common = {"threads": args.threads, "mode": scenario.mode, "timeout": args.timeout}
            if args.warmup:
                wrk.run(url, connections=args.connections[0], duration=args.warmup, **common)
            for connections in args.connections:
                time.sleep(PAUSE)
                result, others = measured(
                    url,
                    connections=connections,
                    duration=args.duration,
                    tally=scenario.tally,
                    **common,
                )
                runs.append(_record(scenario, connections, result, others_cpu=others))
    return runs


@contextlib.contextmanager
def web_settings(r: Rig, env: dict[str, str]):
    """The web process restarted with ``env`` for the block, and with what it had after."""
    if not env:
        yield
        return
    before = {name: r.processes["web"].env.get(name) for name in env}
    r.restart("web", **env)
    try:
        yield
    finally:
        # A setting the web process did not have is given its default back by deleting it.
        proc = r.processes["web"]
        for name, value in before.items():
            if value is None:
                proc.env.pop(name, None)
        r.restart("web", **{k: v for k, v in before.items() if v is not None})


def buy_runs(r: Rig, scenarios: list[Scenario], strategies: list[str], args) -> list[Run]:
    """The buy scenarios, strategy by strategy on the same buyers: only the web process is
    restarted in between (the strategy is one of its settings)."""
    if not scenarios:
        return []
    runs = []
    sessions_file = r.dir / "sessions.txt"
    t0 = time.monotonic()
    count = log_in(r, args.sessions, sessions_file)
    print(f"bench: {count} buyers logged in in {time.monotonic() - t0:.0f}s", flush=True)
    for i, strategy in enumerate(strategies):
        if i:
            r.restart("web", BUY_STRATEGY=strategy)
            print(f"bench: web restarted with BUY_STRATEGY={strategy}", flush=True)
        warm_up_buys(r, sessions_file, args)
        for scenario in [s for s in scenarios if s.strategy == strategy]:
            for connections in args.connections:
                time.sleep(PAUSE)
                runs.append(buy_run(r, scenario, connections, sessions_file, count, args))
    return runs


def measured(url: str, **options) -> tuple[wrk.Result, float]:
    """A wrk run, and the share of the machine's CPU other processes used meanwhile."""
    before = cpuload.Snapshot.take()
    result = wrk.run(url, **options)
    return result, cpuload.others_share(before, cpuload.Snapshot.take())


def _record(scenario: Scenario, connections: int, result: wrk.Result, **extra) -> Run:
    unexpected = {
        status: n
        for status, n in result.statuses.items()
        if status not in scenario.expected and status < 500
    }
    run = Run(
        key=scenario.key,
        title=scenario.title,
        strategy=scenario.strategy,
        connections=connections,
        server=scenario.server,
        requests=result.requests,
        seconds=round(result.seconds, 3),
        rps=round(result.rps, 1),
        latency_ms={k: round(v, 2) for k, v in result.latency_ms.items()},
        statuses=result.statuses,
        errors=result.errors,
        socket_errors=result.socket_errors,
        real_failures=result.real_failures,
        unexpected=unexpected,
        tallies=result.tallies,
        accepted=len(result.tokens),
        **extra,
    )
    run.others_cpu = round(run.others_cpu, 3)
    if run.others_cpu > NOISY:
        run.warnings.append(
            f"other processes used {run.others_cpu:.0%} of the machine's CPU meanwhile:"
            " not a quiet machine, these figures are low"
        )
    if scenario.hit and result.requests:
        share = result.tallies.get(scenario.hit, 0) / result.requests
        if share < 0.95:
            run.warnings.append(f"only {share:.0%} of the answers were cache hits")
    print(f"bench: {format_run(run)}", flush=True)
    return run


# The processes whose CPU an order costs, each measured with its children (gunicorn's workers,
# Postgres' backends); nginx is the edge and counted apart.
ORDER_PROCESSES = ("web", "worker", "beat", "postgres", "redis")
CPU_PROCESSES = (*ORDER_PROCESSES, "nginx")


def process_roots(r: Rig) -> dict[str, int]:
    roots = {name: r.processes[name].proc.pid for name in ("web", "worker", "beat")}
    roots["postgres"] = r.postgres.executor.process.pid
    roots["redis"] = r.redis.executor.process.pid
    if r.nginx is not None:
        roots["nginx"] = r.nginx.proc.pid
    return roots


def cpu_per_order(before: dict[str, float], after: dict[str, float], orders: int) -> dict:
    if not orders:
        return {}
    per = {name: round(1000 * (after[name] - before[name]) / orders, 3) for name in before}
    per["total"] = round(sum(per.get(name, 0.0) for name in ORDER_PROCESSES), 3)
    return per


def buy_run(
    r: Rig, scenario: Scenario, connections: int, sessions_file: Path, count: int, args
) -> Run:
    """A fresh sale, the storm or the accepted buys on it, the orders settled, the invariants,
    and what each process's CPU an order cost."""
    stock = scenario.stock
    if stock is None:
        stock = args.stock if scenario.mode == "storm" else count  # accepted: one per buyer
    sale = r.create_sale(f"bench {scenario.key} c{connections}", stock)
    url = (r.url if scenario.server == "nginx" else r.web_url) + scenario.path.format(sale=sale)
    roots = process_roots(r)
    cpu_before = {name: cpuload.tree_cpu(pid) for name, pid in roots.items()}
    result, others = measured(
        url,
        connections=connections,
        # Accepted buys end when every buyer has an answer; the duration only bounds a stall.
        duration=args.duration if scenario.mode == "storm" else max(args.duration, 60),
        threads=args.threads,
        mode=scenario.mode,
        timeout=args.timeout,
        sessions=sessions_file,
        workdir=r.dir,
    )
    last = result.last or time.time()
    pending, settled = r.wait_settled(sale, last, SETTLE_TIMEOUT)
    cpu_after = {name: cpuload.tree_cpu(pid) for name, pid in roots.items()}
    report = r.check(sale, result.tokens)
    return _record(
        scenario,
        connections,
        result,
        cpu_ms_per_order=cpu_per_order(cpu_before, cpu_after, len(result.tokens)) or None,
        others_cpu=others,
        buyers=count if scenario.mode == "once" else None,
        settle_s=None if pending else round(max(0.0, (settled or last) - last), 3),
        pending=pending,
        invariants=report,
    )


def warm_up_buys(r: Rig, sessions_file: Path, args) -> None:
    """Every web worker opens its Postgres and Redis connections and loads the gate's script
    before a run is measured: a short storm on a sale of its own."""
    if not args.warmup:
        return
    sale = r.create_sale("bench warm-up", 1)
    warm_storm(f"{r.web_url}/api/sales/{sale}/buy", sessions_file, args)


def warm_storm(url: str, sessions_file: Path, args) -> wrk.Result:
    """An unmeasured storm of ``args.warmup`` seconds on ``url`` (a buy endpoint)."""
    return wrk.run(
        url,
        connections=args.connections[0],
        duration=args.warmup,
        threads=args.threads,
        mode="storm",
        timeout=args.timeout,
        sessions=sessions_file,
    )


def log_in(r: Rig, count: int, sessions_file: Path, *, url: str | None = None) -> int:
    """Buyers logged in with SMS codes, through nginx or ``url``; their cookies, one line each,
    for bench.lua."""
    codes = storm.sms_file_codes(r.dir / "sms.jsonl")
    sessions = storm.log_in_buyers(url or r.url, codes, count)
    lines = [f"{s.cookies['SESSION_ID']} {s.cookies['csrftoken']}\n" for s in sessions]
    sessions_file.write_text("".join(lines))
    return len(lines)


@contextlib.contextmanager
def bare_django(r: Rig) -> Iterator[str]:
    """loadtests/bare served by the same gunicorn config as qbuy, with the same workers."""
    port = get_port(None)
    env = {
        **r.processes["web"].env,
        "DJANGO_SETTINGS_MODULE": "barebench.settings",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
    }
    gunicorn = devservers.which("gunicorn", str(Path(sys.executable).parent))
    command = [gunicorn, "--config", str(GUNICORN_CONF), "--chdir", str(BARE)]
    bare = Process("bare", env, r.dir, "Listening at", [*command, "barebench.wsgi:application"])
    bare.start(timeout=30)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        bare.stop()


# -- what ran where -------------------------------------------------------------------------------
def describe_machine(r: Rig) -> dict:
    import django
    import gunicorn

    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    mem_kb = re.search(r"^MemTotal:\s*(\d+)", meminfo, re.M)
    with psycopg.connect(r.postgres.url) as db:
        postgres = db.execute("SHOW server_version").fetchone()[0]
    redis_version = redis.Redis.from_url(r.redis.url).info("server")["redis_version"]
    nginx = _first_line([devservers.which("nginx", "/usr/sbin"), "-v"])
    return {
        "cpu": model.group(1).strip() if model else platform.processor() or "unknown",
        "cores": os.cpu_count(),
        "memory_gb": round(int(mem_kb.group(1)) / 1024 / 1024, 1) if mem_kb else None,
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "django": django.get_version(),
        "gunicorn": gunicorn.__version__,
        "nginx": nginx.split("/")[-1] if "/" in nginx else nginx,
        "postgres": postgres.split()[0],
        "redis": redis_version,
    }


def describe_gunicorn(r: Rig) -> dict:
    """The config file's values for the web process's environment, and what gunicorn says it
    started (worker class, workers booted)."""
    env = r.processes["web"].env
    with mock.patch.dict(os.environ, env, clear=True):
        conf = runpy.run_path(str(GUNICORN_CONF))
    deadline = time.monotonic() + 30
    while True:  # the workers boot right after "Listening at"
        log = (r.dir / "web.log").read_text(errors="replace")
        log = log[log.rfind("Starting gunicorn") :]
        booted = log.count("Booting worker with pid")
        if booted >= conf["workers"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    # [\w.]: the class's name ends the match whether the line is text or a JSON object.
    worker_class = re.search(r"Using worker: ([\w.]+)", log)
    return {
        "config": str(GUNICORN_CONF.relative_to(ROOT)),
        "worker_class": worker_class.group(1) if worker_class else "?",
        "workers": conf["workers"],
        "workers_booted": booted,
        "threads": conf["threads"],
        "max_requests": conf["max_requests"],
        "timeout": conf["timeout"],
        "keepalive": conf["keepalive"],
    }


def notes(args) -> list[str]:
    return [
        f"generator: wrk, {args.threads} threads, on the same {os.cpu_count()} cores as the"
        " servers: every figure includes the generator's share of the CPU",
        "Django scenarios and the buy storm go to gunicorn directly, so their ratios compare"
        " Django's work only; nginx serves the static file and the micro-cache; accepted buys"
        " go through nginx (the buyers' path; a wrk thread done with its buyers leaves its"
        " connections open, which nginx holds for free but would each block a sync worker)",
        "gunicorn's sync workers close every connection: each request to gunicorn is a new TCP"
        " connection; nginx keeps the generator's connections alive",
        "nginx logs each proxied request (access_log to a file here) but not static files:"
        " part of the configuration measured",
        "Postgres is a throwaway server with fsync and synchronous_commit off"
        " (tools/devservers.py): writes are cheaper than on a durable deployment",
        "wrk is a closed loop (a connection asks again as soon as it is answered): at N"
        " connections the mean latency is N / requests per second (Little's law), so latency"
        " at 256 connections is mostly queueing, e.g. a p99 of 100 ms needs > 2,560 answers/s",
        f"real failures = 5xx + answers slower than {args.timeout}s + connection errors;"
        " latency percentiles are wrk's",
        "other CPU: the share of the machine's CPU that processes outside the bench used during"
        f" a run (loadtests/cpuload.py); a run above {NOISY:.0%} is marked *",
    ]


def _first_line(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    return (done.stdout + done.stderr).strip().splitlines()[0].strip()


# -- targets ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    label: str
    keys: tuple[str, ...]  # the scenarios it reads, in the order ``value`` takes their runs
    value: Callable[..., float | None]  # those runs, at one connection count -> the figure
    op: str  # ">=" or "<="
    threshold: float
    unit: str = "x"
    connections: tuple[int, ...] | None = None  # None: every connection count of the run


def _per(a: Run, b: Run) -> float | None:
    return a.rps / b.rps if b.rps else None


def _settle(x: Run) -> float:
    # never settled (still pending after SETTLE_TIMEOUT): a miss, not a missing value
    return math.inf if x.settle_s is None else x.settle_s


def _cpu(x: Run) -> float | None:
    return (x.cpu_ms_per_order or {}).get("total")


def _p99(x: Run) -> float | None:
    return x.latency_ms.get("p99")


TARGETS = [
    # Issue 20: the opening second.
    Target("accepted buys, gate / db-lock", ("accepted-gate", "accepted-db-lock"), _per, ">=", 2),
    Target(
        "CPU per accepted order, gate (web+worker+beat+Postgres+Redis)",
        ("accepted-gate",),
        _cpu,
        "<=",
        4,
        "ms",
    ),
    Target("buy storm (gate) / /healthz", ("storm-gate", "healthz"), _per, ">=", 1.0),
    Target("sold out only (gate) / /healthz", ("soldout-gate", "healthz"), _per, ">=", 1.5),
    Target(
        "sold out only (gate) p99 / /healthz p99",
        ("soldout-gate", "healthz"),
        lambda a, b: _p99(a) / _p99(b) if _p99(a) and _p99(b) else None,
        "<=",
        1.0,
        "x",
        (256,),
    ),
    Target(
        "gate / db-lock, same storm", ("storm-gate", "storm-db-lock"), _per, ">=", 4, "x", (256,)
    ),
    Target("@cache_page hit / /healthz", ("list-cache-page", "healthz"), _per, ">=", 1.0),
    Target("sale page hit / /healthz", ("sale-page", "healthz"), _per, ">=", 1.0),
    Target("login page, nginx / straight", ("login-nginx", "login-web"), _per, ">=", 0.9),
    # Issue 19: random query strings cannot drain the caches: they cost less than /healthz.
    Target(
        "sale page, new query string each / /healthz",
        ("sale-page-busting", "healthz"),
        _per,
        ">=",
        1.0,
    ),
    # Earlier issues' targets, kept.
    Target(
        "buy storm (gate) p99",
        ("storm-gate",),
        _p99,
        "<=",
        100,
        "ms",
        (256,),
    ),
    Target(
        "accepted buys (gate): last order settled after the last answer",
        ("accepted-gate",),
        _settle,
        "<=",
        3,
        "s",
    ),
    Target(
        "buy storm (gate) real failures", ("storm-gate",), lambda x: x.real_failures, "<=", 0, ""
    ),
    Target("/healthz / bare Django view", ("healthz", "bare"), _per, ">=", 0.6),
    Target("nginx micro-cache hit / nginx static", ("list-micro-cache", "static"), _per, ">=", 0.9),
]


def ratios(runs: list[Run], connections: list[int]) -> list[dict]:
    by = {(x.key, x.connections): x for x in runs}
    rows = []
    for t in TARGETS:
        for c in t.connections or connections:
            if c not in connections:
                continue
            inputs = [by.get((key, c)) for key in t.keys]
            value = None if None in inputs else t.value(*inputs)
            passed = None
            if value is not None:
                passed = value >= t.threshold if t.op == ">=" else value <= t.threshold
            rows.append(
                {
                    "target": t.label,
                    "connections": c,
                    "op": t.op,
                    "threshold": t.threshold,
                    "unit": t.unit,
                    # JSON has no infinity: a value that never came is null, and a MISS
                    "value": None if value in (None, math.inf) else round(value, 3),
                    "result": {True: "PASS", False: "MISS", None: "n/a"}[passed],
                    # measured while other processes took a share of the CPU
                    "noisy": any(x.others_cpu > NOISY for x in inputs if x is not None),
                }
            )
    return rows


def problems(runs: list[Run]) -> list[str]:
    """What makes the harness exit 1 (a missed target does not)."""
    found = []
    for x in runs:
        where = f"{x.title} @{x.connections}"
        if x.real_failures and not BY_KEY[x.key].failures_allowed:
            found.append(f"{where}: {x.real_failures} real failures")
        if x.unexpected:
            found.append(f"{where}: unexpected answers {x.unexpected} (is the harness wrong?)")
        if x.requests == 0:
            found.append(f"{where}: no answer at all")
        elif x.buyers and x.requests < x.buyers:
            found.append(f"{where}: {x.buyers - x.requests} of {x.buyers} buyers had no answer")
        found.extend(f"{where}: invariant: {v}" for v in x.violations)
        if x.pending:
            found.append(f"{where}: {x.pending} orders still pending after {SETTLE_TIMEOUT:.0f}s")
    return found


# -- output -------------------------------------------------------------------------------------
def format_header(report: dict) -> str:
    m, g, gen = report["machine"], report["gunicorn"], report["generator"]
    return "\n".join(
        [
            f"bench: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, {m['kernel']}",
            f"bench: Python {m['python']}, Django {m['django']}, gunicorn {m['gunicorn']},"
            f" nginx {m['nginx']}, Postgres {m['postgres']}, Redis {m['redis']}",
            f"bench: gunicorn ({g['config']}): {g['workers']} {g['worker_class']} workers"
            f" ({g['workers_booted']} booted), {g['threads']} thread(s) each,"
            f" max_requests {g['max_requests']}, timeout {g['timeout']}s",
            f"bench: settings {report['settings']['DJANGO_SETTINGS_MODULE']},"
            f" CACHE_URL {report['settings'].get('CACHE_URL')}",
            f"bench: generator {gen['version'].split(' Copyright')[0]}, {gen['threads']} threads,"
            f" {gen['duration_s']}s per run at {' and '.join(map(str, gen['connections']))}"
            f" connections, timeout {gen['timeout_s']}s",
            *(f"bench: note: {n}" for n in report["notes"]),
        ]
    )


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def format_run(x: Run) -> str:
    lat = x.latency_ms
    return (
        f"{x.title} @{x.connections}: {x.rps:.0f} req/s, p50 {_ms(lat.get('p50'))} ms,"
        f" p99 {_ms(lat.get('p99'))} ms, answers {x.statuses}, real failures {x.real_failures},"
        f" other processes {x.others_cpu:.0%} of the CPU"
    )


def format_report(report: dict) -> str:
    head = (
        f"{'scenario':<34}{'conns':>6}{'req/s':>10}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
        f"{'failures':>10}{'other CPU':>11}  answers by status"
    )
    lines = ["", head, "-" * (len(head) + 20)]
    for x in report["runs"]:
        lat = x["latency_ms"]
        statuses = ", ".join(f"{s}: {n}" for s, n in x["statuses"].items())
        others = f"{x['others_cpu']:.0%}" + ("*" if x["others_cpu"] > NOISY else " ")
        lines.append(
            f"{x['title']:<34}{x['connections']:>6}{x['rps']:>10.1f}{_ms(lat.get('p50')):>9}"
            f"{_ms(lat.get('p95')):>9}{_ms(lat.get('p99')):>9}{x['real_failures']:>10}"
            f"{others:>11}  {statuses}"
        )
        details = []
        if x["errors"]:
            details.append("errors " + ", ".join(f"{k}: {n}" for k, n in x["errors"].items()))
        if any(x["socket_errors"].values()):
            details.append(f"socket {x['socket_errors']}")
        if x["tallies"]:
            details.append(", ".join(f"{k}: {n}" for k, n in x["tallies"].items()))
        if x["strategy"]:
            details.append(f"{x['accepted']} accepted")
        if x["settle_s"] is not None:
            details.append(f"settled {x['settle_s']:.2f}s after the last answer")
        if x.get("cpu_ms_per_order"):
            cpu = x["cpu_ms_per_order"]
            parts = ", ".join(f"{name} {cpu[name]:.2f}" for name in CPU_PROCESSES if name in cpu)
            details.append(f"CPU ms per order: {parts}; total {cpu['total']:.2f} (nginx apart)")
        if x["invariants"] is not None:
            inv = x["invariants"]
            details.append(
                f"invariants {'ok' if inv.get('ok') else 'VIOLATED'} (orders {inv.get('orders')})"
            )
        details += [f"WARNING: {w}" for w in x["warnings"] if not w.startswith("other ")]
        if details:
            lines.append(f"{'':<6}{'; '.join(details)}")
    ran = {x["key"] for x in report["runs"]}
    lines += [""] + [f"{s.title}: {s.note}" for s in SCENARIOS if s.key in ran and s.note]
    lines += ["", f"{'target':<64}{'conns':>6}{'value':>10}  {'goal':<10}result"]
    for row in report["ratios"]:
        value = "-" if row["value"] is None else f"{row['value']:.2f}{row['unit']}"
        if row["unit"] == "" and row["value"] is not None:
            value = f"{row['value']:g}"
        if row["value"] is None and row["result"] == "MISS":
            value = "never"
        goal = f"{row['op']} {row['threshold']:g}{row['unit']}"
        noisy = " (*)" if row["noisy"] else ""
        lines.append(
            f"{row['target']:<64}{row['connections']:>6}{value:>10}  {goal:<10}"
            f"{row['result']}{noisy}"
        )
    missed = sum(row["result"] == "MISS" for row in report["ratios"])
    passed = sum(row["result"] == "PASS" for row in report["ratios"])
    lines.append(f"targets: {passed} PASS, {missed} MISS (a miss is reported, it is no error)")
    noisy = [x for x in report["runs"] if x["others_cpu"] > NOISY]
    if noisy:
        lines.append(
            f"(*) {len(noisy)} of {len(report['runs'])} runs shared the machine: other processes"
            f' used more than {NOISY:.0%} of its CPU meanwhile (column "other CPU"); their'
            " figures, and the targets read from them, say less about qbuy than about the"
            " neighbours. Run again on a quiet machine."
        )
    return "\n".join(lines)


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _shown(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(ROOT))
    return str(path)


if __name__ == "__main__":
    sys.exit(main())
