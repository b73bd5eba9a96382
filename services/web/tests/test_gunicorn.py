"""gunicorn as the web container runs it (services/web/start.sh with gunicorn.conf.py)."""

from concurrent.futures import ThreadPoolExecutor

import requests
from port_for import get_port

from tools.stack import Process, base_env


def test_gunicorn_opens_no_control_socket(tmp_path):
    # gunicorn >= 25.1 opens a control socket in $XDG_RUNTIME_DIR or $HOME/.gunicorn/ (HOME is
    # /app in the image): a read-only root filesystem makes that an error line at every start.
    # A writable HOME shows whether the socket is still opened at all.
    home = tmp_path / "home"
    home.mkdir()
    port = get_port(None)
    env = base_env(
        DJANGO_SETTINGS_MODULE="config.settings.test",
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS="1",
        HOME=str(home),
    )
    env.pop("XDG_RUNTIME_DIR", None)
    web = Process("web", env, tmp_path, "Booting worker").start()
    try:
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
    finally:
        # The control server starts once the first workers run; a graceful stop afterwards
        # leaves every line it would have logged in the file.
        web.stop()
    assert not (home / ".gunicorn").exists()
    log = web.log.read_text()
    assert "Control server" not in log and "control socket" not in log, log


def test_workers_are_not_recycled_by_request_count(tmp_path):
    """GUNICORN_MAX_REQUESTS was 2000: at flash-sale rates each worker restarted every few
    seconds (issue 10). Past 2,000 requests, the first worker still serves."""
    port = get_port(None)
    env = base_env(
        DJANGO_SETTINGS_MODULE="config.settings.test",
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS="1",
    )
    env.pop("GUNICORN_MAX_REQUESTS", None)
    web = Process("web", env, tmp_path, "Booting worker").start()
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda _: requests.get(url, timeout=10).status_code, range(2300)))
    finally:
        web.stop()
    assert codes == [200] * 2300
    log = web.log.read_text()
    assert log.count("Booting worker") == 1
    assert "Autorestarting worker" not in log
