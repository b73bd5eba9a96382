"""/api/auth/: a CSRF token, an SMS code, log in and out, who am I."""

from typing import Annotated

from django.conf import settings
from django.contrib.auth import login, logout
from django.http import HttpResponse
from django.middleware.csrf import get_token
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie
from ninja import Router, Status
from ninja.decorators import decorate_view

from common.api_errors import (
    JSON_BODY,
    MISSING_FIELDS,
    NOT_AUTHENTICATED,
    RATE_LIMITED,
    WRONG_TYPE,
    ApiError,
    Refusal,
    answers,
    retry_later,
)
from common.json_body import JsonBody
from common.session_auth import session_user
from qbuy_core.sms import SmsDeliveryError

from . import services, user_cache
from .backends import SMS_CODE_BACKEND
from .phone import accepted
from .schemas import CodeSentOut, CsrfOut, LoginIn, PhoneIn, UserAnswer
from .sessions import user_logout_everywhere
from .views import INVALID_CODE, client_ip

router = Router(tags=["auth"])

INVALID_PHONE = Refusal(400, "invalid_phone", "not a mobile number of an allowed country")
SMS_UNAVAILABLE = Refusal(503, "sms_unavailable", "the SMS provider failed: retry later", True)


def user_payload(user) -> dict:
    return {"id": user.pk, "phone": user.phone}


@router.get("/csrf", operation_id="auth_csrf", url_name="csrf", **answers({200: CsrfOut}))
@decorate_view(never_cache, ensure_csrf_cookie)
def csrf(request):
    """Sets the csrftoken cookie and returns its token: every POST needs it in X-CSRFToken."""
    return {"csrf_token": get_token(request)}


@router.post(
    "/code",
    operation_id="auth_code",
    url_name="code",
    **answers(
        {202: CodeSentOut},
        *JSON_BODY,
        MISSING_FIELDS,
        WRONG_TYPE,
        INVALID_PHONE,
        RATE_LIMITED,
        SMS_UNAVAILABLE,
        unsafe=True,
    ),
)
def request_code(request, payload: Annotated[PhoneIn, JsonBody()]):
    """Sends a 6-digit code by SMS to the phone (limited per phone, address and prefix)."""
    try:
        services.sms_code_request(
            phone=payload.phone, ip=client_ip(request), path=request.path, sender=request_code
        )
    except services.InvalidPhone:
        raise ApiError(400, "invalid_phone", detail=f"use {accepted()}") from None
    except services.RateLimited as limited:
        return retry_later(429, "rate_limited", limited.retry_after)
    except SmsDeliveryError:
        # The provider failed (qbuy_core.sms): the client's fault is nothing, so 503, not 500.
        return retry_later(503, "sms_unavailable", settings.SMS_UNAVAILABLE_RETRY_AFTER)
    return Status(202, {"sent": True, "expires_in": settings.SMS_CODE_TTL})


@router.post(
    "/login",
    operation_id="auth_login",
    url_name="login",
    **answers(
        {200: UserAnswer},
        *JSON_BODY,
        MISSING_FIELDS,
        WRONG_TYPE,
        INVALID_PHONE,
        Refusal(400, "invalid_code", "wrong, expired, used or never sent: one answer"),
        RATE_LIMITED,
        unsafe=True,
    ),
)
def api_login(request, payload: Annotated[LoginIn, JsonBody()]):
    """Logs in with the code (a new user for a new phone) and sets the session cookie."""
    try:
        user = services.sms_code_login(
            phone=payload.phone, code=payload.code, ip=client_ip(request)
        )
    except services.InvalidPhone:
        raise ApiError(400, "invalid_phone", detail=f"use {accepted()}") from None
    except services.InvalidCode:
        raise ApiError(400, "invalid_code", detail=INVALID_CODE) from None
    except services.RateLimited as limited:
        return retry_later(429, "rate_limited", limited.retry_after)
    login(request, user, backend=SMS_CODE_BACKEND)
    user_cache.load(user.pk)  # a buyer's next requests find the user in Redis
    return {"user": user_payload(user)}


@router.post(
    "/logout", operation_id="auth_logout", url_name="logout", **answers({204: None}, unsafe=True)
)
def api_logout(request):
    """Ends this session (204 when there was none). A 503 leaves the session valid."""
    logout(request)
    return HttpResponse(status=204)


@router.post(
    "/logout-all",
    operation_id="auth_logout_all",
    url_name="logout-all",
    auth=session_user,
    **answers({204: None}, NOT_AUTHENTICATED, unsafe=True),
)
def api_logout_all(request):
    """Every session of the user ends, on every device, this one included."""
    user_logout_everywhere(user=request.user)
    logout(request)
    return HttpResponse(status=204)


@router.get(
    "/me",
    operation_id="auth_me",
    url_name="me",
    auth=session_user,
    **answers({200: UserAnswer}, NOT_AUTHENTICATED),
)
@decorate_view(never_cache)
def me(request):
    return {"user": user_payload(request.user)}
