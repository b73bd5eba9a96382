from functools import cache, wraps

from django.conf import settings
from django.core.paginator import EmptyPage
from django.http import Http404, HttpResponsePermanentRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.cache import cache_page
from django.views.decorators.http import require_safe

from . import selectors
from .models import Sale


def _list_url(number: int) -> str:
    """The one URL of a list page: /sales/ for the first, /sales/?page=N for the others."""
    return _list_path() + (f"?page={number}" if number > 1 else "")


@cache
def _list_path() -> str:
    # Asked on every list request, and the URLconf does not change while a process runs.
    return reverse("sale-list")


def _list_page_number(request) -> int:
    try:
        number = int(request.GET.get("page", "1"))
    except ValueError:
        raise Http404("No such page") from None
    if number < 1:
        raise Http404("No such page")
    return number


def canonical_list_query(view):
    """301 any other spelling of a list page (?page=01, ?page=1, ?utm=..., a repeated page) to
    its one URL, before @cache_page: that keys on the full URL, so only the one URL of each real
    page reaches it (404s are not stored) and its entries are bounded by the real pages."""

    @wraps(view)
    def wrapped(request):
        if not request.META.get("QUERY_STRING") and request.path == _list_path():
            return view(request, number=1)  # the first page's one URL: nothing to parse
        number = _list_page_number(request)
        if request.get_full_path() != _list_url(number):
            return HttpResponsePermanentRedirect(_list_url(number))
        return view(request, number=number)

    return wrapped


# One copy for every visitor: @cache_page stores the page before SessionMiddleware adds
# Vary: Cookie, so the template must not read the user or the session (@vary_on_cookie would
# give every logged-in buyer an entry of their own, no hits during a sale).
# sales/tests/test_views.py renders it for a logged-in buyer and fails if the session was read.
@require_safe
@canonical_list_query
@cache_page(timeout=settings.SALE_LIST_CACHE_TIMEOUT, cache="list", key_prefix="page")
def sale_list(request, *, number: int):
    try:
        page = selectors.sale_page(number=number)
    except EmptyPage:
        raise Http404("No such page") from None
    return TemplateResponse(request, "sales/sale_list.html", {"page": page})


@require_safe
def sale_detail(request, pk: int):
    # <int:pk> also matches /sales/01/: one URL per sale, the one the page cache stores and
    # invalidation drops (qbuy_core.page_cache.is_canonical).
    if request.path != reverse("sale-detail", args=[pk]):
        return HttpResponsePermanentRedirect(reverse("sale-detail", args=[pk]))
    sale = get_object_or_404(Sale.objects.select_related("product"), pk=pk)
    if sale.state() == "ended":
        return TemplateResponse(request, "sales/sale_ended.html", {"sale": sale}, status=410)
    return TemplateResponse(request, "sales/sale_detail.html", {"sale": sale})
