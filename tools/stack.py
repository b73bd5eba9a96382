"""Run qbuy's own entry scripts as processes (tests, ``make local``)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = {
    "web": ROOT / "services/web/start.sh",
    "worker": ROOT / "services/worker/start.sh",
    "beat": ROOT / "services/beat/start.sh",
    "flower": ROOT / "services/worker/start-flower.sh",
}


def base_env(**overrides: str) -> dict:
    env = dict(os.environ)
    # The entry scripts call gunicorn/celery by name: the venv's bin must come first.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(overrides)
    return env


class Process:
    """One entry script, its output in a log file, waited for by a line it prints."""

    def __init__(
        self, name: str, env: dict, log_dir: Path, ready: str, command: list[str] | None = None
    ):
        """``command``: what to run instead of the entry script named ``name``."""
        self.name, self.env, self.ready = name, env, ready
        self.command = command or [str(SCRIPTS[name])]
        self.log = log_dir / f"{name}.log"
        self.proc = None

    def start(self, timeout: float = 60) -> "Process":
        offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.command,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while self.ready.encode() not in self.log.read_bytes()[offset:]:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log.read_text(errors="replace")[-3000:]
                self.stop()
                raise RuntimeError(f"{self.name} did not start:\n{tail}")
            time.sleep(0.1)
        return self

    def kill(self) -> None:
        """SIGKILL the whole process group: no warm shutdown, no acks."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 20) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
