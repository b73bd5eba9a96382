from django.conf import settings
from django.core.paginator import EmptyPage
from django.http import Http404, HttpResponseGone, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.views.decorators.cache import cache_page
from django.views.decorators.http import require_safe

from common.http import ApiError, api_view, page_number, page_payload

from . import selectors
from .models import Sale


@require_safe
@cache_page(timeout=settings.SALE_LIST_CACHE_TIMEOUT, cache="list", key_prefix="page")
def sale_list(request):
    try:
        number = int(request.GET.get("page", "1"))
        page = selectors.sale_page(number=number)
    except (ValueError, EmptyPage):
        raise Http404("No such page") from None
    return TemplateResponse(request, "sales/sale_list.html", {"page": page})


@require_safe
def sale_detail(request, pk: int):
    sale = get_object_or_404(Sale.objects.select_related("product"), pk=pk)
    if sale.state() == "ended":
        return HttpResponseGone(render_to_string("sales/sale_ended.html", {"sale": sale}))
    return TemplateResponse(request, "sales/sale_detail.html", {"sale": sale})


@api_view("GET")
def api_sale_list(request):
    try:
        page = selectors.sale_page(number=page_number(request))
    except EmptyPage:
        raise ApiError(404, "no_such_page") from None
    return JsonResponse(
        {"results": [selectors.sale_payload(s) for s in page], "page": page_payload(page)}
    )


@api_view("GET")
def api_sale_detail(request, pk: int):
    sale = Sale.objects.select_related("product").filter(pk=pk).first()
    if sale is None:
        raise ApiError(404, "not_found")
    return JsonResponse(selectors.sale_payload(sale))
