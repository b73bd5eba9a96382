"""The room's pass: proof, signed with SECRET_KEY, that an account was let into a sale's room.

``<sale>.<buyer>.<issued ms>.<deadline ms>:<HMAC>``. The buy endpoint checks it without Redis:
a pass of another account or another sale, expired or altered is refused (403 not_admitted).
Redis keeps it single-use: the gate's script spends the admission with the buy (orders/gate.py).
"""

import functools
import time
from dataclasses import dataclass

from django.core import signing


@dataclass(frozen=True)
class Pass:
    sale_id: int
    buyer_id: int
    issued_ms: int
    deadline_ms: int


class InvalidPass(Exception):
    pass


@functools.cache
def _signer() -> signing.Signer:
    # Built once per process: a Signer derives its key for each instance.
    return signing.Signer(salt="qbuy.waitingroom.pass")


def issue(*, sale_id: int, buyer_id: int, issued_ms: int, deadline_ms: int) -> str:
    """``issued_ms`` on Redis's clock, the room's (the gate compares it with the room's)."""
    return _signer().sign(f"{sale_id}.{buyer_id}.{issued_ms}.{deadline_ms}")


def check(value: str, *, sale_id: int, buyer_id: int) -> Pass:
    """The pass if it is this buyer's for this sale and not expired; raises InvalidPass."""
    try:
        fields = [int(v) for v in _signer().unsign(value).split(".")]
        found = Pass(*fields)
    except (signing.BadSignature, ValueError, TypeError):
        raise InvalidPass("not a pass of this site") from None
    if (found.sale_id, found.buyer_id) != (sale_id, buyer_id):
        raise InvalidPass("another account's or another sale's pass")
    if found.deadline_ms <= time.time() * 1000:
        raise InvalidPass("expired")
    return found
