"""The live view's figures (orders/live.py) against the real Redis and Postgres."""

import itertools
import logging
import os
import threading
import time

import pytest

from orders import gate, live
from orders.models import Order
from sales.models import Sale
from tools import devservers

# Sale ids of tally tests that need no sale row: the process's tally outlives a test, so each
# test counts under ids no other test uses.
_ids = itertools.count(9_000_000 + os.getpid() % 1000 * 1000)


def totals(sale_id: int, since: int) -> dict[str, float]:
    """Every field of the sale's seconds from ``since`` to now, added up."""
    now = int(time.time())
    out: dict[str, float] = {}
    for second in live.per_second(sale_id, last=now + 1, count=now + 2 - since):
        for field, value in second.items():
            out[field] = out.get(field, 0) + value
    return out


def stock_at(settings, url: str) -> dict:
    """CACHES with the gate's Redis (and so the live figures') at ``url``."""
    return {**settings.CACHES, "stock": {**settings.CACHES["stock"], "LOCATION": url}}


def until_whole(second: int) -> None:
    """Wait until ``second`` is one sale_live reads (every process has flushed it)."""
    while live.last_whole_second(time.time()) < second:
        time.sleep(0.05)


def test_a_flush_writes_what_every_thread_recorded():
    sales = [next(_ids), next(_ids)]
    since = int(time.time())
    per_thread = {"accepted": 30, "sold_out": 400, "already_bought": 7}

    def answer():
        for outcome, n in per_thread.items():
            for _ in range(n):
                live.record(sales[0], outcome)
                live.record(sales[1], "sold_out")

    threads = [threading.Thread(target=answer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    live.flush()  # the flush thread may have written part already: the sum is what counts

    assert totals(sales[0], since) == {o: 8 * n for o, n in per_thread.items()}
    assert totals(sales[1], since) == {"sold_out": 8 * sum(per_thread.values())}


def test_the_process_thread_flushes_every_second():
    sale_id, since = next(_ids), int(time.time())
    live.record(sale_id, "accepted")
    deadline = time.monotonic() + 3
    while not totals(sale_id, since) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert totals(sale_id, since) == {"accepted": 1}
    ttls = [gate.redis().ttl(live.key(sale_id, s)) for s in range(since, since + 3)]
    assert any(0 < ttl <= live.KEEP for ttl in ttls), ttls


def test_a_forked_child_counts_its_own_answers_only():
    """gunicorn forks its workers: a child starts its own thread and never writes the
    parent's counts (they are the parent's to write)."""
    sale_id, since = next(_ids), int(time.time())
    live.flush()
    for _ in range(3):
        live.record(sale_id, "parent")
    pid = os.fork()
    if pid == 0:  # the child: record, let its own thread write, report by the exit code
        code = 1
        try:
            for _ in range(5):
                live.record(sale_id, "child")
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if totals(sale_id, since).get("child") == 5:
                    code = 0
                    break
                time.sleep(0.05)
        finally:
            os._exit(code)
    assert os.waitpid(pid, 0)[1] == 0, "the child's thread did not write its counts"
    live.flush()
    assert totals(sale_id, since) == {"parent": 3, "child": 5}


def test_a_redis_outage_during_flushes_is_logged_once_and_never_raised(settings, caplog):
    redis = devservers.Redis().start()
    try:
        settings.CACHES = stock_at(settings, redis.url)
        sale_id, since = next(_ids), int(time.time())
        live.record(sale_id, "accepted")
        live.flush()
        assert totals(sale_id, since) == {"accepted": 1}
        caplog.set_level(logging.INFO, logger="qbuy.orders")
        caplog.clear()

        redis.halt()
        for _ in range(3):
            live.record(sale_id, "sold_out")
            live.flush()
            live.record_settled(sale_id, [0.2])
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 2, warnings  # one for the buy answers, one for the latencies
        assert "buy answers not written" in warnings[0]
        assert "settle latencies not written" in warnings[1]

        redis.start()
        live.record(sale_id, "ended")
        live.flush()
        live.record_settled(sale_id, [0.4])
        # This Redis keeps nothing across a restart; what was recorded during the outage was
        # dropped, not written late.
        fields = totals(sale_id, since)
        assert fields == {"ended": 1, "settle.n": 1, "settle.sum": 0.4, "settle.max": 0.4}
        infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
        assert any("buy answers written again" in m for m in infos), infos
    finally:
        redis.stop()


def test_settled_batches_add_up_per_second():
    sale_id, since = next(_ids), int(time.time())
    live.record_settled(sale_id, [0.1, 0.3, 0.2])
    live.record_settled(sale_id, [0.05])
    live.record_settled(sale_id, [])
    fields = totals(sale_id, since)
    assert fields["settle.n"] == 4
    assert fields["settle.sum"] == pytest.approx(0.65)
    assert fields["settle.max"] == pytest.approx(0.3)


def test_sale_live_has_the_figures_of_the_last_seconds(make_sale, buyer, django_user_model):
    sale = make_sale(stock=5)
    other = django_user_model.objects.create_user("+12015550002")
    # Rows as settling leaves them (the settle code records latencies of its own).
    Order.objects.create(sale=sale, buyer=buyer, status=Order.Status.CONFIRMED)
    Sale.objects.filter(pk=sale.pk).update(remaining=4)
    Order.objects.create(sale=sale, buyer=other)  # pending
    assert gate.load(sale)
    now = int(time.time())
    for outcome in ["accepted", "accepted", "sold_out"]:
        live.record(sale.pk, outcome)
    live.record_settled(sale.pk, [0.12, 0.3])
    live.flush()
    until_whole(now)

    figures = live.sale_live(sale.pk, seconds=10)

    assert figures["seconds"] == 10
    assert figures["state"] == "open"
    answers = figures["answers"]
    assert sorted(answers) == ["accepted", "sold_out"]
    assert all(len(values) == 10 for values in answers.values())
    assert (sum(answers["accepted"]), sum(answers["sold_out"])) == (2, 1)
    settle = figures["settle"]
    at = settle["orders"].index(2)
    assert (settle["mean_ms"][at], settle["max_ms"][at]) == (210.0, 300.0)
    assert settle["mean_ms"].count(None) == 9
    assert figures["orders"] == {"pending": 1, "confirmed": 1, "failed": 0}
    assert (figures["stock"], figures["stock_left"], figures["stock_left_from"]) == (5, 3, "redis")

    gate.forget(sale.pk)  # not loaded in Redis: Postgres' figure, less what is pending
    figures = live.sale_live(sale.pk)
    assert (figures["stock_left"], figures["stock_left_from"]) == (3, "postgres")
    assert len(figures["answers"]["accepted"]) == 60


def test_sale_live_without_redis_still_answers_from_postgres(settings, make_sale, buyer):
    sale = make_sale(stock=4)
    Order.objects.create(sale=sale, buyer=buyer)  # pending
    nothing_listens = devservers.Redis()
    try:
        settings.CACHES = stock_at(settings, nothing_listens.url)
        figures = live.sale_live(sale.pk)
    finally:
        nothing_listens.stop()
    assert (figures["answers"], figures["settle"]) == (None, None)
    assert (figures["stock_left"], figures["stock_left_from"]) == (3, "postgres")
    assert figures["orders"]["pending"] == 1
