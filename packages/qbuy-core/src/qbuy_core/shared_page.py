"""``@shared_page``: Django's ``@cache_page`` for a page every visitor shares, with two guards.

``@cache_page`` stores the response when the template has rendered, inside the view, before
SessionMiddleware and CsrfViewMiddleware add ``Vary: Cookie`` on the way out: a template that
read ``request.user`` (the session) or a CSRF token would be stored and served to everyone.
``@vary_on_cookie`` would be safe but gives every session its own entry (a hit rate near zero
during a sale, when every buyer is logged in). Instead this decorator checks, once rendered,
whether the render touched the session or the CSRF token, and if so does not store the page and
logs an error: the page is then simply uncached, never shared, and the log names the view.

The second guard is the key: the caller's ``key(request, *args, **kwargs)`` names the entry (the
page number of a list, say), not the raw URL, so query strings and hosts cannot grow the key
space; the view must refuse or redirect whatever its key does not describe.
"""

import logging
from collections.abc import Callable
from functools import wraps

from django.core.cache import caches
from django.utils.cache import cc_delim_re, patch_response_headers

logger = logging.getLogger("qbuy.page_cache")


def per_visitor(request) -> str:
    """Why the response just rendered belongs to one visitor ("" when it does not)."""
    session = getattr(request, "session", None)
    if session is not None and session.accessed:
        return "session"
    if request.META.get("CSRF_COOKIE_NEEDS_UPDATE"):
        return "csrf token"
    return ""


def _storable(response) -> bool:
    if response.status_code != 200 or response.streaming or response.cookies:
        return False
    vary = {v.strip().lower() for v in cc_delim_re.split(response.get("Vary", ""))}
    return "cookie" not in vary and "*" not in vary


def shared_page(*, cache: str, timeout: int, key: Callable[..., str]):
    """Cache a GET page in ``caches[cache]`` for ``timeout`` seconds under ``key(request, ...)``."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if request.method not in ("GET", "HEAD"):
                return view(request, *args, **kwargs)
            store = caches[cache]
            cache_key = (
                f"qbuy.shared:{view.__module__}.{view.__qualname__}:{key(request, *args, **kwargs)}"
            )
            hit = store.get(cache_key)
            if hit is not None:
                return hit
            response = view(request, *args, **kwargs)

            def save(rendered):
                if request.method != "GET" or not _storable(rendered):
                    return
                reason = per_visitor(request)
                if reason:
                    logger.error(
                        "%s touched the %s: a shared page would carry one visitor's data,"
                        " so it is not cached",
                        view.__qualname__,
                        reason,
                    )
                    return
                store.set(cache_key, rendered, timeout)

            if _storable(response):
                # As @cache_page: browsers and nginx may keep it as long as this cache does.
                patch_response_headers(response, timeout)
            if callable(getattr(response, "render", None)) and not response.is_rendered:
                response.add_post_render_callback(save)
            else:
                save(response)
            return response

        return wrapped

    return decorator
