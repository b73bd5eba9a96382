"""qbuy middleware.

Order matters (see MIDDLEWARE in config/settings/base.py):

* ``RequestMetaMiddleware`` goes first so that every response, cached or not, carries its
  request id and timing, and so that its ``process_exception`` sees errors from every view.
* ``csp.middleware.CSPMiddleware`` next, so that hits carry the policy too (it is added on the
  way out, never stored with a page).
* ``SecurityMiddleware`` before the page cache: the HTTPS redirect (SECURE_SSL_REDIRECT) has its
  say before a hit is served, so a plain-HTTP request to a cached page gets the 301, not the page.
* ``PathCacheMiddleware`` after it and before SessionMiddleware: on the way out it sees the
  ``Vary: Cookie`` and ``Set-Cookie`` that sessions and CSRF add, which is how it knows a response
  belongs to one user and must not be stored. It validates the host itself (ALLOWED_HOSTS) before
  serving a hit: SecurityMiddleware only reads the host when it redirects, and everything else
  that does (CommonMiddleware, CSRF) runs after a hit has been answered.

``RequestMetaMiddleware`` also marks an answer that read the session or sets a cookie (the CSRF
token's goes with every page that holds one) ``Cache-Control: private, no-store`` on its way
out, whatever the view said: no shared cache (a CDN, a corporate proxy) may hand it to another
visitor (DESIGN.md invariant 4).

An outage (qbuy_core.outage: Redis or Postgres unreachable) raised by a view, a template or the
session engine is answered 503 with ``Retry-After`` by ``RequestMetaMiddleware``: JSON under
``/api/``, a short page elsewhere (DESIGN.md invariant 6). A cached page is served before any
of that runs, so a page cache that is not the failed server keeps serving during the outage.
"""

import logging
import re
import secrets
import time

from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse, HttpResponsePermanentRedirect, JsonResponse
from django.template import TemplateDoesNotExist
from django.template.loader import render_to_string
from django.utils.cache import add_never_cache_headers, cc_delim_re, patch_cache_control
from django.utils.deprecation import MiddlewareMixin
from django.utils.encoding import escape_uri_path

from . import logcontext, page_cache
from .metrics import VIEW
from .outage import is_outage

logger = logging.getLogger("qbuy.request")

REQUEST_ID_HEADER = "X-Request-ID"
# fullmatch, not match with ^...$: "$" also matches before a trailing newline, and a newline in
# a header value makes Django raise BadHeaderError (a 500 for any request sending "id\n").
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")


# The page an outage gets when the project has no 503.html template.
UNAVAILABLE_PAGE = (
    "<!doctype html><title>Unavailable</title><h1>Back in a moment</h1>"
    "<p>The service is briefly unavailable. Please try again in {retry_after} seconds.</p>"
)


def request_id_for(meta) -> str:
    """The id of a request: the one nginx or the client gave, if it is a sane token (so logs
    line up), else a new one."""
    given = meta.get("HTTP_X_REQUEST_ID", "")
    return given if _REQUEST_ID_RE.fullmatch(given) else secrets.token_hex(16)


def unavailable_response(request, *, retry_after: int) -> HttpResponse:
    """The 503 of an outage: JSON under /api/, the 503.html page elsewhere, never cached."""
    if request.path.startswith("/api/"):
        response = JsonResponse({"error": "unavailable", "retry_after": retry_after}, status=503)
    else:
        context = {"retry_after": retry_after, "request_id": getattr(request, "request_id", "")}
        try:
            # No request: context processors could touch the session, which may be down.
            page = render_to_string("503.html", context)
        except TemplateDoesNotExist:
            page = UNAVAILABLE_PAGE.format(**context)
        response = HttpResponse(page, status=503)
    response["Retry-After"] = str(retry_after)
    add_never_cache_headers(response)
    return response


class RequestMetaMiddleware(MiddlewareMixin):
    """Request id, timing, personal answers kept private, and the error answers (JSON under
    /api/): one hook each."""

    def __init__(self, get_response):
        super().__init__(get_response)
        # Seconds a client is told to wait during an outage (Retry-After): about the time a
        # restarted Redis or Postgres needs to answer again.
        self.retry_after = getattr(settings, "OUTAGE_RETRY_AFTER", 5)
        if not isinstance(self.retry_after, int) or self.retry_after < 1:
            raise ImproperlyConfigured("OUTAGE_RETRY_AFTER must be a positive integer")
        # Server-Timing tells anyone the view's name and the server's time to 0.1 ms: only for
        # a developer (DEBUG) or where SERVER_TIMING asks for it.
        self.server_timing = getattr(settings, "SERVER_TIMING", settings.DEBUG)

    def process_request(self, request):
        request.request_id = request_id_for(request.META)
        # Every line logged for this request names it (the buy view adds the sale and the
        # order) until its response is closed (qbuy_core.receivers): after Django's own line
        # for a 5xx and gunicorn's access line, which come after process_response.
        logcontext.begin(request_id=request.request_id)
        if self.server_timing:
            request.started_at = time.perf_counter()

    def process_view(self, request, view_func, view_args, view_kwargs):
        # Also in the environ, for the request metrics around the WSGI application.
        name = getattr(request.resolver_match, "view_name", "") or view_func.__name__
        request.META[VIEW] = request.view_name = name

    def process_exception(self, request, exception):
        if is_outage(exception):
            return self._unavailable(request, exception)
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

    def _unavailable(self, request, exception):
        # No traceback: an outage is not a bug, and during one every request would log one.
        logger.warning(
            "unavailable in %s: %s: %s",
            getattr(request, "view_name", request.path),
            type(exception).__name__,
            str(exception).strip(),
            extra={"request_id": getattr(request, "request_id", "")},
        )
        # Nothing is written on the way out: SessionMiddleware saves no session for a 5xx, so a
        # logout that could not delete the session leaves it as it was, and says so.
        return unavailable_response(request, retry_after=self.retry_after)

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
        # Set-Cookie: a CSRF token (the cookie goes with every page that holds one) or a
        # session's cookie.
        session = getattr(request, "session", None)
        if response.cookies or (session is not None and session.accessed):
            patch_cache_control(response, private=True, no_store=True)
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
    Only a path that is its own canonical form is stored (page_cache.is_canonical): the
    receivers drop the paths reverse() builds, so /sales/01/ stored beside /sales/1/ would
    outlive every invalidation. For the same reason a cached path has one URL: a query string
    (a tracking tag, or random ones sent to drain the caches during a sale) is answered with a
    301 to the bare path, which is served from the cache.
    """

    def __init__(self, get_response):
        self.get_response = get_response
        config = page_cache.config()
        self.alias = config["ALIAS"]
        self.timeout = config["TIMEOUT"]
        self.local_timeout = config["LOCAL_TIMEOUT"]
        if self.alias not in caches.settings:
            raise ImproperlyConfigured(f"QBUY_PAGE_CACHE ALIAS {self.alias!r} is not in CACHES")
        try:
            self.paths = [re.compile(p) for p in config["PATHS"]]
        except (re.error, TypeError) as exc:
            raise ImproperlyConfigured(f"QBUY_PAGE_CACHE PATHS: {exc}") from exc

    def __call__(self, request):
        if not self._cacheable_request(request):
            return self.get_response(request)
        # Raises DisallowedHost (a 400) for a host outside ALLOWED_HOSTS: nothing later would
        # check it before a hit is answered (see the module docstring).
        request.get_host()
        if request.META.get("QUERY_STRING"):
            return HttpResponsePermanentRedirect(escape_uri_path(request.path))
        cache = caches[self.alias]
        key = page_cache.key(request.path)
        entry = page_cache.local_get(key) if self.local_timeout else None
        if entry is None:
            entry = cache.get(key)
            if entry is not None and self.local_timeout:
                page_cache.local_set(key, entry, self.local_timeout)
        if entry is not None:
            request.META[VIEW] = "page-cache"
            return self._from_entry(entry, head=request.method == "HEAD")
        response = self.get_response(request)
        if (
            request.method == "GET"
            and self._cacheable_response(response)
            and page_cache.is_canonical(request)
        ):
            cache.set(key, self._to_entry(response), self.timeout)
            response["X-Page-Cache"] = "MISS"
        return response

    def _cacheable_request(self, request):
        return request.method in ("GET", "HEAD") and any(p.match(request.path) for p in self.paths)

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
