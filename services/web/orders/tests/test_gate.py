"""The Lua gate against the throwaway Redis: window, limit, sold out, release, rebuild."""

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import User
from orders import gate
from orders.models import Order


def reserve(sale, buyer_id, quantity=1, token=None):
    token = token or str(uuid.uuid4())
    return gate.reserve(sale_id=sale.pk, buyer_id=buyer_id, token=token, quantity=quantity)


def redis_stock(sale):
    return int(gate.redis().hget(gate.keys(sale.pk)[0], "stock"))


def test_missing_state_is_reported_until_loaded(make_sale):
    sale = make_sale(stock=3)
    assert reserve(sale, 1).outcome == "missing"
    assert gate.load(sale) is True
    assert reserve(sale, 1) == gate.Reservation("ok", 2)


def test_window_is_checked_with_redis_time(make_sale):
    upcoming = make_sale(stock=3, starts_in=60)
    ended = make_sale(stock=3, starts_in=-7200, duration=3600)
    gate.load(upcoming)
    gate.load(ended)
    assert reserve(upcoming, 1).outcome == "not_started"
    assert reserve(ended, 1).outcome == "ended"
    assert redis_stock(upcoming) == redis_stock(ended) == 3


def test_one_reservation_per_buyer_and_the_per_buyer_limit(make_sale):
    sale = make_sale(stock=10, per_buyer_limit=2)
    gate.load(sale)
    assert reserve(sale, 7, quantity=3).outcome == "over_limit"
    assert reserve(sale, 7, quantity=2).outcome == "ok"
    assert reserve(sale, 7, quantity=1).outcome == "already_bought"
    assert redis_stock(sale) == 8


@pytest.mark.parametrize("quantity", [0, -3, True, 1.0])
def test_a_quantity_that_is_no_positive_integer_never_reaches_the_script(make_sale, quantity):
    sale = make_sale(stock=5)
    gate.load(sale)
    with pytest.raises(ValueError, match="positive integer"):
        reserve(sale, 7, quantity=quantity)
    assert redis_stock(sale) == 5
    assert reserve(sale, 7).outcome == "ok"  # the buyer was not recorded


def test_sold_out_leaves_stock_at_zero(make_sale):
    sale = make_sale(stock=2)
    gate.load(sale)
    outcomes = [reserve(sale, buyer).outcome for buyer in range(1, 5)]
    assert outcomes == ["ok", "ok", "sold_out", "sold_out"]
    assert redis_stock(sale) == 0


def test_release_gives_stock_back_once(make_sale):
    sale = make_sale(stock=1)
    gate.load(sale)
    assert reserve(sale, 1, token="t-1").outcome == "ok"
    assert gate.release(sale_id=sale.pk, token="t-1", forget_buyer=True) == 1
    assert gate.release(sale_id=sale.pk, token="t-1", forget_buyer=True) == 0
    assert redis_stock(sale) == 1
    assert reserve(sale, 1).outcome == "ok"  # forgotten: the buyer may try again


def test_release_keeping_the_buyer_blocks_a_second_try(make_sale):
    sale = make_sale(stock=2)
    gate.load(sale)
    reserve(sale, 1, token="t-1")
    gate.release(sale_id=sale.pk, token="t-1", forget_buyer=False)
    assert redis_stock(sale) == 2
    assert reserve(sale, 1).outcome == "already_bought"


def test_rebuild_counts_pending_and_confirmed_orders_but_not_failed(make_sale):
    sale = make_sale(stock=10)
    users = [User.objects.create_user(f"+1201555{n:04d}") for n in range(3)]
    statuses = [Order.Status.PENDING, Order.Status.CONFIRMED, Order.Status.FAILED]
    for user, status in zip(users, statuses, strict=True):
        Order.objects.create(sale=sale, buyer=user, status=status)
    sale.remaining = 9  # the confirmed order took one in Postgres
    sale.save()

    assert gate.load(sale) is True

    assert redis_stock(sale) == 8  # 9 left minus the pending one
    pending, confirmed, failed = users
    assert reserve(sale, pending.pk).outcome == "already_bought"
    assert reserve(sale, confirmed.pk).outcome == "already_bought"
    assert reserve(sale, failed.pk).outcome == "ok"
    pending_token = str(Order.objects.get(buyer=pending).token)
    assert set(gate.reservations(sale_id=sale.pk)) >= {pending_token}


# Committed rows: load() reads the sale again, in the waiter's own connection.
@pytest.mark.django_db(transaction=True)
def test_load_waits_for_a_rebuild_in_progress(make_sale):
    sale = make_sale(stock=4)
    lock = gate.redis().lock(f"qbuy:{{s:{sale.pk}}}:rebuild", timeout=10)
    assert lock.acquire()
    done = []

    def load():
        try:
            done.append(gate.load(sale))
        finally:
            connection.close()

    waiter = threading.Thread(target=load)
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive() and not done  # blocked on the lock
    lock.release()
    waiter.join(10)
    assert done == [True]
    assert redis_stock(sale) == 4


def test_saving_the_sale_moves_the_gate_window(make_sale):
    sale = make_sale(stock=3)
    gate.load(sale)
    sale.ends_at = timezone.now() - timedelta(seconds=1)
    sale.starts_at = sale.ends_at - timedelta(hours=1)
    sale.save()  # post_save -> gate.sync_window
    assert reserve(sale, 1).outcome == "ended"
    assert redis_stock(sale) == 3


def test_concurrent_reservations_never_oversell(make_sale):
    sale = make_sale(stock=37)
    gate.load(sale)
    outcomes = []
    lock = threading.Lock()

    def buyer_thread(base):
        mine = [reserve(sale, base + n).outcome for n in range(10)]
        with lock:
            outcomes.extend(mine)

    threads = [threading.Thread(target=buyer_thread, args=(t * 100,)) for t in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("ok") == 37
    assert outcomes.count("sold_out") == 200 - 37
    assert redis_stock(sale) == 0
    assert len(gate.reservations(sale_id=sale.pk)) == 37
