import pytest
from django.core.cache import caches
from django.test import Client, RequestFactory
from django.utils.cache import get_cache_key

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


def test_detail_of_an_ended_sale_is_gone(client, make_sale):
    sale = make_sale(name="Old Kettle", starts_in=-7200, duration=3600)
    response = client.get(f"/sales/{sale.pk}/")
    assert response.status_code == 410
    html = response.content.decode()
    assert "Old Kettle" in html
    assert "ended" in html


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
