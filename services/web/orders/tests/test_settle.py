"""Settling in batches (issue 20): orders_settle and the nudge that queues it, against real
Postgres and Redis; no worker runs (the task's messages are counted in the broker's list)."""

import threading
import time

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import User
from orders import gate, services
from orders.invariants import check_sale
from orders.models import Order
from sales.models import Sale


@pytest.fixture
def buyers(db):
    return [User.objects.create_user(f"+1205555{n:04d}") for n in range(60)]


@pytest.fixture
def queue():
    """The broker's default queue: its length is the number of task messages waiting."""
    broker = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    broker.delete("celery")
    yield lambda: broker.llen("celery")
    broker.delete("celery")
    broker.close()


def reserve(sale, buyers) -> list[Order]:
    return [services.order_reserve(sale_id=sale.pk, buyer_id=b.pk) for b in buyers]


def statuses(sale) -> dict[str, int]:
    rows = Order.objects.filter(sale=sale).values_list("status", flat=True)
    return {s: list(rows).count(s) for s in set(rows)}


def test_a_batch_confirms_every_pending_order_of_the_sale(make_sale, buyers):
    sale = make_sale(stock=50)
    orders = reserve(sale, buyers[:30])

    report = services.orders_settle(sale_id=sale.pk)

    assert (report.confirmed, report.failed, report.batches) == (30, 0, 1)
    assert statuses(sale) == {"confirmed": 30}
    sale.refresh_from_db()
    assert sale.remaining == 20
    assert gate.reservations(sale_id=sale.pk) == {}  # each reservation is an order now
    assert {str(o.token) for o in orders} == {
        str(t) for t in Order.objects.values_list("token", flat=True)
    }
    assert check_sale(sale.pk, expect_drained=True).violations == []


def test_a_batch_costs_the_same_queries_for_5_orders_as_for_50(
    make_sale, buyers, django_assert_max_num_queries
):
    counts = []
    for n in (5, 50):
        sale = make_sale(stock=n)
        reserve(sale, buyers[:n])
        with django_assert_max_num_queries(10) as captured:
            services.orders_settle(sale_id=sale.pk)
        counts.append(len(captured.captured_queries))
        assert statuses(sale) == {"confirmed": n}
    # One SELECT ... FOR UPDATE of the orders, one conditional UPDATE of the sale row, one
    # UPDATE of the orders, the sold-out check, the empty read that ends the loop (and the
    # savepoints of the test's own transaction): none of them per order.
    assert counts[0] == counts[1], counts


def test_batches_are_at_most_settle_batch_orders(make_sale, buyers, settings):
    settings.SETTLE_BATCH = 7
    sale = make_sale(stock=20)
    reserve(sale, buyers[:20])

    report = services.orders_settle(sale_id=sale.pk)

    assert (report.confirmed, report.batches) == (20, 3)
    sale.refresh_from_db()
    assert sale.remaining == 0


def test_postgres_has_the_last_word_when_it_cannot_cover_the_batch(make_sale, buyers):
    sale = make_sale(stock=10)
    orders = reserve(sale, buyers[:6])
    Sale.objects.filter(pk=sale.pk).update(remaining=4)  # Postgres disagrees with Redis

    report = services.orders_settle(sale_id=sale.pk)

    assert (report.confirmed, report.failed) == (4, 2)
    # The first accepted get the items; the others fail, their stock back in the gate.
    by_token = {str(t): s for t, s in Order.objects.values_list("token", "status")}
    assert [by_token[str(o.token)] for o in orders] == ["confirmed"] * 4 + ["failed"] * 2
    assert set(Order.objects.filter(status="failed").values_list("reason", flat=True)) == {
        "sold_out"
    }
    sale.refresh_from_db()
    assert sale.remaining == 0
    assert int(gate.redis().hget(gate.keys(sale.pk)[0], "stock")) == 10 - 6 + 2


def test_settling_again_changes_nothing(make_sale, buyers):
    sale = make_sale(stock=5)
    reserve(sale, buyers[:3])
    services.orders_settle(sale_id=sale.pk)

    again = services.orders_settle(sale_id=sale.pk)

    assert (again.confirmed, again.failed, again.batches) == (0, 0, 0)
    sale.refresh_from_db()
    assert sale.remaining == 2


def test_a_batch_that_dies_before_its_commit_leaves_everything_pending(
    make_sale, buyers, monkeypatch, transactional_db
):
    """The worker killed mid-batch: the transaction is rolled back, as Postgres does when the
    connection goes, and the next task settles the same orders."""
    sale = make_sale(stock=5)
    reserve(sale, buyers[:3])

    def die():
        raise SystemExit("killed after the sale's decrement, before the orders' UPDATE")

    monkeypatch.setattr(services.timezone, "now", die)
    with pytest.raises(SystemExit):
        services.orders_settle(sale_id=sale.pk)
    monkeypatch.undo()

    assert statuses(sale) == {"pending": 3}
    sale.refresh_from_db()
    assert sale.remaining == 5
    assert services.orders_settle(sale_id=sale.pk).confirmed == 3
    assert check_sale(sale.pk, expect_drained=True).violations == []


@pytest.mark.django_db(transaction=True)
def test_a_batch_skips_an_order_another_holds_and_a_later_one_settles_it(make_sale, buyers):
    sale = make_sale(stock=5)
    held = reserve(sale, buyers[:4])[0]
    locked, release = threading.Event(), threading.Event()

    def hold():  # a cancel (or another batch) holding one order's row lock
        try:
            with transaction.atomic():
                Order.objects.select_for_update().get(pk=held.pk)
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(10)
    started = time.monotonic()
    first = services.orders_settle(sale_id=sale.pk)
    assert time.monotonic() - started < 2  # did not wait for the lock
    release.set()
    holder.join()

    assert first.confirmed == 3
    assert Order.objects.get(pk=held.pk).status == "pending"
    assert services.orders_settle(sale_id=sale.pk).confirmed == 1
    assert statuses(sale) == {"confirmed": 4}


# --- the nudge: one task per sale per window ------------------------------------------------


def test_one_message_per_sale_per_window_whatever_the_orders(make_sale, queue, settings):
    settings.SETTLE_WINDOW_MS = 300
    sale, other = make_sale(stock=5), make_sale(stock=5)
    for _ in range(20):
        services.settle_nudge(sale.pk)
    services.settle_nudge(other.pk)
    assert queue() == 2
    time.sleep(0.35)
    services.settle_nudge(sale.pk)
    assert queue() == 3


def test_the_task_reads_the_orders_only_once_its_window_is_over(make_sale, settings):
    """Every order committed before a nudge that found the window open is read by that
    window's task: the task waits out the window (by Redis's clock) before reading."""
    settings.SETTLE_WINDOW_MS = 400
    sale = make_sale(stock=5)
    services.settle_nudge(sale.pk)
    started = time.monotonic()
    services.settle_window_wait(sale.pk)
    assert 0.2 < time.monotonic() - started < 1.0
    started = time.monotonic()
    services.settle_window_wait(sale.pk)  # no window open: no wait
    assert time.monotonic() - started < 0.1


@pytest.mark.django_db(transaction=True)
def test_a_broker_outage_leaves_the_order_to_the_reconciler_and_the_next_nudge(
    make_sale, buyers, monkeypatch, caplog
):
    from orders import tasks

    sale = make_sale(stock=5)

    def broker_down(*args, **kwargs):
        raise OSError("broker unreachable")

    monkeypatch.setattr(tasks.settle_sale, "delay", broker_down)
    order = services.order_reserve(sale_id=sale.pk, buyer_id=buyers[0].pk)
    assert Order.objects.get(pk=order.pk).status == "pending"  # committed: the 202 stands
    assert "settling not queued" in caplog.text
    # The window was given back: the next order's nudge queues the sale's task.
    assert gate.redis().pttl(services._settle_key(sale.pk)) == -2


def test_settled_orders_leave_the_sale_page_sold_out(make_sale, buyers, client):
    sale = make_sale(stock=2)
    assert client.get(f"/sales/{sale.pk}/")["X-Page-Cache"] == "MISS"
    reserve(sale, buyers[:2])

    services.orders_settle(sale_id=sale.pk)

    assert client.get(f"/sales/{sale.pk}/")["X-Page-Cache"] == "MISS"  # dropped
    assert timezone.now() < sale.ends_at
