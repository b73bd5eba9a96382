import pytest

from orders import gate
from waitingroom import services, store


@pytest.fixture
def room_sale(make_sale):
    """A sale with a room, its Redis state built (opening in a minute: the room is open)."""

    def make(**kw):
        kw.setdefault("starts_in", 60)
        sale = make_sale(waiting_room=True, **kw)
        services.room(sale.pk)
        return sale

    return make


def set_room(sale, **fields):
    """Move the room's clock: its moments are Redis's, so a test sets them (epoch ms)."""
    gate.redis().hset(store.keys(sale.pk)[0], mapping=fields)


def redis_now_ms() -> int:
    seconds, micros = gate.redis().time()
    return seconds * 1000 + micros // 1000


def draw_now(sale, *, ago_ms: int = 0):
    """The draw happens now (or ``ago_ms`` ago) and the sale is open: the gate's window too."""
    now = redis_now_ms()
    set_room(sale, draw=now - ago_ms, opens=now - ago_ms - 60_000)
    gate.redis().hset(gate.keys(sale.pk)[0], "starts", now - ago_ms)
