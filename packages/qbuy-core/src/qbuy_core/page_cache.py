"""The sale-page cache shared by PathCacheMiddleware and the invalidation receiver.

One key per path holds the whole response (status, headers, body), so a hit is one cache read.
Keys ignore the host and the query string: the middleware only caches query-less requests, so
a receiver that knows a model's paths can drop every cached copy.
"""

import hashlib

from django.conf import settings
from django.core.cache import caches


def config() -> dict:
    return {"ALIAS": "html", "TIMEOUT": 60, "PATHS": [], **getattr(settings, "QBUY_PAGE_CACHE", {})}


def key(path: str) -> str:
    return "qbuy.page:" + hashlib.sha256(path.encode()).hexdigest()


def drop(paths) -> None:
    caches[config()["ALIAS"]].delete_many([key(p) for p in paths])
