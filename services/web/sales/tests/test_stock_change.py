"""sale_stock_change against real Postgres and Redis: both stores move together, a lowering
below what is sold or reserved changes nothing, a failed COMMIT leaves Redis as it was."""

import contextlib

import pytest
from django.db import DatabaseError, connection

from accounts.models import User
from orders import gate, services
from orders.invariants import check_sale


@pytest.fixture
def buyer_ids(db):
    return [User.objects.create_user(f"+1606555{n:04d}").pk for n in range(12)]


def buy(sale_id: int, buyer_id: int) -> str:
    """The buy path's outcome: the order's status, or the refusal."""
    try:
        order = services.order_reserve(sale_id=sale_id, buyer_id=buyer_id)
    except services.BuyRefused as refused:
        return refused.outcome
    return services.order_place(token=str(order.token)).status


def stores(sale) -> tuple[int, int, int | None]:
    """(stock, remaining) in Postgres and the stock left to reserve in Redis."""
    sale.refresh_from_db()
    left = gate.redis().hget(gate.keys(sale.pk)[0], "stock")
    return sale.stock, sale.remaining, None if left is None else int(left)


def test_raising_a_sold_out_sale_sells_exactly_the_new_items(make_sale, buyer_ids):
    sale = make_sale(stock=3)
    assert [buy(sale.pk, b) for b in buyer_ids[:4]] == ["confirmed"] * 3 + ["sold_out"]

    services.sale_stock_change(sale_id=sale.pk, stock=7)

    assert stores(sale) == (7, 4, 4)
    outcomes = [buy(sale.pk, b) for b in buyer_ids[4:]]
    assert outcomes == ["confirmed"] * 4 + ["sold_out"] * 4
    assert check_sale(sale.pk).violations == []


def test_lowering_moves_both_stores(make_sale, buyer_ids):
    sale = make_sale(stock=10)
    buy(sale.pk, buyer_ids[0])
    services.sale_stock_change(sale_id=sale.pk, stock=4)
    assert stores(sale) == (4, 3, 3)
    assert [buy(sale.pk, b) for b in buyer_ids[1:5]] == ["confirmed"] * 3 + ["sold_out"]


def _pending(sale, buyer_id):
    services.order_reserve(sale_id=sale.pk, buyer_id=buyer_id)


def _in_flight(sale, buyer_id):
    # Between the gate and the order INSERT: only Redis knows this reservation.
    gate.reserve(sale_id=sale.pk, buyer_id=buyer_id, token="in-flight")


@pytest.mark.parametrize("reserve", [_pending, _in_flight], ids=["pending", "in-flight"])
def test_lowering_below_sold_and_reserved_changes_nothing(make_sale, buyer_ids, reserve):
    sale = make_sale(stock=5)
    buy(sale.pk, buyer_ids[0])
    buy(sale.pk, buyer_ids[1])
    reserve(sale, buyer_ids[2])
    before = stores(sale)

    with pytest.raises(services.StockChangeRefused, match="cannot go below 3"):
        services.sale_stock_change(sale_id=sale.pk, stock=2)

    assert stores(sale) == before
    services.sale_stock_change(sale_id=sale.pk, stock=3)  # sold + reserved is the floor
    assert stores(sale) == (3, 1, 0)


def test_a_sale_the_gate_has_not_loaded_is_loaded_with_the_new_stock(make_sale, buyer_ids):
    sale = make_sale(stock=2)
    services.sale_stock_change(sale_id=sale.pk, stock=5)
    assert stores(sale) == (5, 5, None)
    assert [buy(sale.pk, b) for b in buyer_ids[:6]] == ["confirmed"] * 5 + ["sold_out"]


@contextlib.contextmanager
def commit_fails():
    """Every COMMIT that updated a sale fails (a deferred constraint trigger raises)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION qbuy_test_refuse() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'refused at COMMIT'; END $$"
        )
        cursor.execute(
            "CREATE CONSTRAINT TRIGGER qbuy_test_refuse AFTER UPDATE ON sales_sale"
            " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION qbuy_test_refuse()"
        )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER qbuy_test_refuse ON sales_sale")
            cursor.execute("DROP FUNCTION qbuy_test_refuse()")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("stock", [2, 9])
def test_a_failed_commit_leaves_redis_as_it_was(make_sale, buyer_ids, stock):
    sale = make_sale(stock=5)
    buy(sale.pk, buyer_ids[0])
    before = stores(sale)

    with commit_fails(), pytest.raises(DatabaseError, match="refused at COMMIT"):
        services.sale_stock_change(sale_id=sale.pk, stock=stock)

    assert stores(sale) == before == (5, 4, 4)
    assert check_sale(sale.pk).violations == []
