"""The waiting room: join, look at one's place, look at the room (store.py holds the state).

Nothing here reads Postgres while the room is in Redis: a room (and the gate's copy of the
sale) missing from Redis is built from the sale's row once, then every visit is one script.
"""

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings

from accounts.ratelimit import Limit
from orders import gate
from sales.models import Sale

from . import passes, store


class NotFound(Exception):
    pass


class NoRoom(Exception):
    """The sale has no waiting room: buy as usual."""


@dataclass(frozen=True)
class NotOpen(Exception):
    opens_ms: int


@dataclass(frozen=True)
class Place:
    visit: store.Visit
    pass_: str | None  # when admitted


def _visit(sale_id: int, buyer_id: int | None = None, *, join: bool = False) -> store.Visit:
    for _ in range(3):
        found = store.visit(sale_id, buyer_id, join=join)
        if found.state != "missing":
            return found
        sale = Sale.objects.filter(pk=sale_id).first()
        if sale is None:
            raise NotFound(sale_id)
        if not sale.waiting_room:
            raise NoRoom(sale_id)
        # False when another process holds the rebuild lock: asked again, it is built by then.
        gate.load(sale)
        store.create(sale)
    raise RuntimeError(f"sale {sale_id}: its waiting room could not be built in Redis")


def room(sale_id: int) -> store.Visit:
    """The room as everyone sees it (nothing personal: cacheable)."""
    return _visit(sale_id)


def place(*, sale_id: int, buyer_id: int) -> Place:
    """The buyer's place, and a pass once admitted."""
    return _with_pass(sale_id, buyer_id, _visit(sale_id, buyer_id))


def join(*, sale_id: int, buyer_id: int, ip: str) -> Place:
    """Take a place (one per account: joining again keeps it). Raises RateLimited (per
    address), NotOpen, NotFound, NoRoom."""
    Limit("room-join", settings.WAITING_ROOM_JOINS_PER_MINUTE, 60).hit(ip)
    found = _visit(sale_id, buyer_id, join=True)
    if found.state == "not_open":
        raise NotOpen(found.opens_ms)
    return _with_pass(sale_id, buyer_id, found)


def _with_pass(sale_id: int, buyer_id: int, found: store.Visit) -> Place:
    if found.state != "admitted":
        return Place(found, None)
    signed = passes.issue(
        sale_id=sale_id, buyer_id=buyer_id, issued_ms=found.now_ms, deadline_ms=found.deadline_ms
    )
    return Place(found, signed)


def room_state(found: store.Visit) -> str:
    """not_open, drawing (open; the places are drawn at the start), admitting, sold_out, ended."""
    if found.now_ms >= found.ends_ms:
        return "ended"
    if found.now_ms < found.opens_ms:
        return "not_open"
    if found.now_ms < found.draw_ms:
        return "drawing"
    return "sold_out" if found.stock <= 0 else "admitting"


def wait_seconds(found: store.Visit) -> int | None:
    """A buyer's wait at the room's rate; longer if the stock holds admission back."""
    if found.state != "waiting":
        return None
    ahead = found.rank - found.head
    return math.ceil((ahead + 1) / found.rate)


def moment(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
