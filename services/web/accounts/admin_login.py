"""The admin's password login, throttled with the shared limiter (accounts.ratelimit).

Failures are counted per address and per account (the phone typed in); once either budget is
spent, the form refuses before the password is even checked (a right password while refused
would otherwise tell a guesser it was right), with an error saying when to retry. A success
spends nothing. Per account means someone can keep a staff member out for a window by failing
on their phone number: the allowlist at the edge (NGINX_ADMIN_ALLOW, the qbuy-admin Ingress)
is what keeps strangers from reaching this form at all.
"""

import contextlib

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError

from .ratelimit import Limit, RateLimited
from .views import client_ip


class ThrottledAdminLoginForm(AdminAuthenticationForm):
    def clean(self):
        window = settings.ADMIN_LOGIN_WINDOW
        limits = [
            (Limit("admin-ip", settings.ADMIN_LOGIN_IP_FAILURES, window), client_ip(self.request)),
            (
                Limit("admin-account", settings.ADMIN_LOGIN_ACCOUNT_FAILURES, window),
                # As typed: only the stored spelling can ever log in, so every guess that
                # could succeed lands in this one bucket.
                (self.cleaned_data.get("username") or "")[:64],
            ),
        ]
        try:
            for limit, ident in limits:
                limit.check(ident)
        except RateLimited as limited:
            raise ValidationError(
                "Too many failed logins: try again in %(seconds)d s.",
                code="throttled",
                params={"seconds": limited.retry_after},
            ) from None
        try:
            return super().clean()
        except ValidationError:
            for limit, ident in limits:
                # Beyond the budget (a race past the check): the next attempt is refused anyway.
                with contextlib.suppress(RateLimited):
                    limit.hit(ident)
            raise
