"""qbuy_core.middleware: PathCacheMiddleware and RequestMetaMiddleware.

The page cache (``html`` alias) is the test settings' locmem cache; the views under /cached/ in
tests/urls_middleware.py are added to ``QBUY_PAGE_CACHE["PATHS"]`` by the ``cached_paths``
fixture.
"""

import json
import logging
import re
import time
from datetime import timedelta

import pytest
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, RequestFactory
from django.utils import timezone

from common import http
from qbuy_core import page_cache
from qbuy_core.middleware import PathCacheMiddleware, unavailable_response
from tests import urls_middleware

URLS = pytest.mark.urls("tests.urls_middleware")
UUID_HEX = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture(autouse=True)
def cached_paths(settings):
    urls_middleware.CALLS.clear()
    settings.QBUY_PAGE_CACHE = {
        **settings.QBUY_PAGE_CACHE,
        "PATHS": [r"^/sales/\d+/$", r"^/cached/"],
    }


@pytest.fixture
def server_timing(settings):
    """What DEBUG or SERVER_TIMING turn on (off in production: it tells anyone the view)."""
    settings.SERVER_TIMING = True


def _stored(path):
    return caches["html"].get(page_cache.key(path))


def _spy_reads(monkeypatch):
    """Record every read method called on the page cache from now on."""
    cache = caches["html"]
    reads = []
    for name in ("get", "get_many", "has_key", "get_or_set"):
        original = getattr(cache, name)

        def spy(*args, _name=name, _original=original, **kwargs):
            reads.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(cache, name, spy)
    return reads


# --- PathCacheMiddleware: what is cached -------------------------------------------------


@URLS
def test_configured_path_is_cached(client):
    first = client.get("/cached/public/")
    second = client.get("/cached/public/")
    assert first["X-Page-Cache"] == "MISS"
    assert second["X-Page-Cache"] == "HIT"
    assert second.content == first.content == b"public render 1 GET "
    assert urls_middleware.CALLS["public"] == 1
    assert _stored("/cached/public/") is not None


@URLS
def test_path_outside_paths_is_not_cached(client):
    first = client.get("/plain/")
    second = client.get("/plain/")
    assert "X-Page-Cache" not in first and "X-Page-Cache" not in second
    assert second.content == b"plain render 2 GET "
    assert urls_middleware.CALLS["plain"] == 2
    assert _stored("/plain/") is None


def test_sale_page_is_cached_but_sale_list_is_not_by_this_middleware(client, make_sale):
    sale = make_sale(name="Kettle")
    url = f"/sales/{sale.pk}/"
    assert client.get(url)["X-Page-Cache"] == "MISS"
    assert client.get(url)["X-Page-Cache"] == "HIT"
    # The list uses @cache_page instead and is not in PATHS.
    assert "X-Page-Cache" not in client.get("/sales/")
    assert _stored("/sales/") is None


@URLS
def test_paths_are_regexes_matched_from_the_start(client, settings):
    settings.QBUY_PAGE_CACHE = {**settings.QBUY_PAGE_CACHE, "PATHS": [r"public/$"]}
    client.get("/cached/public/")
    assert "X-Page-Cache" not in client.get("/cached/public/")
    assert urls_middleware.CALLS["public"] == 2


@URLS
def test_head_is_served_from_cache_with_empty_body(client):
    get = client.get("/cached/public/")
    head = client.head("/cached/public/")
    assert head.status_code == 200
    assert head["X-Page-Cache"] == "HIT"
    assert head.content == b""
    assert head["Content-Type"] == get["Content-Type"]
    assert head["Content-Length"] == str(len(get.content))
    assert urls_middleware.CALLS["public"] == 1
    # The HIT body came from the middleware, not from the client dropping a HEAD body.
    direct = PathCacheMiddleware(lambda r: pytest.fail("a hit must not call the view"))
    assert direct(RequestFactory().head("/cached/public/")).content == b""


@URLS
def test_head_miss_is_not_stored(client):
    head = client.head("/cached/public/")
    assert head.status_code == 200
    assert "X-Page-Cache" not in head
    assert _stored("/cached/public/") is None
    assert client.get("/cached/public/")["X-Page-Cache"] == "MISS"


@URLS
def test_post_is_never_cached_nor_served_from_cache(client):
    client.get("/cached/public/")  # stored
    post = client.post("/cached/public/")
    assert "X-Page-Cache" not in post
    assert post.content == b"public render 2 POST "
    assert client.post("/cached/public/").content == b"public render 3 POST "
    # The stored GET page is untouched by the POSTs.
    assert client.get("/cached/public/").content == b"public render 1 GET "


@URLS
@pytest.mark.parametrize("method", ["get", "head"])
def test_a_query_string_is_redirected_to_the_one_cached_url(client, method):
    client.get("/cached/public/")  # stored
    for query in ("utm=x", "x=1", "x=2&y=%20"):
        answer = getattr(client, method)(f"/cached/public/?{query}")
        assert answer.status_code == 301
        assert answer["Location"] == "/cached/public/"
        assert "X-Page-Cache" not in answer
    # Neither the view nor the cache saw them: random query strings drain nothing.
    assert urls_middleware.CALLS["public"] == 1
    assert client.get("/cached/public/")["X-Page-Cache"] == "HIT"


@URLS
def test_a_query_string_is_redirected_before_anything_is_stored(client):
    assert client.get("/cached/public/?variant=b").status_code == 301
    assert _stored("/cached/public/") is None
    assert client.get("/cached/public/")["X-Page-Cache"] == "MISS"


@pytest.mark.parametrize("kind", ["open", "ended", "missing"])
def test_every_sale_page_answers_a_query_string_with_its_one_url(client, make_sale, kind):
    url = "/sales/987654321/"
    if kind != "missing":
        ended = {"starts_in": -7200, "duration": 3600} if kind == "ended" else {}
        url = f"/sales/{make_sale(**ended).pk}/"
    answer = client.get(f"{url}?x=1")
    assert (answer.status_code, answer["Location"]) == (301, url)
    assert client.get(url).status_code == {"open": 200, "ended": 410, "missing": 404}[kind]


def test_a_query_string_to_a_non_canonical_path_ends_at_the_canonical_one(client, make_sale):
    sale = make_sale()
    answer = client.get(f"/sales/0{sale.pk}/?x=1", follow=True)
    assert [url for url, _ in answer.redirect_chain] == [
        f"/sales/0{sale.pk}/",
        f"/sales/{sale.pk}/",
    ]
    assert answer.status_code == 200


def test_missing_sale_404_is_not_stored(client, db):
    url = "/sales/987654321/"
    assert client.get(url).status_code == 404
    second = client.get(url)
    assert second.status_code == 404
    assert "X-Page-Cache" not in second
    assert _stored(url) is None


def test_ended_sale_410_is_not_stored(client, make_sale):
    sale = make_sale(name="Over", starts_in=-7200, duration=3600)
    url = f"/sales/{sale.pk}/"
    first = client.get(url)
    assert first.status_code == 410
    assert b"This sale has ended." in first.content
    assert "X-Page-Cache" not in client.get(url)
    assert _stored(url) is None


def test_sale_that_ends_while_cached_is_dropped_on_save(client, make_sale):
    sale = make_sale(name="Short")
    url = f"/sales/{sale.pk}/"
    client.get(url)
    sale.ends_at = timezone.now() - timedelta(seconds=1)
    sale.starts_at = sale.ends_at - timedelta(hours=1)
    sale.save()
    assert client.get(url).status_code == 410


@URLS
@pytest.mark.parametrize(
    ("path", "view"),
    [
        ("/cached/cookie/", "cookie"),
        ("/cached/vary/", "vary"),
        ("/cached/private/", "private"),
        ("/cached/no-store/", "no-store"),
        ("/cached/stream/", "stream"),
    ],
)
def test_per_user_or_uncacheable_response_is_not_stored(client, path, view):
    for _ in range(2):
        response = client.get(path)
        assert response.status_code == 200
        assert "X-Page-Cache" not in response
    assert urls_middleware.CALLS[view] == 2
    assert _stored(path) is None


@URLS
def test_session_touching_view_is_not_stored(client):
    first = client.get("/cached/visits/")
    second = client.get("/cached/visits/")
    assert first.content == b"visits: 1"
    assert second.content == b"visits: 2"  # the visitor's own session, not a stored page
    assert "Cookie" in first["Vary"]
    assert "X-Page-Cache" not in second
    assert Client().get("/cached/visits/").content == b"visits: 1"
    assert _stored("/cached/visits/") is None


# --- a cached page never carries one user's data to another --------------------------------


@URLS
def test_logged_in_page_is_not_stored_for_anonymous_visitors(client, buyer):
    client.force_login(buyer)
    mine = client.get("/cached/whoami/")
    assert mine.content == f"whoami: {buyer.phone}".encode()
    assert "X-Page-Cache" not in mine
    assert _stored("/cached/whoami/") is None

    anonymous = Client().get("/cached/whoami/")
    assert buyer.phone.encode() not in anonymous.content
    assert anonymous.content == b"whoami: AnonymousUser"
    assert urls_middleware.CALLS["whoami"] == 2


@URLS
def test_anonymous_page_is_not_served_to_a_logged_in_user(client, buyer):
    anonymous = Client().get("/cached/whoami/")
    assert anonymous.content == b"whoami: AnonymousUser"
    assert _stored("/cached/whoami/") is None

    client.force_login(buyer)
    mine = client.get("/cached/whoami/")
    assert mine.content == f"whoami: {buyer.phone}".encode()
    assert "X-Page-Cache" not in mine


@URLS
def test_two_users_each_see_their_own_page(buyer, django_user_model):
    other = django_user_model.objects.create_user("+12015550002")
    first, second = Client(), Client()
    first.force_login(buyer)
    second.force_login(other)
    for _ in range(2):
        assert first.get("/cached/whoami/").content == f"whoami: {buyer.phone}".encode()
        assert second.get("/cached/whoami/").content == f"whoami: {other.phone}".encode()


def test_shared_sale_page_stored_for_a_user_holds_nothing_of_theirs(client, buyer, make_sale):
    sale = make_sale(name="Kettle")
    url = f"/sales/{sale.pk}/"
    client.force_login(buyer)
    mine = client.get(url)
    assert mine["X-Page-Cache"] == "MISS"  # the sale page renders nothing user-specific
    assert buyer.phone.encode() not in mine.content
    assert "sessionid" not in mine.cookies and "SESSION_ID" not in mine.cookies

    anonymous = Client().get(url)
    assert anonymous["X-Page-Cache"] == "HIT"
    assert buyer.phone.encode() not in anonymous.content
    assert not anonymous.cookies
    assert "Vary" not in anonymous or "cookie" not in anonymous["Vary"].lower()


# --- one read per hit, headers ----------------------------------------------------------


@URLS
def test_a_hit_is_one_cache_read(client, monkeypatch):
    client.get("/cached/public/")
    reads = _spy_reads(monkeypatch)
    hit = client.get("/cached/public/")
    assert hit["X-Page-Cache"] == "HIT"
    assert reads == ["get"]


def test_a_sale_page_hit_is_one_cache_read(client, make_sale, monkeypatch):
    sale = make_sale(name="Kettle")
    url = f"/sales/{sale.pk}/"
    client.get(url)
    reads = _spy_reads(monkeypatch)
    assert client.get(url)["X-Page-Cache"] == "HIT"
    assert reads == ["get"]


# --- each process's copy in front of the shared cache (LOCAL_TIMEOUT) ----------------------


@pytest.fixture
def local_timeout(settings):
    def set_to(seconds):
        settings.QBUY_PAGE_CACHE = {**settings.QBUY_PAGE_CACHE, "LOCAL_TIMEOUT": seconds}

    return set_to


@URLS
def test_hits_within_the_local_timeout_read_nothing_shared(client, monkeypatch, local_timeout):
    local_timeout(30)
    client.get("/cached/public/")  # stored in the shared cache
    reads = _spy_reads(monkeypatch)
    for _ in range(5):
        assert client.get("/cached/public/")["X-Page-Cache"] == "HIT"
    assert reads == ["get"]  # the first hit, then this process's copy
    assert urls_middleware.CALLS["public"] == 1


def test_a_drop_reaches_this_process_at_once_and_others_within_the_timeout(
    client, make_sale, local_timeout
):
    local_timeout(0.5)
    sale = make_sale(name="Kettle")
    url = f"/sales/{sale.pk}/"
    client.get(url)
    assert client.get(url)["X-Page-Cache"] == "HIT"  # copied here too

    # Another process dropped it (the worker, after the last item sold): only the shared copy.
    caches["html"].delete(page_cache.key(url))
    assert client.get(url)["X-Page-Cache"] == "HIT"  # this process's copy, for a moment
    time.sleep(0.6)
    assert client.get(url)["X-Page-Cache"] == "MISS"

    # Dropped in this process (a save here): both copies, at once.
    assert client.get(url)["X-Page-Cache"] == "HIT"
    sale.name = "Bigger kettle"
    sale.save()
    page = client.get(url)
    assert page["X-Page-Cache"] == "MISS" and b"Bigger kettle" in page.content


@URLS
def test_without_a_local_timeout_every_hit_reads_the_shared_cache(
    client, monkeypatch, local_timeout
):
    local_timeout(0)
    client.get("/cached/public/")
    reads = _spy_reads(monkeypatch)
    for _ in range(3):
        assert client.get("/cached/public/")["X-Page-Cache"] == "HIT"
    assert reads == ["get"] * 3


def test_the_local_copies_are_bounded():
    for n in range(page_cache.LOCAL_ENTRIES + 10):
        page_cache.local_set(f"k{n}", (200, [], b""), 30)
    assert len(page_cache._local) <= page_cache.LOCAL_ENTRIES


def test_a_miss_reads_once_then_stores(client, make_sale, monkeypatch):
    sale = make_sale(name="Kettle")
    reads = _spy_reads(monkeypatch)
    assert client.get(f"/sales/{sale.pk}/")["X-Page-Cache"] == "MISS"
    assert reads == ["get"]


@URLS
def test_hit_keeps_headers_with_a_fresh_request_id(client, server_timing):
    first = client.get("/cached/public/")
    hit = client.get("/cached/public/")
    assert hit["X-Page-Cache"] == "HIT"
    assert hit["Content-Type"] == first["Content-Type"] == "text/plain; charset=utf-8"
    assert hit["X-Custom"] == "kept"
    assert hit["X-Frame-Options"] == first["X-Frame-Options"]  # set by inner middleware
    assert UUID_HEX.match(hit["X-Request-ID"])
    assert hit["X-Request-ID"] != first["X-Request-ID"]
    assert "Server-Timing" in hit

    status, headers, _body = _stored("/cached/public/")
    stored_names = {name.lower() for name, _value in headers}
    assert status == 200
    assert not stored_names & {"x-request-id", "server-timing", "x-page-cache", "set-cookie"}


@URLS
def test_hit_with_given_request_id_reuses_it(client):
    client.get("/cached/public/")
    hit = client.get("/cached/public/", headers={"X-Request-ID": "lb-42"})
    assert hit["X-Page-Cache"] == "HIT"
    assert hit["X-Request-ID"] == "lb-42"


# --- configuration ---------------------------------------------------------------------


def test_unknown_alias_is_improperly_configured(settings):
    settings.QBUY_PAGE_CACHE = {**settings.QBUY_PAGE_CACHE, "ALIAS": "no-such-cache"}
    with pytest.raises(ImproperlyConfigured, match="no-such-cache"):
        PathCacheMiddleware(lambda r: None)


@pytest.mark.parametrize("paths", [[r"^/sales/(\d+/$"], [r"^/ok/$", "[unclosed"], None])
def test_bad_paths_are_improperly_configured(settings, paths):
    settings.QBUY_PAGE_CACHE = {**settings.QBUY_PAGE_CACHE, "PATHS": paths}
    with pytest.raises(ImproperlyConfigured, match="PATHS"):
        PathCacheMiddleware(lambda r: None)


def test_good_configuration_constructs(settings):
    settings.QBUY_PAGE_CACHE = {"ALIAS": "default", "TIMEOUT": 5, "PATHS": [r"^/x/$"]}
    middleware = PathCacheMiddleware(lambda r: None)
    assert middleware.alias == "default"
    assert middleware.timeout == 5
    assert [p.pattern for p in middleware.paths] == [r"^/x/$"]


# --- RequestMetaMiddleware ---------------------------------------------------------------


def test_no_server_timing_unless_asked_for(client, make_sale):
    sale = make_sale()
    for path in ("/sales/", f"/sales/{sale.pk}/", f"/sales/{sale.pk}/", "/api/sales/", "/x/"):
        response = client.get(path)
        assert "Server-Timing" not in response, path
        assert UUID_HEX.match(response["X-Request-ID"]), path


def test_an_answer_with_a_csrf_token_or_the_session_is_private(client, make_sale, buyer):
    sale = make_sale()
    login = client.get("/login/")
    assert login.cookies["csrftoken"].value
    assert {"private", "no-store"} <= set(re.split(r"\s*,\s*", login["Cache-Control"]))
    client.force_login(buyer)
    for path in ("/account/", "/orders/", "/api/auth/me", "/api/orders/"):
        cache_control = set(re.split(r"\s*,\s*", client.get(path)["Cache-Control"]))
        assert {"private", "no-store"} <= cache_control, path
    # The public pages stay public: they read neither.
    for path in (f"/sales/{sale.pk}/", "/sales/", "/api/sales/"):
        assert "private" not in client.get(path).get("Cache-Control", ""), path


def test_every_response_has_request_id_and_server_timing(client, make_sale, server_timing):
    sale = make_sale(name="Kettle")
    for path, view in [
        ("/sales/", "sale-list"),
        (f"/sales/{sale.pk}/", "sale-detail"),
        ("/api/sales/", "api:api-sale-list"),
    ]:
        response = client.get(path)
        assert response.status_code == 200
        assert UUID_HEX.match(response["X-Request-ID"]), path
        assert re.fullmatch(rf'app;dur=\d+\.\d;desc="{view}"', response["Server-Timing"])


def test_404_also_has_request_id(client, db, server_timing):
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    assert UUID_HEX.match(response["X-Request-ID"])
    assert "Server-Timing" in response


def test_sane_request_id_is_reused(client, db):
    response = client.get("/sales/", headers={"X-Request-ID": "edge-1.abc_DEF-9"})
    assert response["X-Request-ID"] == "edge-1.abc_DEF-9"


@pytest.mark.parametrize(
    "given", ["a b<script>", "", "x" * 65, "id\r\nSet-Cookie: a=b", "ok-id\n", "é"]
)
def test_insane_request_id_is_replaced(client, db, given):
    response = client.get("/api/sales/", headers={"X-Request-ID": given})
    assert response["X-Request-ID"] != given
    assert UUID_HEX.match(response["X-Request-ID"])


@URLS
def test_api_exception_is_a_logged_json_500(db, caplog, server_timing):
    client = Client(raise_request_exception=False)
    with caplog.at_level(logging.ERROR, logger="qbuy.request"):
        response = client.get("/api/boom", headers={"X-Request-ID": "req-500"})
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": "server_error", "request_id": "req-500"}
    assert response["X-Request-ID"] == "req-500"
    assert 'desc="t-api-boom"' in response["Server-Timing"]
    records = [r for r in caplog.records if r.name == "qbuy.request"]
    assert len(records) == 1
    assert records[0].levelno == logging.ERROR
    assert records[0].request_id == "req-500"
    assert "t-api-boom" in records[0].getMessage()
    assert records[0].exc_info[0] is RuntimeError


@URLS
def test_page_exception_keeps_djangos_500(db, caplog):
    client = Client(raise_request_exception=False)
    with caplog.at_level(logging.ERROR):
        response = client.get("/boom/")
    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html")
    assert b"server_error" not in response.content
    assert UUID_HEX.match(response["X-Request-ID"])
    assert not [r for r in caplog.records if r.name == "qbuy.request"]


@URLS
def test_api_exception_is_handled_before_djangos_handler(client, db):
    # The default client re-raises exceptions that reach Django's handler: this one does not.
    response = client.get("/api/boom")
    assert response.status_code == 500
    assert response.json()["error"] == "server_error"


def test_template_response_gets_request_id_but_the_page_does_not_show_it(client, make_sale):
    sale = make_sale(name="Kettle")
    response = client.get(f"/sales/{sale.pk}/", headers={"X-Request-ID": "tpl-7"})
    assert response.context_data["request_id"] == "tpl-7"
    assert response["X-Request-ID"] == "tpl-7"
    assert b"tpl-7" not in response.content  # no debug footer: the id is in the header


def test_sale_list_has_no_request_id_footer(client, db):
    response = client.get("/sales/", headers={"X-Request-ID": "list-1"})
    assert response["X-Request-ID"] == "list-1"
    assert b"list-1" not in response.content
    assert b"rendered by request" not in response.content


def test_cached_page_is_the_first_render_served_without_running_the_view(
    client, make_sale, server_timing
):
    sale = make_sale(name="Kettle")
    url = f"/sales/{sale.pk}/"
    first = client.get(url, headers={"X-Request-ID": "first"})
    assert first.templates[0].name == "sales/sale_detail.html"
    assert first["X-Page-Cache"] == "MISS"
    hit = client.get(url, headers={"X-Request-ID": "second"})
    assert hit["X-Page-Cache"] == "HIT"
    assert hit["X-Request-ID"] == "second"
    # The stored bytes, no template rendered and no view resolved (Server-Timing names none).
    assert hit.content == first.content
    assert hit.templates == []
    assert hit["Server-Timing"].endswith('desc="none"')


# --- a hit only after the host check and the HTTPS redirect --------------------------------


@pytest.fixture
def https_only(settings):
    """Production's HTTPS settings (config/settings/production.py)."""
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.ALLOWED_HOSTS = ["qbuy.example.com"]


def test_plain_http_to_a_cached_page_is_redirected_not_served(https_only, make_sale):
    sale = make_sale(name="Kettle")
    url = f"/sales/{sale.pk}/"
    client = Client(HTTP_HOST="qbuy.example.com")
    assert client.get(url, secure=True)["X-Page-Cache"] == "MISS"
    assert client.get(url, secure=True)["X-Page-Cache"] == "HIT"
    plain = client.get(url)
    assert plain.status_code == 301
    assert plain["Location"] == f"https://qbuy.example.com{url}"
    assert "X-Page-Cache" not in plain


def test_a_cached_page_is_not_served_to_a_host_outside_allowed_hosts(https_only, make_sale):
    sale = make_sale(name="Kettle")
    url = f"/sales/{sale.pk}/"
    assert Client(HTTP_HOST="qbuy.example.com").get(url, secure=True).status_code == 200
    evil = Client(HTTP_HOST="evil.example").get(url, secure=True)
    assert evil.status_code == 400
    assert "X-Page-Cache" not in evil
    assert b"Kettle" not in evil.content


# --- only canonical paths are stored ---------------------------------------------------------


def test_sale_page_under_another_spelling_is_redirected_and_never_stored(client, make_sale):
    sale = make_sale(name="Kettle")
    canonical = f"/sales/{sale.pk}/"
    for alias in (f"/sales/0{sale.pk}/", f"/sales/000{sale.pk}/"):
        response = client.get(alias)
        assert response.status_code == 301
        assert response["Location"] == canonical
        assert _stored(alias) is None
    assert client.get(canonical)["X-Page-Cache"] == "MISS"
    # Invalidation drops the one stored copy: no alias keeps the old page for the timeout.
    sale.name = "Copper Kettle"
    sale.save()
    assert _stored(canonical) is None
    assert b"Copper Kettle" in client.get(canonical).content


@URLS
def test_non_canonical_path_of_a_cached_route_is_not_stored(client):
    aliased = client.get("/cached/n/007/")
    assert aliased.content == b"numbered render 1 GET 7"
    assert "X-Page-Cache" not in aliased
    assert _stored("/cached/n/007/") is None
    assert client.get("/cached/n/7/")["X-Page-Cache"] == "MISS"
    assert client.get("/cached/n/7/")["X-Page-Cache"] == "HIT"


@URLS
def test_unnamed_route_is_not_stored_since_it_cannot_be_invalidated(client, settings):
    settings.QBUY_PAGE_CACHE = {**settings.QBUY_PAGE_CACHE, "PATHS": [r"^/cached/stream"]}
    assert not page_cache.is_canonical(RequestFactory().get("/cached/stream/"))
    assert page_cache.is_canonical(RequestFactory().get("/cached/public/"))
    assert not page_cache.is_canonical(RequestFactory().get("/no/such/route/"))


# --- error pages: the site's style for people, JSON for /api/ -----------------------------------


def test_a_404_page_is_in_the_sites_style_and_the_apis_404_is_json(client, db):
    page = client.get("/no/such/page/")
    assert page.status_code == 404
    assert b"We could not find that page" in page.content
    assert b'href="/static/qbuy/site.css' in page.content
    assert b'id="login-nav"' in page.content
    api = client.get("/api/no/such/thing")
    assert api.status_code == 404
    assert api.json()["error"] == "not_found"


@URLS
def test_a_500_page_is_styled_and_needs_no_database(db, django_assert_num_queries):
    client = Client(raise_request_exception=False)
    with django_assert_num_queries(0):
        page = client.get("/boom/", headers={"X-Request-ID": "req-500-page"})
    assert page.status_code == 500
    assert b"Something went wrong" in page.content
    assert b'href="/static/qbuy/site.css' in page.content
    assert page["X-Request-ID"] == "req-500-page"
    # (this URLconf keeps Django's handler500; common.http.server_error adds the request id:
    # test_the_500_handler_needs_no_session)


def test_the_500_handler_needs_no_session(rf):
    request = rf.get("/sales/")
    request.request_id = "req-no-session"
    response = http.server_error(request)  # no session, user or database on the request
    assert response.status_code == 500
    assert b"req-no-session" in response.content
    api = rf.get("/api/sales/")
    api.request_id = "req-api"
    assert json.loads(http.server_error(api).content) == {
        "error": "server_error",
        "request_id": "req-api",
    }


def test_a_503_page_is_styled_and_names_the_request(rf):
    request = rf.get("/sales/")
    request.request_id = "req-503-page"
    response = unavailable_response(request, retry_after=7)
    assert response.status_code == 503
    assert b"try again in 7 seconds" in response.content
    assert b'href="/static/qbuy/site.css' in response.content
    assert b"req-503-page" in response.content
