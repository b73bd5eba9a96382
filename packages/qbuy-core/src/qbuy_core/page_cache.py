"""The sale-page cache shared by PathCacheMiddleware and the invalidation receiver.

One key per path holds the whole response (status, headers, body), so a hit is one cache read.
Keys ignore the host and the query string: the middleware only caches query-less requests for
a validated host, and only canonical paths (``is_canonical``), so a receiver that knows a model's
paths (from reverse()) can drop every cached copy.

In front of the shared cache each process keeps what it read for ``LOCAL_TIMEOUT`` seconds (at
most LOCAL_ENTRIES pages): at a sale's opening every web worker asks for the same page thousands
of times a second, and a read from Redis cost a sale page's hit more than every middleware
together (issue 20). A drop reaches this process's copy at once and the others' within
LOCAL_TIMEOUT, as nginx's one-second micro-cache in front of them all does.
"""

import hashlib
import time

from django.conf import settings
from django.core.cache import caches
from django.urls import NoReverseMatch, Resolver404, resolve, reverse

LOCAL_ENTRIES = 256  # pages a process keeps in front of the shared cache (~10 KB each)
_local: dict[str, tuple[float, tuple]] = {}  # key -> (expires at, monotonic; the entry)


def config() -> dict:
    defaults = {"ALIAS": "html", "TIMEOUT": 60, "LOCAL_TIMEOUT": 0, "PATHS": []}
    return {**defaults, **getattr(settings, "QBUY_PAGE_CACHE", {})}


def key(path: str) -> str:
    return "qbuy.page:" + hashlib.sha256(path.encode()).hexdigest()


def local_get(key: str):
    """This process's copy of an entry, while it is fresh."""
    found = _local.get(key)
    if found is None:
        return None
    if found[0] > time.monotonic():
        return found[1]
    _local.pop(key, None)
    return None


def local_set(key: str, entry, timeout: float) -> None:
    if len(_local) >= LOCAL_ENTRIES:
        _local.clear()  # bounded; refilled from the shared cache at one read a page
    _local[key] = (time.monotonic() + timeout, entry)


def local_clear() -> None:
    """Forget this process's copies (tests start from empty caches)."""
    _local.clear()


def drop(paths) -> None:
    keys = [key(p) for p in paths]
    for k in keys:
        _local.pop(k, None)
    caches[config()["ALIAS"]].delete_many(keys)


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
