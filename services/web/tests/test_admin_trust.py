"""The admin is its own trust boundary (issue 19): an SMS code never opens it, every action
needs more than the view permission, and a buyer never learns who cancelled an order."""

import importlib
import json

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from accounts.models import User
from orders import services
from orders.models import Order
from qbuy_core import sms

from .browser import Shots, chromium, logged_in_page, session_key

STAFF_PHONE = "+14155550199"
PASSWORD = "kettle-sale-4-ever-quiet"

pytestmark = pytest.mark.django_db


def staff_with(*perms: str, **flags) -> User:
    user = User.objects.create_user(STAFF_PHONE, PASSWORD, is_staff=True, **flags)
    user.user_permissions.add(*(Permission.objects.get(codename=p) for p in perms))
    return user


def code_login(client: Client, phone: str) -> None:
    post = lambda path, data: client.post(path, json.dumps(data), content_type="application/json")  # noqa: E731
    assert post("/api/auth/code", {"phone": phone}).status_code == 202
    answer = post("/api/auth/login", {"phone": phone, "code": sms.outbox[-1]["code"]})
    assert answer.status_code == 200, answer.content


def password_login(client: Client, phone: str = STAFF_PHONE) -> None:
    answer = client.post(
        reverse("admin:login"), {"username": phone, "password": PASSWORD, "next": "/admin/"}
    )
    assert answer.status_code == 302, answer.content.decode()[:2000]


@pytest.fixture
def order(make_sale, buyer):
    sale = make_sale(stock=3)
    placed = services.order_reserve(sale_id=sale.pk, buyer_id=buyer.pk)
    return services.order_place(token=str(placed.token))


def cancel_post(client: Client, order: Order, **extra):
    return client.post(
        reverse("admin:orders_order_changelist"),
        {"action": "cancel_orders", "_selected_action": [order.pk], "index": 0, **extra},
        follow=True,
    )


# --- staff sign in with a password, always ------------------------------------------------------


@pytest.mark.parametrize("flags", [{}, {"is_superuser": True}], ids=["staff", "superuser"])
def test_an_sms_code_session_never_opens_the_admin(client, order, flags):
    staff_with("view_order", "change_order", **flags)
    code_login(client, STAFF_PHONE)
    assert client.get("/api/auth/me").json()["user"]["phone"] == STAFF_PHONE  # a buyer's session

    for url in ("/admin/", reverse("admin:orders_order_changelist")):
        answer = client.get(url)
        assert answer.status_code == 302, url
        assert answer["Location"].startswith(reverse("admin:login")), url
    cancel_post(client, order, select_across=1)
    order.refresh_from_db()
    assert order.status == "confirmed"


def test_the_password_login_opens_the_admin_after_a_code_login(client):
    staff_with("view_order")
    code_login(client, STAFF_PHONE)
    login_page = client.get(reverse("admin:login"))
    assert login_page.status_code == 200 and "password" in login_page.content.decode()

    password_login(client)

    assert client.get("/admin/").status_code == 200
    assert client.get(reverse("admin:orders_order_changelist")).status_code == 200


def test_log_out_everywhere_ends_the_admin_session_too(client):
    staff_with("view_order")
    password_login(client)
    phone = Client()
    code_login(phone, STAFF_PHONE)

    assert phone.post("/api/auth/logout-all").status_code == 204

    assert client.get("/admin/").status_code == 302


def test_staff_sessions_made_before_the_upgrade_end():
    staff = staff_with()
    buyer = User.objects.create_user("+12015550777")
    migration = importlib.import_module("accounts.migrations.0004_end_staff_code_sessions")

    migration.end_staff_sessions(apps, None)

    staff.refresh_from_db()
    buyer.refresh_from_db()
    assert (staff.session_generation, buyer.session_generation) == (1, 0)


# --- every action needs its permission ----------------------------------------------------------


def test_every_registered_action_declares_a_permission_beyond_view(rf):
    for model, model_admin in admin.site._registry.items():
        for func, name, _ in model_admin._get_base_actions():
            allowed = set(getattr(func, "allowed_permissions", ()))
            assert allowed and allowed != {"view"}, f"{model.__name__}: action {name}"


def test_staff_who_may_only_view_get_no_action_anywhere(rf):
    viewer = staff_with(*(f"view_{m._meta.model_name}" for m in admin.site._registry))
    request = rf.get("/admin/")
    request.user = viewer
    for model, model_admin in admin.site._registry.items():
        assert model_admin.has_view_permission(request), model.__name__
        assert model_admin.get_actions(request) == {}, model.__name__


def test_view_only_staff_cannot_cancel_an_order(client, order):
    staff_with("view_order")
    password_login(client)
    page = client.get(reverse("admin:orders_order_changelist")).content.decode()
    assert "cancel_orders" not in page

    cancel_post(client, order, select_across=1)

    order.refresh_from_db()
    assert (order.status, order.reason) == ("confirmed", "")


# --- buyers see a reason, not a person ----------------------------------------------------------


def test_a_cancel_tells_the_buyer_the_shop_and_keeps_the_person_in_the_history(
    client, order, buyer
):
    staff = staff_with("view_order", "change_order")
    password_login(client)

    answer = cancel_post(client, order, message="  Damaged   in transit ")

    assert [str(m) for m in answer.context["messages"]] == [
        "1 orders cancelled; 0 skipped (already failed)."
    ]
    order.refresh_from_db()
    assert (order.status, order.reason) == ("failed", "cancelled by the shop: Damaged in transit")
    entry = LogEntry.objects.get(object_id=str(order.pk))
    assert (entry.user_id, entry.action_flag) == (staff.pk, CHANGE)
    assert "Damaged in transit" in entry.get_change_message()
    # What the buyer is shown, in the API and on the page, names nobody.
    shopper = Client()
    shopper.force_login(buyer)
    api = shopper.get(f"/api/orders/{order.token}")
    assert api.json()["reason"] == "cancelled by the shop: Damaged in transit"
    for body in (api.content, shopper.get("/api/orders/").content, shopper.get("/orders/").content):
        assert STAFF_PHONE.encode() not in body and b"admin" not in body
    assert b"cancelled by the shop: Damaged in transit" in shopper.get("/orders/").content


def test_orders_cancelled_before_no_longer_name_who_cancelled(order):
    Order.objects.filter(pk=order.pk).update(status="failed", reason="cancelled: by admin +1415")
    migration = importlib.import_module("orders.migrations.0003_order_reason_for_buyers")

    migration.hide_who_cancelled(apps, None)

    order.refresh_from_db()
    assert order.reason == "cancelled by the shop"


@pytest.mark.django_db(transaction=True)
def test_a_clerk_cancels_with_a_message_in_chromium(live_server, order, buyer):
    """The actions bar as a staff member uses it at 1280 px: pick the order, the action, type the
    message, Go. The screenshots (artifacts/browser/admin-cancel/) are for a person to look at."""
    session = session_key(staff_with("view_order", "change_order"))
    shots = Shots("admin-cancel")
    with chromium() as browser, logged_in_page(browser, live_server.url, session) as page:
        page.goto(f"{live_server.url}/admin/orders/order/")
        page.locator("input.action-select").first.check()
        page.select_option("select[name=action]", "cancel_orders")
        page.get_by_label("Message to the buyer (optional):").fill("Damaged in transit")
        shots.take(page, "before")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        page.get_by_role("button", name="Go").click()
        page.wait_for_load_state()
        shots.take(page, "after")
        shown = page.locator(".messagelist").inner_text()
    assert overflow == 0
    assert "1 orders cancelled" in shown
    order.refresh_from_db()
    assert order.reason == "cancelled by the shop: Damaged in transit"
