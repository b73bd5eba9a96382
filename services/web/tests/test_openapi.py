"""The API's OpenAPI document: generated from config/api.py, committed, served, and complete."""

import json
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from ninja.responses import NinjaJSONEncoder

from config.api import api

from .chromium import visit

COMMITTED = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"
METHODS = {"get", "post", "put", "patch", "delete"}


def generated() -> dict:
    # Through JSON, as `make openapi` writes it: tuples become lists, UUIDs strings.
    return json.loads(json.dumps(api.get_openapi_schema(), cls=NinjaJSONEncoder))


def operations(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def test_the_committed_document_is_what_the_code_generates():
    assert json.loads(COMMITTED.read_text()) == generated(), "run `make openapi` and commit it"


def test_the_served_document_is_openapi_3_1(client):
    r = client.get("/api/openapi.json")

    assert (r.status_code, r["Content-Type"]) == (200, "application/json")
    assert r.json()["openapi"].startswith("3.1.")
    assert r.json() == generated()


def test_the_operations_keep_their_paths_and_ids():
    ids = {(path, method): op["operationId"] for path, method, op in operations(generated())}

    assert ids == {
        ("/api/auth/csrf", "get"): "auth_csrf",
        ("/api/auth/code", "post"): "auth_code",
        ("/api/auth/login", "post"): "auth_login",
        ("/api/auth/logout", "post"): "auth_logout",
        ("/api/auth/logout-all", "post"): "auth_logout_all",
        ("/api/auth/me", "get"): "auth_me",
        ("/api/sales/", "get"): "sales_list",
        ("/api/sales/{pk}", "get"): "sales_detail",
        ("/api/sales/{pk}/buy", "post"): "sales_buy",
        ("/api/orders/", "get"): "orders_list",
        ("/api/orders/{token}", "get"): "orders_detail",
        ("/api/sales/{pk}/room", "get"): "room_detail",
        ("/api/sales/{pk}/room", "post"): "room_join",
        ("/api/sales/{pk}/room/me", "get"): "room_place",
    }


def error_codes(operation, status) -> str:
    return operation["responses"][str(status)]["description"]


@pytest.mark.parametrize(("path", "method", "operation"), list(operations(generated())))
def test_every_operation_documents_its_refusals(path, method, operation):
    responses = operation["responses"]
    assert "`method_not_allowed`" in error_codes(operation, 405)
    assert "`unavailable`" in error_codes(operation, 503)
    if method == "post":
        assert "`csrf_failed`" in error_codes(operation, 403)
    for status, answer in responses.items():
        if int(status) >= 400:
            schema = answer["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}, (status, schema)
        if status in ("429", "503"):
            assert "Retry-After" in answer["headers"], status


def test_the_buy_endpoint_documents_every_answer():
    buy = generated()["paths"]["/api/sales/{pk}/buy"]["post"]

    assert set(buy["responses"]) == {
        "202", "400", "401", "403", "404", "405", "409", "410", "413", "415", "503"
    }  # fmt: skip
    assert "`sold_out`" in error_codes(buy, 409)
    assert "`already_bought`" in error_codes(buy, 409)
    assert "`ended`" in error_codes(buy, 410)
    assert "`body_too_large`" in error_codes(buy, 413)
    assert "`unsupported_media_type`" in error_codes(buy, 415)
    assert buy["requestBody"]["required"] is False
    assert buy["security"] == [{"SessionAuth": []}]


def test_rate_limited_answers_carry_retry_after():
    paths = generated()["paths"]
    for path in ("/api/auth/code", "/api/auth/login"):
        answer = paths[path]["post"]["responses"]["429"]
        assert "`rate_limited`" in answer["description"]
        assert answer["headers"]["Retry-After"]["schema"]["type"] == "integer"


@pytest.mark.parametrize("path", ["/api/openapi.json", "/api/docs"])
def test_the_document_and_the_docs_answer_other_methods_405_json(client, path):
    r = client.post(path)

    assert (r.status_code, r["Allow"]) == (405, "GET, HEAD")
    assert r.json() == {"error": "method_not_allowed", "allowed": ["GET", "HEAD"]}


def test_the_docs_page_uses_only_our_static_files(client):
    r = client.get("/api/docs")

    assert r.status_code == 200
    html = r.content.decode()
    assert "//cdn" not in html
    assert "http://" not in html
    assert "https://" not in html
    for name in ("swagger-ui-bundle.js", "swagger-ui-init.js", "swagger-ui.css"):
        assert f"/static/ninja/{name}" in html
        assert finders.find(f"ninja/{name}"), name  # collectstatic collects it


def test_the_docs_page_loads_in_chromium_within_the_csp_and_loopback(live_server):
    """Swagger UI renders every operation, with no CSP violation (the policy has no
    'unsafe-inline') and nothing fetched from anywhere but the live server."""
    page = visit(f"{live_server.url}/api/docs", evaluate=[*RENDERED, RESOURCES])

    assert page.csp_violations == [], "\n".join(page.csp_violations)
    assert max(page.values[e] for e in RENDERED) == len(list(operations(generated())))
    fetched = page.values[RESOURCES]
    assert f"{live_server.url}/static/ninja/swagger-ui-bundle.js" in fetched
    assert f"{live_server.url}/api/openapi.json" in fetched
    assert [url for url in fetched if not url.startswith(live_server.url)] == []


# Swagger UI renders after fetching the document, a moment after the load event that visit()
# waits for. Each probe first fetches the document itself, synchronously (as long as Swagger
# UI's own fetch), then counts the operations rendered: the last probes see it done.
RENDERED = [
    "(() => { const x = new XMLHttpRequest(); x.open('GET', '/api/openapi.json', false);"
    f" x.send(); return document.querySelectorAll('.opblock').length; }})() /* {n} */"
    for n in range(10)
]
RESOURCES = "performance.getEntriesByType('resource').map(e => e.name)"


def test_links_lead_from_the_sales_to_the_buy_to_the_order():
    paths = generated()["paths"]

    def link(path, method, status):
        (only,) = paths[path][method]["responses"][status]["links"].values()
        return only["operationId"], only["parameters"]

    assert link("/api/sales/", "get", "200") == (
        "sales_detail", {"pk": "$response.body#/results/0/id"}
    )  # fmt: skip
    assert link("/api/sales/{pk}", "get", "200") == ("sales_buy", {"pk": "$response.body#/id"})
    assert link("/api/sales/{pk}/buy", "post", "202") == (
        "orders_detail", {"token": "$response.body#/order"}
    )  # fmt: skip
    assert link("/api/orders/", "get", "200") == (
        "orders_detail", {"token": "$response.body#/results/0/order"}
    )  # fmt: skip


def test_the_document_is_built_once_per_process(client):
    first = api.get_openapi_schema()
    assert client.get("/api/openapi.json").status_code == 200
    assert api.get_openapi_schema() is first
