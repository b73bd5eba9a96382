"""`make faults`: a flash sale with a fault injected mid-sale, per scenario, on real processes.

Each scenario gets its own throwaway Postgres and Redis and the entry scripts the containers run
(gunicorn, the `-P gevent` worker, beat). Buyers log in with SMS codes and storm the buy endpoint
(loadtests.storm); the fault lands at the first accepted buy; nobody helps the stack afterwards,
except that an exited process is started again after a second, as compose's restart policy,
Kubernetes or `make local` would. Then the invariants are checked by the same checker as every
other suite (`manage.py check_invariants`) and one row per scenario is printed:

    requests, 202s, confirmed, failed, oversold, duplicate buyers, stuck pending, phantoms
    (orders whose buyer was not answered 202), the answers seen during the fault by status, and
    the recovery time from the fault's end to the last order settled (target: 30 s).

`python -m loadtests.faults [--quick] [--only NAME ...]`; exit 1 when a scenario breaks an
invariant or misses the recovery target. The quick form runs inside `make test`.
"""

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psycopg

from loadtests import storm
from loadtests.limits import RAISED_LIMITS
from loadtests.rig import READY, Rig
from tools.stack import ROOT, Process

RECOVERY_TARGET = 30.0  # seconds from the fault's end to the last order settled
SETTLE_TIMEOUT = 120.0
RESULTS = ROOT / "loadtests/results"
# Reconciliation at the pace a fault test can wait for; everything else as deployed.
SETTINGS = {
    "ORDER_REQUEUE_AFTER": "3",
    "RECONCILE_INTERVAL": "1",
    "BROKER_VISIBILITY_TIMEOUT": "10",
    "CELERY_TASK_TIME_LIMIT": "10",
    "SMS_BACKEND": "file",
    **RAISED_LIMITS,
    "GUNICORN_WORKERS": "4",
    "CACHE_URL": "locmemcache://",
    "DJANGO_SETTINGS_MODULE": "config.settings.test",
    "LOG_LEVEL": "INFO",
}


@dataclass
class Size:
    buyers: int
    stock: int
    attempts: int = 3


FULL, QUICK = Size(buyers=200, stock=50), Size(buyers=80, stock=20)


@dataclass
class Result:
    scenario: str
    requests: int
    accepted: int
    confirmed: int
    failed: int
    oversold: int
    duplicates: int
    stuck: int
    phantoms: int
    during_fault: dict
    recovery: float | None
    restarts: dict
    detail: str  # what the fault did, where it says more than its name
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        recovered = self.recovery is not None and self.recovery <= RECOVERY_TARGET
        clean = not (self.oversold or self.duplicates or self.stuck or self.phantoms)
        return clean and recovered and not self.violations


Fault = Callable[[Rig], str | None]  # injects the fault, returns when it is over (and a detail)


def run_scenario(name: str, size: Size, fault: Fault, *, rounds: int = 1, **rig) -> list[Result]:
    """Storm, fault at the first 202, a second storm once it is over if items are left,
    settle, check; ``rounds`` times on the same processes."""
    results = []
    with (
        tempfile.TemporaryDirectory(prefix=f"qbuy-fault-{name}-") as tmp,
        Rig(Path(tmp), settings=SETTINGS, **rig) as r,
    ):
        for round_ in range(rounds):
            label = name if rounds == 1 else f"{name} #{round_ + 1}"
            results.append(_one_round(r, label, size, fault, first=round_ * size.buyers))
        if r.restarts or not all(x.ok for x in results):  # logs for a post-mortem
            kept = RESULTS / "logs" / name.replace(" ", "-").replace(",", "")
            shutil.rmtree(kept, ignore_errors=True)
            shutil.copytree(tmp, kept, ignore=shutil.ignore_patterns("*.jsonl", "beat-schedule*"))
            print(f"faults: {name}: logs kept in {kept.relative_to(ROOT)}", flush=True)
    return results


def _one_round(r: Rig, label: str, size: Size, fault: Fault, *, first: int) -> Result:
    sessions = storm.log_in_buyers(
        r.url, storm.sms_file_codes(r.dir / "sms.jsonl"), size.buyers, first=first
    )
    sale = r.create_sale(label, size.stock)
    window: dict[str, float] = {}
    arrivals: list[tuple[float, int]] = []
    started = threading.Lock()

    def inject() -> None:
        with r.lock:  # the supervisor waits while the fault stops and starts processes
            window["start"] = time.time()
            window["detail"] = fault(r) or ""
            window["end"] = time.time()

    injector = threading.Thread(target=inject)

    def on_answer(answer: storm.Answer) -> None:
        arrivals.append((time.time(), answer.status))
        if answer.status == 202 and started.acquire(blocking=False):
            injector.start()

    answers = storm.fire(
        r.url, sale, sessions, attempts_per_buyer=size.attempts, on_answer=on_answer
    )
    if not started.locked():  # no 202 at all: the fault still has to happen
        started.acquire()
        injector.start()
    injector.join()
    # The sale goes on after the fault: those who got no item try again, and whoever lost
    # their session (Redis without persistence) logs in again first.
    if len([a for a in answers if a.status == 202]) < size.stock:
        probe = sessions[0].get(f"{r.url}/api/auth/me", timeout=10)
        if probe.status_code == 401:
            codes = storm.sms_file_codes(r.dir / "sms.jsonl")
            sessions = storm.log_in_buyers(r.url, codes, size.buyers, first=first)
        answers += storm.fire(
            r.url, sale, sessions, attempts_per_buyer=size.attempts, on_answer=on_answer
        )

    # pending is -1 while Postgres is still unreachable
    pending, last = r.wait_settled(sale, window["end"], SETTLE_TIMEOUT)
    summary = storm.summary(answers)
    report = r.check(sale, summary["accepted"])
    during = Counter(status for at, status in arrivals if window["start"] <= at <= window["end"])
    orders = report["orders"]
    return Result(
        scenario=label,
        requests=summary["requests"],
        accepted=len(summary["accepted"]),
        confirmed=orders.get("confirmed", 0),
        failed=orders.get("failed", 0),
        oversold=max(0, report["confirmed_quantity"] - report["stock"]),
        duplicates=report["duplicate_buyers"],
        stuck=orders.get("pending", 0),
        phantoms=report["unanswered"],
        during_fault=dict(sorted(during.items())),
        recovery=None if pending else max(0.0, (last or window["end"]) - window["end"]),
        restarts=dict(r.restarts),
        detail=window["detail"],
        violations=report["violations"],
    )


# -- the faults -----------------------------------------------------------------------------------
def kill_worker(r: Rig) -> None:
    r.processes["worker"].kill()
    time.sleep(1)  # a restart policy's delay
    r.start("worker")


def kill_worker_mid_batch(r: Rig) -> str:
    """The worker SIGKILLed inside a batch's transaction (issue 20): the batch holds its orders'
    row locks and waits for the sale row, which this fault holds meanwhile. Postgres rolls the
    batch back when the connection goes; the restarted worker's next batch, or the reconciler,
    settles the same orders."""
    waiting = 0
    with psycopg.connect(r.postgres.url) as db:  # a transaction until the rollback below
        sale = db.execute("SELECT max(id) FROM sales_sale").fetchone()[0]
        db.execute("SELECT 1 FROM sales_sale WHERE id = %s FOR NO KEY UPDATE", [sale])
        deadline = time.monotonic() + 10
        while not waiting and time.monotonic() < deadline:
            time.sleep(0.05)
            with psycopg.connect(r.postgres.url, autocommit=True) as probe:
                waiting = probe.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND query LIKE 'UPDATE \"sales_sale\"%%'"
                ).fetchone()[0]
        r.processes["worker"].kill()
        db.rollback()
    time.sleep(1)  # a restart policy's delay
    r.start("worker")
    return f"killed while {waiting} batch(es) waited for the sale row inside their transaction"


def stop_worker(r: Rig) -> None:
    """A deploy: SIGTERM (warm shutdown, bounded by the task time limit), then a new worker."""
    r.processes["worker"].stop(timeout=30)
    r.start("worker")


def restart_redis(r: Rig) -> str:
    r.redis.halt()
    time.sleep(2)
    r.redis.start()
    return f"Redis down 2 s, {'AOF' if r.redis.aof else 'no persistence'}"


def restart_postgres(r: Rig) -> str:
    r.postgres.halt()  # pg_ctl stop -m fast
    time.sleep(10)
    r.postgres.start()
    return f"Postgres down 10 s, worker -c {r.concurrency}"


def kill_beat(r: Rig) -> None:
    r.processes["beat"].kill()
    time.sleep(1)
    r.start("beat")


def second_beat(r: Rig) -> None:
    """Two beats at once (a careless deploy): the second runs through the settling."""
    log_dir = r.dir / "beat-2"
    log_dir.mkdir()
    env = {**r.processes["beat"].env, "CELERY_BEAT_SCHEDULE_FILE": str(log_dir / "schedule")}
    r.extra.append(Process("beat", env, log_dir, READY["beat"]).start())


def cut_commits(r: Rig) -> str:
    """Every 3rd commit of the web processes (an order's INSERT, in autocommit) is delivered and
    its answer lost, for 3 seconds."""
    commits, cuts = r.proxy.commits, r.proxy.cuts
    r.proxy.cut_every = 3
    time.sleep(3)
    r.proxy.cut_every = 0
    return f"{r.proxy.cuts - cuts} of {r.proxy.commits - commits} commits lost their answer"


SCENARIOS: dict[str, Callable[[Size], list[Result]]] = {
    "worker SIGKILL": lambda s: run_scenario("worker SIGKILL", s, kill_worker),
    "worker killed mid-batch": lambda s: run_scenario(
        "worker killed mid-batch", s, kill_worker_mid_batch
    ),
    "worker SIGTERM": lambda s: run_scenario("worker SIGTERM", s, stop_worker),
    "Redis restart": lambda s: run_scenario("Redis restart", s, restart_redis),
    "Redis restart, AOF": lambda s: run_scenario(
        "Redis restart, AOF", s, restart_redis, redis_aof=True
    ),
    "Postgres restart -c 4": lambda s: run_scenario(
        "Postgres restart -c 4", s, restart_postgres, rounds=2, concurrency=4
    ),
    "Postgres restart -c 50": lambda s: run_scenario(
        "Postgres restart -c 50", s, restart_postgres, rounds=2, concurrency=50
    ),
    "beat SIGKILL": lambda s: run_scenario("beat SIGKILL", s, kill_beat),
    "two beats": lambda s: run_scenario("two beats", s, second_beat),
    "ambiguous COMMIT": lambda s: run_scenario(
        "ambiguous COMMIT", s, cut_commits, web_through_proxy=True
    ),
}
# The short form inside `make test`: one fault of each kind of dependency.
# The worker's kill is the one inside a batch's transaction: the SIGKILL at the first 202 only
# sometimes lands there.
QUICK_SCENARIOS = [
    "worker killed mid-batch",
    "Redis restart",
    "Postgres restart -c 4",
    "ambiguous COMMIT",
]


def table(results: list[Result]) -> str:
    head = (
        f"{'scenario':<26}{'req':>5}{'202':>5}{'conf':>6}{'fail':>6}{'over':>6}{'dup':>5}"
        f"{'stuck':>7}{'phantom':>9}{'recovery':>10}  answers during the fault"
    )
    rows = [head, "-" * len(head)]
    for x in results:
        recovery = "never" if x.recovery is None else f"{x.recovery:.1f}s"
        rows.append(
            f"{x.scenario:<26}{x.requests:>5}{x.accepted:>5}{x.confirmed:>6}{x.failed:>6}"
            f"{x.oversold:>6}{x.duplicates:>5}{x.stuck:>7}{x.phantoms:>9}{recovery:>10}  "
            f"{x.during_fault}{'' if x.ok else '  FAIL'}"
        )
        if x.detail or x.restarts:
            restarts = f"; restarted: {x.restarts}" if x.restarts else ""
            rows.append(f"    {x.detail}{restarts}".rstrip())
        for violation in x.violations:
            rows.append(f"    {violation}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the short form (make test)")
    parser.add_argument("--only", nargs="*", choices=sorted(SCENARIOS), help="these scenarios")
    args = parser.parse_args(argv)
    names = args.only or (QUICK_SCENARIOS if args.quick else list(SCENARIOS))
    size = QUICK if args.quick else FULL
    results: list[Result] = []
    for name in names:
        t0 = time.monotonic()
        results.extend(SCENARIOS[name](size))
        print(f"faults: {name} done in {time.monotonic() - t0:.0f}s", flush=True)
    print(table(results))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "faults.json").write_text(
        json.dumps([{**asdict(x), "ok": x.ok} for x in results], indent=2)
    )
    failed = [x.scenario for x in results if not x.ok]
    print(f"faults: {len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
