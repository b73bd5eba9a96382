"""`make local`: the whole stack without Docker, in one terminal; Ctrl-C stops everything.

nginx (:8080, deploy/nginx.conf) -> gunicorn, plus the Celery worker (gevent), beat and Flower
(127.0.0.1:5555, with a password printed at start), each started by the same entry script its
container runs. REDIS_URL / DATABASE_URL are used when set; otherwise throwaway servers keep
their data under .local/. The caches are those compose and Kubernetes run: the pages in their
own Redis (allkeys-lru, as compose's redis-cache), shared by every process, so the worker's
invalidation reaches the web workers, and never in the state Redis, which must not evict.
"""

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from port_for import get_port

from tools import devservers
from tools.stack import ROOT, SCRIPTS, base_env

DATA = ROOT / ".local"
NGINX_PORT = int(os.environ.get("QBUY_PORT", "8080"))
WEB_PORT = int(os.environ.get("QBUY_WEB_PORT", "8000"))
FLOWER_PORT = os.environ.get("FLOWER_PORT", "5555")
# Each process's Prometheus metrics (qbuy_core.metrics), on loopback beside the others.
METRICS_PORTS = {"web": "9100", "worker": "9101", "beat": "9102"}


def render_nginx(
    out: Path,
    env: dict,
    template: Path = ROOT / "deploy/nginx.conf",
    *,
    web_port: int = WEB_PORT,
    nginx_port: int = NGINX_PORT,
) -> subprocess.CompletedProcess:
    """deploy/nginx.conf rendered by the same script as compose's nginx: only the ports, the
    upstream and the static folder differ (and whatever NGINX_* the environment sets)."""
    local = {
        "QBUY_UPSTREAM": f"127.0.0.1:{web_port}",
        "NGINX_LISTEN": f"127.0.0.1:{nginx_port}",
        # stub_status on loopback, on a free port unless given: compose's 8081 on every
        # address would be reachable from the network, and would clash between test rigs.
        "NGINX_STATUS_LISTEN": env.get("NGINX_STATUS_LISTEN") or f"127.0.0.1:{get_port(None)}",
        "NGINX_STATIC_ROOT": f"{ROOT}/services/web/staticfiles",
        "NGINX_RESOLVER": "127.0.0.1",  # unused: the upstream is an address, not a name
    }
    return subprocess.run(
        [str(ROOT / "deploy/nginx-render.sh"), str(template), str(out)],
        env={**env, **local},
        capture_output=True,
        check=False,
    )


def pump(name: str, proc: subprocess.Popen) -> None:
    for line in iter(proc.stdout.readline, b""):
        sys.stdout.write(f"{name:>7} | {line.decode(errors='replace')}")
        sys.stdout.flush()


def main() -> int:
    DATA.mkdir(exist_ok=True)
    servers = []
    env = base_env(DJANGO_SETTINGS_MODULE="config.settings.local")
    try:
        if not env.get("DATABASE_URL"):
            servers.append(devservers.Postgres(DATA).start())
            env["DATABASE_URL"] = servers[-1].url
        if not env.get("REDIS_URL"):
            servers.append(devservers.Redis(DATA).start())
            env["REDIS_URL"] = servers[-1].url
        if not shared_cache_url(env):
            servers.append(devservers.RedisCache(DATA).start())
            env["CACHE_URL"] = servers[-1].url
        env.setdefault("GUNICORN_BIND", f"127.0.0.1:{WEB_PORT}")
        env.setdefault("GUNICORN_WORKERS", "3")
        # nginx is in front and sets X-Real-IP to the address it saw; Django's own peer is nginx.
        env["CLIENT_IP_META"] = "HTTP_X_REAL_IP"
        env.setdefault("FLOWER_PORT", FLOWER_PORT)
        # Flower shows every task's arguments and can revoke and kill: loopback only, and a
        # password made for this run unless one is given (local settings would allow none).
        env.setdefault("FLOWER_ADDRESS", "127.0.0.1")
        if env.get("FLOWER_BASIC_AUTH"):
            flower_login = "the FLOWER_BASIC_AUTH login"
        else:
            password = secrets.token_urlsafe(16)
            env["FLOWER_BASIC_AUTH"] = f"admin:{password}"
            flower_login = f"user admin, password {password}"
        env.setdefault("CELERY_BEAT_SCHEDULE_FILE", str(DATA / "celerybeat-schedule"))
        env.setdefault("ALLOWED_HOSTS", "localhost,127.0.0.1")
        env.setdefault(
            "CSRF_TRUSTED_ORIGINS", f"http://localhost:{NGINX_PORT},http://127.0.0.1:{NGINX_PORT}"
        )
        # For manage.py in another terminal: `set -a; . .local/env; set +a`.
        urls = {k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "CACHE_URL")}
        (DATA / "env").write_text("".join(f"{k}={v}\n" for k, v in urls.items()))
        manage = [sys.executable, "manage.py"]
        web_dir = ROOT / "services/web"
        for args in (["migrate", "--noinput"], ["collectstatic", "--noinput", "-v0"]):
            subprocess.run(manage + args, cwd=web_dir, env=env, check=True)
        env.setdefault("NGINX_RUN_DIR", str(DATA))  # pid file, temporary files, micro-cache
        conf = DATA / "nginx.conf"
        rendered = render_nginx(conf, env)
        if rendered.returncode:
            sys.stderr.write(rendered.stderr.decode(errors="replace"))
            return 1
        commands = {
            "web": [str(SCRIPTS["web"])],
            "worker": [str(SCRIPTS["worker"])],
            "beat": [str(SCRIPTS["beat"])],
            "flower": [str(SCRIPTS["flower"])],
            "nginx": ["nginx", "-c", str(conf), "-g", "daemon off;"],
        }
        return supervise(commands, env, flower_login)
    finally:
        for server in reversed(servers):
            server.stop()


def shared_cache_url(env: dict) -> str:
    """CACHE_URL for a stack of several processes: the one given, unless it is per-process
    memory, which the worker's page_cache.drop could not clear in the web workers (they would
    serve a sold-out sale as open until the entry expired). "" when a page Redis is needed."""
    given = env.get("CACHE_URL", "")
    if given and not given.startswith("locmemcache:"):
        return given
    if given:
        print(f"qbuy: CACHE_URL={given} is per process; the pages go to Redis instead", flush=True)
    return ""


# Seconds before restarting a process that exited, by how many times in a row it has; one
# that stayed up for STABLE_AFTER seconds starts again from the first delay.
RESTART_DELAYS = (1, 2, 5, 10, 30)
STABLE_AFTER = 60
STOP_GRACE = 20  # seconds the processes get to stop (the worker: its task time limit)


def spawn(name: str, cmd: list, env: dict) -> subprocess.Popen:
    if name in METRICS_PORTS:
        env = {**env, "METRICS_PORT": METRICS_PORTS[name], "METRICS_ADDR": "127.0.0.1"}
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    threading.Thread(target=pump, args=(name, proc), daemon=True).start()
    return proc


def supervise(commands: dict, env: dict, flower_login: str) -> int:
    """Run every process, restart the ones that exit (with a growing delay), stop all on
    SIGINT/SIGTERM.

    A restart loop rather than supervisord: this one keeps every process's log prefixed by its
    name in this terminal and needs no config file, daemon or control socket; compose and
    Kubernetes do the same job for the containers.
    """
    # The handler only records the signal; the loop below polls it. (It used to call
    # Event.set() while this thread sat in Event.wait() on the same event: a signal landing
    # while wait() held the event's lock deadlocked the handler, and make local never ended.)
    signals = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _: signals.append(signum))
    procs = {name: spawn(name, cmd, env) for name, cmd in commands.items()}
    started = dict.fromkeys(procs, time.monotonic())
    failures = dict.fromkeys(procs, 0)
    restart_at: dict[str, float] = {}
    print(
        f"qbuy: http://localhost:{NGINX_PORT}/sales/  flower: http://127.0.0.1:{FLOWER_PORT}/"
        f" ({flower_login})  metrics: http://127.0.0.1:{{{','.join(METRICS_PORTS.values())}}}"
        "/metrics  (Ctrl-C stops everything)",
        flush=True,
    )
    while not signals:
        now = time.monotonic()
        for name, proc in procs.items():
            if proc.poll() is None:
                if now - started[name] > STABLE_AFTER:
                    failures[name] = 0
            elif name not in restart_at:
                delay = RESTART_DELAYS[min(failures[name], len(RESTART_DELAYS) - 1)]
                print(
                    f"qbuy: {name} exited with {proc.returncode}; restarting in {delay}s",
                    flush=True,
                )
                restart_at[name] = now + delay
        for name in [n for n, at in restart_at.items() if now >= at]:
            del restart_at[name]
            failures[name] += 1
            procs[name], started[name] = spawn(name, commands[name], env), time.monotonic()
            print(f"qbuy: {name} restarted", flush=True)
        time.sleep(0.2)
    for proc in procs.values():
        _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    for proc in procs.values():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait()
    return 0


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


if __name__ == "__main__":
    sys.exit(main())
