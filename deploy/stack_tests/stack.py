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
