"""The reconciler and the order task's clean-up under faults (issue 9, items 6 and 7): a backlog
is not amplified, a second beat is harmless, a reservation never outlives its settled order.
Real Postgres and Redis; messages are counted in the broker's `celery` list (no worker runs)."""

import threading
import time
from datetime import timedelta

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection
from django.db.models import F
from django.utils import timezone

from accounts.models import User
from orders import gate, services
from orders.models import Order
from sales.models import Sale


@pytest.fixture
def buyers(db):
    return [User.objects.create_user(f"+1202555{n:04d}") for n in range(5)]


@pytest.fixture
def queue():
    """The broker's default queue: its length is the number of task messages waiting."""
    broker = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    broker.delete("celery")
    yield lambda: broker.llen("celery")
    broker.delete("celery")
    broker.close()


def pending_orders(make_sale, buyers, n):
    sale = make_sale(stock=10)
    return sale, [services.order_reserve(sale_id=sale.pk, buyer_id=b.pk) for b in buyers[:n]]


def test_reconcile_settles_each_waiting_sale_once_per_requeue_delay(
    make_sale, buyers, settings, queue
):
    settings.ORDER_REQUEUE_AFTER, settings.ORDER_FAIL_AFTER = 2, 600
    _, orders = pending_orders(make_sale, buyers, 3)
    other = make_sale(stock=10)
    orders += [services.order_reserve(sale_id=other.pk, buyer_id=b.pk) for b in buyers[3:]]
    later = timezone.now() + timedelta(seconds=60)

    # No worker runs: ten beat ticks in a row queue each sale's settling once, not ten times,
    # and one message settles all of a sale's orders.
    reports = [services.orders_reconcile(now=later) for _ in range(10)]
    assert [r.requeued for r in reports] == [5] + [0] * 9
    assert queue() == 2

    # Once the delay has passed, each sale still waiting is queued once more.
    deadline = timezone.now() + timedelta(seconds=10)
    while services.orders_reconcile(now=later).requeued == 0:
        assert timezone.now() < deadline
    assert queue() == 4
    assert Order.objects.filter(status=Order.Status.PENDING).count() == len(orders)


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_reconciles_queue_the_sale_once(make_sale, settings, queue):
    """Two beats (or a beat and a manual run) at the same second: one message for the sale."""
    settings.ORDER_REQUEUE_AFTER, settings.ORDER_FAIL_AFTER = 30, 600
    buyers = [User.objects.create_user(f"+1203555{n:04d}") for n in range(5)]
    pending_orders(make_sale, buyers, 5)
    queue_before = queue()  # the orders' own nudges, after their COMMITs
    later = timezone.now() + timedelta(seconds=60)
    start = threading.Barrier(2)
    reports = []

    def beat():
        start.wait()
        try:
            reports.append(services.orders_reconcile(now=later))
        finally:
            connection.close()

    threads = [threading.Thread(target=beat) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(r.requeued for r in reports) == 5
    assert queue() - queue_before == 1


def test_reconcile_skips_while_another_run_holds_the_lock(make_sale, buyers, settings, queue):
    settings.ORDER_REQUEUE_AFTER = 30
    pending_orders(make_sale, buyers, 2)
    later = timezone.now() + timedelta(seconds=60)
    held = gate.redis().lock(services.RECONCILE_LOCK, timeout=30)
    assert held.acquire(blocking=False)
    try:
        report = services.orders_reconcile(now=later)
    finally:
        held.release()
    assert (report.skipped, report.requeued, queue()) == (True, 0, 0)
    assert services.orders_reconcile(now=later).requeued == 2


def test_a_lock_left_by_a_dead_run_blocks_reconciling_for_two_intervals_at_most(
    make_sale, buyers, settings, queue
):
    """A run that could not release its lock (Redis went away mid-run; with AOF the lock
    survives the restart) must not stall the backstop for long: seen as a 55 s wait for the
    last pending orders after a Redis restart, with a 60 s lock."""
    settings.ORDER_REQUEUE_AFTER, settings.RECONCILE_INTERVAL = 30, 1
    pending_orders(make_sale, buyers, 2)
    later = timezone.now() + timedelta(seconds=60)
    dead = gate.redis().lock(services.RECONCILE_LOCK, timeout=services._reconcile_lock_timeout())
    assert dead.acquire(blocking=False)  # and never released
    assert services.orders_reconcile(now=later).skipped
    time.sleep(2.1)  # two beat intervals
    assert services.orders_reconcile(now=later).requeued == 2


def die_after_commit(order: Order) -> Order:
    """What order_place commits for an order that gets its item, without the Redis clean-up
    after the COMMIT: the worker was killed in between."""
    Sale.objects.filter(pk=order.sale_id).update(remaining=F("remaining") - order.quantity)
    Order.objects.filter(pk=order.pk).update(status=Order.Status.CONFIRMED)
    return order


def test_rerun_of_a_confirmed_order_drops_its_leaked_reservation(make_sale, buyers):
    sale, (order,) = pending_orders(make_sale, buyers, 1)
    die_after_commit(order)
    assert str(order.token) in gate.reservations(sale_id=sale.pk)  # leaked

    # The task is delivered again (acks_late): it finds the order settled and cleans up.
    assert services.order_place(token=str(order.token)).status == Order.Status.CONFIRMED
    assert gate.reservations(sale_id=sale.pk) == {}
    sale.refresh_from_db()
    assert sale.remaining == 9  # not decremented twice
    assert int(gate.redis().hget(gate.keys(sale.pk)[0], "stock")) == 9


def test_rerun_of_a_failed_order_gives_its_leaked_reservation_back(make_sale, buyers):
    sale, (order,) = pending_orders(make_sale, buyers, 1)
    Order.objects.filter(pk=order.pk).update(status=Order.Status.FAILED, reason="sold_out")

    assert services.order_place(token=str(order.token)).status == Order.Status.FAILED
    assert gate.reservations(sale_id=sale.pk) == {}
    assert int(gate.redis().hget(gate.keys(sale.pk)[0], "stock")) == 10  # given back


def test_reconcile_drops_reservations_of_settled_orders(make_sale, buyers, settings, queue):
    settings.ORDER_REQUEUE_AFTER = 30
    sale, (confirmed, failed, pending) = pending_orders(make_sale, buyers, 3)
    die_after_commit(confirmed)
    Order.objects.filter(pk=failed.pk).update(status=Order.Status.FAILED, reason="sold_out")

    report = services.orders_reconcile(now=timezone.now() + timedelta(seconds=60))

    assert set(gate.reservations(sale_id=sale.pk)) == {str(pending.token)}
    assert report.released == 1  # the failed order's item, back in stock
    assert int(gate.redis().hget(gate.keys(sale.pk)[0], "stock")) == 8  # 10 - confirmed - pending
