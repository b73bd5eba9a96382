"""The sale-page cache shared by PathCacheMiddleware and the invalidation receiver.

One key per path holds the whole response (status, headers, body), so a hit is one cache read.
Keys ignore the host and the query string: the middleware only caches query-less requests for
a validated host, and only canonical paths (``is_canonical``), so a receiver that knows a model's
paths (from reverse()) can drop every cached copy.
"""

import hashlib

from django.conf import settings
from django.core.cache import caches
from django.urls import NoReverseMatch, Resolver404, resolve, reverse


def config() -> dict:
    return {"ALIAS": "html", "TIMEOUT": 60, "PATHS": [], **getattr(settings, "QBUY_PAGE_CACHE", {})}


def key(path: str) -> str:
    return "qbuy.page:" + hashlib.sha256(path.encode()).hexdigest()


def drop(paths) -> None:
    caches[config()["ALIAS"]].delete_many([key(p) for p in paths])


def is_canonical(request) -> bool:
    """Whether the request's path is the one reverse() builds for its own route and arguments.

    ``<int:pk>`` matches /sales/01/ and /sales/0001/ as well as /sales/1/; only the last is what
    ``cached_paths()`` (reverse) names, so only it may be stored. A route that cannot be reversed
    (no name) could not be invalidated either, so it is never canonical.
    """
    match = getattr(request, "resolver_match", None)
    try:
        match = match or resolve(request.path_info)
        return reverse(match.view_name, args=match.args, kwargs=match.kwargs) == request.path
    except (NoReverseMatch, Resolver404):
        return False
