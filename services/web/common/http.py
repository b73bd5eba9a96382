"""JSON API plumbing: one error shape, body parsing with limits, method checks."""

import functools
import json
import sys

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponseNotAllowed, JsonResponse
from django.urls import is_valid_path
from django.utils.cache import patch_cache_control
from django.views.csrf import csrf_failure as django_csrf_failure

from qbuy_core.middleware import unavailable_response
from qbuy_core.outage import is_outage


class ApiError(Exception):
    def __init__(self, status: int, error: str, **extra):
        super().__init__(error)
        self.status, self.error, self.extra = status, error, extra


def json_error(status: int, error: str, **extra) -> JsonResponse:
    return JsonResponse({"error": error, **extra}, status=status)


def api_view(*methods: str):
    """Allow only ``methods`` (405 with a JSON body otherwise) and turn ApiError into JSON.

    An answer that read the session (the user, a login, a logout) is personal: no shared cache
    (a CDN, a corporate proxy) may keep it, and no browser may store it on disk. Answers that
    did not read it (the sale list, the buy endpoint's sold-out memo) stay cacheable as before.
    """

    def decorator(view):
        @functools.wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.method not in methods:
                return HttpResponseNotAllowed(
                    methods,
                    content=json.dumps({"error": "method_not_allowed", "allowed": list(methods)}),
                    content_type="application/json",
                )
            try:
                response = view(request, *args, **kwargs)
            except ApiError as exc:
                response = json_error(exc.status, exc.error, **exc.extra)
            session = getattr(request, "session", None)
            if session is not None and session.accessed:
                patch_cache_control(response, private=True, no_store=True)
            return response

        return wrapper

    return decorator


def require_user(request) -> None:
    """401 with a JSON body for a request without a logged-in user."""
    if not request.user.is_authenticated:
        raise ApiError(401, "not_authenticated")


def json_body(request, *fields: str) -> dict:
    """The request's JSON object with ``fields`` present as strings, or an ApiError."""
    data = _json_object(request)
    missing = [f for f in fields if f not in data]
    if missing:
        raise ApiError(400, "missing_fields", fields=missing)
    wrong = [f for f in fields if not isinstance(data[f], str)]
    if wrong:
        raise ApiError(400, "wrong_type", fields=wrong, expected="string")
    return data


def json_body_optional(request) -> dict:
    """Like json_body, but no body at all (whatever the Content-Type) is an empty object."""
    if request.META.get("CONTENT_LENGTH") in (None, "", "0"):
        return {}
    return _json_object(request)


def _json_object(request) -> dict:
    if not request.META.get("CONTENT_LENGTH") and not request.META.get("CONTENT_TYPE"):
        raise ApiError(400, "invalid_json", detail="empty body")
    content_type = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        # Checked before the body is read: CsrfViewMiddleware may already have consumed a
        # multipart stream through request.POST, and request.body would then raise.
        raise ApiError(415, "unsupported_media_type", expected="application/json")
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise ApiError(400, "bad_content_length") from None
    if length > settings.API_MAX_BODY_BYTES:
        raise ApiError(413, "body_too_large", max_bytes=settings.API_MAX_BODY_BYTES)
    try:
        data = json.loads(request.body or b"null")
    except RequestDataTooBig:
        raise ApiError(413, "body_too_large", max_bytes=settings.API_MAX_BODY_BYTES) from None
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: a small body can nest deeper than the parser's stack.
        raise ApiError(400, "invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", detail="expected a JSON object")
    return data


def page_number(request) -> int:
    raw = request.GET.get("page", "1")
    try:
        number = int(raw)
    except ValueError:
        raise ApiError(400, "invalid_page", detail="page must be a positive integer") from None
    if number < 1:
        raise ApiError(400, "invalid_page", detail="page must be a positive integer")
    return number


def page_payload(page) -> dict:
    return {
        "number": page.number,
        "num_pages": page.paginator.num_pages,
        "count": page.paginator.count,
        "has_previous": page.has_previous(),
        "has_next": page.has_next(),
        "previous_page_number": page.previous_page_number() if page.has_previous() else None,
        "next_page_number": page.next_page_number() if page.has_next() else None,
    }


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
    if request.path.startswith("/api/"):
        return json_error(500, "server_error", request_id=getattr(request, "request_id", ""))
    from django.views.defaults import server_error as django_server_error

    return django_server_error(request)


def bad_request(request, exception=None):
    if request.path.startswith("/api/"):
        return json_error(400, "bad_request")
    from django.views.defaults import bad_request as django_bad_request

    return django_bad_request(request, exception)
