"""qbuy middleware.

Order matters (see MIDDLEWARE in config/settings/base.py):

* ``RequestMetaMiddleware`` goes first so that every response, cached or not, carries its
  request id and timing, and so that its ``process_exception`` sees errors from every view.
* ``PathCacheMiddleware`` goes right after it and before SessionMiddleware: on the way out it
  sees the ``Vary: Cookie`` and ``Set-Cookie`` that sessions and CSRF add, which is how it knows
  a response belongs to one user and must not be stored.
"""

import logging
import re
import time
import uuid

from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse, JsonResponse
from django.utils.cache import cc_delim_re
from django.utils.deprecation import MiddlewareMixin

from . import page_cache

logger = logging.getLogger("qbuy.request")

REQUEST_ID_HEADER = "X-Request-ID"
# fullmatch, not match with ^...$: "$" also matches before a trailing newline, and a newline in
# a header value makes Django raise BadHeaderError (a 500 for any request sending "id\n").
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")


class RequestMetaMiddleware(MiddlewareMixin):
    """Request id, timing and the JSON error body of the API: one hook each."""

    def process_request(self, request):
        # Reuse the id nginx or the client gave, if it is a sane token, so logs line up.
        given = request.headers.get(REQUEST_ID_HEADER, "")
        request.request_id = given if _REQUEST_ID_RE.fullmatch(given) else uuid.uuid4().hex
        request.started_at = time.perf_counter()

    def process_view(self, request, view_func, view_args, view_kwargs):
        request.view_name = getattr(request.resolver_match, "view_name", "") or view_func.__name__

    def process_exception(self, request, exception):
        if not request.path.startswith("/api/"):
            return None  # pages keep Django's own 500 handling
        logger.exception(
            "unhandled error in %s",
            getattr(request, "view_name", request.path),
            extra={"request_id": getattr(request, "request_id", "")},
        )
        return JsonResponse(
            {"error": "server_error", "request_id": getattr(request, "request_id", "")},
            status=500,
        )

    def process_template_response(self, request, response):
        # A TemplateResponse restored by @cache_page is already rendered and was pickled
        # without its context_data: nothing left to add to.
        if response.is_rendered:
            return response
        if response.context_data is None:
            response.context_data = {}
        response.context_data.setdefault("request_id", getattr(request, "request_id", ""))
        return response

    def process_response(self, request, response):
        request_id = getattr(request, "request_id", None)
        if request_id:
            response[REQUEST_ID_HEADER] = request_id
        started = getattr(request, "started_at", None)
        if started is not None:
            millis = (time.perf_counter() - started) * 1000
            view = getattr(request, "view_name", "") or "none"
            response["Server-Timing"] = f'app;dur={millis:.1f};desc="{view}"'
        return response


class PathCacheMiddleware:
    """Cache whole public responses for the paths in ``QBUY_PAGE_CACHE["PATHS"]``.

    Django's UpdateCacheMiddleware/FetchFromCacheMiddleware pair reads two keys per hit and
    caches every path; this one caches only the configured paths (regexes), reads one key,
    and never stores a response that sets a cookie, varies on the cookie or is private: those
    belong to one user (DESIGN.md invariant 4). Model receivers drop the keys (page_cache.drop).
    """

    def __init__(self, get_response):
        self.get_response = get_response
        config = page_cache.config()
        self.alias = config["ALIAS"]
        self.timeout = config["TIMEOUT"]
        if self.alias not in caches.settings:
            raise ImproperlyConfigured(f"QBUY_PAGE_CACHE ALIAS {self.alias!r} is not in CACHES")
        try:
            self.paths = [re.compile(p) for p in config["PATHS"]]
        except (re.error, TypeError) as exc:
            raise ImproperlyConfigured(f"QBUY_PAGE_CACHE PATHS: {exc}") from exc

    def __call__(self, request):
        if not self._cacheable_request(request):
            return self.get_response(request)
        cache = caches[self.alias]
        key = page_cache.key(request.path)
        entry = cache.get(key)
        if entry is not None:
            return self._from_entry(entry, head=request.method == "HEAD")
        response = self.get_response(request)
        if request.method == "GET" and self._cacheable_response(response):
            cache.set(key, self._to_entry(response), self.timeout)
            response["X-Page-Cache"] = "MISS"
        return response

    def _cacheable_request(self, request):
        return (
            request.method in ("GET", "HEAD")
            and not request.META.get("QUERY_STRING")
            and any(p.match(request.path) for p in self.paths)
        )

    @staticmethod
    def _cacheable_response(response):
        if response.status_code != 200 or response.streaming or response.cookies:
            return False
        vary = {v.strip().lower() for v in cc_delim_re.split(response.get("Vary", ""))}
        if "cookie" in vary or "*" in vary:
            return False
        cache_control = response.get("Cache-Control", "").lower()
        return "private" not in cache_control and "no-store" not in cache_control

    @staticmethod
    def _to_entry(response):
        if hasattr(response, "render") and not response.is_rendered:
            response.render()
        # Per-request headers are added again by RequestMetaMiddleware on every hit.
        skip = {"x-request-id", "server-timing"}
        headers = [(k, v) for k, v in response.items() if k.lower() not in skip]
        return (response.status_code, headers, response.content)

    @staticmethod
    def _from_entry(entry, *, head):
        status, headers, content = entry
        response = HttpResponse(b"" if head else content, status=status)
        for name, value in headers:
            response[name] = value
        response["X-Page-Cache"] = "HIT"
        return response
