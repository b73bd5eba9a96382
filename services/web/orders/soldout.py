"""A sold-out flag held in each web process for a moment (SOLD_OUT_MEMO seconds).

Once a sale is sold out, nearly every buy request of a flash sale is refused. The gate would
say so in one Redis round trip, after the session and the user were loaded; the flag answers
from memory instead, as soon as the request shows a session cookie. Nothing can be lost by it:
the answer changes nothing, and "sold out" is public (the sale page says it). Stock that comes
back (a failed order, more stock) is sold again at most SOLD_OUT_MEMO seconds later by this
process; the other processes and the gate are not affected.
"""

import time

from django.conf import settings

_until: dict[int, float] = {}
# The environ key the buy view sets when it answered from the memo (orders.soldout_edge replays
# that answer before Django).
MEMO_ANSWER = "qbuy.sold_out_memo"


def remember(sale_id: int) -> None:
    if settings.SOLD_OUT_MEMO > 0:
        _until[sale_id] = time.monotonic() + settings.SOLD_OUT_MEMO


def known(sale_id: int) -> bool:
    until = _until.get(sale_id)
    if until is None:
        return False
    if time.monotonic() < until:
        return True
    del _until[sale_id]
    return False
