"""Closing caches at the end of a request only where closing does something (issue 20).

Django's ``request_finished`` receiver, ``close_caches``, looks for the aliases in use through the
cache handler's context-local storage and calls ``close()`` on each: about 40 us a request with
qbuy's six aliases, on every request, for closes that do nothing. Of Django's backends only
pymemcache's closes anything (its client leaves connections behind); locmem, file, database,
dummy and pylibmc have nothing to close, and django-redis keeps its pool open unless
``CLOSE_CONNECTION`` (or ``DJANGO_REDIS_CLOSE_CONNECTION``) says otherwise. ``install()`` puts a
receiver in its place that closes those aliases only, found once from ``CACHES``.
"""

from django.conf import settings
from django.core import signals
from django.core.cache import caches, close_caches

_CLOSES_NOTHING = {
    "django.core.cache.backends.dummy.DummyCache",
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.filebased.FileBasedCache",
    "django.core.cache.backends.db.DatabaseCache",
    "django.core.cache.backends.memcached.PyLibMCCache",
}


def aliases_to_close() -> list[str]:
    found = []
    for alias, config in settings.CACHES.items():
        backend = config["BACKEND"]
        if backend in _CLOSES_NOTHING:
            continue
        if backend.startswith("django_redis.") and not config.get("OPTIONS", {}).get(
            "CLOSE_CONNECTION", getattr(settings, "DJANGO_REDIS_CLOSE_CONNECTION", False)
        ):
            continue
        found.append(alias)
    return found


UID = "qbuy_core.cache_close"


def install() -> None:
    """Replace Django's receiver (again, with the aliases of the settings now, if installed)."""
    aliases = aliases_to_close()

    def close_caches_that_hold_connections(**kwargs):
        for alias in aliases:
            caches[alias].close()

    signals.request_finished.disconnect(close_caches)
    signals.request_finished.disconnect(dispatch_uid=UID)
    # weak=False: nothing else holds this function.
    signals.request_finished.connect(
        close_caches_that_hold_connections, dispatch_uid=UID, weak=False
    )
