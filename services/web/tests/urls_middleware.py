"""Tiny views for tests/test_middleware.py, next to the project's own routes.

Paths under ``/cached/`` are put in ``QBUY_PAGE_CACHE["PATHS"]`` by the tests; ``/plain/`` is
not. ``CALLS`` counts how often each view really ran, so a test can tell a hit from a render.
"""

from collections import Counter

from django.http import HttpResponse, StreamingHttpResponse
from django.template import engines
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.cache import patch_cache_control, patch_vary_headers
from django.views.decorators.csrf import csrf_exempt

from config.urls import urlpatterns as project_urlpatterns

CALLS: Counter = Counter()


def _text(name, request, body=""):
    CALLS[name] += 1
    response = HttpResponse(
        f"{name} render {CALLS[name]} {request.method} {body}",
        content_type="text/plain; charset=utf-8",
    )
    response["X-Custom"] = "kept"
    return response


@csrf_exempt
def public(request):
    return _text("public", request)


def plain(request):
    return _text("plain", request)


def sets_cookie(request):
    response = _text("cookie", request)
    response.set_cookie("flavour", "oat")
    return response


def varies_on_cookie(request):
    response = _text("vary", request)
    patch_vary_headers(response, ["Cookie"])
    return response


def private(request):
    response = _text("private", request)
    patch_cache_control(response, private=True)
    return response


def no_store(request):
    response = _text("no-store", request)
    patch_cache_control(response, no_store=True)
    return response


def streaming(request):
    CALLS["stream"] += 1
    return StreamingHttpResponse(iter([b"stream ", b"render"]))


_WHOAMI = engines["django"].from_string("whoami: {{ user }}")


def whoami(request):
    """Renders the user through the auth context processor, like a page template would."""
    CALLS["whoami"] += 1
    return TemplateResponse(request, _WHOAMI)


def visits(request):
    """Touches the session only: a per-visitor counter."""
    CALLS["visits"] += 1
    request.session["visits"] = request.session.get("visits", 0) + 1
    return HttpResponse(f"visits: {request.session['visits']}", content_type="text/plain")


def numbered(request, n):
    """An int converter: /cached/n/7/ and /cached/n/007/ reach the same view."""
    return _text("numbered", request, str(n))


def boom(request):
    raise RuntimeError("boom")


urlpatterns = [
    path("cached/public/", public, name="t-public"),
    path("cached/cookie/", sets_cookie),
    path("cached/vary/", varies_on_cookie),
    path("cached/private/", private),
    path("cached/no-store/", no_store),
    path("cached/stream/", streaming),
    path("cached/whoami/", whoami),
    path("cached/visits/", visits),
    path("cached/n/<int:n>/", numbered, name="t-numbered"),
    path("plain/", plain),
    path("api/boom", boom, name="t-api-boom"),
    path("boom/", boom, name="t-page-boom"),
    *project_urlpatterns,
]
