"""/api/sales/{id}/room: the sale's waiting room (waitingroom/services.py)."""

from django.views.decorators.cache import cache_control
from ninja import Router, Status
from ninja.decorators import decorate_view

from accounts.ratelimit import RateLimited
from accounts.views import client_ip
from common.api_errors import (
    NOT_AUTHENTICATED,
    RATE_LIMITED,
    ApiError,
    Refusal,
    answers,
    retry_later,
)
from common.session_auth import session_user

from . import services
from .schemas import PlaceOut, RoomOut

router = Router(tags=["waiting room"])

NOT_FOUND = Refusal(404, "not_found", "no such sale")
NO_ROOM = Refusal(404, "no_waiting_room", "the sale has no waiting room: buy as usual")


def _visit(call, *args, **kwargs):
    try:
        return call(*args, **kwargs)
    except services.NotFound:
        raise ApiError(404, "not_found") from None
    except services.NoRoom:
        raise ApiError(404, "no_waiting_room") from None


def _at(ms: int) -> str:
    return services.moment(ms).isoformat()


def _place_payload(found: services.Place) -> dict:
    visit = found.visit
    drawn = visit.now_ms >= visit.draw_ms and visit.rank >= 0
    payload = {
        "state": visit.state,
        "place": visit.rank + 1 if drawn else None,
        "place_key": visit.key if visit.key >= 0 else None,
        "ahead": max(0, visit.rank - visit.head) if drawn and visit.state == "waiting" else None,
        "wait_seconds": services.wait_seconds(visit),
        "draws_at": _at(visit.draw_ms),
        "server_time": _at(visit.now_ms),
    }
    if found.pass_:
        payload["pass"] = found.pass_
        payload["pass_expires_at"] = _at(visit.deadline_ms)
    return payload


@router.get(
    "/sales/{int:pk}/room",
    operation_id="room_detail",
    url_name="room",
    **answers({200: RoomOut}, NOT_FOUND, NO_ROOM),
)
@decorate_view(cache_control(public=True, max_age=1))
def room_detail(request, pk: int):
    """The room as everyone sees it, for a second (no session read: the edge may cache it)."""
    visit = _visit(services.room, pk)
    return {
        "sale": pk,
        "state": services.room_state(visit),
        "opens_at": _at(visit.opens_ms),
        "draws_at": _at(visit.draw_ms),
        "ends_at": _at(visit.ends_ms),
        "admitted": visit.head,
        "admitted_key": visit.head_key if visit.head_key >= 0 else None,
        "waiting": visit.waiting,
        "rate": visit.rate,
        "stock_left": max(0, visit.stock),
        "server_time": _at(visit.now_ms),
    }


@router.post(
    "/sales/{int:pk}/room",
    operation_id="room_join",
    url_name="room-join",
    auth=session_user,
    by_alias=True,
    exclude_none=True,
    **answers(
        {200: PlaceOut, 201: PlaceOut},
        NOT_AUTHENTICATED,
        Refusal(403, "room_not_open", "the room opens at `detail`"),
        NOT_FOUND,
        NO_ROOM,
        RATE_LIMITED,
        unsafe=True,
        links={"Place": {"operationId": "room_place", "parameters": {"pk": "$request.path.pk"}}},
    ),
)
def room_join(request, pk: int):
    """Takes a place in the room, one per account: 201 with it, or 200 with the place taken
    before (joining again never moves it)."""
    try:
        found = _visit(services.join, sale_id=pk, buyer_id=request.user.pk, ip=client_ip(request))
    except RateLimited as limited:
        return retry_later(429, "rate_limited", limited.retry_after)
    except services.NotOpen as closed:
        raise ApiError(403, "room_not_open", detail=_at(closed.opens_ms)) from None
    return Status(201 if found.visit.joined else 200, _place_payload(found))


@router.get(
    "/sales/{int:pk}/room/me",
    operation_id="room_place",
    url_name="room-place",
    auth=session_user,
    by_alias=True,
    exclude_none=True,
    **answers({200: PlaceOut}, NOT_AUTHENTICATED, NOT_FOUND, NO_ROOM),
)
def room_place(request, pk: int):
    """The buyer's place, and the pass to buy with once admitted."""
    return _place_payload(_visit(services.place, sale_id=pk, buyer_id=request.user.pk))
