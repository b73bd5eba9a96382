"""The one limiter behind every login limit: fixed-window counters in the codes cache (Redis).

A limit is a name, an identity (a phone, an address, a country prefix, "all"), a count and a
window in seconds. Counters live in ``SMS_CODE_CACHE``, the alias whose errors are never
ignored: a limiter that silently stopped counting while Redis was down would be no limit
(an outage is a 503, qbuy_core.outage).

Fixed windows are one key and one atomic INCR per check; the price is that a client may spend
one window's budget at its end and the next one's at the start (twice the limit in a short
while), which every limit's figure in SECURITY.md allows for.
"""

import contextlib
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches


@dataclass
class RateLimited(Exception):
    retry_after: int
    limit: str = ""  # the name of the limit that refused (the SMS metrics count by it)


@dataclass(frozen=True)
class Limit:
    name: str
    limit: int
    window: int  # seconds

    def _key(self, ident: str, now: float) -> tuple[str, int]:
        index = int(now) // self.window
        retry_after = max(1, (index + 1) * self.window - int(now))
        return f"rl:{self.name}:{ident}:{index}", retry_after

    def hit(self, ident: str) -> int:
        """Count one event; raise RateLimited when it is beyond the limit. Returns the count."""
        key, retry_after = self._key(ident, time.time())
        cache = _cache()
        cache.add(key, 0, timeout=self.window)
        try:
            count = cache.incr(key)
        except ValueError:  # the window's key expired between add() and incr(): a new window
            cache.add(key, 1, timeout=self.window)
            count = 1
        if count > self.limit:
            raise RateLimited(retry_after=retry_after, limit=self.name)
        return count

    def check(self, ident: str) -> None:
        """Raise RateLimited when the budget is spent, without counting."""
        key, retry_after = self._key(ident, time.time())
        if (_cache().get(key) or 0) >= self.limit:
            raise RateLimited(retry_after=retry_after, limit=self.name)

    def give_back(self, ident: str) -> None:
        """Undo one hit() of this window (an event that did not happen after all)."""
        key, _ = self._key(ident, time.time())
        # ValueError: the window ended meanwhile, nothing of this window to give back.
        with contextlib.suppress(ValueError):
            _cache().decr(key)

    def count(self, ident: str) -> int:
        key, _ = self._key(ident, time.time())
        return _cache().get(key) or 0


def _cache():
    return caches[settings.SMS_CODE_CACHE]
