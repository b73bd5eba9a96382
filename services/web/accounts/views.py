from django.conf import settings
from django.contrib.auth import login, logout
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache

from qbuy_core.sms import SmsDeliveryError

from . import services, user_cache
from .backends import SMS_CODE_BACKEND
from .forms import CodeForm, PhoneForm
from .sessions import user_logout_everywhere

# Wrong, expired, used or never sent: one answer (accounts.services.InvalidCode says why).
INVALID_CODE = "wrong or expired code: check it, or request a new one"


def client_ip(request) -> str:
    return request.META.get(settings.CLIENT_IP_META) or request.META.get("REMOTE_ADDR", "")


def safe_next(request, default: str = "/sales/") -> str:
    """``next`` (POST, then GET) when it is a path on this site, else ``default``: never another
    host (//evil.example, https://evil.example, /\\evil.example) nor a relative or scheme URL."""
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if (
        next_url.startswith("/")
        and not next_url.startswith("//")
        and url_has_allowed_host_and_scheme(next_url, {request.get_host()}, request.is_secure())
    ):
        return next_url
    return default


def login_page(request):
    """Two steps on one page: send a code, then type it; redirect to ``next`` when right."""
    next_url = safe_next(request)
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
                login(request, user, backend=SMS_CODE_BACKEND)
                user_cache.load(user.pk)  # a buyer's next requests find the user in Redis
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
        # Back to the page the header's button was pressed on (a cached page is the same for
        # everyone, so it is fine to see logged out), else the login page.
        return HttpResponseRedirect(safe_next(request, default="/login/"))
    if request.method != "GET":
        return HttpResponse(status=405, headers={"Allow": "GET, POST"})
    return TemplateResponse(request, "accounts/account.html", {})
