from django.core.paginator import EmptyPage, Paginator
from django.http import JsonResponse

from common.http import (
    ApiError,
    api_view,
    json_body_optional,
    page_number,
    page_payload,
    require_user,
)

from . import services
from .models import Order

REFUSALS = {
    "not_found": 404,
    "sold_out": 409,
    "already_bought": 409,
    "over_limit": 400,
    "not_started": 403,
    "ended": 410,  # Gone, as the sale page answers
}


def order_payload(order: Order) -> dict:
    payload = {
        "order": str(order.token),
        "sale": order.sale_id,
        "quantity": order.quantity,
        "status": order.status,
        "created_at": order.created_at.isoformat(),
    }
    if order.reason:
        payload["reason"] = order.reason
    return payload


@api_view("POST")
def buy(request, pk: int):
    require_user(request)
    data = json_body_optional(request)
    quantity = data.get("quantity", 1)
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
        raise ApiError(400, "invalid_quantity", detail="quantity must be a positive integer")
    try:
        order = services.order_reserve(sale_id=pk, buyer_id=request.user.pk, quantity=quantity)
    except services.BuyRefused as refused:
        raise ApiError(REFUSALS[refused.outcome], refused.outcome) from None
    return JsonResponse({"order": str(order.token), "status": order.status}, status=202)


@api_view("GET")
def order_detail(request, token):
    require_user(request)
    order = Order.objects.filter(token=token, buyer=request.user).first()
    if order is None:  # someone else's order is as invisible as a missing one
        raise ApiError(404, "not_found")
    return JsonResponse(order_payload(order))


@api_view("GET")
def order_list(request):
    require_user(request)
    orders = Order.objects.filter(buyer=request.user).order_by("-created_at", "-pk")
    try:
        page = Paginator(orders, 20).page(page_number(request))
    except EmptyPage:
        raise ApiError(404, "no_such_page") from None
    return JsonResponse({"results": [order_payload(o) for o in page], "page": page_payload(page)})
