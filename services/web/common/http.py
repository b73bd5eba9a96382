"""Django's handlers (400, 403 CSRF, 404, 500) for the whole site: JSON under /api/, the
usual pages elsewhere. The API's own plumbing is django-ninja's (config/api.py)."""

import sys

from django.conf import settings
from django.http import HttpResponseServerError, JsonResponse
from django.template import TemplateDoesNotExist
from django.template.loader import render_to_string
from django.urls import is_valid_path
from django.views.csrf import csrf_failure as django_csrf_failure

from qbuy_core.middleware import unavailable_response
from qbuy_core.outage import is_outage


def json_error(status: int, error: str, **extra) -> JsonResponse:
    return JsonResponse({"error": error, **extra}, status=status)


def csrf_failure(request, reason=""):
    if request.path.startswith("/api/"):
        return json_error(403, "csrf_failed", detail=reason)
    return django_csrf_failure(request, reason=reason)


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return json_error(404, "not_found")
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def api_not_found(request):
    """Every /api/ path no other pattern matches (the last URL pattern).

    A JSON 404 even with DEBUG=True, where Django would render its HTML debug page instead of
    handler404; and since the path now resolves, CommonMiddleware's APPEND_SLASH leaves it
    alone: no redirect a POST can't follow, no RuntimeError (an HTML 500) under DEBUG.
    """
    extra = {}
    slashed = is_valid_path(request.path_info + "/", getattr(request, "urlconf", None))
    if slashed and slashed.func is not api_not_found:
        extra["detail"] = f"no such endpoint; did you mean {request.path}/ ?"
    return json_error(404, "not_found", **extra)


def server_error(request):
    """handler500: an error no view raised, which process_exception never sees: a middleware's,
    such as a session saved on the way out or a page cache kept in a database that is down.
    An outage is still a 503 there, and the API's 500 is still JSON."""
    if is_outage(sys.exc_info()[1]):
        return unavailable_response(request, retry_after=settings.OUTAGE_RETRY_AFTER)
    request_id = getattr(request, "request_id", "")
    if request.path.startswith("/api/"):
        return json_error(500, "server_error", request_id=request_id)
    try:
        # No request: context processors could touch the session or the database, which may
        # be what failed. The request id is for support (it is in X-Request-ID too).
        page = render_to_string("500.html", {"request_id": request_id})
    except TemplateDoesNotExist:
        page = "<!doctype html><title>Server error</title><h1>Server Error (500)</h1>"
    return HttpResponseServerError(page)


def bad_request(request, exception=None):
    if request.path.startswith("/api/"):
        return json_error(400, "bad_request")
    from django.views.defaults import bad_request as django_bad_request

    return django_bad_request(request, exception)
