"""Where issued SMS codes live: a cache alias that must not lose or ignore errors.

The code and its failed-attempt counter are two keys with the code's TTL. Verification deletes
the code before answering success, and only the caller whose delete removed the key wins, so a
code is single-use even when two logins race with it.
"""

import enum
import hmac

from django.conf import settings
from django.core.cache import caches


class Verdict(enum.Enum):
    OK = "ok"
    WRONG = "wrong"
    DEAD = "dead"  # never issued, expired, used, or killed by too many wrong tries


def _cache():
    return caches[settings.SMS_CODE_CACHE]


def _keys(phone: str) -> tuple[str, str]:
    return f"sms:code:{phone}", f"sms:tries:{phone}"


def save(*, phone: str, code: str) -> None:
    code_key, tries_key = _keys(phone)
    cache = _cache()
    cache.set_many({code_key: code, tries_key: 0}, timeout=settings.SMS_CODE_TTL)


def check(*, phone: str, code: str) -> tuple[Verdict, int]:
    """Return the verdict and the attempts left after this one."""
    code_key, tries_key = _keys(phone)
    cache = _cache()
    max_tries = settings.SMS_CODE_MAX_ATTEMPTS
    stored = cache.get(code_key)
    if stored is None:
        return Verdict.DEAD, 0
    # add() is a no-op when the counter exists; incr() is atomic on Redis and memcached.
    cache.add(tries_key, 0, timeout=settings.SMS_CODE_TTL)
    try:
        tries = cache.incr(tries_key)
    except ValueError:  # counter expired between add() and incr(): so did the code
        return Verdict.DEAD, 0
    if tries > max_tries:
        cache.delete(code_key)
        return Verdict.DEAD, 0
    # surrogatepass: a JSON body can carry a lone surrogate ("\ud800"), which plain encode()
    # rejects with UnicodeEncodeError; it is just a wrong code.
    if hmac.compare_digest(str(stored).encode(), code.encode("utf-8", "surrogatepass")):
        if not cache.delete(code_key):
            return Verdict.DEAD, 0  # another request used it first
        cache.delete(tries_key)
        return Verdict.OK, max_tries - tries
    left = max_tries - tries
    if left <= 0:
        cache.delete(code_key)
    return Verdict.WRONG, left
