"""The running container stack, as the suite sees it: `docker compose` on the project, settings
file and ports that scripts/test-stack.sh chose, and HTTP on the published loopback port."""

import json
import os
import subprocess
import time
from pathlib import Path

import requests

from loadtests import storm

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ["docker", "compose", "-f", str(ROOT / "deploy/compose.yml")]
URL = f"http://127.0.0.1:{os.environ.get('QBUY_HTTP_PORT', '8080')}"
FLOWER_URL = f"http://127.0.0.1:{os.environ.get('QBUY_FLOWER_PORT', '5555')}"
PROMETHEUS_URL = f"http://127.0.0.1:{os.environ.get('QBUY_PROMETHEUS_PORT', '9090')}"
# Prometheus and the exporters are up (compose's observability profile, scripts/test-stack.sh).
OBSERVED = "observability" in os.environ.get("COMPOSE_PROFILES", "").split(",")
SMS_FILE = "/tmp/qbuy-sms.jsonl"  # noqa: S108 - SMS_FILE_PATH in the containers (test-stack.sh)


def compose(*args: str, stdin: str | None = None, check: bool = True, timeout: float = 300):
    done = subprocess.run(
        [*COMPOSE, *args], input=stdin, capture_output=True, text=True, timeout=timeout
    )
    if check and done.returncode:
        raise AssertionError(f"docker compose {' '.join(args)}: {done.returncode}\n{done.stderr}")
    return done


def make(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "ENV_FILE": os.environ["QBUY_STACK_ENV_FILE"]}
    done = subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"make {' '.join(args)}:\n{done.stdout[-3000:]}{done.stderr}"
    return done


def manage(*args: str, stdin: str | None = None, check: bool = True):
    return compose("exec", "-T", "web", "python", "manage.py", *args, stdin=stdin, check=check)


def services() -> list[dict]:
    """`docker compose ps -a` as one dict per container (Service, State, Health, ExitCode...)."""
    out = compose("ps", "-a", "--format", "json").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def containers(service: str) -> list[str]:
    return compose("ps", "-q", service).stdout.split()


def wait_healthy(timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        running = [s for s in services() if s["Service"] != "migrate"]
        if running and all(
            s["State"] == "running" and s["Health"] in ("", "healthy") for s in running
        ):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not healthy after {timeout}s: {running}")
        time.sleep(1)


def read_codes() -> dict[str, str]:
    """SMS codes as the file backend wrote them, in every web replica (each has its own /tmp)."""
    codes = {}
    for container in containers("web"):
        out = subprocess.run(
            ["docker", "exec", container, "sh", "-c", f"cat {SMS_FILE} 2>/dev/null || true"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        codes.update(storm.parse_codes(out))
    return codes


def create_sale(name: str, stock: int) -> int:
    return json.loads(manage("create_sale", "--name", name, "--stock", str(stock)).stdout)["id"]


def check_invariants(sale_id: int, accepted: list[str] | None, *, drained: bool = True) -> dict:
    """orders.invariants in the web container: the report, whatever it says."""
    args = ["check_invariants", "--sale", str(sale_id)]
    if accepted is not None:
        args += ["--accepted", "-"]
    if not drained:
        args.append("--no-drain")
    done = manage(*args, stdin=json.dumps(accepted or []), check=False)
    return json.loads(done.stdout)


def wait_drained(sale_id: int, timeout: float = 120) -> float:
    """Seconds until no order of the sale is pending (asked of Postgres through the app)."""
    t0 = time.monotonic()
    while check_invariants(sale_id, None, drained=False)["orders"].get("pending", 0):
        assert time.monotonic() - t0 < timeout, f"orders of sale {sale_id} still pending"
        time.sleep(0.5)
    return time.monotonic() - t0


def get(path: str, **kwargs) -> requests.Response:
    return requests.get(f"{URL}{path}", timeout=10, **kwargs)


def promql(expr: str) -> list[dict]:
    """An instant query's vector (Prometheus' HTTP API): [{"metric": {...}, "value": [t, v]}]."""
    answer = requests.get(f"{PROMETHEUS_URL}/api/v1/query", params={"query": expr}, timeout=10)
    answer.raise_for_status()
    return answer.json()["data"]["result"]


def promql_sum(expr: str) -> float:
    """sum(expr) as a number: 0 while no process has the series yet."""
    result = promql(f"sum({expr})")
    return float(result[0]["value"][1]) if result else 0.0


def wait_scraped(job: str, targets: int, after: float, timeout: float = 60) -> None:
    """Until Prometheus has ``targets`` targets of ``job`` up, each scraped after ``after`` (a
    time.time()): what it holds then is what those processes counted by that time."""
    # timestamp() of the selector itself: of any other expression (up == 1) it is the query's
    # own time, and every scrape would look fresh.
    expr = f'timestamp(up{{job="{job}"}}) and (up{{job="{job}"}} == 1)'
    deadline = time.monotonic() + timeout
    while True:
        scrapes = [float(r["value"][1]) for r in promql(expr)]
        if len(scrapes) == targets and min(scrapes) > after:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{job}: {len(scrapes)} targets up, scraped at {scrapes}")
        time.sleep(0.5)
