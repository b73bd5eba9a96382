"""django.contrib.admin with qbuy's admin site (accounts.admin_site). Its own module: INSTALLED_APPS
imports it before the models exist, and the site's module needs them."""

from django.contrib.admin.apps import AdminConfig


class StaffAdminConfig(AdminConfig):
    default_site = "accounts.admin_site.StaffAdminSite"
