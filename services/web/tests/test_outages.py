"""Outages get an honest answer and heal by themselves (DESIGN.md invariant 6, issue 9).

A real gunicorn against its own Redis (AOF on, as compose runs it) and its own Postgres; each
is stopped for real (devservers' ``halt()``) and started again on the same port. During the
outage every API call that needs the server answers a JSON 503 with ``Retry-After``, pages a
503 page, cached pages keep being served; afterwards the same session works again.
"""

import json
import subprocess
import sys
import time
from collections import Counter

import pytest
import requests
from django.test import Client
from port_for import get_port
from prometheus_client.parser import text_string_to_metric_families

from config.settings.caches import cache_config
from loadtests.storm import log_in_buyers, sms_file_codes
from tools import devservers
from tools.stack import ROOT, Process, base_env

RETRY_AFTER = 7
UNAVAILABLE = {"error": "unavailable", "retry_after": RETRY_AFTER}
TIMEOUT = 10


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    logs = tmp_path_factory.mktemp("outages")
    postgres, redis = devservers.Postgres(), devservers.Redis(aof=True)
    servers, web = [], None
    try:
        for server in (postgres, redis):
            servers.append(server.start())
        port, metrics_port = get_port(None), get_port(None)
        env = base_env(
            DJANGO_SETTINGS_MODULE="config.settings.test",
            DATABASE_URL=postgres.url,
            REDIS_URL=redis.url,
            CACHE_URL="locmemcache://",  # the page cache: not the Redis that goes down
            SMS_BACKEND="file",
            SMS_FILE_PATH=str(logs / "sms.jsonl"),
            OUTAGE_RETRY_AFTER=str(RETRY_AFTER),
            GUNICORN_BIND=f"127.0.0.1:{port}",
            GUNICORN_WORKERS="1",  # one process: one locmem page cache to warm
            CONN_MAX_AGE="60",  # kept connections must heal too
            METRICS_PORT=str(metrics_port),
            METRICS_ADDR="127.0.0.1",
        )
        sale_args = ["create_sale", "--name", "Kettle", "--stock", "5"]
        for args in (["migrate", "--no-input"], sale_args):
            done = subprocess.run(
                [sys.executable, "manage.py", *args],
                cwd=ROOT / "services/web",
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
        sale_id = json.loads(done.stdout)["id"]
        web = Process("web", env, logs, "Listening at").start()
        yield {
            "url": f"http://127.0.0.1:{port}",
            "metrics": f"http://127.0.0.1:{metrics_port}/metrics",
            "sale": sale_id,
            "postgres": postgres,
            "redis": redis,
            "codes": sms_file_codes(logs / "sms.jsonl"),
        }
    finally:
        if web is not None:
            web.stop()
        for server in servers:
            server.stop()


def log_in(stack, n: int) -> requests.Session:
    return log_in_buyers(stack["url"], stack["codes"], 1, first=n)[0]


def buy(stack, session) -> str:
    r = session.post(f"{stack['url']}/api/sales/{stack['sale']}/buy", json={}, timeout=TIMEOUT)
    assert r.status_code == 202, r.text
    return r.json()["order"]


def assert_unavailable(r: requests.Response):
    assert (r.status_code, r.headers["Content-Type"]) == (503, "application/json"), r.text[:300]
    assert r.json() == UNAVAILABLE
    assert r.headers["Retry-After"] == str(RETRY_AFTER)


def assert_unavailable_page(r: requests.Response):
    assert r.status_code == 503, r.text[:300]
    assert r.headers["Content-Type"].startswith("text/html")
    assert r.headers["Retry-After"] == str(RETRY_AFTER)
    assert "Back in a moment" in r.text and "try again in 7 seconds" in r.text


def me_after_recovery(stack, session, *, within: float = 15) -> requests.Response:
    """/api/auth/me once the server answers again: no restart of gunicorn, no new login."""
    deadline = time.monotonic() + within
    while True:
        r = session.get(f"{stack['url']}/api/auth/me", timeout=TIMEOUT)
        if r.status_code != 503 or time.monotonic() > deadline:
            return r
        time.sleep(0.2)


def test_redis_outage_is_503_everywhere_then_the_same_session_works(stack):
    url, session = stack["url"], log_in(stack, 1)
    token = buy(stack, session)
    stranger = requests.Session()
    stranger.headers["X-CSRFToken"] = stranger.get(f"{url}/api/auth/csrf").json()["csrf_token"]
    stranger.get(f"{url}/login/")  # the form's CSRF cookie
    stack["redis"].halt()
    try:
        # Was 401 not_authenticated: an unreadable session read as an empty one.
        assert_unavailable(session.get(f"{url}/api/auth/me", timeout=TIMEOUT))
        assert_unavailable(session.post(f"{url}/api/sales/{stack['sale']}/buy", json={}))
        assert_unavailable(session.get(f"{url}/api/orders/{token}", timeout=TIMEOUT))
        # Were 500s: the code store and its limits are in Redis.
        phone = {"phone": "+13035550001"}
        assert_unavailable(stranger.post(f"{url}/api/auth/code", json=phone, timeout=TIMEOUT))
        login = {**phone, "code": "123456"}
        assert_unavailable(stranger.post(f"{url}/api/auth/login", json=login, timeout=TIMEOUT))
        form = {**phone, "csrfmiddlewaretoken": stranger.cookies["csrftoken"]}
        assert_unavailable_page(stranger.post(f"{url}/login/", data=form, timeout=TIMEOUT))
    finally:
        stack["redis"].start()
    r = me_after_recovery(stack, session)
    assert r.status_code == 200, r.text
    assert r.json()["user"]["phone"] == "+12015550001"


def test_postgres_outage_is_503_cached_pages_still_serve_then_it_heals(stack):
    url, session = stack["url"], log_in(stack, 2)
    token = buy(stack, session)
    sale_page = f"{url}/sales/{stack['sale']}/"
    for page in (sale_page, f"{url}/sales/"):
        assert requests.get(page, timeout=TIMEOUT).status_code == 200  # now in the page cache
    newcomer = log_in(stack, 20)
    before = buy_outcomes(stack)
    stack["postgres"].halt()
    try:
        # Who asks needs no Postgres: the session and its user are in Redis (user_cache), and
        # so does a refusal the gate gives. An accepted buy needs its INSERT: 503.
        me = session.get(f"{url}/api/auth/me", timeout=TIMEOUT)
        assert (me.status_code, me.json()["user"]["phone"]) == (200, "+12015550002")
        again = session.post(f"{url}/api/sales/{stack['sale']}/buy", json={}, timeout=TIMEOUT)
        assert (again.status_code, again.json()) == (409, {"error": "already_bought"})
        assert_unavailable(newcomer.post(f"{url}/api/sales/{stack['sale']}/buy", json={}))
        assert_unavailable(session.get(f"{url}/api/orders/{token}", timeout=TIMEOUT))
        assert_unavailable(session.get(f"{url}/api/sales/", timeout=TIMEOUT))
        login = {"phone": "+12015550002", "code": "123456"}
        assert_unavailable(session.post(f"{url}/api/auth/login", json=login, timeout=TIMEOUT))
        # Pages: the cached ones are served as if nothing happened, the others say 503.
        cached = requests.get(sale_page, timeout=TIMEOUT)
        assert (cached.status_code, cached.headers["X-Page-Cache"]) == (200, "HIT")
        assert "Kettle" in cached.text
        listed = requests.get(f"{url}/sales/", timeout=TIMEOUT)
        assert listed.status_code == 200 and "Kettle" in listed.text
        assert_unavailable_page(requests.get(f"{url}/sales/999999/", timeout=TIMEOUT))
    finally:
        stack["postgres"].start()
    r = me_after_recovery(stack, session)
    assert r.status_code == 200, r.text
    assert r.json()["user"]["phone"] == "+12015550002"
    assert session.get(f"{url}/api/orders/{token}", timeout=TIMEOUT).json()["order"] == token
    # What Prometheus was told meanwhile: the 503 as "unavailable", the refusal as itself.
    after = buy_outcomes(stack)
    assert after - before == Counter({"unavailable": 1, "already_bought": 1})


def buy_outcomes(stack) -> Counter:
    """The web's qbuy_buy_answers_total by outcome, once its processes have added their last
    second of counts (qbuy_core.metrics.Tally)."""
    time.sleep(1.5)
    text = requests.get(stack["metrics"], timeout=TIMEOUT).text
    return Counter(
        {
            sample.labels["outcome"]: int(sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "qbuy_buy_answers_total"
        }
    )


def test_logout_during_a_redis_outage_is_503_and_says_the_session_lives_on(stack):
    """Was 204 while the session stayed in Redis (AOF keeps it across the restart) for its
    remaining two weeks: the client believed it had logged out."""
    url, session = stack["url"], log_in(stack, 3)
    stack["redis"].halt()
    try:
        assert_unavailable(session.post(f"{url}/api/auth/logout", timeout=TIMEOUT))
        assert "SESSION_ID" in session.cookies  # not told to drop a session that still exists
    finally:
        stack["redis"].start()
    assert me_after_recovery(stack, session).status_code == 200  # just what the 503 said
    assert session.post(f"{url}/api/auth/logout", timeout=TIMEOUT).status_code == 204
    r = session.get(f"{url}/api/auth/me", timeout=TIMEOUT)
    assert (r.status_code, r.json()) == (401, {"error": "not_authenticated"})


@pytest.mark.django_db
def test_an_outage_outside_any_view_is_503_too(settings, make_sale):
    """PathCacheMiddleware reads the page cache before any view runs, so its error is not the
    middleware's process_exception's but handler500's: with a page cache that does not ignore
    errors (a Redis one here, a database one alike) and its server down, still a 503 page.
    Was Django's HTML 500."""
    sale = make_sale()
    redis = devservers.Redis().start()
    redis.halt()
    try:
        settings.CACHES = {**settings.CACHES, "html": cache_config(redis.url, key_prefix="html")}
        r = Client(raise_request_exception=False).get(f"/sales/{sale.pk}/")
    finally:
        redis.stop()
    assert (r.status_code, r["Retry-After"]) == (503, str(settings.OUTAGE_RETRY_AFTER))
    assert b"Back in a moment" in r.content
