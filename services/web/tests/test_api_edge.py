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
