"""How a session was made, kept in the session by Django itself (``BACKEND_SESSION_KEY``).

An SMS code proves that someone holds a phone, which is enough to buy but not to run the shop:
a SIM swap, an intercepted SMS or the daily guess budget would otherwise be an admin login.
Sessions made by the code login carry ``SmsCodeBackend``; the admin's password login carries
Django's ``ModelBackend``, and the admin site (accounts.admin_site) accepts only those.
"""

from django.contrib.auth.backends import BaseBackend

from . import user_cache

SMS_CODE_BACKEND = "accounts.backends.SmsCodeBackend"
PASSWORD_BACKEND = "django.contrib.auth.backends.ModelBackend"  # noqa: S105 - a class path


class SmsCodeBackend(BaseBackend):
    """Marks the sessions of the SMS code login and loads their user, from the user cache
    (accounts.user_cache); it authenticates nothing itself (accounts.services.sms_code_login
    checks the code) and grants no permission."""

    def get_user(self, user_id):
        return user_cache.load(user_id)
