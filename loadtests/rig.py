"""A native qbuy stack for the harnesses (faults, bench, loadtest): the processes of
`make local`, each started by its container's entry script, on throwaway servers.

Postgres and Redis are new and empty for each Rig; web (gunicorn), the `-P gevent` worker and
beat run with ``settings`` on top of the environment; nginx (deploy/nginx.conf rendered by the
same script compose runs) is in front when asked for. The page cache is in a second Redis
(allkeys-lru), as compose and Kubernetes run it, unless ``settings`` set CACHE_URL.
``supervise`` restarts a process that exited after a second, as compose's restart policy,
Kubernetes or `make local` would.
"""

import contextlib
import json
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psycopg
import requests
from port_for import get_port

from loadtests.limits import RAISED_LIMITS
from loadtests.pgproxy import PgProxy
from tools import devservers
from tools.local import render_nginx
from tools.stack import ROOT, Process, base_env

READY = {"web": "Listening at", "worker": " ready.", "beat": "beat: Starting"}
# The rigs' nginx logs, after the combined format's fields, how long each request took at the
# edge and at the app: the stack's own time, apart from the load generator's, which shares the
# machine's cores (loadtest.edge_times).
ACCESS_LOG = "access_log /dev/stdout combined "
TIMED_ACCESS_LOG = (
    'log_format timed \'$remote_addr - $remote_user [$time_local] "$request" $status'
    ' $body_bytes_sent "$http_referer" "$http_user_agent" $request_time'
    " $upstream_response_time';\n    access_log /dev/stdout timed "
)


def deployed_settings() -> dict[str, str]:
    """What `make up` runs (production settings: DEBUG off, hashed static files), on plain HTTP
    like .env.example's laptop, with a fresh SECRET_KEY, the SMS codes in a file, no worker
    recycled mid-run and the rate limits raised (every client is 127.0.0.1). local.py turns
    DEBUG on (Django then keeps every SQL query) and test.py looks static files up per request:
    both would measure something nobody deploys."""
    return {
        **RAISED_LIMITS,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "SECURE_SSL_REDIRECT": "false",
        "SECURE_HSTS_SECONDS": "0",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "SMS_BACKEND": "file",
        # Production refuses the file backend unless told this is not a real deployment.
        "SMS_ALLOW_INSECURE_BACKEND": "true",
        "GUNICORN_MAX_REQUESTS": "0",
        "LOG_LEVEL": "INFO",  # the rig waits for the worker's "ready." line
    }


class Nginx:
    """deploy/nginx.conf in front of ``upstream``, its log in the Rig's folder."""

    def __init__(self, workdir: Path, env: dict, *, web_port: int):
        self.dir, self.port = workdir, get_port(None)
        self.conf = workdir / "nginx.conf"
        # Its own pid file, temporary files and cache: several rigs may run at once.
        env = {**env, "NGINX_RUN_DIR": str(workdir)}
        # Started as root, nginx's workers run as nobody and must reach the folders it makes
        # there (a TemporaryDirectory is 0700): else every cached or buffered answer fails.
        workdir.chmod(workdir.stat().st_mode | 0o011)
        rendered = render_nginx(self.conf, env, web_port=web_port, nginx_port=self.port)
        if rendered.returncode:
            raise RuntimeError(rendered.stderr.decode(errors="replace"))
        conf = self.conf.read_text()
        if ACCESS_LOG not in conf:
            raise RuntimeError(f"deploy/nginx.conf no longer has {ACCESS_LOG!r}")
        self.conf.write_text(conf.replace(ACCESS_LOG, TIMED_ACCESS_LOG))
        self.proc = None

    def start(self) -> "Nginx":
        with open(self.dir / "nginx.log", "ab") as out:
            self.proc = subprocess.Popen(
                [
                    devservers.which("nginx", "/usr/sbin"),
                    "-c",
                    str(self.conf),
                    "-g",
                    "daemon off;",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            devservers.wait_for_port(self.port, timeout=10)
        except RuntimeError:
            log = (self.dir / "nginx.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"nginx did not start:\n{log}") from None
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def metrics_env() -> dict[str, str]:
    """Each process's metrics on a port of its own, on loopback (qbuy_core.metrics)."""
    return {"METRICS_PORT": str(get_port(None)), "METRICS_ADDR": "127.0.0.1"}


class Rig:
    def __init__(
        self,
        workdir: Path,
        *,
        settings: dict[str, str],
        concurrency: int = 50,
        redis_aof: bool = False,
        web_through_proxy: bool = False,
        nginx: bool = False,
        supervise: bool = True,
    ):
        self.dir = workdir
        self.settings = settings
        self.postgres = devservers.Postgres()
        self.redis = devservers.Redis(aof=redis_aof)
        # compose's and Kubernetes' page cache: its own Redis (allkeys-lru), unless the settings
        # choose another strategy (the fault suite's locmem).
        self.redis_cache = None if "CACHE_URL" in settings else devservers.RedisCache()
        self.concurrency = concurrency
        self.proxy: PgProxy | None = None
        self.web_through_proxy = web_through_proxy
        self.with_nginx = nginx
        self.nginx: Nginx | None = None
        self.processes: dict[str, Process] = {}
        self.extra: list[Process] = []  # a second beat
        self.restarts: Counter = Counter()
        self._supervise_on = supervise
        self._supervising = threading.Event()
        self.lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> "Rig":
        try:
            self._start_all()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start_all(self) -> None:
        self.postgres.start()
        self.redis.start()
        pages = {}
        if self.redis_cache is not None:
            pages["CACHE_URL"] = self.redis_cache.start().url
        self.web_port = get_port(None)
        self.env = base_env(
            **{**pages, **self.settings},
            DATABASE_URL=self.postgres.url,
            REDIS_URL=self.redis.url,
            SMS_FILE_PATH=str(self.dir / "sms.jsonl"),
            GUNICORN_BIND=f"127.0.0.1:{self.web_port}",
            CELERY_BEAT_SCHEDULE_FILE=str(self.dir / "beat-schedule"),
            HEARTBEAT_FILE=str(self.dir / "heartbeat"),
            CELERY_WORKER_CONCURRENCY=str(self.concurrency),
        )
        self.url = self.web_url = f"http://127.0.0.1:{self.web_port}"
        self.manage("migrate", "--noinput")
        web_env = {}
        if self.web_through_proxy:
            self.proxy = PgProxy(self.postgres.port).start()
            web_env["DATABASE_URL"] = self.postgres.url.replace(
                f":{self.postgres.port}/", f":{self.proxy.port}/"
            )
        if self.with_nginx:
            self.manage("collectstatic", "--noinput", "-v0")
            # nginx is the edge: Django keys its limits on the address nginx saw.
            self.env["CLIENT_IP_META"] = "HTTP_X_REAL_IP"
            self.nginx = Nginx(self.dir, self.env, web_port=self.web_port).start()
            self.url = f"http://127.0.0.1:{self.nginx.port}"
        # Metrics served as deployed (gunicorn's multi-process mode costs file writes a
        # single process would not): what make bench measures includes them.
        for name in ("web", "worker", "beat"):
            self.start(name, **(web_env if name == "web" else {}), **metrics_env())
        if self._supervise_on:
            self._supervising.set()
            threading.Thread(target=self._supervise, daemon=True).start()

    def __exit__(self, *exc) -> None:
        self._supervising.clear()
        with self.lock:
            for proc in [*self.extra, *reversed(self.processes.values())]:
                proc.stop()
        for part in (self.nginx, self.proxy, self.redis_cache, self.redis, self.postgres):
            if part is not None:
                part.stop()

    def start(self, name: str, **env: str) -> Process:
        env = {**self.env, **env}
        previous = self.processes.get(name)
        if previous is not None:
            env = previous.env  # a restart keeps what the first start was given
        proc = Process(name, env, self.dir, READY[name]).start(timeout=90)
        self.processes[name] = proc
        self._await_answers(name)
        return proc

    def restart(self, name: str, **env: str) -> Process:
        """Stop ``name`` and start it again with ``env`` on top of the environment it had: a
        setting changed between two runs on the same servers (bench's BUY_STRATEGY)."""
        with self.lock:
            previous = self.processes[name]
            previous.stop()
            proc = Process(name, {**previous.env, **env}, self.dir, READY[name]).start(timeout=90)
            self.processes[name] = proc
            self._await_answers(name)
            return proc

    def _await_answers(self, name: str) -> None:
        """gunicorn's master says "Listening at" before its workers have imported Django: on a
        busy machine the first answer came 5 s later, and a 1 s bench run got none. One /healthz
        (no dependency: it answers during an outage) waits in the backlog for a worker."""
        if name == "web":
            # Any answer will do (a 503 in an outage too); none shows in the run that follows.
            with contextlib.suppress(requests.RequestException):
                requests.get(f"{self.web_url}/healthz", timeout=60, allow_redirects=False)

    def _supervise(self) -> None:
        """An exited web, worker or beat is started again after a second, as a restart policy
        would; a fault under test stops and starts processes itself, holding the lock."""
        while self._supervising.is_set():
            with self.lock:
                for name, proc in list(self.processes.items()):
                    if proc.proc.poll() is not None and self._supervising.is_set():
                        time.sleep(1)
                        self.restarts[name] += 1
                        self.start(name)
            time.sleep(0.5)

    # -- the app, asked from outside -----------------------------------------------------------
    def manage(self, *args: str, stdin: str | None = None, check: bool = True):
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT / "services/web",
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check and done.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)}:\n{done.stdout}{done.stderr}")
        return done

    def create_sale(self, name: str, stock: int, *extra: str) -> int:
        made = self.manage("create_sale", "--name", name, "--stock", str(stock), *extra)
        return json.loads(made.stdout)["id"]

    def settled(self, sale: int, before: float) -> tuple[int, float | None]:
        """(orders still pending, and the wall-clock time the last order created before
        ``before`` was settled)."""
        try:
            with psycopg.connect(self.postgres.url, connect_timeout=2) as db:
                pending, last = db.execute(
                    "SELECT count(*) FILTER (WHERE status = 'pending'),"
                    " extract(epoch FROM max(updated_at) FILTER"
                    "  (WHERE status <> 'pending' AND created_at <= to_timestamp(%s)))"
                    " FROM orders_order WHERE sale_id = %s",
                    [before, sale],
                ).fetchone()
        except psycopg.OperationalError:
            return -1, None  # Postgres is down: nothing can be said yet
        return pending, float(last) if last is not None else None

    def wait_settled(self, sale: int, before: float, timeout: float) -> tuple[int, float | None]:
        deadline = time.monotonic() + timeout
        while (state := self.settled(sale, before))[0] != 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        return state

    def check(self, sale: int, accepted: list[str]) -> dict:
        """The invariant checker (orders/invariants.py) on this stack's Postgres and Redis."""
        done = self.manage(
            "check_invariants",
            "--sale",
            str(sale),
            "--accepted",
            "-",
            stdin=json.dumps(accepted),
            check=False,
        )
        return json.loads(done.stdout)
