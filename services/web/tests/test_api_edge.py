"""config/api.py's edge between ninja and Django: what qbuy keeps of its own."""

import pytest
from django.test import Client

from config.settings.caches import cache_config
from tools import devservers

pytestmark = pytest.mark.django_db


def test_an_outage_under_debug_is_the_json_503_not_ninjas_text_500(settings):
    """Ninja answers an exception with a text 500 under DEBUG (``make local``); qbuy lets it
    reach RequestMetaMiddleware, whose answer to an outage is the JSON 503."""
    settings.DEBUG = True
    redis = devservers.Redis().start()
    redis.halt()
    try:
        settings.CACHES = {**settings.CACHES, "sessions": cache_config(redis.url)}
        client = Client(raise_request_exception=False)
        client.cookies[settings.SESSION_COOKIE_NAME] = "a" * 32
        r = client.get("/api/auth/me")
    finally:
        redis.stop()

    assert (r.status_code, r["Content-Type"]) == (503, "application/json")
    assert r.json() == {"error": "unavailable", "retry_after": settings.OUTAGE_RETRY_AFTER}
    assert r["Retry-After"] == str(settings.OUTAGE_RETRY_AFTER)


def test_missing_fields_are_named_before_wrong_types(client):
    r = client.post("/api/auth/login", {"phone": 12015550123}, content_type="application/json")

    assert (r.status_code, r.json()) == (400, {"error": "missing_fields", "fields": ["code"]})


def test_ninjas_views_are_csrf_checked_by_django():
    client = Client(enforce_csrf_checks=True)

    r = client.post("/api/auth/logout-all", content_type="application/json")

    assert (r.status_code, r.json()["error"]) == (403, "csrf_failed")


def test_the_api_root_is_no_endpoint(client):
    r = client.get("/api/")

    assert (r.status_code, r.json()) == (404, {"error": "not_found"})


# --- ninja's per-request cost on the flash sale's hot path (make bench-compare measures it) ---


def test_the_buy_endpoint_is_the_first_api_pattern_django_tries():
    from django.urls import get_resolver

    api_include = next(p for p in get_resolver().url_patterns if str(p.pattern) == "api/")
    assert api_include.url_patterns[0].name == "buy"


def test_a_sold_out_refusal_builds_one_response_not_ninjas_extra_one(
    client, make_sale, settings, monkeypatch
):
    """Ninja makes an HttpResponse ahead of every view; LeanOperation makes it only for an
    answer the view returned. A refusal is then one JsonResponse: its own."""
    from django.http import response as http_response

    from orders import soldout

    settings.SOLD_OUT_MEMO = 60
    sale = make_sale(stock=0)
    soldout.remember(sale.pk)
    made = []
    real_init = http_response.HttpResponse.__init__

    def counting_init(self, *args, **kwargs):
        made.append(type(self).__name__)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(http_response.HttpResponse, "__init__", counting_init)
    client.cookies[settings.SESSION_COOKIE_NAME] = "a" * 32
    r = client.post(f"/api/sales/{sale.pk}/buy", data={}, content_type="application/json")

    assert (r.status_code, r.json()) == (409, {"error": "sold_out"})
    assert made == ["JsonResponse"]


def test_an_operation_that_needs_ninjas_response_argument_is_refused():
    from ninja import NinjaAPI
    from ninja.operation import Operation

    from config import api as qbuy_api

    other = NinjaAPI(urls_namespace="lean-check")

    @other.get("/x", url_name="x")
    def with_response(request, response: http_response_type()):
        return {}

    operation = next(iter(other.default_router.path_operations.values())).operations[0]
    assert isinstance(operation, Operation)
    with pytest.raises(TypeError, match="LeanOperation"):
        qbuy_api.make_lean(operation)


def http_response_type():
    from django.http import HttpResponse

    return HttpResponse


def test_request_bodies_are_plain_pydantic_models_not_ninja_schemas():
    """A ninja Schema wraps every input in a DjangoGetter (for ORM objects, which only answers
    are): a third of ninja's cost on the buy endpoint."""
    from ninja import Schema
    from pydantic import BaseModel

    from config.api import api

    bodies = {
        operation.operation_id: field.annotation
        for bound in api._get_bound_routers()
        for path_view in bound.path_operations.values()
        for operation in path_view.operations
        for model in operation.models
        if model.__ninja_param_source__ == "body"
        for field in model.model_fields.values()
    }
    assert set(bodies) >= {"sales_buy", "auth_code", "auth_login"}
    for operation_id, body in bodies.items():
        assert issubclass(body, BaseModel) and not issubclass(body, Schema), operation_id
