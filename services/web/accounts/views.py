from django.conf import settings
from django.contrib.auth import login, logout
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.middleware.csrf import get_token
from django.template.response import TemplateResponse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie

from common.http import ApiError, api_view, json_body, require_user
from qbuy_core.sms import SmsDeliveryError

from . import services
from .forms import CodeForm, PhoneForm
from .phone import accepted
from .sessions import user_logout_everywhere

# Wrong, expired, used or never sent: one answer (accounts.services.InvalidCode says why).
INVALID_CODE = "wrong or expired code: check it, or request a new one"


def client_ip(request) -> str:
    return request.META.get(settings.CLIENT_IP_META) or request.META.get("REMOTE_ADDR", "")


def user_payload(user) -> dict:
    return {"id": user.pk, "phone": user.phone}


@never_cache
@ensure_csrf_cookie
@api_view("GET")
def csrf(request):
    return JsonResponse({"csrf_token": get_token(request)})


@api_view("POST")
def request_code(request):
    data = json_body(request, "phone")
    try:
        services.sms_code_request(
            phone=data["phone"], ip=client_ip(request), path=request.path, sender=request_code
        )
    except services.InvalidPhone:
        raise ApiError(400, "invalid_phone", detail=f"use {accepted()}") from None
    except services.RateLimited as limited:
        return rate_limited(limited.retry_after)
    except SmsDeliveryError:
        return sms_unavailable()
    return JsonResponse({"sent": True, "expires_in": settings.SMS_CODE_TTL}, status=202)


def rate_limited(retry_after: int) -> JsonResponse:
    response = JsonResponse({"error": "rate_limited", "retry_after": retry_after}, status=429)
    response["Retry-After"] = str(retry_after)
    return response


def sms_unavailable() -> JsonResponse:
    """The provider failed (qbuy_core.sms): the client's fault is nothing, so 503, not 500."""
    retry_after = settings.SMS_UNAVAILABLE_RETRY_AFTER
    response = JsonResponse({"error": "sms_unavailable", "retry_after": retry_after}, status=503)
    response["Retry-After"] = str(retry_after)
    return response


@api_view("POST")
def api_login(request):
    data = json_body(request, "phone", "code")
    try:
        user = services.sms_code_login(
            phone=data["phone"], code=data["code"], ip=client_ip(request)
        )
    except services.InvalidPhone:
        raise ApiError(400, "invalid_phone", detail=f"use {accepted()}") from None
    except services.InvalidCode:
        raise ApiError(400, "invalid_code", detail=INVALID_CODE) from None
    except services.RateLimited as limited:
        return rate_limited(limited.retry_after)
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return JsonResponse({"user": user_payload(user)})


@api_view("POST")
def api_logout(request):
    logout(request)
    return HttpResponse(status=204)


@api_view("POST")
def api_logout_all(request):
    """Every session of the user ends, on every device, this one included."""
    require_user(request)
    user_logout_everywhere(user=request.user)
    logout(request)
    return HttpResponse(status=204)


@never_cache
@api_view("GET")
def me(request):
    require_user(request)
    return JsonResponse({"user": user_payload(request.user)})


def login_page(request):
    """Two steps on one page: send a code, then type it; redirect to ``next`` when right."""
    next_url = request.POST.get("next") or request.GET.get("next") or "/sales/"
    if not url_has_allowed_host_and_scheme(next_url, {request.get_host()}, request.is_secure()):
        next_url = "/sales/"
    phone_form, code_form = PhoneForm(), None
    if request.method == "POST" and request.POST.get("step") == "code":
        code_form = CodeForm(request.POST)
        if code_form.is_valid():
            try:
                user = services.sms_code_login(**code_form.cleaned_data, ip=client_ip(request))
            except (services.InvalidCode, services.InvalidPhone):
                code_form.add_error("code", INVALID_CODE.capitalize() + ".")
            except services.RateLimited as limited:
                code_form.add_error(
                    "code", f"Too many tries: try again in {limited.retry_after} s."
                )
            else:
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                return HttpResponseRedirect(next_url)
    elif request.method == "POST":
        phone_form = PhoneForm(request.POST)
        if phone_form.is_valid():
            try:
                phone = services.sms_code_request(
                    phone=phone_form.cleaned_data["phone"],
                    ip=client_ip(request),
                    path=request.path,
                    sender=login_page,
                )
            except services.RateLimited as limited:
                phone_form.add_error(
                    "phone", f"Too many codes: try again in {limited.retry_after} s."
                )
            except SmsDeliveryError:
                phone_form.add_error(
                    "phone",
                    "We could not send the SMS just now: try again in"
                    f" {settings.SMS_UNAVAILABLE_RETRY_AFTER} s.",
                )
            else:
                code_form = CodeForm(initial={"phone": phone})
    elif request.method != "GET":
        return HttpResponse(status=405, headers={"Allow": "GET, POST"})
    context = {"phone_form": phone_form, "code_form": code_form, "next": next_url}
    return TemplateResponse(request, "accounts/login.html", context)


@never_cache
@login_required
def account_page(request):
    """The user's own page (never cached): the phone, log out, and log out everywhere."""
    if request.method == "POST":
        action = request.POST.get("action")
        if action not in ("logout", "logout-all"):
            context = {"error": "Unknown action: use one of the buttons below."}
            return TemplateResponse(request, "accounts/account.html", context, status=400)
        if action == "logout-all":
            user_logout_everywhere(user=request.user)
        logout(request)
        return HttpResponseRedirect("/login/")
    if request.method != "GET":
        return HttpResponse(status=405, headers={"Allow": "GET, POST"})
    return TemplateResponse(request, "accounts/account.html", {})
