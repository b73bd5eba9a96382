"""The same behaviour tests against every cache strategy a CACHE_URL can select.

The ``strategy`` fixture points the ``default`` and ``html`` aliases at one backend, built by
``config.settings.caches.cache_config`` exactly as base.py builds them, and empties both
before and after each test (memcached and Redis outlive the test, and conftest.py's clean-up
runs only after the settings are restored).
"""

import os
import time
from dataclasses import dataclass
from decimal import Decimal

import pymemcache
import pytest
import redis
from django.core.cache import caches
from django.core.management import call_command
from django.db import connection
from django.test import RequestFactory
from django.utils.cache import get_cache_key
from port_for import get_port

from config.settings.caches import cache_config
from qbuy_core import page_cache
from sales import services as sale_services
from sales.models import Sale
from tools import devservers

CACHE_TABLE = "qbuy_cache_table"
REDIS_DB = 3  # the sessions and codes caches use db 0


def _redis_url(db: int = REDIS_DB) -> str:
    base, _, _db = os.environ["REDIS_URL"].rpartition("/")
    return f"{base}/{db}"


@dataclass
class Strategy:
    name: str
    url: str
    backend: str  # dotted path of the class the aliases must be instances of

    @property
    def stores(self) -> bool:
        return self.name != "dummy"


# name: (URL, given the file cache's folder; backend class)
STRATEGIES = {
    "dummy": (lambda d: "dummycache://", "django.core.cache.backends.dummy.DummyCache"),
    "locmem": (lambda d: "locmemcache://", "django.core.cache.backends.locmem.LocMemCache"),
    "file": (lambda d: f"filecache://{d}", "django.core.cache.backends.filebased.FileBasedCache"),
    "db": (lambda d: f"dbcache://{CACHE_TABLE}", "django.core.cache.backends.db.DatabaseCache"),
    "pymemcache": (
        lambda d: f"pymemcache://{os.environ['MEMCACHED_LOCATION']}",
        "django.core.cache.backends.memcached.PyMemcacheCache",
    ),
    "pylibmc": (
        lambda d: f"pylibmc://{os.environ['MEMCACHED_LOCATION']}",
        "django.core.cache.backends.memcached.PyLibMCCache",
    ),
    "redis": (lambda d: _redis_url(), "django_redis.cache.RedisCache"),
}


def _class_path(obj) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


@pytest.fixture(params=list(STRATEGIES))
def strategy(request, settings, db, tmp_path):
    make_url, backend = STRATEGIES[request.param]
    url = make_url(tmp_path / "cache")
    settings.CACHES = {
        **settings.CACHES,
        "default": cache_config(url),
        "html": cache_config(url, key_prefix="html", ignore_exceptions=True),
        "list": cache_config(url, key_prefix="list"),  # SALE_LIST_CACHE_URL: any strategy
    }
    if request.param == "db":
        call_command("createcachetable", verbosity=0)  # rolled back with the test transaction
    for alias in ("default", "html", "list"):
        caches[alias].clear()
    yield Strategy(request.param, url, backend)
    for alias in ("default", "html", "list"):
        caches[alias].clear()


# --- the backend really is the one the URL names ------------------------------------------


def test_aliases_use_the_selected_backend(strategy):
    assert _class_path(caches["default"]) == strategy.backend
    assert _class_path(caches["html"]) == strategy.backend
    assert caches["html"].key_prefix == "html"
    assert caches["default"].key_prefix == ""


def test_values_land_in_the_backend_store(strategy, tmp_path):
    cache = caches["default"]
    cache.set("probe", "value", 60)
    key = cache.make_and_validate_key("probe")
    if strategy.name == "dummy":
        assert cache.get("probe") is None
    elif strategy.name == "locmem":
        from django.core.cache.backends import locmem

        assert key in locmem._caches[""]
    elif strategy.name == "file":
        assert list((tmp_path / "cache").glob("*.djcache"))
    elif strategy.name == "db":
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT cache_key FROM {CACHE_TABLE}")  # noqa: S608
            assert [row[0] for row in cursor.fetchall()] == [key]
    elif strategy.name in ("pymemcache", "pylibmc"):
        library = "pymemcache" if strategy.name == "pymemcache" else "pylibmc"
        assert cache._lib.__name__ == library
        host, port = os.environ["MEMCACHED_LOCATION"].split(":")
        raw = pymemcache.Client((host, int(port)))
        try:
            assert raw.get(key) is not None
        finally:
            raw.close()
    else:
        raw = redis.Redis.from_url(_redis_url())
        try:
            assert raw.exists(key) == 1
        finally:
            raw.close()


# --- the cache API ------------------------------------------------------------------------


def test_set_get_delete(strategy):
    cache = caches["default"]
    value = {"sale": 1, "price": Decimal("9.99"), "tags": ["a", "b"]}
    cache.set("k", value, 60)
    if strategy.stores:
        assert cache.get("k") == value
        assert cache.delete("k") is True
    else:
        assert cache.get("k") is None
        assert cache.delete("k") is False
    assert cache.get("k") is None
    assert cache.get("k", "fallback") == "fallback"
    assert cache.delete("k") is False


def test_add_and_many(strategy):
    cache = caches["default"]
    assert cache.add("once", 1, 60) is True
    assert cache.add("once", 2, 60) is (not strategy.stores)
    cache.set_many({"a": 1, "b": 2}, 60)
    expected = {"once": 1, "a": 1, "b": 2} if strategy.stores else {}
    assert cache.get_many(["once", "a", "b", "missing"]) == expected
    cache.delete_many(["a", "b"])
    assert cache.get_many(["a", "b"]) == {}


def test_aliases_do_not_see_each_others_keys(strategy):
    caches["default"].set("shared", "from default", 60)
    caches["html"].set("shared", "from html", 60)
    expected = ("from default", "from html") if strategy.stores else (None, None)
    assert (caches["default"].get("shared"), caches["html"].get("shared")) == expected
    caches["html"].delete("shared")
    assert caches["default"].get("shared") == expected[0]


def test_expiry(strategy):
    cache = caches["default"]
    cache.set("short", "soon gone", timeout=1)
    cache.set("long", "still here", timeout=60)
    assert cache.get("short") == ("soon gone" if strategy.stores else None)
    time.sleep(1.5)
    assert cache.get("short") is None
    assert cache.get("long") == ("still here" if strategy.stores else None)


def test_incr(strategy):
    cache = caches["default"]
    with pytest.raises(ValueError):
        cache.incr("never-set")
    cache.set("n", 1, 60)
    if strategy.stores:
        assert cache.incr("n") == 2
        assert cache.incr("n", 5) == 7
        assert cache.decr("n", 3) == 4
        assert cache.get("n") == 4
    else:
        with pytest.raises(ValueError):
            cache.incr("n")


# --- @cache_page on the sale list ---------------------------------------------------------


def _name_in(response, name: str) -> bool:
    assert response.status_code == 200
    return name.encode() in response.content


def test_sale_list_cache_page(strategy, client):
    sale_services.sale_create(name="First sale", stock=5)
    assert _name_in(client.get("/sales/"), "First sale")
    sale_services.sale_create(name="Second sale", stock=5)
    second = client.get("/sales/")
    assert _name_in(second, "First sale")
    # A hit serves the first render; the dummy cache renders again.
    assert _name_in(second, "Second sale") is (not strategy.stores)


def test_sale_list_is_cached_in_the_list_alias(strategy, client):
    sale_services.sale_create(name="First sale", stock=5)
    client.get("/sales/")
    request = RequestFactory().get("/sales/")
    stored = get_cache_key(request, key_prefix="page", method="GET", cache=caches["list"])
    assert (stored is not None) is strategy.stores
    assert get_cache_key(request, key_prefix="page", method="GET", cache=caches["default"]) is None
    sale_services.sale_create(name="Second sale", stock=5)
    caches["list"].clear()
    assert _name_in(client.get("/sales/"), "Second sale")


# --- PathCacheMiddleware on the sale page -------------------------------------------------


@pytest.fixture
def sale(db):
    return sale_services.sale_create(name="Kettle", stock=10, price=Decimal("19.99"))


def test_sale_page_hit_and_miss(strategy, client, sale):
    url = f"/sales/{sale.pk}/"
    first = client.get(url)
    second = client.get(url)
    assert first.status_code == second.status_code == 200
    assert first["X-Page-Cache"] == "MISS"  # rendered and handed to the cache
    assert second["X-Page-Cache"] == ("HIT" if strategy.stores else "MISS")
    assert b"Kettle" in second.content
    assert second["Content-Type"] == first["Content-Type"]
    stored = caches["html"].get(page_cache.key(url))
    assert (stored is not None) is strategy.stores


def test_head_hit_has_no_body(strategy, client, sale):
    url = f"/sales/{sale.pk}/"
    client.get(url)
    head = client.head(url)
    assert head.status_code == 200
    assert head.content == b""
    assert head.get("X-Page-Cache") == ("HIT" if strategy.stores else None)


def _warm(client, url, strategy):
    client.get(url)
    hit = client.get(url)
    assert hit["X-Page-Cache"] == ("HIT" if strategy.stores else "MISS")
    return hit


def test_cached_page_ignores_changes_without_signals(strategy, client, sale):
    """The page is really served from the cache: a signal-less UPDATE stays invisible."""
    url = f"/sales/{sale.pk}/"
    _warm(client, url, strategy)
    Sale.objects.filter(pk=sale.pk).update(name="Quiet rename")
    assert (b"Quiet rename" in client.get(url).content) is (not strategy.stores)


@pytest.mark.parametrize(
    ("change", "shown"),
    [
        ("sale_name", b"Steel kettle"),
        ("product_price", b"24.50"),
        ("product_name", b"Kettle Pro"),
    ],
)
def test_saving_drops_the_cached_page(strategy, client, sale, change, shown):
    url = f"/sales/{sale.pk}/"
    before = _warm(client, url, strategy)
    assert shown not in before.content
    if change == "sale_name":
        sale.name = "Steel kettle"
        sale.save()
    elif change == "product_price":
        sale.product.price = Decimal("24.50")
        sale.product.save()
    else:
        sale.product.name = "Kettle Pro"
        sale.product.save()
    after = client.get(url)
    assert after.status_code == 200
    assert after["X-Page-Cache"] == "MISS"
    assert shown in after.content
    assert shown in _warm(client, url, strategy).content


def test_deleting_the_sale_drops_the_cached_page(strategy, client, sale):
    url = f"/sales/{sale.pk}/"
    _warm(client, url, strategy)
    sale.delete()
    response = client.get(url)
    assert response.status_code == 404
    assert caches["html"].get(page_cache.key(url)) is None


def test_deleting_the_product_drops_the_cached_page(strategy, client, sale):
    url = f"/sales/{sale.pk}/"
    _warm(client, url, strategy)
    sale.product.delete()  # cascades to the sale
    assert client.get(url).status_code == 404


def test_product_save_drops_every_sale_page_of_the_product(strategy, client, sale):
    other = sale_services.sale_create(name="Kettle again", stock=3, product=sale.product)
    urls = [f"/sales/{sale.pk}/", f"/sales/{other.pk}/"]
    for url in urls:
        _warm(client, url, strategy)
    sale.product.price = Decimal("1.00")
    sale.product.save()
    for url in urls:
        response = client.get(url)
        assert response["X-Page-Cache"] == "MISS"
        assert b"1.00" in response.content


# --- Redis options -------------------------------------------------------------------------


def test_redis_config_has_bounded_socket_waits():
    for config in (
        cache_config("redis://127.0.0.1:6379/1"),
        cache_config("redis://127.0.0.1:6379/1", key_prefix="html", ignore_exceptions=True),
    ):
        assert config["BACKEND"] == "django_redis.cache.RedisCache"
        assert config["OPTIONS"]["SOCKET_CONNECT_TIMEOUT"] == 2
        assert config["OPTIONS"]["SOCKET_TIMEOUT"] == 2
    assert cache_config("redis://h:1/0")["OPTIONS"]["IGNORE_EXCEPTIONS"] is False
    assert cache_config("redis://h:1/0", ignore_exceptions=True)["OPTIONS"]["IGNORE_EXCEPTIONS"]
    tuned = cache_config("redis://h:1/0", connect_timeout=0.5, timeout=1)["OPTIONS"]
    assert (tuned["SOCKET_CONNECT_TIMEOUT"], tuned["SOCKET_TIMEOUT"]) == (0.5, 1)
    assert "OPTIONS" not in cache_config("locmemcache://")


def test_project_redis_caches_have_bounded_socket_waits(settings):
    for alias in ("sessions", "codes"):
        options = settings.CACHES[alias]["OPTIONS"]
        assert options["SOCKET_CONNECT_TIMEOUT"] == 2
        assert options["SOCKET_TIMEOUT"] == 2
        assert options["IGNORE_EXCEPTIONS"] is False


def test_redis_client_gets_the_socket_timeouts(settings):
    settings.CACHES = {**settings.CACHES, "default": cache_config(_redis_url())}
    caches["default"].set("k", "v", 5)
    pool = caches["default"].client.get_client().connection_pool
    assert pool.connection_kwargs["socket_connect_timeout"] == 2
    assert pool.connection_kwargs["socket_timeout"] == 2
    caches["default"].clear()


@pytest.fixture
def dead_redis_url():
    return f"redis://127.0.0.1:{get_port(None)}/0"  # a free port: nothing listens there


def test_page_cache_survives_a_dead_redis(settings, client, sale, dead_redis_url):
    settings.CACHES = {
        **settings.CACHES,
        "html": cache_config(dead_redis_url, key_prefix="html", ignore_exceptions=True),
    }
    url = f"/sales/{sale.pk}/"
    for _ in range(2):
        response = client.get(url)
        assert response.status_code == 200
        assert b"Kettle" in response.content
    sale.name = "Renamed"
    sale.save()  # the invalidation receiver must not fail either
    assert b"Renamed" in client.get(url).content


def test_default_cache_does_not_hide_a_dead_redis(settings, dead_redis_url):
    settings.CACHES = {**settings.CACHES, "default": cache_config(dead_redis_url)}
    with pytest.raises(redis.exceptions.ConnectionError):
        caches["default"].get("k")


# --- the pages' own Redis evicts; the state Redis never does ----------------------------------


@pytest.fixture
def small_redis():
    """Throwaway Redis servers of 4 MB, as compose runs them (tools/devservers.py)."""
    started = []

    def start(server):
        started.append(server.start())
        return server, redis.Redis.from_url(server.url)

    yield start
    for server in started:
        server.stop()


def _fill(cache, megabytes: int) -> None:
    """Pages nobody asks for again: megabytes of 8 KB entries."""
    for n in range(megabytes * 128):
        cache.set(f"filler-{n}", "x" * 8192, 600)


def test_a_full_page_cache_evicts_pages_and_qbuy_keeps_serving(small_redis, settings, client, sale):
    server, raw = small_redis(devservers.RedisCache(maxmemory="4mb"))
    settings.CACHES = {
        **settings.CACHES,
        "html": cache_config(server.url, key_prefix="html", ignore_exceptions=True),
    }
    # The shared cache only: no process's copy of a page in front of it.
    settings.QBUY_PAGE_CACHE = {**settings.QBUY_PAGE_CACHE, "LOCAL_TIMEOUT": 0}
    assert raw.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
    url = f"/sales/{sale.pk}/"
    assert client.get(url)["X-Page-Cache"] == "MISS"
    assert client.get(url)["X-Page-Cache"] == "HIT"
    # Redis's LRU clock ticks once a second: written in the same second, the page and the filler
    # are equally old, and which goes first is chance (seen under pytest-xdist's load).
    time.sleep(1.1)

    _fill(caches["html"], 16)  # four times maxmemory: every write is accepted

    info = raw.info()
    assert info["evicted_keys"] > 0
    # Redis evicts until it is under maxmemory before each write; the write itself and client
    # buffers may take it a little over (4,194,400 bytes seen): bounded, not exact.
    assert info["used_memory"] <= 4.5 * 1024 * 1024
    assert raw.dbsize() < 16 * 128
    assert caches["html"].get(page_cache.key(url)) is None  # the oldest page went first
    again = client.get(url)
    assert (again.status_code, again["X-Page-Cache"]) == (200, "MISS")
    assert client.get(url)["X-Page-Cache"] == "HIT"


def test_a_full_state_redis_refuses_writes_and_keeps_every_key(small_redis):
    _server, raw = small_redis(devservers.Redis(maxmemory="4mb"))
    assert raw.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    raw.set("session", "a buyer's session", ex=3600)
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        for n in range(16 * 128):
            raw.set(f"order-{n}", "x" * 8192)
    assert raw.info()["evicted_keys"] == 0
    assert raw.get("session") == b"a buyer's session"
