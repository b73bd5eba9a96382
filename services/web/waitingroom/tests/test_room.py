"""The room's script against the throwaway Redis: places, the draw, admission, sold out."""

import math

import pytest

from accounts.models import User
from orders import gate
from waitingroom import services, store

from .conftest import draw_now, redis_now_ms, set_room

pytestmark = pytest.mark.django_db


def join(sale, buyer_id):
    return store.visit(sale.pk, buyer_id, join=True)


def test_a_room_opens_before_the_start_and_keeps_one_place_per_account(room_sale, settings):
    sale = room_sale(stock=5)
    first = join(sale, 1)
    assert (first.state, first.joined) == ("drawing", True)
    again = join(sale, 1)
    assert (again.state, again.joined, again.rank) == ("drawing", False, first.rank)
    assert store.visit(sale.pk).waiting == 1


def test_before_the_room_opens_nobody_joins(room_sale, settings):
    settings.WAITING_ROOM_OPENS = 30
    sale = room_sale(stock=5, starts_in=120)
    found = join(sale, 1)
    assert (found.state, found.joined) == ("not_open", False)
    assert store.visit(sale.pk).waiting == 0


def test_the_draw_is_a_permutation_of_everyone_in_the_room(room_sale):
    sale = room_sale(stock=1000)
    buyers = list(range(1, 201))
    for buyer in buyers:
        join(sale, buyer)
    draw_now(sale)
    places = [store.visit(sale.pk, b).rank for b in buyers]
    assert sorted(places) == list(range(200))
    # Later arrivals queue behind, in arrival order.
    late = [join(sale, b).rank for b in (500, 501, 502)]
    assert late == [200, 201, 202]


def test_the_order_of_the_draw_does_not_depend_on_the_order_of_arrival(room_sale):
    """Over 300 rooms of 10 buyers joining in the same order, the first to arrive lands on
    each of the 10 places about equally often (chi-square, 9 degrees of freedom, p > 0.0001)
    and, pooled, place and arrival are uncorrelated (Spearman's rho ~ 0)."""
    runs, size = 300, 10
    first_places = [0] * size
    pairs = []
    for _ in range(runs):
        sale = room_sale(stock=100)
        for arrival in range(size):
            join(sale, arrival + 1)
        draw_now(sale)
        for arrival in range(size):
            place = store.visit(sale.pk, arrival + 1).rank
            pairs.append((arrival, place))
            if arrival == 0:
                first_places[place] += 1
    expected = runs / size
    chi2 = sum((seen - expected) ** 2 / expected for seen in first_places)
    assert chi2 < 33.72, first_places  # the 0.9999 quantile of chi-square(9)
    # Spearman on ranks 0..9 with ties-free ranks within a run: the Pearson of (arrival, place).
    n = len(pairs)
    mean = (size - 1) / 2
    cov = sum((a - mean) * (p - mean) for a, p in pairs) / n
    var = sum((a - mean) ** 2 for a, _ in pairs) / n
    rho = cov / var
    assert abs(rho) < 4 / math.sqrt(n), rho  # 4 standard errors of rho under independence


def test_admission_follows_the_rate_from_the_draw(room_sale):
    sale = room_sale(stock=1000, admission_rate=50)
    for buyer in range(1, 301):
        join(sale, buyer)
    draw_now(sale, ago_ms=2000)
    found = store.visit(sale.pk)
    elapsed = found.now_ms - found.draw_ms
    assert found.head == math.floor(elapsed * 50 / 1000)
    again = store.visit(sale.pk)
    assert again.head <= math.floor((again.now_ms - again.draw_ms) * 50 / 1000)
    # Admitted in queue order: the first `head` places, each with a pass deadline (read
    # straight from Redis: a visit would admit more meanwhile).
    room, queue, admitted = store.keys(sale.pk)
    head = int(gate.redis().hget(room, "head"))
    passes = gate.redis().zrange(admitted, 0, -1, withscores=True)
    assert sorted(gate.redis().zrank(queue, who) for who, _ in passes) == list(range(head))
    assert all(deadline > again.now_ms for _, deadline in passes)


def test_admission_never_exceeds_the_stock_left_and_the_margin(room_sale, settings):
    settings.WAITING_ROOM_MARGIN = 0.2  # of the stock of 10: 2
    sale = room_sale(stock=10, admission_rate=1000)
    for buyer in range(1, 101):
        join(sale, buyer)
    draw_now(sale, ago_ms=5000)
    assert store.visit(sale.pk).head == 12
    assert store.visit(sale.pk).head == 12  # no more while 12 passes are unspent


def test_an_expired_pass_gives_its_slot_to_the_next_place(room_sale, settings):
    settings.WAITING_ROOM_MARGIN = 0.1
    sale = room_sale(stock=3, admission_rate=1000)
    for buyer in range(1, 11):
        join(sale, buyer)
    draw_now(sale, ago_ms=5000)
    assert store.visit(sale.pk).head == 4
    first = [b for b in range(1, 11) if store.visit(sale.pk, b).state == "admitted"]
    # The passes run out (their deadline moved to 1970): the room takes the next four.
    gate.redis().zadd(store.keys(sale.pk)[2], {str(b): 1 for b in first}, xx=True)
    set_room(sale, carry=0)
    assert store.visit(sale.pk).head == 8
    assert {store.visit(sale.pk, b).state for b in first} == {"passed"}


def test_sold_out_tells_everyone_waiting_at_once(room_sale):
    sale = room_sale(stock=0)
    for buyer in range(1, 6):
        join(sale, buyer)
    draw_now(sale, ago_ms=1000)
    assert {store.visit(sale.pk, b).state for b in range(1, 6)} == {"sold_out"}
    assert services.room_state(store.visit(sale.pk)) == "sold_out"
    late = join(sale, 99)
    assert (late.state, late.joined) == ("sold_out", False)


def test_a_sale_without_a_room_has_none(make_sale):
    sale = make_sale(stock=5)
    with pytest.raises(services.NoRoom):
        services.room(sale.pk)
    with pytest.raises(services.NotFound):
        services.room(sale.pk + 1000)


def test_switching_the_room_off_drops_it(room_sale):
    sale = room_sale(stock=5)
    join(sale, 1)
    sale.waiting_room = False
    sale.save()
    with pytest.raises(services.NoRoom):
        services.room(sale.pk)


def test_a_place_when_admitted_comes_with_a_pass(room_sale):
    sale = room_sale(stock=5, admission_rate=100)
    buyer = User.objects.create_user("+12025550101")
    services.join(sale_id=sale.pk, buyer_id=buyer.pk, ip="203.0.113.9")
    draw_now(sale, ago_ms=1000)
    found = services.place(sale_id=sale.pk, buyer_id=buyer.pk)
    assert found.visit.state == "admitted"
    assert found.pass_ and found.visit.deadline_ms > redis_now_ms()


def test_a_buyer_knows_she_is_in_from_her_key_and_the_rooms(room_sale):
    """place_key <= the room's admitted key exactly for the places let in, before the draw's
    random keys and after it (arrival keys): no buyer needs to ask for her place to know."""
    sale = room_sale(stock=1000, admission_rate=20)
    early = {b: join(sale, b).key for b in range(1, 41)}
    assert all(0 <= key < 1 for key in early.values())
    assert store.visit(sale.pk).head_key == -1  # nobody in yet
    draw_now(sale, ago_ms=1000)
    late = {b: join(sale, b).key for b in range(41, 46)}
    assert sorted(late.values()) == [2, 3, 4, 5, 6]  # 1 + arrival number (from 1)
    for ago in (1000, 2500):  # 20 in, then 50: some of the late ones too
        set_room(sale, draw=redis_now_ms() - ago, carry=0, head=0)
        gate.redis().delete(store.keys(sale.pk)[2])
        room = store.visit(sale.pk)
        keys = {**early, **late}
        inside = {b for b, key in keys.items() if key <= room.head_key}
        assert len(inside) == room.head
        assert inside == {b for b in keys if store.visit(sale.pk, b).state == "admitted"}
