from django.contrib import admin
from django.urls import path, re_path

from accounts import views as accounts_views
from common import health, http
from config import api
from orders import views as orders_views
from sales import views as sales_views

handler400 = "common.http.bad_request"
handler404 = "common.http.not_found"
handler500 = "common.http.server_error"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("login/", accounts_views.login_page, name="login"),
    path("account/", accounts_views.account_page, name="account"),
    path("sales/", sales_views.sale_list, name="sale-list"),
    path("sales/<int:pk>/", sales_views.sale_detail, name="sale-detail"),
    path("orders/", orders_views.order_list, name="order-list-page"),
    # The JSON API, /api/docs and /api/openapi.json (config/api.py).
    path("api/", api.urls()),
    # Last: whatever else is under /api/ is a JSON 404, with DEBUG too, and never redirected.
    re_path(r"^api(?:/|$)", http.api_not_found, name="api-not-found"),
]
