"""`make demo`: a sale to watch on the stack `make up` started.

It creates a sale that opens a minute later (50 items, open for two minutes), then sends 200
simulated buyers at it through nginx, Locust with `make loadtest`'s locustfile: each logs in
with an SMS code, opens the sale page, waits for the opening, presses buy and follows its order
until it settles. Meanwhile the sale page, Flower, the admin's live view and Prometheus (the
observability profile) have a sale to show. At the end it prints the answers the buyers got and
the invariant check of the sale, and exits 1 if a buyer got stuck or an invariant broke.

Every simulated buyer comes from one address, which the stack's per-address limits would
refuse after three SMS codes, and the buyers need their codes: for the run, web and nginx are
recreated with the limits of loadtests/limits.py and the SMS `file` backend (read back with
`docker exec`), then recreated again with your settings (the env file of `make up`). Orders,
the live view's figures and Prometheus' series stay; web's own counters start again.

    python -m loadtests.demo [--buyers 200] [--stock 50] [--starts-in 60] [--duration 120]
"""

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import requests

from loadtests import loadtest
from loadtests.limits import RAISED_LIMITS
from tools.stack import ROOT

WORKDIR = ROOT / "loadtests/results/demo"  # Locust's log and the buyers' events, kept

COMPOSE = ["docker", "compose", "-f", str(ROOT / "deploy/compose.yml")]
SMS_FILE = "/tmp/qbuy-sms.jsonl"  # noqa: S108 - in each web container
DEMO_SETTINGS = {
    **RAISED_LIMITS,
    "SMS_BACKEND": "file",
    "SMS_FILE_PATH": SMS_FILE,
    "SMS_ALLOW_INSECURE_BACKEND": "true",
}
# Only these read the settings above: nginx the limits, web the limits and the SMS backend.
RECREATED = ("web", "nginx")
SMS_COPY_EVERY = 0.2  # seconds between two reads of the web containers' SMS files


class Compose:
    """The running `make up` stack, as the demo uses it."""

    def __init__(self, env_file: Path, port: str):
        self.env_file = env_file
        self.url = f"http://127.0.0.1:{port}"

    def compose(self, *args: str, env_file: Path | None = None, stdin: str | None = None):
        env = {**os.environ, "QBUY_ENV_FILE": str(env_file or self.env_file)}
        return subprocess.run(
            [*COMPOSE, *args], input=stdin, capture_output=True, text=True, env=env, check=False
        )

    def webs(self) -> list[str]:
        return self.compose("ps", "-q", "web").stdout.split()

    def manage(self, *args: str, stdin: str | None = None, check: bool = True):
        done = self.compose("exec", "-T", "web", "python", "manage.py", *args, stdin=stdin)
        if check and done.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)}:\n{done.stdout}{done.stderr}")
        return done

    def recreate(self, env_file: Path, replicas: int) -> None:
        done = self.compose(
            *("up", "--detach", "--no-build", "--no-deps", "--wait"),
            *("--scale", f"web={replicas}", *RECREATED),
            env_file=env_file,
        )
        if done.returncode:
            raise RuntimeError(f"docker compose up {' '.join(RECREATED)}:\n{done.stderr}")

    @contextlib.contextmanager
    def demo_settings(self, workdir: Path):
        """web and nginx with DEMO_SETTINGS for the block, then with the env file again; the
        SMS codes of every web container copied to workdir/sms.jsonl meanwhile."""
        replicas = len(self.webs())
        demo_env = workdir / "env"  # a copy of the env file's secrets: removed once read
        demo_env.touch(mode=0o600)
        demo_env.write_text(with_settings(self.env_file.read_text(), DEMO_SETTINGS))
        print(
            f"demo: web and nginx restarted with the demo's settings ({replicas} web)", flush=True
        )
        try:
            self.recreate(demo_env, replicas)
            demo_env.unlink()
            with SmsCopy(self.webs(), workdir / "sms.jsonl"):
                yield self
        finally:
            demo_env.unlink(missing_ok=True)
            print("demo: web and nginx restarted with your settings", flush=True)
            self.recreate(self.env_file, replicas)


def with_settings(env_text: str, settings: dict[str, str]) -> str:
    """An env file's text with ``settings`` in place of the lines that set the same names."""
    kept = [
        line
        for line in env_text.splitlines()
        if line.partition("=")[0].strip().removeprefix("export ") not in settings
    ]
    return "\n".join([*kept, *(f"{k}={v}" for k, v in settings.items())]) + "\n"


class SmsCopy:
    """The web containers' SMS files appended, as they grow, to one file here: the locustfile
    reads codes from a file on this machine (each web replica writes its own /tmp)."""

    def __init__(self, containers: list[str], path: Path):
        self.containers, self.path = containers, path
        self.offsets: dict[str, int] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="sms-copy", daemon=True)

    def __enter__(self):
        self.path.touch()
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()

    def _loop(self) -> None:
        while not self.stop.wait(SMS_COPY_EVERY):
            for container in self.containers:
                self.copy(container)

    def copy(self, container: str) -> None:
        offset = self.offsets.get(container, 0)
        done = subprocess.run(
            ["docker", "exec", container, "tail", "-c", f"+{offset + 1}", SMS_FILE],
            capture_output=True,
            check=False,
        )
        if done.returncode:  # no code sent yet
            return
        complete = done.stdout[: done.stdout.rfind(b"\n") + 1]  # a line being written waits
        self.offsets[container] = offset + len(complete)
        with open(self.path, "ab") as out:
            out.write(complete)


class Target:
    """Where Locust sends the buyers (``url``) and keeps its files (``dir``, with the SMS codes
    in dir/sms.jsonl), as loadtest.run_locust expects of a stack."""

    def __init__(self, url: str, workdir: Path):
        self.url, self.dir = url, workdir


def run(stack, target: Target, opts: argparse.Namespace) -> dict:
    """The sale and its buyers on ``stack`` (anything with ``manage`` and ``url``): the sale,
    the buyers' answers and journeys, the invariant report, and ``ok``."""
    made = stack.manage(
        *("create_sale", "--name", f"Demo kettle ({opts.stock} in stock)"),
        *("--stock", str(opts.stock), "--starts-in", str(opts.starts_in)),
        *("--duration", str(opts.duration)),
    )
    sale = json.loads(made.stdout)
    print(watch(sale["id"], stack.url, opts), flush=True)
    # Locust at the stack's priority: a demo's 200 buyers leave the cores to spare.
    locust_opts = argparse.Namespace(
        buyers=opts.buyers,
        spawn_rate=opts.spawn_rate,
        press_spread=1.0,
        processes=1,
        ui=False,
        locust_nice=0,
    )
    locust = loadtest.run_locust(
        target, sale["id"], locust_opts, time_limit=opts.starts_in + opts.time_after_start
    )
    events = locust["events"]
    accepted = [e["order"] for e in events if e["e"] == "buy" and e["order"]]
    checked = stack.manage(
        "check_invariants", "--sale", str(sale["id"]), "--accepted", "-",
        stdin=json.dumps(accepted), check=False,
    )  # fmt: skip
    report = json.loads(checked.stdout)
    journeys = Counter(e["outcome"] or "unfinished" for e in events if e["e"] == "done")
    stuck = {k: n for k, n in journeys.items() if k not in loadtest.FINISHED}
    return {
        "sale": sale,
        "buy_answers": dict(
            Counter(f"{e['status']} {e['error'] or ''}".strip() for e in events if e["e"] == "buy")
        ),
        "journeys": dict(journeys),
        "invariants": report,
        "ok": not (report["violations"] or stuck) and sum(journeys.values()) == opts.buyers,
    }


def watch(sale: int, url: str, opts: argparse.Namespace) -> str:
    flower = os.environ.get("QBUY_FLOWER_PORT", "5555")
    prometheus = os.environ.get("QBUY_PROMETHEUS_PORT", "9090")
    return "\n".join(
        [
            f"demo: sale {sale} opens in {opts.starts_in} s with {opts.stock} items;"
            f" {opts.buyers} buyers are logging in. Watch it:",
            f"  the sale page      {url}/sales/{sale}/",
            f"  the live view      {url}/admin/sales/sale/{sale}/live/  (a staff login:"
            " docker compose -f deploy/compose.yml exec web python manage.py createsuperuser)",
            f"  Flower             http://127.0.0.1:{flower}/  (FLOWER_BASIC_AUTH in the env file)",
            f"  Prometheus         http://127.0.0.1:{prometheus}/  (the observability profile)",
        ]
    )


def report(summary: dict) -> str:
    inv = summary["invariants"]
    lines = [
        f"demo: buy answers {summary['buy_answers']}",
        f"demo: journeys {summary['journeys']}",
        f"demo: {inv['confirmed_quantity']} of {inv['stock']} confirmed, orders {inv['orders']},"
        f" duplicate buyers {inv['duplicate_buyers']}, pending {inv['pending_quantity']}",
    ]
    lines += [f"demo: BROKEN: {v}" for v in inv["violations"]]
    lines.append(f"demo: {'done' if summary['ok'] else 'FAILED'}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--buyers", type=int, default=200)
    parser.add_argument("--stock", type=int, default=50)
    parser.add_argument("--starts-in", type=int, default=60, help="seconds until the opening")
    parser.add_argument("--duration", type=int, default=120, help="seconds the sale is open")
    parser.add_argument("--spawn-rate", type=float, default=20, help="buyers started per second")
    parser.add_argument(
        "--time-after-start",
        type=float,
        default=60,
        help="seconds after the opening the buyers are given to finish",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    env_file = Path(os.environ.get("QBUY_ENV_FILE", ROOT / ".env"))
    stack = Compose(env_file, os.environ.get("QBUY_HTTP_PORT", "8080"))
    if not stack.webs() or not _answers(stack.url):
        print(f"demo: no stack answers at {stack.url}: run `make up` first", file=sys.stderr)
        return 2
    shutil.rmtree(WORKDIR, ignore_errors=True)
    WORKDIR.mkdir(parents=True)
    with stack.demo_settings(WORKDIR):
        summary = run(stack, Target(stack.url, WORKDIR), opts)
    print(report(summary))
    if not summary["ok"]:
        print(f"demo: Locust's log and the buyers' events are in {WORKDIR.relative_to(ROOT)}")
    return 0 if summary["ok"] else 1


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=5).ok
    except requests.RequestException:
        return False


if __name__ == "__main__":
    sys.exit(main())
