"""common.csp: the policy built once, the same header django-csp builds, and django-csp's own
handling for a response that asks for more."""

import pytest
from csp.constants import NONCE
from csp.decorators import csp_exempt, csp_update
from csp.utils import build_policy
from django.http import HttpResponse
from django.test import RequestFactory

from common.csp import CSPMiddleware

HEADER = "Content-Security-Policy"


def run(view, path="/x/"):
    request = RequestFactory().get(path)
    middleware = CSPMiddleware(view)
    middleware.process_request(request)
    return middleware.process_response(request, view(request))


def test_every_page_gets_the_settings_policy(client, db):
    for path in ("/sales/", "/login/", "/api/sales/", "/no/such/page/"):
        assert client.get(path)[HEADER] == build_policy(), path


def test_a_decorated_view_gets_its_own_policy():
    @csp_update({"img-src": ["https://img.example"]})
    def view(request):
        return HttpResponse("x")

    header = run(view)[HEADER]
    assert "https://img.example" in header and header != build_policy()


def test_an_exempt_view_gets_none():
    @csp_exempt()
    def view(request):
        return HttpResponse("x")

    assert HEADER not in run(view)


def test_a_nonce_read_in_the_view_is_in_the_header(settings):
    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"script-src": ["'self'", NONCE]}}

    def view(request):
        return HttpResponse(str(request.csp_nonce))

    response = run(view)
    assert f"'nonce-{response.content.decode()}'" in response[HEADER]


@pytest.mark.parametrize("debug", [True, False])
def test_debug_error_pages_follow_django_csp(settings, debug):
    settings.DEBUG = debug

    def view(request):
        return HttpResponse("x", status=500)

    assert (HEADER in run(view)) is not debug
