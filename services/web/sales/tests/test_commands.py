import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from sales.models import Product, Sale


def _run(*args, **kwargs):
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err, **kwargs)
    return out.getvalue(), err.getvalue()


def test_create_sale_prints_json(db):
    out, _ = _run(
        "create_sale",
        "--name",
        "Bold Camera",
        "--stock",
        "25",
        "--starts-in",
        "0",
        "--duration",
        "600",
    )
    data = json.loads(out)
    sale = Sale.objects.get(pk=data["id"])
    assert sale.name == data["name"] == "Bold Camera"
    assert data["stock"] == data["remaining"] == 25
    assert sale.remaining == 25
    assert data["state"] == "open"
    assert (sale.ends_at - sale.starts_at).total_seconds() == 600


def test_create_sale_in_the_future(db):
    out, _ = _run(
        "create_sale",
        "--name",
        "Later",
        "--stock",
        "3",
        "--starts-in",
        "3600",
        "--duration",
        "60",
        "--per-buyer-limit",
        "2",
    )
    data = json.loads(out)
    assert data["state"] == "upcoming"
    assert data["per_buyer_limit"] == 2
    assert Sale.objects.get(pk=data["id"]).state() == "upcoming"


def test_create_sale_with_zero_stock_is_sold_out(db):
    data = json.loads(_run("create_sale", "--name", "Empty", "--stock", "0")[0])
    assert data["remaining"] == 0
    assert data["state"] == "sold_out"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--stock", "-1"], "stock"),
        (["--stock", "5", "--duration", "0"], "duration"),
        (["--stock", "5", "--duration", "-10"], "duration"),
        (["--stock", "5", "--per-buyer-limit", "0"], "per_buyer_limit"),
    ],
)
def test_create_sale_rejects_invalid_input(db, args, message):
    with pytest.raises(CommandError, match=message):
        _run("create_sale", "--name", "Bad", *args)
    assert not Sale.objects.exists()
    assert not Product.objects.exists()  # sale_create is atomic


def test_create_sale_requires_name_and_stock(db):
    with pytest.raises(CommandError):
        _run("create_sale", "--stock", "5")
    with pytest.raises(CommandError):
        _run("create_sale", "--name", "No stock")
    assert not Sale.objects.exists()


def test_seed_demo_creates_sales(db):
    out, _ = _run("seed_demo", "--sales", "7", verbosity=0)
    assert "Created 7 sales." in out
    assert Sale.objects.count() == 7
    assert Product.objects.count() == 7  # one product per sale, none made twice
    for sale in Sale.objects.all():
        assert sale.remaining == sale.stock
        assert sale.ends_at > sale.starts_at
        assert sale.name.endswith(" flash sale")


def test_seed_demo_is_repeatable(db):
    _run("seed_demo", "--sales", "4", "--seed", "3", verbosity=0)
    first = list(Sale.objects.order_by("pk").values_list("name", "stock"))
    Sale.objects.all().delete()
    _run("seed_demo", "--sales", "4", "--seed", "3", verbosity=0)
    assert list(Sale.objects.order_by("pk").values_list("name", "stock")) == first
