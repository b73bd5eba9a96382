from django.conf import settings
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

from . import services, soldout
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


STRATEGIES = {"gate": services.order_reserve, "db-lock": services.order_lock_and_confirm}


@api_view("POST")
def buy(request, pk: int):
    data = json_body_optional(request)
    quantity = data.get("quantity", 1)
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
        raise ApiError(400, "invalid_quantity", detail="quantity must be a positive integer")
    # Answered from memory, before the session and the user are read (orders/soldout.py).
    gate = settings.BUY_STRATEGY == "gate"
    if gate and soldout.known(pk) and settings.SESSION_COOKIE_NAME in request.COOKIES:
        raise ApiError(409, "sold_out")
    require_user(request)
    try:
        order = STRATEGIES[settings.BUY_STRATEGY](
            sale_id=pk, buyer_id=request.user.pk, quantity=quantity
        )
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
