"""/orders/, the buyer's orders page, and GET /api/orders/?sale= that the sale page asks."""

import re

import pytest
from django.test import Client

from accounts.models import User
from orders.models import Order

pytestmark = pytest.mark.django_db


@pytest.fixture
def other():
    return User.objects.create_user("+12025550777")


def order(sale, buyer, status=Order.Status.CONFIRMED, reason=""):
    return Order.objects.create(sale=sale, buyer=buyer, status=status, reason=reason)


def test_orders_page_needs_a_login(client):
    r = client.get("/orders/")

    assert r.status_code == 302
    assert r.url == "/login/?next=/orders/"


def test_orders_page_lists_the_buyers_orders_in_words(client, buyer, other, make_sale):
    kettle, lamp, mug = (make_sale(name=n) for n in ("Kettle", "Lamp", "Others' Mug"))
    order(kettle, buyer)
    order(lamp, buyer, Order.Status.FAILED, reason="sold_out")
    order(mug, other)
    client.force_login(buyer)

    r = client.get("/orders/")

    assert r.status_code == 200
    assert "no-cache" in r["Cache-Control"] and "private" in r["Cache-Control"]
    page = r.content.decode()
    assert f'<a href="/sales/{kettle.pk}/">Kettle</a>' in page
    assert "<td>Confirmed</td>" in page
    assert "<td>Failed: sold out</td>" in page
    assert "Others" not in page  # someone else's order is not there at all
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT[^"]+\+00:00" data-verb="">', page)
    assert page.index("Lamp") < page.index("Kettle")  # newest first


def test_orders_page_is_paginated_by_20(client, buyer, make_sale):
    for n in range(21):
        order(make_sale(name=f"Sale {n:02}"), buyer)
    client.force_login(buyer)

    first = client.get("/orders/").content.decode()
    second = client.get("/orders/?page=2").content.decode()

    assert first.count('<tr class="order ') == 20
    assert "page 1 of 2" in first and 'rel="next" href="?page=2"' in first
    assert second.count('<tr class="order ') == 1 and "Sale 00" in second
    assert 'rel="prev" href="/orders/"' in second
    for bad in ("3", "0", "x"):
        assert client.get(f"/orders/?page={bad}").status_code == 404


def test_orders_page_without_orders(client, buyer):
    client.force_login(buyer)

    page = client.get("/orders/").content.decode()

    assert "You have no orders yet." in page
    assert 'class="pagination"' not in page


def test_the_header_links_the_orders_page(client, make_sale):
    page = client.get("/sales/").content.decode()
    assert '<a id="orders-nav" href="/orders/">' in page


# --- GET /api/orders/?sale=: the sale page's "your order for this sale" ------------------------


def test_api_orders_of_one_sale(client, buyer, other, make_sale):
    kettle, lamp = make_sale(name="Kettle"), make_sale(name="Lamp")
    mine = order(kettle, buyer, Order.Status.PENDING)
    order(lamp, buyer)
    order(kettle, other)
    client.force_login(buyer)

    body = client.get(f"/api/orders/?sale={kettle.pk}").json()

    assert [o["order"] for o in body["results"]] == [str(mine.token)]
    assert body["results"][0]["status"] == "pending"
    assert body["page"]["count"] == 1
    assert client.get(f"/api/orders/?sale={lamp.pk + 1000}").json()["results"] == []
    assert client.get("/api/orders/").json()["page"]["count"] == 2  # no filter: all of mine


@pytest.mark.parametrize("sale", ["0", "-1", "x", "1.5"])
def test_api_orders_refuses_a_sale_that_is_no_id(client, buyer, sale):
    client.force_login(buyer)

    r = client.get(f"/api/orders/?sale={sale}")

    assert r.status_code == 400
    assert r.json() == {"error": "invalid_sale", "detail": "sale must be a positive integer"}


def test_api_orders_of_one_sale_needs_a_login(make_sale):
    sale = make_sale()
    r = Client().get(f"/api/orders/?sale={sale.pk}")
    assert r.status_code == 401
    assert r.json() == {"error": "not_authenticated"}
