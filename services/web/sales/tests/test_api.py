from datetime import datetime, timedelta

import pytest
from django.utils import timezone

PAGE_KEYS = {
    "number",
    "has_previous",
    "has_next",
    "previous_page_number",
    "next_page_number",
    "num_pages",
    "count",
}


@pytest.fixture
def five_sales(settings, make_sale):
    settings.SALES_PER_PAGE = 2
    return [make_sale(name=f"Sale {n}", starts_in=n * 10) for n in range(5)]


def _names(body):
    return [s["name"] for s in body["results"]]


def test_list_first_page(api, five_sales):
    response = api.get("/api/sales/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["page"] == {
        "number": 1,
        "has_previous": False,
        "has_next": True,
        "previous_page_number": None,
        "next_page_number": 2,
        "num_pages": 3,
        "count": 5,
    }
    assert _names(body) == ["Sale 0", "Sale 1"]  # the live one, then the next to open


def test_list_pages(api, five_sales):
    middle = api.get("/api/sales/?page=2").json()
    assert middle["page"] == {
        "number": 2,
        "has_previous": True,
        "has_next": True,
        "previous_page_number": 1,
        "next_page_number": 3,
        "num_pages": 3,
        "count": 5,
    }
    assert _names(middle) == ["Sale 2", "Sale 3"]
    last = api.get("/api/sales/?page=3").json()
    assert set(last["page"]) == PAGE_KEYS
    assert last["page"]["has_next"] is False
    assert last["page"]["next_page_number"] is None
    assert last["page"]["previous_page_number"] == 2
    assert _names(last) == ["Sale 4"]


@pytest.mark.parametrize("number", [1, 2, 3])
def test_list_matches_the_html_page(api, client, five_sales, number):
    body = api.get(f"/api/sales/?page={number}").json()
    html = client.get(f"/sales/?page={number}", follow=True).content.decode()
    assert f'data-page="{body["page"]["number"]}"' in html
    assert f"page {number} of {body['page']['num_pages']}" in html
    assert ('rel="next"' in html) is body["page"]["has_next"]
    assert ('rel="prev"' in html) is body["page"]["has_previous"]
    for sale in body["results"]:
        assert f'<a href="{sale["url"]}">{sale["name"]}</a>' in html
    others = {s.name for s in five_sales} - set(_names(body))
    assert not any(name in html for name in others)


def test_sale_payload(api, make_sale):
    sale = make_sale(name="Grand Lamp", stock=8, per_buyer_limit=2)
    body = api.get("/api/sales/").json()
    detail = api.get(f"/api/sales/{sale.pk}").json()
    assert body["results"] == [{k: v for k, v in detail.items() if k != "server_time"}]
    assert body["results"][0] == {
        "id": sale.pk,
        "name": "Grand Lamp",
        "product": {"id": sale.product_id, "name": "Grand Lamp", "price": "9.99"},
        "starts_at": sale.starts_at.isoformat(),
        "ends_at": sale.ends_at.isoformat(),
        "stock": 8,
        "remaining": 8,
        "per_buyer_limit": 2,
        "waiting_room": False,
        "state": "open",
        "url": f"/sales/{sale.pk}/",
    }


def test_empty_list(api, db):
    body = api.get("/api/sales/").json()
    assert body["results"] == []
    assert body["page"]["count"] == 0
    assert body["page"]["number"] == 1


@pytest.mark.parametrize("page", ["0", "-1", "x", "1.5", ""])
def test_list_invalid_page_is_400(api, five_sales, page):
    response = api.get(f"/api/sales/?page={page}")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "invalid_page"


def test_list_page_past_the_end_is_404(api, five_sales):
    response = api.get("/api/sales/?page=99")
    assert response.status_code == 404
    assert response.json() == {"error": "no_such_page"}


def test_list_rejects_post(api, db):
    response = api.post("/api/sales/", {})
    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "method_not_allowed"
    assert response["Allow"] == "GET"


def test_detail(api, make_sale):
    sale = make_sale(name="Tiny Watch", stock=3, starts_in=120)
    response = api.get(f"/api/sales/{sale.pk}")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == sale.pk
    assert body["name"] == "Tiny Watch"
    assert body["state"] == "upcoming"
    assert body["remaining"] == 3


def test_detail_missing_is_404(api, db):
    response = api.get("/api/sales/999999")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found"}


def test_detail_rejects_post(api, make_sale):
    sale = make_sale()
    response = api.post(f"/api/sales/{sale.pk}", {})
    assert response.status_code == 405
    assert "error" in response.json()


@pytest.mark.parametrize("path", ["/api/whatever", "/api/sales/abc", "/api/"])
def test_unknown_api_path_is_json_404(api, db, path):
    response = api.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": "not_found"}


def test_unknown_page_path_is_not_json(client, db):
    response = client.get("/nowhere/")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


def test_detail_has_the_servers_clock(api, make_sale):
    """server_time: the sale page counts down to the start on the server's clock."""
    sale = make_sale(name="Clocked Kettle", starts_in=300)
    before = timezone.now()
    body = api.get(f"/api/sales/{sale.pk}").json()
    after = timezone.now()

    server_time = datetime.fromisoformat(body["server_time"])
    assert server_time.utcoffset() is not None  # aware
    assert before <= server_time <= after
    assert datetime.fromisoformat(body["starts_at"]) - server_time > timedelta(seconds=290)
    assert "server_time" not in api.get("/api/sales/").json()["results"][0]


def test_list_puts_live_sales_first(api, settings, make_sale):
    settings.SALES_PER_PAGE = 1
    make_sale(name="Upcoming", starts_in=60)
    make_sale(name="Ended", starts_in=-7200, duration=3600)
    make_sale(name="Live", starts_in=-60)

    names = [_names(api.get(f"/api/sales/?page={n}").json()) for n in (1, 2, 3)]

    assert names == [["Live"], ["Upcoming"], ["Ended"]]
