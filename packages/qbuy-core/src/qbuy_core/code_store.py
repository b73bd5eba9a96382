"""Where issued SMS codes live: a cache alias that must not lose or ignore errors.

A code is three keys with the code's TTL: the code, its failed-attempt counter and the address
that asked for it (its owner). Only the owner's wrong guesses count against the code and can
kill it; anyone else's leave it alone (their guesses are budgeted per phone by the caller,
accounts.services), so a stranger guessing cannot burn the code its owner is about to type.

Verification deletes the code before answering success, and only the caller whose delete
removed the key wins, so a code is single-use even when two logins race with it.
"""

import enum
import hmac
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches


class Verdict(enum.Enum):
    OK = "ok"
    WRONG = "wrong"
    DEAD = "dead"  # never issued, expired, used, or killed by too many wrong tries


@dataclass(frozen=True)
class LiveCode:
    code: str
    owner: str  # the address that requested it ("" when unknown: nobody owns it)


def _cache():
    return caches[settings.SMS_CODE_CACHE]


def _keys(phone: str) -> tuple[str, str, str]:
    return f"sms:code:{phone}", f"sms:tries:{phone}", f"sms:owner:{phone}"


def save(*, phone: str, code: str, owner: str = "") -> None:
    code_key, tries_key, owner_key = _keys(phone)
    _cache().set_many(
        {code_key: code, tries_key: 0, owner_key: owner}, timeout=settings.SMS_CODE_TTL
    )


def live(*, phone: str) -> LiveCode | None:
    code_key, _, owner_key = _keys(phone)
    found = _cache().get_many([code_key, owner_key])
    if code_key not in found:
        return None
    return LiveCode(code=str(found[code_key]), owner=found.get(owner_key) or "")


def check(*, phone: str, code: str, counted: bool) -> Verdict:
    """Compare ``code`` with the live one. ``counted``: the guess counts against the code's
    SMS_CODE_MAX_ATTEMPTS (the owner's guesses); otherwise a wrong guess leaves it alive."""
    code_key, tries_key, owner_key = _keys(phone)
    cache = _cache()
    stored = cache.get(code_key)
    if stored is None:
        return Verdict.DEAD
    if counted:
        # add() is a no-op when the counter exists; incr() is atomic on Redis and memcached.
        cache.add(tries_key, 0, timeout=settings.SMS_CODE_TTL)
        try:
            tries = cache.incr(tries_key)
        except ValueError:  # counter expired between add() and incr(): so did the code
            return Verdict.DEAD
        if tries > settings.SMS_CODE_MAX_ATTEMPTS:
            cache.delete(code_key)
            return Verdict.DEAD
    # surrogatepass: a JSON body can carry a lone surrogate ("\ud800"), which plain encode()
    # rejects with UnicodeEncodeError; it is just a wrong code.
    if hmac.compare_digest(str(stored).encode(), code.encode("utf-8", "surrogatepass")):
        if not cache.delete(code_key):
            return Verdict.DEAD  # another request used it first
        cache.delete_many([tries_key, owner_key])
        return Verdict.OK
    if counted and tries >= settings.SMS_CODE_MAX_ATTEMPTS:
        cache.delete(code_key)
    return Verdict.WRONG
