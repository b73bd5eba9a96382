from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from sales.models import Product, Sale


def _update_violates(sale, **values):
    """True if the database refused ``UPDATE sales_sale SET <values>`` for ``sale``."""
    try:
        with transaction.atomic():
            Sale.objects.filter(pk=sale.pk).update(**values)
    except IntegrityError:
        return True
    return False


def test_remaining_cannot_go_below_zero(make_sale):
    sale = make_sale(stock=3)
    with pytest.raises(IntegrityError), transaction.atomic():
        Sale.objects.filter(pk=sale.pk).update(remaining=-1)
    sale.refresh_from_db()
    assert sale.remaining == 3


def test_decrement_past_zero_is_refused(make_sale):
    sale = make_sale(stock=1)
    Sale.objects.filter(pk=sale.pk).update(remaining=F("remaining") - 1)
    assert _update_violates(sale, remaining=F("remaining") - 1)
    sale.refresh_from_db()
    assert sale.remaining == 0


def test_remaining_cannot_exceed_stock(make_sale):
    sale = make_sale(stock=5)
    with pytest.raises(IntegrityError), transaction.atomic():
        Sale.objects.filter(pk=sale.pk).update(remaining=6)
    # Equal to the stock is fine.
    assert not _update_violates(sale, remaining=5)


def test_ends_at_must_be_after_starts_at(make_sale):
    sale = make_sale()
    with pytest.raises(IntegrityError), transaction.atomic():
        Sale.objects.filter(pk=sale.pk).update(ends_at=F("starts_at"))
    assert _update_violates(sale, ends_at=sale.starts_at - timedelta(seconds=1))
    assert not _update_violates(sale, ends_at=sale.starts_at + timedelta(seconds=1))


def test_per_buyer_limit_must_be_positive(make_sale):
    sale = make_sale()
    assert _update_violates(sale, per_buyer_limit=0)


def test_save_fills_remaining_from_stock(db):
    product = Product.objects.create(name="Lamp", price=Decimal("5.00"))
    now = timezone.now()
    sale = Sale(
        name="Lamp sale",
        product=product,
        stock=12,
        starts_at=now,
        ends_at=now + timedelta(hours=1),
    )
    assert sale.remaining is None
    sale.save()
    assert sale.remaining == 12
    sale.refresh_from_db()
    assert sale.remaining == 12


def test_save_keeps_an_explicit_remaining(db):
    product = Product.objects.create(name="Lamp", price=Decimal("5.00"))
    now = timezone.now()
    sale = Sale.objects.create(
        name="Lamp sale",
        product=product,
        stock=12,
        remaining=4,
        starts_at=now,
        ends_at=now + timedelta(hours=1),
    )
    sale.refresh_from_db()
    assert sale.remaining == 4


def test_state_upcoming(make_sale):
    sale = make_sale(starts_in=600)
    assert sale.state() == "upcoming"
    assert sale.state(now=sale.starts_at - timedelta(microseconds=1)) == "upcoming"


def test_state_open(make_sale):
    sale = make_sale(stock=2)
    assert sale.state() == "open"
    # The window is [starts_at, ends_at): the first instant is open already.
    assert sale.state(now=sale.starts_at) == "open"


def test_state_sold_out(make_sale):
    sale = make_sale(stock=2)
    Sale.objects.filter(pk=sale.pk).update(remaining=0)
    sale.refresh_from_db()
    assert sale.state() == "sold_out"
    assert make_sale(stock=0).state() == "sold_out"


def test_state_ended(make_sale):
    sale = make_sale(starts_in=-7200, duration=3600)
    assert sale.state() == "ended"
    # Ended wins over sold out, and the last instant already counts as ended.
    fresh = make_sale(stock=0)
    assert fresh.state(now=fresh.ends_at) == "ended"


def test_state_at_a_given_time_across_the_window(make_sale):
    sale = make_sale(starts_in=60, duration=60)
    assert [
        sale.state(now=sale.starts_at - timedelta(seconds=1)),
        sale.state(now=sale.starts_at + timedelta(seconds=30)),
        sale.state(now=sale.ends_at + timedelta(seconds=1)),
    ] == ["upcoming", "open", "ended"]
