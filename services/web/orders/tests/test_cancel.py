"""order_cancel against real Postgres and Redis: stock comes back in both, the buyer may buy
again, and a cancel racing the order task or a storm gives nothing back twice."""

import contextlib
import random
import threading
import time

import pytest
from django.db import connection, transaction

from accounts.models import User
from orders import gate, services
from orders.invariants import check_sale
from orders.models import CANCEL_MESSAGE_MAX, Order
from sales.models import Sale


@pytest.fixture
def buyers(db):
    return [User.objects.create_user(f"+1404555{n:04d}").pk for n in range(4)]


def buy(sale_id: int, buyer_id: int, *, place: bool = True) -> Order:
    order = services.order_reserve(sale_id=sale_id, buyer_id=buyer_id)
    return services.order_place(token=str(order.token)) if place else order


def stores(sale) -> tuple[int, int | None]:
    """(remaining in Postgres, stock left to reserve in Redis)."""
    sale.refresh_from_db()
    left = gate.redis().hget(gate.keys(sale.pk)[0], "stock")
    return sale.remaining, None if left is None else int(left)


@pytest.mark.parametrize("place", [True, False], ids=["confirmed", "pending"])
def test_cancel_gives_the_stock_back_and_the_buyer_buys_again(make_sale, buyers, place):
    sale = make_sale(stock=2)
    order = buy(sale.pk, buyers[0], place=place)
    assert stores(sale) == ((1, 1) if place else (2, 1))

    assert services.order_cancel(order_id=order.pk, message="customer asked") is True

    order.refresh_from_db()
    assert (order.status, order.reason) == ("failed", "cancelled by the shop: customer asked")
    assert stores(sale) == (2, 2)
    again = buy(sale.pk, buyers[0])
    assert again.status == "confirmed"
    assert stores(sale) == (1, 1)
    assert check_sale(sale.pk, expect_drained=True).violations == []


def test_cancel_by_token_keeps_the_message_within_its_bound(make_sale, buyers):
    sale = make_sale(stock=1)
    order = buy(sale.pk, buyers[0])
    assert services.order_cancel(token=str(order.token), message=" x\n" + "x" * 300)
    order.refresh_from_db()
    assert order.reason == "cancelled by the shop: x " + "x" * (CANCEL_MESSAGE_MAX - 2)
    assert len(order.reason) <= Order._meta.get_field("reason").max_length


def test_a_cancel_without_a_message_says_only_that_the_shop_cancelled(make_sale, buyers):
    sale = make_sale(stock=1)
    order = buy(sale.pk, buyers[0])
    assert services.order_cancel(order_id=order.pk)
    order.refresh_from_db()
    assert order.reason == "cancelled by the shop"


def test_cancelling_twice_changes_nothing_the_second_time(make_sale, buyers):
    sale = make_sale(stock=3)
    order = buy(sale.pk, buyers[0])
    buy(sale.pk, buyers[1])
    assert services.order_cancel(order_id=order.pk, message="first") is True
    after_first = stores(sale)

    assert services.order_cancel(order_id=order.pk, message="second") is False

    assert stores(sale) == after_first == (2, 2)
    order.refresh_from_db()
    assert order.reason == "cancelled by the shop: first"
    assert check_sale(sale.pk).violations == []


def test_cancelling_an_order_the_gate_does_not_hold_is_fixed_on_rebuild(make_sale, buyers):
    sale = make_sale(stock=2)
    order = buy(sale.pk, buyers[0])
    gate.forget(sale.pk)  # Redis lost the sale (a restart)

    assert services.order_cancel(order_id=order.pk, message="late")

    assert stores(sale) == (2, None)  # nothing to give back in Redis: load() reads Postgres
    assert buy(sale.pk, buyers[0]).status == "confirmed"
    assert check_sale(sale.pk).violations == []


@pytest.mark.django_db(transaction=True)
def test_a_cancel_waits_for_the_order_task_and_undoes_what_it_did(make_sale, buyers):
    """The task holds the order's row lock: the cancel waits, then finds it confirmed and
    gives its item back once, in both stores."""
    sale = make_sale(stock=2)
    order = buy(sale.pk, buyers[0], place=False)
    results = []

    def cancel():
        try:
            results.append(services.order_cancel(order_id=order.pk, message="admin"))
        finally:
            connection.close()

    with transaction.atomic():
        services.order_place(token=str(order.token))  # locks the row, confirms, not committed
        canceller = threading.Thread(target=cancel)
        canceller.start()
        canceller.join(0.5)
        assert canceller.is_alive()  # waiting for the task's lock
    canceller.join(10)

    assert results == [True]
    order.refresh_from_db()
    assert order.status == "failed"
    assert stores(sale) == (2, 2)
    assert gate.reservations(sale_id=sale.pk) == {}
    assert check_sale(sale.pk).violations == []


STORM_BUYERS = 60
STOCK = 20


@pytest.mark.django_db(transaction=True)
def test_cancels_and_stock_raises_racing_a_storm_keep_the_invariants(make_sale):
    """Buyers reserve and place (the task's service called in their thread) while other
    threads cancel live orders and raise the stock; cancelled buyers try again."""
    sale = make_sale(stock=STOCK)
    buyer_ids = [User.objects.create_user(f"+1505555{n:04d}").pk for n in range(STORM_BUYERS)]
    start = threading.Barrier(8)
    buying = threading.Event()
    buying.set()
    counts = {"cancelled": 0, "raised": 0}
    lock = threading.Lock()
    errors = []

    def worker(job):
        start.wait()
        try:
            job()
        except Exception as exc:  # reported below, with the others
            errors.append(exc)
        finally:
            connection.close()

    def buyers_job(ids):
        for _attempt in range(3):
            for buyer_id in ids:
                with contextlib.suppress(services.BuyRefused):
                    buy(sale.pk, buyer_id)

    def canceller(seed):
        rng = random.Random(seed)
        while buying.is_set():
            live = list(
                Order.objects.filter(sale_id=sale.pk)
                .exclude(status=Order.Status.FAILED)
                .values_list("pk", flat=True)[:20]
            )
            if live and services.order_cancel(order_id=rng.choice(live), message="storm"):
                with lock:
                    counts["cancelled"] += 1
            time.sleep(0.005)

    def raiser():
        for _ in range(5):
            stock = Sale.objects.get(pk=sale.pk).stock
            services.sale_stock_change(sale_id=sale.pk, stock=stock + 2)
            with lock:
                counts["raised"] += 2

    groups = [buyer_ids[n::5] for n in range(5)]
    threads = [threading.Thread(target=worker, args=(lambda g=g: buyers_job(g),)) for g in groups]
    side = [
        threading.Thread(target=worker, args=(lambda: canceller(1),)),
        threading.Thread(target=worker, args=(lambda: canceller(2),)),
        threading.Thread(target=worker, args=(raiser,)),
    ]
    for t in threads + side:
        t.start()
    for t in threads:
        t.join(120)
    buying.clear()
    for t in side:
        t.join(120)
    assert errors == []

    report = check_sale(sale.pk, expect_drained=True)
    assert report.violations == [], (
        report,
        list(Order.objects.filter(sale_id=sale.pk).values_list("buyer_id", "status", "reason")),
    )
    assert report.stock == STOCK + counts["raised"] == STOCK + 10
    assert report.remaining == report.stock - report.confirmed_quantity
    assert report.redis_stock == report.remaining  # nothing pending once the storm is over
    assert counts["cancelled"] > 0
    assert report.orders["failed"] >= counts["cancelled"]
