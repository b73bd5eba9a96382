"""Unknown paths under /api/ are JSON 404s, never an APPEND_SLASH redirect or RuntimeError,
and not Django's HTML debug pages either: with DEBUG=True (``make local``) as without."""

import pytest

pytestmark = pytest.mark.django_db

UNKNOWN = ["/api/nope", "/api/orders/not-a-uuid", "/api/sales/1/buy/", "/api/auth/me/", "/api"]


@pytest.fixture(params=[True, False], ids=["debug", "production"])
def debug(request, settings):
    settings.DEBUG = request.param
    return request.param


@pytest.mark.parametrize("path", ["/api/orders", "/api/sales"])
@pytest.mark.parametrize("method", ["get", "post"])
def test_a_missing_trailing_slash_is_a_json_404_with_a_hint(client, debug, method, path):
    # DEBUG + POST was CommonMiddleware's RuntimeError (an HTML 500); otherwise a 301 that a
    # POST can't follow.
    r = getattr(client, method)(path, content_type="application/json")
    assert (r.status_code, r["Content-Type"]) == (404, "application/json")
    assert r.json() == {"error": "not_found", "detail": f"no such endpoint; did you mean {path}/ ?"}


@pytest.mark.parametrize("path", UNKNOWN)
def test_unknown_api_paths_are_json_404s(client, debug, path):
    for r in (client.get(path), client.post(path, content_type="application/json")):
        assert (r.status_code, r["Content-Type"]) == (404, "application/json")
        assert r.json() == {"error": "not_found"}  # was the HTML debug page with DEBUG


def test_pages_keep_append_slash(client, debug):
    r = client.get("/sales")
    assert (r.status_code, r["Location"]) == (301, "/sales/")
