"""The Redis gate in front of the buy path: one Lua script checks and reserves atomically.

The teaching project this replaces read the buyer count and then wrote (two round trips), so two
web processes could both see "one left" and both sell it. Here the window check, the per-buyer
check, the stock decrement and the reservation are one script: Redis runs scripts one at a time,
so no interleaving exists. All keys of a sale share a hash tag ({s:ID}) so the script also works
on Redis Cluster.

Keys of sale ID:
  qbuy:{s:ID}:sale    hash: starts, ends (epoch ms), limit, stock (left to reserve)
  qbuy:{s:ID}:buyers  hash: buyer id -> quantity reserved
  qbuy:{s:ID}:resv    hash: token -> "buyer:quantity:reserved_at_ms"
A sale with a waiting room (``room`` 1 in the sale's hash) also needs the buyer's admission
from the room's keys (waitingroom/store.py), spent by the reservation.
"""

import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Sum
from django_redis import get_redis_connection
from redis.exceptions import LockError

from . import metrics

RESERVE = """
local sale, buyers, resv, room, admitted = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local buyer, token, qty, issued = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
if redis.call('EXISTS', sale) == 0 then return {'missing', -1} end
local f = redis.call('HMGET', sale, 'starts', 'ends', 'limit', 'stock', 'room')
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now < tonumber(f[1]) then return {'not_started', -1} end
if now >= tonumber(f[2]) then return {'ended', -1} end
-- Sold out is everyone's answer, buyers included: a web process can then give it from memory.
if tonumber(f[4]) <= 0 then return {'sold_out', 0} end
if redis.call('HEXISTS', buyers, buyer) == 1 then return {'already_bought', -1} end
if f[5] == '1' then
  -- ARGV[4]: when the buyer's pass (its signature checked by the caller) was issued; -1: none.
  if issued < 0 then return {'not_admitted', -1} end
  -- A pass issued before this room was built belongs to a room Redis lost: its signature is
  -- all there is to check (the buyers hash still allows one order). Any other must be an
  -- admission not spent and not expired.
  local built = redis.call('HGET', room, 'built')
  if built and issued >= tonumber(built) then
    local deadline = redis.call('ZSCORE', admitted, buyer)
    if not deadline or tonumber(deadline) <= now then return {'not_admitted', -1} end
  end
end
if qty > tonumber(f[3]) then return {'over_limit', -1} end
local stock = tonumber(f[4])
if stock < qty then return {'sold_out', stock} end
-- The buy spends the buyer's admission, also when an old pass paid: admitted again by the
-- rebuilt room, she would keep a slot and be told it is her turn after buying.
if f[5] == '1' then redis.call('ZREM', admitted, buyer) end
redis.call('HINCRBY', sale, 'stock', -qty)
redis.call('HSET', buyers, buyer, qty)
redis.call('HSET', resv, token, buyer .. ':' .. qty .. ':' .. now)
return {'ok', stock - qty}
"""

# Give a reservation's stock back. Keyed by token, so releasing twice releases once.
RELEASE = """
local sale, buyers, resv = KEYS[1], KEYS[2], KEYS[3]
local entry = redis.call('HGET', resv, ARGV[1])
if not entry then return 0 end
local buyer, qty = string.match(entry, '^([^:]+):(%d+):')
redis.call('HDEL', resv, ARGV[1])
if ARGV[2] == '1' then redis.call('HDEL', buyers, buyer) end
if redis.call('EXISTS', sale) == 1 then redis.call('HINCRBY', sale, 'stock', tonumber(qty)) end
return tonumber(qty)
"""

# Move a loaded sale's stock by ARGV[1] (negative: lower it), unless that would take back items
# already reserved: then nothing changes ('short', with what is left to reserve).
ADJUST = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing', -1} end
local stock = tonumber(redis.call('HGET', KEYS[1], 'stock'))
local delta = tonumber(ARGV[1])
if stock + delta < 0 then return {'short', stock} end
redis.call('HINCRBY', KEYS[1], 'stock', delta)
return {'ok', stock + delta}
"""

# Undo a confirmed order (a cancel): its buyer may buy again and, if the sale is loaded, its
# quantity is for sale again. Its reservation goes too: left behind by a worker that died
# before gate.drop, the reconciler would release it and give the stock back a second time.
UNSELL = """
local sale, buyers, resv = KEYS[1], KEYS[2], KEYS[3]
redis.call('HDEL', resv, ARGV[1])
redis.call('HDEL', buyers, ARGV[2])
if redis.call('EXISTS', sale) == 0 then return 0 end
redis.call('HINCRBY', sale, 'stock', tonumber(ARGV[3]))
return 1
"""

# Update a loaded sale's window, limit and room switch; a sale not loaded yet gets them from load().
SYNC = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'starts', ARGV[1], 'ends', ARGV[2], 'limit', ARGV[3], 'room',
  ARGV[4])
return 1
"""


@dataclass(frozen=True)
class Reservation:
    # ok, missing, not_started, ended, already_bought, not_admitted, over_limit, sold_out
    outcome: str
    stock_left: int


def keys(sale_id: int) -> list[str]:
    tag = f"qbuy:{{s:{sale_id}}}"
    return [f"{tag}:sale", f"{tag}:buyers", f"{tag}:resv"]


def room_keys(sale_id: int) -> list[str]:
    """The waiting room's keys the reservation reads (waitingroom/store.py owns them)."""
    tag = f"qbuy:{{s:{sale_id}}}"
    return [f"{tag}:room", f"{tag}:admitted"]


def redis():
    return get_redis_connection(settings.STOCK_CACHE)


def _script(source):
    return redis().register_script(source)


def _window(sale) -> dict:
    return {
        "starts": int(sale.starts_at.timestamp() * 1000),
        "ends": int(sale.ends_at.timestamp() * 1000),
        "limit": sale.per_buyer_limit,
        "room": int(sale.waiting_room),
    }


def sync_window(sale) -> bool:
    """Keep a loaded sale's window, limit and room switch in step with Postgres (stock is
    Redis's own)."""
    window = _window(sale)
    args = [window["starts"], window["ends"], window["limit"], window["room"]]
    return bool(_script(SYNC)(keys=keys(sale.pk)[:1], args=args))


def reserve(
    *, sale_id: int, buyer_id: int, token: str, quantity: int = 1, pass_issued_ms: int = -1
) -> Reservation:
    """``pass_issued_ms``: when the buyer's room pass was issued, its signature checked by the
    caller (waitingroom.passes); -1 without one. A sale without a room ignores it."""
    # The script trusts its quantity: 0 would record a buyer holding nothing, a negative one
    # would add stock. The API refuses both first; this keeps any other caller from doing it.
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        raise ValueError(f"quantity must be a positive integer, not {quantity!r}")
    with metrics.GATE.time():
        outcome, left = _script(RESERVE)(
            keys=[*keys(sale_id), *room_keys(sale_id)],
            args=[buyer_id, token, quantity, pass_issued_ms],
        )
    return Reservation(outcome.decode() if isinstance(outcome, bytes) else outcome, int(left))


def release(*, sale_id: int, token: str, forget_buyer: bool) -> int:
    """Return the reserved quantity to stock; ``forget_buyer`` lets the buyer try again."""
    return int(_script(RELEASE)(keys=keys(sale_id), args=[token, "1" if forget_buyer else "0"]))


def stock_adjust(*, sale_id: int, delta: int) -> tuple[str, int]:
    """Move the gate's stock by ``delta`` -> (outcome, stock left to reserve): 'ok'; 'short' if
    reservations hold the items a lowering would take (nothing changed); 'missing' if the sale
    is not loaded (load() reads Postgres, so nothing needs changing)."""
    outcome, left = _script(ADJUST)(keys=keys(sale_id)[:1], args=[delta])
    return (outcome.decode() if isinstance(outcome, bytes) else outcome), int(left)


def unsell(*, sale_id: int, token: str, buyer_id: int, quantity: int) -> None:
    """A confirmed order was cancelled: not idempotent, so call it once, after the commit that
    cancelled it."""
    _script(UNSELL)(keys=keys(sale_id), args=[token, buyer_id, quantity])


def forget(sale_id: int) -> None:
    """Drop the sale's whole Redis state: the next reservation rebuilds it from Postgres
    (after Postgres was changed behind the gate's back)."""
    redis().delete(*keys(sale_id))


def drop(*, sale_id: int, token: str) -> None:
    """Forget a reservation that became a confirmed order: its stock stays sold."""
    drop_many(sale_id=sale_id, tokens=[token])


def drop_many(*, sale_id: int, tokens: list[str]) -> None:
    """drop() for a settled batch, in one command."""
    if tokens:
        redis().hdel(keys(sale_id)[2], *tokens)


def parse_reservations(raw: dict) -> dict[str, tuple[int, int, int]]:
    """The reservations hash as Redis returns it -> token -> (buyer, quantity, at_ms)."""
    out = {}
    for token, entry in raw.items():
        buyer, qty, at = entry.decode().split(":")
        out[token.decode()] = (int(buyer), int(qty), int(at))
    return out


def reservations(*, sale_id: int) -> dict[str, tuple[int, int, int]]:
    """token -> (buyer, quantity, reserved_at_ms), for reconciliation."""
    return parse_reservations(redis().hgetall(keys(sale_id)[2]))


def _rebuild_lock(sale_id: int):
    return redis().lock(f"qbuy:{{s:{sale_id}}}:rebuild", timeout=10, blocking_timeout=5)


class Busy(RuntimeError):
    """The sale's rebuild lock stayed taken (load() holds it for milliseconds)."""


@contextmanager
def rebuild_lock(sale_id: int):
    """Hold off load() for a sale while Postgres and Redis are changed together (a stock
    change, a cancel): a rebuild that read the row before their COMMIT and wrote Redis after
    their Redis step would undo it. load() reads the row once it holds this lock."""
    lock = _rebuild_lock(sale_id)
    if not lock.acquire():
        raise Busy(f"sale {sale_id}: its Redis state is being rebuilt")
    try:
        yield
    finally:
        with suppress(LockError):  # expired (10 s): nothing to release
            lock.release()


def load(sale) -> bool:
    """Build the sale's Redis state from Postgres, the source of truth. Return False when
    another process holds the rebuild lock (the caller retries the reservation)."""
    from sales.models import Sale

    from .models import Order

    conn = redis()
    sale_key, buyers_key, resv_key = keys(sale.pk)
    lock = _rebuild_lock(sale.pk)
    if not lock.acquire():
        return False
    try:
        if conn.exists(sale_key):
            return True  # rebuilt by someone else while we waited
        # Read under the lock, not the caller's copy: a stock change or a cancel that held the
        # lock has committed by now.
        sale = Sale.objects.filter(pk=sale.pk).first()
        if sale is None:
            return False  # deleted: the caller's retry finds it gone
        live = Order.objects.filter(sale_id=sale.pk).exclude(status=Order.Status.FAILED)
        pending = live.filter(status=Order.Status.PENDING)
        pending_qty = pending.aggregate(n=Sum("quantity"))["n"] or 0
        now_ms = int(time.time() * 1000)
        pipe = conn.pipeline(transaction=True)
        pipe.delete(buyers_key, resv_key)
        for buyer_id, qty in live.values_list("buyer_id", "quantity"):
            pipe.hset(buyers_key, buyer_id, qty)
        for token, buyer_id, qty in pending.values_list("token", "buyer_id", "quantity"):
            pipe.hset(resv_key, str(token), f"{buyer_id}:{qty}:{now_ms}")
        stock = max(0, sale.remaining - pending_qty)
        pipe.hset(sale_key, mapping={**_window(sale), "stock": stock})
        pipe.execute()
        return True
    finally:
        lock.release()
