"""qbuy_core.cache_close: at a request's end only the caches that hold connections are closed."""

import pytest
from django.core import signals
from django.test import override_settings

from config.settings.caches import cache_config
from qbuy_core import cache_close

CACHES = {
    "locmem": cache_config("locmemcache://"),
    "dummy": cache_config("dummycache://"),
    "file": cache_config("filecache:///tmp/qbuy-cache-close"),
    "db": cache_config("dbcache://qbuy_cache_table"),
    "pylibmc": cache_config("pylibmc://127.0.0.1:11211"),
    "pymemcache": cache_config("pymemcache://127.0.0.1:11211"),
    "redis": cache_config("redis://127.0.0.1:6379/0"),
    "redis-closing": {
        **cache_config("redis://127.0.0.1:6379/0"),
        "OPTIONS": {"CLOSE_CONNECTION": True},
    },
}


class Spy:
    def __init__(self, closed: list, alias: str):
        self.closed, self.alias = closed, alias

    def close(self):
        self.closed.append(self.alias)


@pytest.fixture
def every_backend(monkeypatch):
    closed: list[str] = []
    monkeypatch.setattr(cache_close, "caches", {a: Spy(closed, a) for a in CACHES})
    with override_settings(CACHES=CACHES):
        yield closed
    cache_close.install()  # back to the suite's own aliases


def test_only_caches_with_something_to_close_are_closed(every_backend):
    assert cache_close.aliases_to_close() == ["pymemcache", "redis-closing"]
    with override_settings(DJANGO_REDIS_CLOSE_CONNECTION=True):
        assert cache_close.aliases_to_close() == ["pymemcache", "redis", "redis-closing"]


@pytest.mark.django_db  # request_finished also closes old database connections
def test_the_end_of_a_request_closes_them_and_walks_nothing_else(every_backend, monkeypatch):
    cache_close.install()
    walked = []
    monkeypatch.setattr("django.core.cache.caches.close_all", lambda: walked.append(1))

    signals.request_finished.send(sender=None)
    signals.request_finished.send(sender=None)

    assert every_backend == ["pymemcache", "redis-closing"] * 2
    assert walked == []  # Django's close_caches, which walks every alias, is not connected
