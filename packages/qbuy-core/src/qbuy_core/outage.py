"""What counts as an outage: a dependency that cannot be reached, not a bug in the request.

These errors get a 503 with ``Retry-After`` (DESIGN.md invariant 6), never a 500: the request
was fine and will work again once Redis or Postgres is back. Anything else stays a 500.
"""

from django.db import InterfaceError, OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

# Redis refused, lost or too slow (BusyLoadingError, Redis still loading its AOF, is a
# ConnectionError); Postgres refused, lost, or the connection already closed.
OUTAGE_ERRORS = (RedisConnectionError, RedisTimeoutError, OperationalError, InterfaceError)


def is_outage(exc: BaseException | None) -> bool:
    """True for an outage error, also one wrapped by a library (django-redis raises its
    ConnectionInterrupted ``from`` the redis error)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OUTAGE_ERRORS):
            return True
        seen.add(id(exc))
        exc = exc.__cause__
    return False
