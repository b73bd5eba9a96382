"""The admin site: staff sign in with their password, always (SECURITY.md, "The admin").

A session made by the SMS code login (accounts.backends) never opens the admin, whatever the
account's flags: the admin sends it to its own login form, where the staff member's password
makes a new session. "Log out everywhere" ends both kinds (the session auth hash).
"""

from django.contrib import admin
from django.contrib.auth import BACKEND_SESSION_KEY

from .admin_login import ThrottledAdminLoginForm
from .backends import PASSWORD_BACKEND


class StaffAdminSite(admin.AdminSite):
    login_form = ThrottledAdminLoginForm  # throttled per address and per account

    def has_permission(self, request):
        return (
            super().has_permission(request)
            and request.session.get(BACKEND_SESSION_KEY) == PASSWORD_BACKEND
        )
