"""Throwaway Postgres, Redis and memcached on free loopback ports (tests, ``make local``).

Each server lives in its own temporary folder and is stopped (and the folder removed) by
``stop()``. Postgres refuses to run as root, so as root it runs as the ``postgres`` user.
"""

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from mirakuru import TCPExecutor
from port_for import get_port

HOST = "127.0.0.1"


def which(name: str, *extra_dirs: str) -> str:
    found = shutil.which(name, path=os.pathsep.join([*extra_dirs, os.environ.get("PATH", "")]))
    if not found:
        raise RuntimeError(f"{name} not found: run `make deps` (Debian packages) first")
    return found


def _pg_bindir() -> str:
    # Debian keeps the server binaries off PATH, one folder per major version.
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[4]))
    return candidates[-1] if candidates else ""


def wait_for_port(port: int, *, host: str = HOST, timeout: float = 10) -> None:
    """Return once something accepts connections on host:port (a process started elsewhere)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on {host}:{port} after {timeout}s") from None
            time.sleep(0.05)


class Server:
    name = "server"

    def __init__(self, data_dir: Path | None = None):
        """``data_dir`` keeps the data across runs (``make local``); else a temporary folder."""
        self.port = get_port(None)
        self.keep = data_dir is not None
        if data_dir is None:
            self.dir = Path(tempfile.mkdtemp(prefix=f"qbuy-{self.name}-"))
        else:
            self.dir = data_dir / self.name
            self.dir.mkdir(parents=True, exist_ok=True)
        self.executor = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Work needed before the first start (initdb)."""

    def start(self):
        self.prepare()
        self.executor = TCPExecutor(
            self.command(),
            host=HOST,
            port=self.port,
            timeout=60,
            stop_signal=signal.SIGINT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.executor.start()
        return self

    def halt(self) -> None:
        """Stop the server process but keep its port and data folder: an outage for the fault
        tests; ``start()`` brings it back on the same port (Postgres: ``pg_ctl stop -m fast``)."""
        if self.executor is not None:
            self.executor.stop()
            self.executor = None

    def stop(self) -> None:
        self.halt()
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


class Redis(Server):
    name = "redis"

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        aof: bool = False,
        maxmemory: str = "0",
        policy: str = "noeviction",
    ):
        """``aof``: append-only file on, as compose runs Redis (a restart keeps the data).
        ``maxmemory`` ("0": no limit) and ``policy``: the state Redis never evicts (RedisCache
        is the one that does)."""
        super().__init__(data_dir)
        self.aof = aof
        self.maxmemory = maxmemory
        self.policy = policy

    def command(self):
        return [
            which("redis-server"),
            "--port",
            str(self.port),
            "--bind",
            HOST,
            "--save",
            "",
            "--appendonly",
            "yes" if self.aof else "no",
            "--maxmemory",
            self.maxmemory,
            "--maxmemory-policy",
            self.policy,
            "--dir",
            str(self.dir),
        ]

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"


class RedisCache(Redis):
    """The pages' own Redis, as compose's redis-cache: full, it evicts the least recently used
    page (allkeys-lru), and it keeps nothing across restarts. Never the state Redis: a maxmemory
    policy is per instance, and that one must never evict a session, a code or a queued order."""

    name = "redis-cache"

    def __init__(self, data_dir: Path | None = None, *, maxmemory: str = "96mb"):
        super().__init__(data_dir, maxmemory=maxmemory, policy="allkeys-lru")


class Memcached(Server):
    name = "memcached"

    def command(self):
        cmd = [
            which("memcached", "/usr/bin"),
            "-l",
            HOST,
            "-p",
            str(self.port),
            "-U",
            "0",
            "-m",
            "64",
        ]
        return cmd + (["-u", "nobody"] if os.geteuid() == 0 else [])

    @property
    def location(self) -> str:
        return f"{HOST}:{self.port}"


class Postgres(Server):
    name = "postgres"

    def _as_owner(self, cmd: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd

    def prepare(self):
        if (self.dir / "data").exists():
            return
        if os.geteuid() == 0:
            shutil.chown(self.dir, user="postgres")
        bindir = _pg_bindir()
        subprocess.run(
            self._as_owner(
                [
                    which("initdb", bindir),
                    "-D",
                    str(self.dir / "data"),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
        )

    def command(self):
        # Durability settings off: a throwaway test database trades crash safety for speed.
        return self._as_owner(
            [
                which("postgres", _pg_bindir()),
                "-D",
                str(self.dir / "data"),
                "-p",
                str(self.port),
                "-k",
                str(self.dir),
                "-c",
                f"listen_addresses={HOST}",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=300",
            ]
        )

    @property
    def url(self) -> str:
        return f"postgres://postgres@{HOST}:{self.port}/postgres"
