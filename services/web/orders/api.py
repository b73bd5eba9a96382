"""The buy endpoint and a buyer's orders."""

from typing import Annotated
from uuid import UUID

from django.conf import settings
from django.core.paginator import EmptyPage
from ninja import Query, Router, Status
from waitingroom import passes

from common.api_errors import (
    BAD_CONTENT_LENGTH,
    BODY_TOO_LARGE,
    INVALID_JSON,
    INVALID_PAGE,
    NO_SUCH_PAGE,
    NOT_AUTHENTICATED,
    UNSUPPORTED_MEDIA_TYPE,
    ApiError,
    Refusal,
    answers,
)
from common.json_body import JsonBody
from common.pagination import page_payload
from common.session_auth import session_user
from qbuy_core import logcontext

from . import metrics, selectors, services, soldout
from .models import Order
from .schemas import BuyAccepted, BuyIn, OrderOut, OrderPageOut

router = Router(tags=["orders"])

REFUSALS = {
    "not_found": 404,
    "sold_out": 409,
    "already_bought": 409,
    "over_limit": 400,
    "not_started": 403,
    "not_admitted": 403,
    "ended": 410,  # Gone, as the sale page answers
}
DEFAULT_BUY = BuyIn()  # no body at all: one item
STRATEGIES = {"gate": services.order_reserve, "db-lock": services.order_lock_and_confirm}


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


@router.post(
    "/sales/{int:pk}/buy",
    operation_id="sales_buy",
    url_name="buy",
    tags=["sales"],
    **answers(
        {202: BuyAccepted},
        INVALID_JSON,
        BAD_CONTENT_LENGTH,
        BODY_TOO_LARGE,
        UNSUPPORTED_MEDIA_TYPE,
        Refusal(400, "invalid_quantity", "quantity is not a positive integer"),
        Refusal(400, "over_limit", "quantity over the sale's per_buyer_limit"),
        NOT_AUTHENTICATED,
        Refusal(403, "not_started", "the sale has not opened yet"),
        Refusal(
            403,
            "not_admitted",
            "the sale has a waiting room: no pass, or one that is not this buyer's for this"
            " sale, expired or spent",
        ),
        Refusal(404, "not_found", "no such sale"),
        Refusal(409, "sold_out", "no stock left"),
        Refusal(409, "already_bought", "this buyer already has an order for the sale"),
        Refusal(410, "ended", "the sale is over"),
        unsafe=True,
        # Not auth=session_user, which reads the session first: the sold-out memo answers
        # before that. The document still says the operation needs the session.
        extra={"security": [{"SessionAuth": []}]},
        links={
            "Order": {
                "operationId": "orders_detail",
                "parameters": {"token": "$response.body#/order"},
            }
        },
    ),
)
def buy(request, pk: int, payload: Annotated[BuyIn, JsonBody()] = DEFAULT_BUY):
    """Reserves the quantity (default 1): 202 with the order to poll, or a refusal."""
    # Answered from memory, before the session and the user are read (orders/soldout.py); the
    # mark tells orders.soldout_edge that this answer is the one it may give before Django.
    gate = settings.BUY_STRATEGY == "gate"
    if gate and soldout.known(pk) and settings.SESSION_COOKIE_NAME in request.COOKIES:
        request.META[soldout.MEMO_ANSWER] = True
        request.META[metrics.OUTCOME] = "sold_out"
        raise ApiError(409, "sold_out")
    # On every line logged from here to the answer, a session that could not be read included.
    logcontext.bind(sale_id=pk)
    if not request.user.is_authenticated:
        raise ApiError(401, "not_authenticated")
    issued = -1
    if payload.pass_ is not None:
        try:
            issued = passes.check(payload.pass_, sale_id=pk, buyer_id=request.user.pk).issued_ms
        except passes.InvalidPass as invalid:
            request.META[metrics.OUTCOME] = "not_admitted"
            raise ApiError(403, "not_admitted", detail=str(invalid)) from None
    try:
        order = STRATEGIES[settings.BUY_STRATEGY](
            sale_id=pk, buyer_id=request.user.pk, quantity=payload.quantity, pass_issued_ms=issued
        )
    except services.BuyRefused as refused:
        request.META[metrics.OUTCOME] = refused.outcome
        raise ApiError(REFUSALS[refused.outcome], refused.outcome) from None
    return Status(202, {"order": order.token, "status": order.status})


@router.get(
    "/orders/",
    operation_id="orders_list",
    url_name="order-list",
    auth=session_user,
    exclude_unset=True,
    **answers(
        {200: OrderPageOut},
        INVALID_PAGE,
        Refusal(400, "invalid_sale", "sale is not a positive integer"),
        NOT_AUTHENTICATED,
        NO_SUCH_PAGE,
        links={
            "Order": {
                "operationId": "orders_detail",
                "parameters": {"token": "$response.body#/results/0/order"},
            }
        },
    ),
)
def order_list(request, page: int = Query(1, ge=1), sale: int | None = Query(None, ge=1)):
    """The buyer's orders, newest first, 20 a page; ``sale``: only those of that sale."""
    try:
        orders_page = selectors.buyer_order_page(buyer=request.user, number=page, sale_id=sale)
    except EmptyPage:
        raise ApiError(404, "no_such_page") from None
    return {"results": [order_payload(o) for o in orders_page], "page": page_payload(orders_page)}


@router.get(
    "/orders/{uuid:token}",
    operation_id="orders_detail",
    url_name="order-detail",
    auth=session_user,
    exclude_unset=True,
    **answers({200: OrderOut}, NOT_AUTHENTICATED, Refusal(404, "not_found", "no such order")),
)
def order_detail(request, token: UUID):
    """One order of the buyer's; someone else's is as invisible as a missing one (404)."""
    order = Order.objects.filter(token=token, buyer=request.user).first()
    if order is None:
        raise ApiError(404, "not_found")
    return order_payload(order)
