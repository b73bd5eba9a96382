"""A cache session engine that tells an unreadable session from an empty one.

Django's cache engine turns any error of ``cache.get`` into an empty session (#17810: memcached
raises on keys it finds invalid). With Redis down that makes every logged-in user anonymous:
the API answers 401 and logout "succeeds" (204) while the session lives on in Redis. Here an
outage error propagates, so the request gets a 503 (qbuy_core.middleware) and the session
works again once Redis is back; other errors keep Django's behaviour.

SESSION_ENGINE = "qbuy_core.sessions"; the sessions cache alias must not ignore exceptions.
"""

from django.contrib.sessions.backends import cache

from .outage import is_outage


class SessionStore(cache.SessionStore):
    def load(self):
        try:
            session_data = self._cache.get(self.cache_key)
        except Exception as exc:
            if is_outage(exc):
                raise
            session_data = None  # as Django does (#17810)
        if session_data is not None:
            return session_data
        self._session_key = None
        return {}
