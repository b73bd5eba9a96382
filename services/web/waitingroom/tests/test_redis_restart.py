"""A Redis restart without its data in the middle of a room, for real (docs/waiting-room.md,
"When Redis loses the room").

The gate's and the room's Redis (the ``stock`` cache) is this module's own server, restarted
with devservers' halt()/start() on the same port (no persistence: it comes back empty). The
sessions, the rate limits and the other tests' Redis are untouched, and under pytest-xdist each
worker has its own. The rule under test:
- a pass issued before the restart is good on its signature until its deadline; one order per
  buyer still holds (the gate's buyers hash is rebuilt from Postgres);
- the next visit rebuilds the room with a new draw WAITING_ROOM_REDRAW s later; whoever comes
  back (the page re-joins when it sees "out") within that window is put in a random order,
  then admission resumes at the rate, under the stock left and the margin;
- a buy without a pass is still refused; no oversell, one order per buyer.
"""

import pytest

from config.settings.caches import cache_config
from orders import gate
from orders.invariants import check_sale
from orders.models import Order
from orders.services import orders_settle
from tools import devservers
from waitingroom import passes, store

from .conftest import draw_now, redis_now_ms, set_room
from .test_api import admitted_in_redis, buyers, live_room, pass_of, room

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def stock_server():
    server = devservers.Redis().start()
    yield server
    server.stop()


@pytest.fixture
def restart(stock_server, settings):
    """Point the stock cache at this module's Redis; ``restart()`` loses everything in it."""
    settings.CACHES = {**settings.CACHES, settings.STOCK_CACHE: cache_config(stock_server.url)}
    settings.BUY_STRATEGY = "gate"
    settings.WAITING_ROOM_MARGIN = 0.1
    gate.redis().flushdb()

    def lose_everything():
        stock_server.halt()
        stock_server.start()
        assert gate.redis().dbsize() == 0

    return lose_everything


def room_hash(sale_id: int) -> dict[str, int]:
    raw = gate.redis().hgetall(store.keys(sale_id)[0])
    return {k.decode(): int(float(v)) for k, v in raw.items()}


def test_a_room_lost_after_the_draw_is_drawn_again_and_nothing_is_oversold(
    room_sale, restart, settings
):
    settings.WAITING_ROOM_REDRAW = 10
    # Stock 6, a margin of 1: 7 passes out at most, 3 of the 10 wait.
    sale = live_room(room_sale, stock=6, admission_rate=1000)
    ten = buyers(10)
    for b in ten:
        assert b.join(sale.pk).status_code == 201
    draw_now(sale, ago_ms=5000)
    old = {b.user.pk: b.me(sale.pk).get("pass") for b in ten}
    admitted = [b for b in ten if old[b.user.pk]]
    waiting = [b for b in ten if not old[b.user.pk]]
    assert (len(admitted), len(waiting)) == (7, 3)
    accepted = []

    def bought(b, pass_):
        r = b.buy(sale.pk, pass_)
        assert r.status_code == 202, r.content
        accepted.append(r.json()["order"])

    bought(admitted[0], old[admitted[0].user.pk])

    restart()

    # Before anything rebuilt the room: a pass from before is good on its signature...
    bought(admitted[1], old[admitted[1].user.pk])
    # ...one order per buyer holds (the gate's buyers came back from Postgres)...
    r = admitted[0].buy(sale.pk, old[admitted[0].user.pk])
    assert (r.status_code, r.json()["error"]) == (409, "already_bought")
    # ...and no pass is still no buy.
    r = waiting[0].buy(sale.pk)
    assert (r.status_code, r.json()["error"]) == (403, "not_admitted")

    # The next visit rebuilds the room: nobody is in it, a new draw comes REDRAW s later.
    assert waiting[0].me(sale.pk)["state"] == "out"
    built = room_hash(sale.pk)
    assert built["draw"] - built["built"] == 10_000
    public = room(sale.pk).json()
    assert (public["state"], public["admitted"], public["waiting"]) == ("drawing", 0, 0)

    # A pass from before the rebuild still buys; one signed after it must be an admission.
    bought(admitted[2], old[admitted[2].user.pk])
    now = redis_now_ms()
    made_up = passes.issue(
        sale_id=sale.pk, buyer_id=waiting[1].user.pk, issued_ms=now, deadline_ms=now + 60_000
    )
    r = waiting[1].buy(sale.pk, made_up)
    assert (r.status_code, r.json()["error"]) == (403, "not_admitted")

    # Every page sees "out" and joins again, within the window. Those who bought had their
    # turn: they take no place (and no admission from those still waiting).
    for b in ten:
        r = b.join(sale.pk)
        has_bought = b in admitted[:3]
        assert r.status_code == (200 if has_bought else 201), (has_bought, r.content)
        assert r.json()["state"] == ("passed" if has_bought else "drawing")
    back = admitted[3:] + waiting
    keys = gate.redis().zrange(store.keys(sale.pk)[1], 0, -1, withscores=True)
    assert len(keys) == len(back)
    assert all(0 <= key < 1 for _, key in keys)  # random place keys, not arrival numbers

    # The redraw: a permutation of those who came back, then admission at the rate, under
    # the stock left (3) and the margin (1).
    set_room(sale, draw=redis_now_ms() - 5000)
    assert room(sale.pk).json()["admitted"] == 4
    places = {b.user.pk: b.me(sale.pk) for b in back}
    assert sorted(p["place"] for p in places.values()) == list(range(1, len(back) + 1))
    new = [b for b in back if places[b.user.pk]["state"] == "admitted"]
    assert len(new) == 4

    # Everyone tries with the newest pass they have: the old passes are still alive too.
    for b in back:
        pass_ = places[b.user.pk].get("pass") or old[b.user.pk]
        r = b.buy(sale.pk, pass_)
        if r.status_code == 202:
            accepted.append(r.json()["order"])
        else:
            assert (r.status_code, r.json()["error"]) in {
                (409, "sold_out"),
                (403, "not_admitted"),
            }, r.content
    assert len(accepted) == 6

    # No oversell, one order per buyer, Redis and Postgres agree, every 202 has its order.
    orders_settle(sale_id=sale.pk)
    report = check_sale(sale.pk, accepted, expect_drained=True)
    assert report.violations == [], report
    assert report.confirmed_quantity == 6
    assert Order.objects.filter(sale=sale).values("buyer").distinct().count() == 6


def test_a_buyer_back_in_the_rebuilt_room_who_buys_with_the_old_pass_leaves_it(room_sale, restart):
    """The old pass and a place (or an admission) in the rebuilt room: the buy spends both,
    so the room neither keeps a slot for her nor tells her it is her turn again."""
    sale = live_room(room_sale, stock=5, admission_rate=1000)
    alice, bob, carol = buyers(3)
    alice.join(sale.pk)
    draw_now(sale, ago_ms=5000)
    old = pass_of(alice, sale.pk)

    restart()

    for b in (alice, bob, carol):
        assert b.join(sale.pk).status_code == 201
    # Bought while drawn again: her place is skipped when its turn comes.
    assert alice.buy(sale.pk, old).status_code == 202
    assert alice.me(sale.pk)["state"] == "passed"
    set_room(sale, draw=redis_now_ms() - 5000)
    assert alice.me(sale.pk)["state"] == "passed"
    assert admitted_in_redis(sale.pk) == {bob.user.pk, carol.user.pk}


def test_an_admission_in_the_rebuilt_room_is_spent_by_a_buy_with_the_old_pass(room_sale, restart):
    sale = live_room(room_sale, stock=5, admission_rate=1000)
    (alice,) = buyers(1)
    alice.join(sale.pk)
    draw_now(sale, ago_ms=5000)
    old = pass_of(alice, sale.pk)

    restart()

    assert alice.join(sale.pk).status_code == 201
    set_room(sale, draw=redis_now_ms() - 5000)
    assert alice.me(sale.pk)["state"] == "admitted"
    assert alice.buy(sale.pk, old).status_code == 202
    assert alice.me(sale.pk)["state"] == "passed"
    assert admitted_in_redis(sale.pk) == set()


def test_a_room_lost_before_the_start_keeps_its_draw_at_the_start(restart, room_sale):
    sale = room_sale(stock=5, starts_in=60)
    alice, bob = buyers(2)
    alice.join(sale.pk)
    draws_at = room(sale.pk).json()["draws_at"]

    restart()

    assert alice.me(sale.pk)["state"] == "out"
    assert room(sale.pk).json()["draws_at"] == draws_at
    for b in (alice, bob):
        r = b.join(sale.pk)
        assert (r.status_code, r.json()["state"]) == (201, "drawing")
    r = alice.buy(sale.pk)
    assert (r.status_code, r.json()["error"]) == (403, "not_started")
