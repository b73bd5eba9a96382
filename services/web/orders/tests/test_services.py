"""The buy path's services against real Postgres and Redis (no worker: tasks are called)."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from waitingroom import store as room_store

from accounts.models import User
from orders import gate, services
from orders.models import Order


@pytest.fixture
def buyers(db):
    return [User.objects.create_user(f"+1212555{n:04d}") for n in range(5)]


def redis_stock(sale):
    return int(gate.redis().hget(gate.keys(sale.pk)[0], "stock"))


def test_reserve_records_a_pending_order_and_nudges_its_sale_after_commit(
    make_sale, buyers, django_capture_on_commit_callbacks
):
    sale = make_sale(stock=2)
    with django_capture_on_commit_callbacks() as callbacks:
        order = services.order_reserve(sale_id=sale.pk, buyer_id=buyers[0].pk)
    assert order.status == Order.Status.PENDING
    assert Order.objects.get(token=order.token).buyer == buyers[0]
    assert len(callbacks) == 1  # the sale's settling, nudged only once the row is committed
    assert redis_stock(sale) == 1


@pytest.mark.parametrize(
    "buy", [services.order_reserve, services.order_lock_and_confirm], ids=["gate", "db-lock"]
)
def test_refusals_in_the_gates_order(make_sale, buyers, buy):
    sale = make_sale(stock=2)

    def outcome(buyer, sale_id=sale.pk):
        try:
            buy(sale_id=sale_id, buyer_id=buyer.pk)
        except services.BuyRefused as refused:
            return refused.outcome
        return "ok"

    assert [outcome(buyers[0]), outcome(buyers[0])] == ["ok", "already_bought"]
    # Sold out is everyone's answer once no stock is left, a buyer's too.
    assert [outcome(buyers[1]), outcome(buyers[2]), outcome(buyers[0])] == [
        "ok",
        "sold_out",
        "sold_out",
    ]
    assert outcome(buyers[3], sale_id=sale.pk + 1000) == "not_found"
    assert Order.objects.count() == 2


def test_place_confirms_once(make_sale, buyers):
    sale = make_sale(stock=2)
    order = services.order_reserve(sale_id=sale.pk, buyer_id=buyers[0].pk)
    assert services.order_place(token=str(order.token)).status == Order.Status.CONFIRMED
    assert services.order_place(token=str(order.token)).status == Order.Status.CONFIRMED
    sale.refresh_from_db()
    assert sale.remaining == 1  # decremented once, not twice
    assert str(order.token) not in gate.reservations(sale_id=sale.pk)


def test_place_fails_when_postgres_has_no_stock_left(make_sale, buyers):
    sale = make_sale(stock=1)
    order = services.order_reserve(sale_id=sale.pk, buyer_id=buyers[0].pk)
    type(sale).objects.filter(pk=sale.pk).update(remaining=0)  # Postgres disagrees with Redis

    placed = services.order_place(token=str(order.token))

    assert (placed.status, placed.reason) == (Order.Status.FAILED, "sold_out")
    assert redis_stock(sale) == 1  # the reservation went back
    sale.refresh_from_db()
    assert sale.remaining == 0


# As the web runs it: in autocommit, the INSERT its own transaction (a refused INSERT inside a
# caller's transaction would break that transaction).
@pytest.mark.django_db(transaction=True)
def test_a_buyer_postgres_knows_is_refused_even_if_redis_forgot(make_sale, buyers):
    sale = make_sale(stock=3)
    first = services.order_reserve(sale_id=sale.pk, buyer_id=buyers[0].pk)
    services.order_place(token=str(first.token))
    # Redis lost the buyer (e.g. an operator deleted the key): only the unique constraint is left.
    gate.redis().hdel(gate.keys(sale.pk)[1], buyers[0].pk)

    with pytest.raises(services.BuyRefused) as refused:
        services.order_reserve(sale_id=sale.pk, buyer_id=buyers[0].pk)

    assert refused.value.outcome == "already_bought"
    assert Order.objects.filter(buyer=buyers[0]).count() == 1
    assert redis_stock(sale) == 2  # the second reservation's item was given back


def test_redis_restart_is_rebuilt_from_postgres(make_sale, buyers):
    sale = make_sale(stock=3)
    placed = services.order_reserve(sale_id=sale.pk, buyer_id=buyers[0].pk)
    services.order_place(token=str(placed.token))
    services.order_reserve(sale_id=sale.pk, buyer_id=buyers[1].pk)  # still pending
    gate.redis().flushdb()  # what a Redis restart without persistence leaves

    services.order_reserve(sale_id=sale.pk, buyer_id=buyers[2].pk)

    assert redis_stock(sale) == 0
    with pytest.raises(services.BuyRefused) as refused:
        services.order_reserve(sale_id=sale.pk, buyer_id=buyers[3].pk)
    assert refused.value.outcome == "sold_out"


def test_reconcile_requeues_then_fails_stale_pending_orders(make_sale, buyers, settings):
    settings.ORDER_REQUEUE_AFTER, settings.ORDER_FAIL_AFTER = 30, 600
    sale = make_sale(stock=2)
    order = services.order_reserve(sale_id=sale.pk, buyer_id=buyers[0].pk)

    assert services.orders_reconcile().requeued == 0  # too young
    later = timezone.now() + timedelta(seconds=60)
    assert services.orders_reconcile(now=later).requeued == 1
    much_later = timezone.now() + timedelta(seconds=700)
    assert services.orders_reconcile(now=much_later).failed == 1

    order.refresh_from_db()
    assert (order.status, order.reason) == (Order.Status.FAILED, "timeout")
    assert redis_stock(sale) == 2


def test_reconcile_releases_orphan_reservations_only(make_sale, buyers, settings):
    settings.ORDER_REQUEUE_AFTER = 30
    sale = make_sale(stock=5)
    gate.load(sale)
    orphan = str(uuid.uuid4())  # the web process died between the gate and the INSERT
    gate.reserve(sale_id=sale.pk, buyer_id=buyers[0].pk, token=orphan, quantity=1)
    kept = services.order_reserve(sale_id=sale.pk, buyer_id=buyers[1].pk)

    report = services.orders_reconcile(now=timezone.now() + timedelta(seconds=60))

    assert report.released == 1
    assert set(gate.reservations(sale_id=sale.pk)) == {str(kept.token)}
    assert redis_stock(sale) == 4


def test_warm_loads_sales_opening_soon_only(make_sale, settings):
    settings.WARM_AHEAD = 600
    soon = make_sale(stock=5, starts_in=300)
    later = make_sale(stock=5, starts_in=3600)
    assert services.sales_warm() == 1
    assert gate.redis().exists(gate.keys(soon.pk)[0])
    assert not gate.redis().exists(gate.keys(later.pk)[0])


def test_warm_builds_the_waiting_room_of_a_sale_opening_soon(make_sale, settings):
    settings.WARM_AHEAD = 600
    sale = make_sale(stock=5, starts_in=300, waiting_room=True)
    plain = make_sale(stock=5, starts_in=300)
    services.sales_warm()
    room = gate.redis().hgetall(room_store.keys(sale.pk)[0])
    # Built before the start, it draws at the start (not the rebuild's redraw).
    assert int(room[b"draw"]) == int(sale.starts_at.timestamp() * 1000)
    assert not gate.redis().exists(room_store.keys(plain.pk)[0])


def test_selling_out_drops_the_cached_sale_page(client, make_sale, buyers):
    sale = make_sale(stock=1)
    client.get(f"/sales/{sale.pk}/")
    assert client.get(f"/sales/{sale.pk}/")["X-Page-Cache"] == "HIT"

    order = services.order_reserve(sale_id=sale.pk, buyer_id=buyers[0].pk)
    services.order_place(token=str(order.token))

    page = client.get(f"/sales/{sale.pk}/")
    assert page["X-Page-Cache"] == "MISS"
    assert b'data-state="sold_out"' in page.content
