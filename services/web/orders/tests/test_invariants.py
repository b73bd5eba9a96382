"""The invariant checker must be able to fail: each broken state, built behind the gate's back,
yields its own violation; a clean one yields none."""

import io
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import F

from accounts.models import User
from orders import gate, invariants, services
from orders.invariants import check_sale
from orders.models import Order
from sales.models import Sale
from tools.stack import base_env

WEB = Path(__file__).resolve().parents[2]  # services/web


@pytest.fixture
def buyers(db):
    return [User.objects.create_user(f"+1202555{n:04d}") for n in range(5)]


def buy(sale, buyer, *, place=True) -> str:
    """Through the real buy path: gate, pending order, and (place) the order task's service."""
    order = services.order_reserve(sale_id=sale.pk, buyer_id=buyer.pk)
    if place:
        services.order_place(token=str(order.token))
    return str(order.token)


def violations(report) -> list[str]:
    return [v.split(":")[0] for v in report.violations]


def test_a_clean_sale_has_no_violations(make_sale, buyers):
    sale = make_sale(stock=3)
    accepted = [buy(sale, b) for b in buyers[:2]]

    report = check_sale(sale.pk, accepted)

    assert report.violations == []
    assert report.ok
    assert (report.stock, report.remaining, report.redis_stock) == (3, 1, 1)
    assert report.orders == {"confirmed": 2}
    assert report.duplicate_buyers == 0
    assert json.loads(json.dumps(report.as_dict()))["ok"] is True


def test_a_failed_order_that_gave_its_stock_back_is_clean(make_sale, buyers):
    sale = make_sale(stock=1)
    accepted = [buy(sale, buyers[0], place=False)]
    # Reconciliation: pending too long, failed with a reason, the reservation released.
    assert services.order_fail(order=Order.objects.get(token=accepted[0]), reason="timeout")

    report = check_sale(sale.pk, accepted)

    assert report.violations == []
    assert report.orders == {"failed": 1}
    assert (report.remaining, report.redis_stock) == (1, 1)


def test_a_failed_order_without_a_reason(make_sale, buyers):
    sale = make_sale(stock=1)
    Order.objects.create(sale=sale, buyer=buyers[0], status=Order.Status.FAILED)
    assert check_sale(sale.pk).violations == ["1 failed orders have no reason"]


def test_no_redis_state_is_not_a_violation(make_sale, buyers):
    sale = make_sale(stock=2)
    report = check_sale(sale.pk, [])
    assert report.redis_stock is None
    assert report.violations == []


def test_oversell_behind_the_gate(make_sale, buyers):
    sale = make_sale(stock=1)
    accepted = [buy(sale, buyers[0])]
    # A second confirmed order the gate never saw (and no stock was taken for it).
    extra = Order.objects.create(sale=sale, buyer=buyers[1], status=Order.Status.CONFIRMED)

    report = check_sale(sale.pk, [*accepted, str(extra.token)])

    assert violations(report) == ["oversold", "stock does not add up"]
    assert report.violations[0] == "oversold: 2 items confirmed for a stock of 1"


def test_remaining_that_does_not_add_up(make_sale, buyers):
    sale = make_sale(stock=3)
    accepted = [buy(sale, buyers[0])]
    Sale.objects.filter(pk=sale.pk).update(remaining=F("remaining") - 1)  # sold to nobody

    report = check_sale(sale.pk, accepted)

    assert violations(report) == ["stock does not add up", "Redis stock 2 disagrees with Postgres"]
    assert "1 confirmed + 1 remaining != stock 3" in report.violations[0]


def test_a_buyer_with_two_orders(make_sale, buyers):
    # Postgres refuses this: drop the constraint (a partial unique index) for this test's
    # transaction only (before any write to the table: DROP INDEX waits for no deferred
    # foreign-key check).
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX order_one_per_buyer_per_sale")
    sale = make_sale(stock=3)
    accepted = [buy(sale, buyers[0])]
    # A second confirmed order, its item taken: only the buyer is wrong (Redis forgot the sale).
    again = Order.objects.create(sale=sale, buyer=buyers[0], status=Order.Status.CONFIRMED)
    Sale.objects.filter(pk=sale.pk).update(remaining=F("remaining") - 1)
    gate.forget(sale.pk)
    # A failed order of the same buyer is no second order: it gave its item back.
    failed = Order.objects.create(
        sale=sale, buyer=buyers[0], status=Order.Status.FAILED, reason="timeout"
    )

    report = check_sale(sale.pk, [*accepted, str(again.token), str(failed.token)])

    assert report.duplicate_buyers == 1
    assert report.violations == [
        f"1 buyers have more than one live order, e.g. buyer {buyers[0].pk}",
        f"1 buyers hold more than the per-buyer limit of 1, e.g. buyer {buyers[0].pk}",
    ]


def test_more_than_the_per_buyer_limit(make_sale, buyers):
    sale = make_sale(stock=5, per_buyer_limit=1)
    Order.objects.create(sale=sale, buyer=buyers[0], quantity=2, status=Order.Status.CONFIRMED)
    Sale.objects.filter(pk=sale.pk).update(remaining=3)

    report = check_sale(sale.pk)

    assert violations(report) == [
        f"1 buyers hold more than the per-buyer limit of 1, e.g. buyer {buyers[0].pk}"
    ]


def test_pending_orders_when_drained_is_expected(make_sale, buyers):
    sale = make_sale(stock=3)
    accepted = [buy(sale, buyers[0]), buy(sale, buyers[1], place=False)]

    assert violations(check_sale(sale.pk, accepted)) == ["1 orders still pending"]
    # In flight is fine when asked so; Redis counts the pending order as taken.
    report = check_sale(sale.pk, accepted, expect_drained=False)
    assert report.violations == []
    assert (report.remaining, report.pending_quantity, report.redis_stock) == (2, 1, 1)


def test_an_order_not_answered_202_and_a_202_with_no_order(make_sale, buyers):
    sale = make_sale(stock=3)
    first, second = buy(sale, buyers[0]), buy(sale, buyers[1])
    ghost = str(uuid.uuid4())

    phantom = check_sale(sale.pk, [first])
    assert phantom.violations == [f"1 orders were never answered 202, e.g. {second}"]
    assert phantom.unanswered == 1
    report = check_sale(sale.pk, [first, second, ghost])
    assert report.violations == [f"1 tokens answered 202 have no order, e.g. {ghost}"]
    assert report.unanswered == 0
    # Without the list of 202s, neither is checked.
    assert check_sale(sale.pk).violations == []


@pytest.mark.parametrize("off_by", [-1, 1])
def test_redis_stock_off_by_one(make_sale, buyers, off_by):
    sale = make_sale(stock=3)
    accepted = [buy(sale, buyers[0]), buy(sale, buyers[1], place=False)]
    gate.redis().hincrby(gate.keys(sale.pk)[0], "stock", off_by)

    report = check_sale(sale.pk, accepted, expect_drained=False)

    assert report.violations == [
        f"Redis stock {1 + off_by} disagrees with Postgres: 2 remaining - 1 pending = 1"
    ]


def test_a_reservation_without_an_order_holds_its_stock(make_sale, buyers):
    """The web process died between the gate and the INSERT: no 202 was sent, the Redis stock
    is held until the reconciler releases it. Not a violation; the report counts it."""
    sale = make_sale(stock=3)
    accepted = [buy(sale, buyers[0])]
    reserved = gate.reserve(sale_id=sale.pk, buyer_id=buyers[1].pk, token=str(uuid.uuid4()))
    assert reserved.outcome == "ok"

    report = check_sale(sale.pk, accepted)

    assert report.violations == []
    assert (report.redis_stock, report.orphan_reservations) == (1, 1)
    gate.redis().hincrby(gate.keys(sale.pk)[0], "stock", -1)
    assert check_sale(sale.pk, accepted).violations == [
        "Redis stock 0 disagrees with Postgres: 2 remaining - 0 pending"
        " - 1 held by reservations without an order = 1"
    ]


def test_wait_drained(make_sale, buyers):
    sale = make_sale(stock=3)
    token = buy(sale, buyers[0], place=False)
    with pytest.raises(TimeoutError, match="1 orders still pending"):
        invariants.wait_drained(sale.pk, timeout=0.3, interval=0.05)
    services.order_place(token=token)
    assert invariants.wait_drained(sale.pk, timeout=0.3) < 0.3


def run_command(*args, stdin=""):
    out = io.StringIO()
    sys_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        call_command("check_invariants", *args, stdout=out)
    finally:
        sys.stdin = sys_stdin
    return json.loads(out.getvalue())


def test_command_prints_the_report(make_sale, buyers, tmp_path):
    sale = make_sale(stock=3)
    accepted = [buy(sale, b) for b in buyers[:2]]

    report = run_command("--sale", str(sale.pk), "--accepted", "-", stdin=json.dumps(accepted))
    assert report["ok"] is True
    assert report["violations"] == []
    assert report["orders"] == {"confirmed": 2}
    assert (report["sale"], report["remaining"], report["redis_stock"]) == (sale.pk, 1, 1)

    path = tmp_path / "accepted.json"
    path.write_text(json.dumps(accepted[:1]))
    out = io.StringIO()
    with pytest.raises(CommandError) as failed:
        call_command("check_invariants", "--sale", str(sale.pk), "--accepted", path, stdout=out)
    assert failed.value.returncode == 1
    report = json.loads(out.getvalue())  # the JSON is printed all the same
    assert report["ok"] is False
    assert report["violations"][0].startswith("1 orders were never answered 202")


def test_command_no_drain(make_sale, buyers):
    sale = make_sale(stock=3)
    buy(sale, buyers[0], place=False)
    with pytest.raises(CommandError):
        run_command("--sale", str(sale.pk))
    assert run_command("--sale", str(sale.pk), "--no-drain")["orders"] == {"pending": 1}


def test_command_refuses_bad_input(make_sale):
    sale = make_sale(stock=1)
    with pytest.raises(CommandError, match="not JSON"):
        run_command("--sale", str(sale.pk), "--accepted", "-", stdin="nope")
    with pytest.raises(CommandError, match="no sale"):
        run_command("--sale", str(sale.pk + 1000))


@pytest.mark.django_db(transaction=True)
def test_command_exit_status(make_sale, buyers, server_urls):
    """As the container suite runs it: `manage.py check_invariants`, JSON on stdout, exit 1 on a
    violation."""
    sale = make_sale(stock=2)
    token = buy(sale, buyers[0])
    env = base_env(DJANGO_SETTINGS_MODULE="config.settings.test", **server_urls)

    command = ["manage.py", "check_invariants", "--sale", str(sale.pk), "--accepted", "-"]

    def run(accepted):
        return subprocess.run(
            [sys.executable, *command],
            input=json.dumps(accepted),
            cwd=WEB,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    done = run([token])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ok"] is True
    done = run([])
    assert done.returncode == 1
    assert json.loads(done.stdout)["violations"][0].startswith("1 orders were never answered")
    assert "never answered 202" in done.stderr
