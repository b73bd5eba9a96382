import pytest
from django.core.cache import caches

from sales.models import Sale


@pytest.fixture
def five_sales(settings, make_sale):
    """Five sales, two per page; the list shows the newest window first."""
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
    assert "Sale 4" in html and "Sale 3" in html
    assert "Sale 2" not in html
    assert f'href="/sales/{five_sales[4].pk}/"' in html


def test_list_middle_page(client, five_sales):
    html = _page(client, "?page=2")
    assert 'data-page="2"' in html
    assert "page 2 of 3" in html
    assert 'rel="prev" href="?page=1"' in html
    assert 'rel="next" href="?page=3"' in html
    assert "Sale 2" in html and "Sale 1" in html
    assert "Sale 3" not in html and "Sale 0" not in html


def test_list_last_page(client, five_sales):
    html = _page(client, "?page=3")
    assert 'data-page="3"' in html
    assert "page 3 of 3" in html
    assert 'rel="prev" href="?page=2"' in html
    assert 'rel="next"' not in html
    assert "Sale 0" in html and "Sale 1" not in html


def test_list_shows_stock_and_state(client, make_sale):
    make_sale(name="Soon", stock=7, starts_in=600)
    html = _page(client)
    assert "7 of 7 left" in html
    assert "upcoming" in html


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
    assert "<h1>Copper Kettle</h1>" in html
    assert f'id="sale-state" data-sale="{sale.pk}">open<' in html
    assert "4 items, at most 1 per buyer" in html


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
