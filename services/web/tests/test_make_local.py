"""`make local` as a developer runs it: tools/local.py behind nginx (deploy/nginx.conf), with
the test servers passed in through DATABASE_URL / REDIS_URL, stopped with Ctrl-C (SIGINT)."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
import requests
from port_for import get_port

from sales import services as sale_services
from tools.stack import ROOT, base_env

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def local_stack(request, tmp_path, server_urls):
    """make local, started for one test; ``@pytest.mark.local_env(NAME=value)`` adds settings."""
    extra = request.node.get_closest_marker("local_env")
    ports = {
        "QBUY_PORT": get_port(None),
        "QBUY_WEB_PORT": get_port(None),
        "FLOWER_PORT": get_port(None),
    }
    env = base_env(
        **server_urls,
        SMS_BACKEND="file",
        SMS_FILE_PATH=str(tmp_path / "sms.jsonl"),
        **{k: str(v) for k, v in ports.items()},
        **(extra.kwargs if extra else {}),
    )
    env.pop("FLOWER_BASIC_AUTH", None)  # make local makes its own
    log = open(tmp_path / "local.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.local"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{ports['QBUY_PORT']}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if requests.get(f"{url}/api/auth/me", timeout=2).status_code == 401:
                break
        except requests.RequestException:  # nginx up before gunicorn: refused or timed out
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            log.close()
            proc.kill()
            pytest.fail(
                "make local did not start:\n" + (tmp_path / "local.log").read_text()[-3000:]
            )
        time.sleep(0.3)
    yield {
        "proc": proc,
        "url": url,
        "sms": tmp_path / "sms.jsonl",
        "ports": ports,
        "log": tmp_path / "local.log",
    }
    if proc.poll() is None:
        # Ctrl-C, as a developer stops it: the launcher stops its children (their own sessions).
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    log.close()


def test_local_stack_buys_through_nginx_and_stops_on_ctrl_c(local_stack):
    url = local_stack["url"]
    sale = sale_services.sale_create(name="Local kettle", stock=1)
    s = client(url)
    log_in(s, url, local_stack["sms"], "+13105550000")

    r = s.post(f"{url}/api/sales/{sale.pk}/buy", timeout=10)
    assert r.status_code == 202, r.text
    token = r.json()["order"]
    deadline = time.monotonic() + 30
    while (status := s.get(f"{url}/api/orders/{token}", timeout=10).json()["status"]) == "pending":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert status == "confirmed"

    # nginx: static files, the micro-cache header, unknown hosts dropped, Flower up.
    css = requests.get(f"{url}/static/admin/css/base.css", timeout=10)
    assert css.status_code == 200
    assert css.headers["Cache-Control"] == "max-age=604800"  # nginx's `expires 7d`
    assert "Server-Timing" not in css.headers  # not from Django
    # A name nginx's folder lacks is asked of the app (WhiteNoise), not refused by nginx.
    missing = requests.get(f"{url}/static/not-collected-{uuid.uuid4().hex}.css", timeout=10)
    assert missing.status_code == 404
    assert "Server-Timing" in missing.headers
    assert "X-Micro-Cache" in requests.get(f"{url}/sales/", timeout=10).headers
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/sales/", headers={"Host": "evil.example"}, timeout=10)
    flower = f"http://127.0.0.1:{local_stack['ports']['FLOWER_PORT']}/"
    assert requests.get(flower, timeout=10).status_code == 401  # up, behind its password

    os.killpg(local_stack["proc"].pid, signal.SIGINT)
    assert local_stack["proc"].wait(60) == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/sales/", timeout=2)


def test_a_sold_out_page_is_dropped_for_every_web_process(local_stack):
    """The worker confirms the last item and drops the cached sale page: no gunicorn worker may
    go on serving its own copy saying "open" (make local used to keep the pages in per-process
    memory, where the worker's drop never reached them)."""
    url = local_stack["url"]
    web = f"http://127.0.0.1:{local_stack['ports']['QBUY_WEB_PORT']}"  # past nginx's cache
    sale = sale_services.sale_create(name="Last kettle", stock=1)

    def states() -> set[str]:
        # Enough requests for every gunicorn worker (3) to have served the page from its cache.
        pages = [requests.get(f"{web}/sales/{sale.pk}/", timeout=10) for _ in range(12)]
        assert {p.status_code for p in pages} == {200}
        return {
            re.search(r'id="sale-status"[^>]*data-state="(\w+)"', p.text).group(1) for p in pages
        }

    assert states() == {"open"}
    s = client(url)
    log_in(s, url, local_stack["sms"], "+13105559999")
    token = s.post(f"{url}/api/sales/{sale.pk}/buy", timeout=10).json()["order"]
    deadline = time.monotonic() + 30
    while s.get(f"{url}/api/orders/{token}", timeout=10).json()["status"] == "pending":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    # The worker drops the page just after its COMMIT (orders.services.order_place), so a poll
    # may see "confirmed" a moment before the drop: a few seconds, far below the page cache's
    # 60 s, within which per-process copies would still say "open".
    deadline = time.monotonic() + 5
    while (seen := states()) != {"sold_out"} and time.monotonic() < deadline:
        time.sleep(0.2)
    assert seen == {"sold_out"}
    # The suite's CACHE_URL is locmem: make local said it put the pages in Redis instead.
    assert "per process; the pages go to Redis" in local_stack["log"].read_text()


class SourceAddress(requests.adapters.HTTPAdapter):
    """Connect from a given loopback address (127.0.0.0/8 is all ours): another client."""

    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, source_address=(self.address, 0), **kwargs)


def client(url: str, address: str = "127.0.0.1") -> requests.Session:
    s = requests.Session()
    s.mount("http://", SourceAddress(address))
    s.headers["X-CSRFToken"] = s.get(f"{url}/api/auth/csrf", timeout=10).json()["csrf_token"]
    return s


def log_in(s: requests.Session, url: str, sms, phone: str) -> None:
    assert s.post(f"{url}/api/auth/code", json={"phone": phone}, timeout=10).status_code == 202
    code = json.loads(sms.read_text().splitlines()[-1])["code"]
    r = s.post(f"{url}/api/auth/login", json={"phone": phone, "code": code}, timeout=10)
    assert r.status_code == 200
    s.headers["X-CSRFToken"] = s.cookies["csrftoken"]  # rotated at login


def ask_codes(s: requests.Session, url: str, first: int, count: int, **headers):
    return [
        s.post(
            f"{url}/api/auth/code",
            json={"phone": f"+1312555{n:04d}"},
            headers=headers,
            timeout=10,
        )
        for n in range(first, first + count)
    ]


def test_nginx_limits_sms_code_requests_per_address_whatever_the_headers(local_stack):
    url = local_stack["url"]
    # Each request claims another client address and HTTPS: nginx is the edge, it believes
    # neither (NGINX_TRUSTED_PROXIES is empty), and Django sees the scheme nginx saw.
    forged = [
        {
            "X-Forwarded-For": f"203.0.113.{n}",
            "X-Real-IP": f"203.0.113.{n}",
            "X-Forwarded-Proto": "https",
        }
        for n in range(8)
    ]
    s = client(url)
    answers = [ask_codes(s, url, n, 1, **forged[n])[0] for n in range(8)]
    statuses = [r.status_code for r in answers]
    # 6 per minute with a burst of 3: the first 4 pass (not a CSRF 403 for a "secure" request
    # without a Referer), the rest are refused by nginx, in the API's JSON.
    assert statuses == [202] * 4 + [429] * 4, [r.text for r in answers]
    refused = answers[-1]
    assert refused.json() == {"error": "rate_limited", "retry_after": 10}
    assert refused.headers["Retry-After"] == "10"
    assert refused.headers["Content-Type"] == "application/json"
    # Two other clients, two other limits.
    for n, address in enumerate(("127.0.0.2", "127.0.0.3")):
        assert [r.status_code for r in ask_codes(client(url, address), url, 100 + n, 1)] == [202]
    # nginx's other own errors on the API are JSON too.
    too_large = s.post(f"{url}/api/auth/code", data=b"x" * (2 * 1024 * 1024), timeout=10)
    assert too_large.status_code == 413
    assert too_large.json() == {"error": "body_too_large"}


@pytest.mark.local_env(SMS_IP_HOURLY_LIMIT="2")
def test_django_keys_its_limits_on_the_address_nginx_saw(local_stack):
    # The hourly limit's windows are fixed, on the hour: three codes across the hour's end
    # fall into two windows, and the refusal's "retry in" below must be more than nginx's
    # minute: so it starts more than 90 s before the hour ends (it read 46 at 15:59:14).
    into_the_hour = time.time() % 3600
    if into_the_hour > 3600 - 90:
        time.sleep(3601 - into_the_hour)
    url = local_stack["url"]
    first, second = client(url, "127.0.0.2"), client(url, "127.0.0.3")
    answers = ask_codes(first, url, 200, 3)
    assert [r.status_code for r in answers] == [202, 202, 429]
    assert answers[-1].json()["retry_after"] > 60  # Django's hourly limit, not nginx's
    # Not one limit for the whole site: the next client still gets its codes.
    assert [r.status_code for r in ask_codes(second, url, 300, 2)] == [202, 202]


def page_post(s: requests.Session, url: str, **form) -> requests.Response:
    """A POST of the login page's form, with the CSRF cookie its GET set."""
    if "csrftoken" not in s.cookies:
        s.get(f"{url}/login/", timeout=10)
    form["csrfmiddlewaretoken"] = s.cookies["csrftoken"]
    return s.post(f"{url}/login/", data=form, timeout=10)


def test_nginx_counts_the_login_page_with_the_api_and_never_limits_its_get(local_stack):
    """The page's form sends and checks codes too: nginx counts its POSTs in the API's zones
    (codes: 6/min, burst 3; checks: 10/min, burst 5), refuses them with a page, and leaves
    GET /login/ alone; the admin is open to everyone by default (NGINX_ADMIN_ALLOW empty)."""
    url = local_stack["url"]
    sender = client(url, "127.0.0.4")
    assert [r.status_code for r in ask_codes(sender, url, 400, 2)] == [202, 202]
    sent = [page_post(sender, url, step="phone", phone=f"+1201555{n:04d}") for n in (402, 403)]
    assert [r.status_code for r in sent] == [200, 200]
    assert all('name="code"' in r.text for r in sent)  # codes sent: the code step is shown

    refused = page_post(sender, url, step="phone", phone="+12015550404")
    assert refused.status_code == 429
    assert refused.headers["Content-Type"].startswith("text/html")
    assert refused.headers["Retry-After"] == "10"
    assert "Too many tries" in refused.text
    assert ask_codes(sender, url, 405, 1)[0].json()["error"] == "rate_limited"  # the API too
    assert {sender.get(f"{url}/login/", timeout=10).status_code for _ in range(20)} == {200}

    # Checking codes: the API's POSTs and the page's share the logins zone.
    checker = client(url, "127.0.0.5")
    checks = [
        checker.post(
            f"{url}/api/auth/login", json={"phone": "+12015550406", "code": "1"}, timeout=10
        )
        for _ in range(8)
    ]
    statuses = [r.status_code for r in checks]
    assert statuses == [400] * 6 + [429] * 2, [r.text for r in checks]
    assert checks[0].json()["error"] == "invalid_code"  # Django's answer ...
    assert checks[-1].json() == {"error": "rate_limited", "retry_after": 6}  # ... then nginx's
    assert checks[-1].headers["Retry-After"] == "6"
    page = page_post(checker, url, step="code", phone="+12015550406", code="123456")
    assert page.status_code == 429
    assert "Too many tries" in page.text

    assert requests.get(f"{url}/admin/login/", timeout=10).status_code == 200


@pytest.mark.local_env(NGINX_ADMIN_ALLOW="127.0.0.6/32, 127.0.1.0/24")
def test_nginx_admin_allowlist(local_stack):
    url = local_stack["url"]
    for address, status in (
        ("127.0.0.6", 200),
        ("127.0.1.9", 200),
        ("127.0.0.1", 403),
        ("127.0.0.7", 403),
    ):
        s = client(url, address)
        for path in ("/admin/login/", "/admin/", "/%61dmin/login/", "//admin/login/"):
            r = s.get(f"{url}{path}", timeout=10, allow_redirects=False)
            assert (r.status_code == 403) == (status == 403), (address, path, r.status_code)
        assert s.get(f"{url}/sales/", timeout=10).status_code == 200  # the rest is open


def test_nginx_micro_cache_is_for_anonymous_pages_only(local_stack):
    url = local_stack["url"]
    sale_services.sale_create(name="Cached kettle", stock=1)
    page = f"{url}/sales/?run={uuid.uuid4().hex}"  # nginx's cache folder outlives a run
    first = requests.get(page, timeout=10)
    second = requests.get(page, timeout=10)
    assert (first.headers["X-Micro-Cache"], second.headers["X-Micro-Cache"]) == ("MISS", "HIT")
    # A request with a session never reads the micro-cache ...
    as_user = requests.get(f"{url}/sales/", cookies={"SESSION_ID": "abc"}, timeout=10)
    assert as_user.headers["X-Micro-Cache"] == "BYPASS"
    # ... and a response that sets a cookie (the login form's CSRF cookie) is never stored.
    for _ in range(2):
        login = requests.get(f"{url}/login/", timeout=10)
        assert "csrftoken" in login.cookies
        assert login.headers["X-Micro-Cache"] == "MISS"


def test_nginx_limits_buys_per_address_with_429(local_stack):
    url = local_stack["url"]
    answers = [requests.post(f"{url}/api/sales/1/buy", timeout=10) for _ in range(60)]
    statuses = [r.status_code for r in answers]
    # 20 per second with a burst of 20: Django answers the first ones (403: no CSRF token),
    # nginx refuses the rest without reaching it, in the API's JSON.
    assert statuses[0] != 429
    refused = [r for r in answers if r.status_code == 429]
    assert refused
    assert refused[0].json() == {"error": "rate_limited", "retry_after": 1}
    assert refused[0].headers["Retry-After"] == "1"


def test_local_flower_is_on_loopback_behind_a_password_printed_at_start(local_stack):
    port = local_stack["ports"]["FLOWER_PORT"]
    flower = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 30
    while True:  # Flower may come up after nginx and gunicorn
        try:
            unauthenticated = requests.get(flower, timeout=2)
            break
        except requests.ConnectionError:
            assert time.monotonic() < deadline, "Flower did not start"
            time.sleep(0.3)
    assert unauthenticated.status_code == 401
    banner = re.search(
        r"flower: \S+ \(user admin, password (\S+)\)", local_stack["log"].read_text()
    )
    assert banner, local_stack["log"].read_text()[-3000:]
    assert requests.get(flower, auth=("admin", "wrong"), timeout=10).status_code == 401
    assert requests.get(flower, auth=("admin", banner[1]), timeout=10).status_code == 200
    # Nothing listens on Flower's port beyond loopback (not 0.0.0.0, not [::]).
    listening = {
        c.laddr.ip
        for c in psutil.net_connections("inet")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    }
    assert listening == {"127.0.0.1"}


def stack_processes(proc: subprocess.Popen) -> list[psutil.Process]:
    """Every process make local runs (each in a session of its own, so not in its group)."""
    return psutil.Process(proc.pid).children(recursive=True)


def test_sigterm_always_ends_make_local_and_every_child_even_after_heavy_output(local_stack):
    """The old signal handler called Event.set() while the main thread sat in Event.wait() on
    the same event: a signal landing while wait() held the event's lock hung make local for
    good (seen after a storm). Heavy output, then a burst of SIGTERMs, as a process group gets
    them: make local ends within a bound and leaves no process behind."""
    url, proc = local_stack["url"], local_stack["proc"]
    children = stack_processes(proc)
    assert len(children) >= 5
    with ThreadPoolExecutor(16) as pool:  # one access-log line each, pumped by make local
        list(pool.map(lambda _: requests.get(f"{url}/api/auth/csrf", timeout=10), range(1500)))
    for _ in range(50):
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.002)
    t0 = time.monotonic()
    assert proc.wait(45) == 0
    print(f"\nmake local ended {time.monotonic() - t0:.1f}s after the SIGTERMs")
    alive = [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == []


def buy_and_wait_confirmed(url: str, sms, phone: str, timeout: float = 60) -> float:
    s = requests.Session()
    s.headers["X-CSRFToken"] = s.get(f"{url}/api/auth/csrf", timeout=10).json()["csrf_token"]
    assert s.post(f"{url}/api/auth/code", json={"phone": phone}, timeout=10).status_code == 202
    code = next(
        m["code"]
        for m in map(json.loads, reversed(sms.read_text().splitlines()))
        if m["phone"] == phone
    )
    r = s.post(f"{url}/api/auth/login", json={"phone": phone, "code": code}, timeout=10)
    assert r.status_code == 200
    s.headers["X-CSRFToken"] = s.cookies["csrftoken"]
    sale = sale_services.sale_create(name=f"Kettle {phone}", stock=1)
    r = s.post(f"{url}/api/sales/{sale.pk}/buy", timeout=10)
    assert r.status_code == 202, r.text
    t0 = time.monotonic()
    while (
        status := s.get(f"{url}/api/orders/{r.json()['order']}", timeout=10).json()["status"]
    ) == "pending":
        assert time.monotonic() - t0 < timeout, "the order stayed pending"
        time.sleep(0.2)
    assert status == "confirmed"
    return time.monotonic() - t0


def test_a_killed_worker_is_restarted_and_orders_still_confirm(local_stack):
    url, proc, log = local_stack["url"], local_stack["proc"], local_stack["log"]
    (worker,) = [
        p
        for p in stack_processes(proc)
        if "worker" in p.cmdline() and "celery" in " ".join(p.cmdline())
    ]
    os.killpg(worker.pid, signal.SIGKILL)
    t0 = time.monotonic()
    while "qbuy: worker restarted" not in log.read_text():
        assert proc.poll() is None, "make local stopped instead of restarting the worker"
        assert time.monotonic() - t0 < 30, log.read_text()[-3000:]
        time.sleep(0.2)
    restarted = time.monotonic() - t0
    waited = buy_and_wait_confirmed(url, local_stack["sms"], "+13105559000")
    print(
        f"\nworker restarted {restarted:.1f}s after the kill; an order confirmed in {waited:.1f}s"
    )
    assert proc.poll() is None
