import re
from decimal import Decimal

import pytest
from django.core.cache import caches
from django.test import Client, RequestFactory
from django.utils.cache import get_cache_key

from orders.models import Order
from sales.models import Sale


@pytest.fixture
def five_sales(settings, make_sale):
    """Five sales, two per page: Sale 0 is live, the others open 10, 20, 30, 40 s later."""
    settings.SALES_PER_PAGE = 2
    return [make_sale(name=f"Sale {n}", starts_in=n * 10) for n in range(5)]


def _page(client, query=""):
    response = client.get(f"/sales/{query}")
    assert response.status_code == 200
    return response.content.decode()


def test_list_first_page(client, five_sales):
    html = _page(client)
    assert 'data-page="1"' in html
    assert "page 1 of 3" in html
    assert 'rel="next" href="?page=2"' in html
    assert 'rel="prev"' not in html
    assert "Sale 0" in html and "Sale 1" in html
    assert "Sale 2" not in html
    assert f'href="/sales/{five_sales[0].pk}/"' in html


def test_list_middle_page(client, five_sales):
    html = _page(client, "?page=2")
    assert 'data-page="2"' in html
    assert "page 2 of 3" in html
    assert 'rel="prev" href="/sales/"' in html  # page 1's one URL, not ?page=1 (a 301)
    assert 'rel="next" href="?page=3"' in html
    assert "Sale 2" in html and "Sale 3" in html
    assert "Sale 1" not in html and "Sale 4" not in html


def test_list_last_page(client, five_sales):
    html = _page(client, "?page=3")
    assert 'data-page="3"' in html
    assert "page 3 of 3" in html
    assert 'rel="prev" href="?page=2"' in html
    assert 'rel="next"' not in html
    assert "Sale 4" in html and "Sale 3" not in html


def test_list_shows_stock_and_state(client, make_sale):
    make_sale(name="Soon", stock=7, starts_in=600)
    html = _page(client)
    assert "7 of 7 left" in html
    assert '<span class="badge badge-upcoming">Opens soon</span>' in html
    assert ">upcoming<" not in html


def test_empty_list(client, db):
    html = _page(client)
    assert "No sales yet." in html
    assert "page 1 of 1" in html


@pytest.mark.parametrize("query", ["?page=abc", "?page=99", "?page=0", "?page=-1", "?page="])
def test_list_bad_page_is_404(client, five_sales, query):
    assert client.get(f"/sales/{query}").status_code == 404


def test_list_is_cached_until_cleared(client, make_sale):
    make_sale(name="First")
    assert "First" in _page(client)
    make_sale(name="Second")
    assert "Second" not in _page(client)  # served from the "list" cache
    caches["list"].clear()
    assert "Second" in _page(client)


def test_list_rejects_post(client, db):
    response = client.post("/sales/")
    assert response.status_code == 405
    assert set(response["Allow"].replace(" ", "").split(",")) == {"GET", "HEAD"}


def test_detail(client, make_sale):
    sale = make_sale(name="Copper Kettle", stock=4)
    response = client.get(f"/sales/{sale.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<h1 id="sale-name">Copper Kettle</h1>' in html
    assert (
        f'<section id="sale" data-sale="{sale.pk}" data-starts="{sale.starts_at.isoformat()}"'
        f' data-ends="{sale.ends_at.isoformat()}"'
    ) in html
    assert 'id="sale-status" class="badge badge-open" data-state="open">On sale now<' in html
    assert '<dd id="remaining">4 of 4 left</dd>' in html
    assert "at most 1 per buyer" in html


def test_detail_of_an_ended_sale_is_gone_in_the_sites_style(client, make_sale):
    sale = make_sale(name="Old Kettle", starts_in=-7200, duration=3600)
    response = client.get(f"/sales/{sale.pk}/")
    assert response.status_code == 410
    html = response.content.decode()
    assert "Old Kettle" in html
    assert "ended" in html
    assert '<link rel="stylesheet" href="/static/qbuy/site.css' in html
    assert '<span class="badge badge-ended">Ended</span>' in html
    assert "This sale has ended." in html
    assert 'id="login-nav"' in html


def test_detail_of_a_missing_sale_is_404(client, db):
    assert not Sale.objects.filter(pk=999999).exists()
    assert client.get("/sales/999999/").status_code == 404


def test_detail_rejects_post(client, make_sale):
    sale = make_sale()
    assert client.post(f"/sales/{sale.pk}/").status_code == 405


# --- the list's cache: one entry per real page, never one visitor's -------------------------


@pytest.mark.parametrize(
    ("query", "location"),
    [
        ("?utm_source=x", "/sales/"),
        ("?page=1", "/sales/"),
        ("?page=01", "/sales/"),
        ("?page=2&utm_source=x", "/sales/?page=2"),
        ("?utm_source=x&page=2", "/sales/?page=2"),
        ("?page=002", "/sales/?page=2"),
        ("?page=3&page=2", "/sales/?page=2"),
        ("?page=+3", "/sales/?page=3"),
    ],
)
def test_list_under_another_spelling_is_redirected_to_its_one_url(
    client, five_sales, query, location
):
    response = client.get(f"/sales/{query}")
    assert response.status_code == 301
    assert response["Location"] == location


def test_list_keys_are_bounded_by_the_real_pages(client, five_sales):
    stored = caches["list"]
    for n in range(200):
        client.get(f"/sales/?bench={n}", follow=True)
        client.get(f"/sales/?page={n % 5}")
    assert client.get("/sales/?page=3").status_code == 200
    # page=1 is /sales/, pages 2 and 3 their own; 0, 4 and up are 404s, never stored.
    pages = [k for k in stored._cache if "cache_page.page.GET." in k]  # locmem's own dict
    assert len(pages) == 3
    for url in ("/sales/", "/sales/?page=2", "/sales/?page=3"):
        request = RequestFactory().get(url)
        assert get_cache_key(request, key_prefix="page", method="GET", cache=stored) is not None


def test_list_rendered_for_a_logged_in_buyer_does_not_touch_the_session(client, buyer, five_sales):
    """The list is stored once for everyone (@cache_page): its template must not read the user,
    the session or a CSRF token, or one visitor's page would be served to all."""
    client.force_login(buyer)
    mine = client.get("/sales/")
    assert not mine.wsgi_request.session.accessed
    assert not mine.wsgi_request.META.get("CSRF_COOKIE_NEEDS_UPDATE")
    caches["list"].clear()
    assert client.get("/sales/?page=2").status_code == 200
    assert Client().get("/sales/?page=2").content == client.get("/sales/?page=2").content


def test_list_hit_is_served_to_another_visitor(client, buyer, make_sale):
    make_sale(name="First")
    client.force_login(buyer)
    assert "First" in _page(client)
    make_sale(name="Second")
    assert "Second" not in Client().get("/sales/").content.decode()


# --- what a buyer reads: order, states, prices and times in words -------------------------------


def test_list_shows_live_sales_first_then_upcoming_then_ended(client, settings, make_sale):
    settings.SALES_PER_PAGE = 2
    make_sale(name="Ended long ago", starts_in=-7200, duration=3600)
    make_sale(name="Ended just now", starts_in=-3601, duration=3600)
    make_sale(name="Opens later", starts_in=7200)
    make_sale(name="Opens soon", starts_in=120)
    make_sale(name="Sold out live", stock=0, starts_in=-60)
    make_sale(name="Open live", starts_in=-600, duration=3000)

    names = []
    for query in ("", "?page=2", "?page=3"):
        html = _page(client, query)
        names += re.findall(r'<h2 class="sale-name"><a href="/sales/\d+/">([^<]+)</a>', html)

    assert names == [
        "Open live",  # ends first
        "Sold out live",
        "Opens soon",
        "Opens later",
        "Ended just now",
        "Ended long ago",
    ]


def test_list_shows_status_price_and_time_in_words(client, make_sale):
    soon = make_sale(name="Soon", stock=7, starts_in=600, price=Decimal("12.50"))
    make_sale(name="Live", stock=3, starts_in=-60)
    make_sale(name="Gone", stock=0, starts_in=-60)
    html = _page(client)

    assert '<span class="badge badge-open">On sale now</span>' in html
    assert '<span class="badge badge-sold_out">Sold out</span>' in html
    assert '<span class="badge badge-upcoming">Opens soon</span>' in html
    assert "$12.50" in html and "$9.99" in html
    assert "7 of 7 left" in html and "0 of 0 left" in html
    start = soon.starts_at
    assert (
        f'<time datetime="{start.isoformat()}" data-verb="opens">opens {start:%H:%M} UTC</time>'
        in html
        or f'data-verb="opens">opens {start:%b} {start.day}, {start:%H:%M} UTC</time>' in html
    )
    assert 'data-verb="ends">ends ' in html
    # No machine format as text: ISO times only inside attributes, no bare state tokens.
    text = re.sub(r"<[^>]+>", " ", html)
    assert not re.search(r"\d{4}-\d\d-\d\dT", text)
    assert not re.search(r"\b(open|sold_out|upcoming)\b", text)


def test_prices_follow_the_currency_setting(client, settings, make_sale):
    sale = make_sale(name="Swiss Kettle", price=Decimal("1234.5"))
    settings.CURRENCY = "CHF"
    assert "1,234.50 CHF" in _page(client)
    assert "1,234.50 CHF" in client.get(f"/sales/{sale.pk}/").content.decode()
    caches["list"].clear()
    settings.CURRENCY = "EUR"
    assert "€1,234.50" in _page(client)


def test_detail_shows_an_upcoming_sale_with_its_start(client, make_sale):
    sale = make_sale(name="Later Lamp", starts_in=600)
    html = client.get(f"/sales/{sale.pk}/").content.decode()
    assert 'data-state="upcoming">Opens soon<' in html
    assert (
        '<button id="buy-button" type="button" class="buy-button" disabled>Buy now</button>' in html
    )
    assert re.search(r'<p id="countdown" class="countdown" role="timer"[^>]*>Opens <time', html)
    assert '<p id="order-state" class="order-state" aria-live="polite"' in html
    assert '<script src="/static/qbuy/sale.js' in html
    assert '<script src="/static/qbuy/site.js' in html


def test_detail_is_the_same_for_a_logged_in_buyer_with_an_order(client, buyer, make_sale):
    """The page is stored once for everyone: a buyer's login, phone, order and CSRF token are
    nowhere in it; sale.js asks the API for them."""
    sale = make_sale(name="Shared Kettle")
    order = Order.objects.create(sale=sale, buyer=buyer, status=Order.Status.CONFIRMED)
    client.force_login(buyer)

    mine = client.get(f"/sales/{sale.pk}/")
    assert mine["X-Page-Cache"] == "MISS"
    assert not mine.wsgi_request.session.accessed
    assert not mine.wsgi_request.META.get("CSRF_COOKIE_NEEDS_UPDATE")
    page = mine.content.decode()
    for personal in (buyer.phone, str(order.token)[:8], "Confirmed"):
        assert personal not in page
    assert '<a id="who-phone" href="/account/"></a>' in page  # filled by site.js
    assert 'name="csrfmiddlewaretoken" value=""' in page  # the header's logout: filled by JS
    assert '<span id="who" class="who" hidden>' in page
    caches["html"].clear()
    anonymous = Client().get(f"/sales/{sale.pk}/")
    assert anonymous["X-Page-Cache"] == "MISS"
    assert anonymous.content == mine.content


def test_pages_have_no_request_id_footer(client, make_sale):
    sale = make_sale()
    for path in ("/sales/", f"/sales/{sale.pk}/", "/login/"):
        response = client.get(path, headers={"X-Request-ID": "req-footer-1"})
        assert response["X-Request-ID"] == "req-footer-1"
        assert b"req-footer-1" not in response.content, path
        assert b"rendered by request" not in response.content, path
        assert b"<footer" not in response.content, path


def test_header_offers_login_to_come_back_and_a_logout_form(client, make_sale):
    sale = make_sale()
    page = client.get(f"/sales/{sale.pk}/").content.decode()
    assert (
        f'<a id="login-nav" href="/login/?next=%2Fsales%2F{sale.pk}%2F" hidden>Log in</a>' in page
    )
    assert '<form id="logout-form" class="inline" method="post" action="/account/">' in page
    assert '<input type="hidden" name="action" value="logout">' in page
    assert '<button id="logout-button" type="submit"' in page
