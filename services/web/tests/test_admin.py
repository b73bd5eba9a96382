import pytest
from django.urls import reverse

from accounts.models import User
from orders.models import Order, OrderDeletion

MODELS = [
    ("accounts", "user"),
    ("sales", "product"),
    ("sales", "sale"),
    ("orders", "order"),
    ("orders", "orderdeletion"),
]


@pytest.fixture
def admin_client(client, db):
    client.force_login(User.objects.create_superuser("+12015559999", "pw"))
    return client


@pytest.fixture
def some_rows(make_sale, buyer):
    """One row of each model, so the changelists render real rows."""
    sale = make_sale(name="Admin Kettle")
    order = Order.objects.create(sale=sale, buyer=buyer)
    other = Order.objects.create(sale=make_sale(name="Gone"), buyer=buyer)
    other.delete()  # leaves an OrderDeletion row
    return {"sale": sale, "order": order, "deletion": OrderDeletion.objects.get()}


@pytest.mark.parametrize(("app", "model"), MODELS)
def test_changelist(admin_client, some_rows, app, model):
    response = admin_client.get(reverse(f"admin:{app}_{model}_changelist"))
    assert response.status_code == 200
    assert response.context["cl"].result_count >= 1


def test_changelists_show_the_rows(admin_client, some_rows):
    html = admin_client.get(reverse("admin:sales_sale_changelist")).content.decode()
    assert "Admin Kettle" in html
    html = admin_client.get(reverse("admin:orders_order_changelist")).content.decode()
    assert str(some_rows["order"].token) in html
    html = admin_client.get(reverse("admin:orders_orderdeletion_changelist")).content.decode()
    assert str(some_rows["deletion"].token) in html


@pytest.mark.parametrize(("app", "model"), MODELS[:4])
def test_add_page(admin_client, app, model):
    response = admin_client.get(reverse(f"admin:{app}_{model}_add"))
    assert response.status_code == 200
    assert "<form" in response.content.decode()


def test_order_deletion_audit_cannot_be_added_or_changed(admin_client, some_rows):
    # The audit trail is written by the pre_delete receiver only.
    assert admin_client.get(reverse("admin:orders_orderdeletion_add")).status_code == 403
    deletion = some_rows["deletion"]
    url = reverse("admin:orders_orderdeletion_change", args=[deletion.pk])
    assert admin_client.get(url).status_code == 200  # viewable, read-only
    assert admin_client.post(url, {"buyer_phone": "+10000000000"}).status_code == 403
    deletion.refresh_from_db()
    assert deletion.buyer_phone == "+12015550001"


def test_change_pages(admin_client, some_rows):
    for name, model in (("sale", "sales_sale"), ("order", "orders_order")):
        obj = some_rows[name]
        response = admin_client.get(reverse(f"admin:{model}_change", args=[obj.pk]))
        assert response.status_code == 200


def test_add_sale_sets_remaining_to_stock(admin_client, some_rows):
    product = some_rows["sale"].product
    response = admin_client.post(
        reverse("admin:sales_sale_add"),
        {
            "name": "Admin-made",
            "product": product.pk,
            "starts_at_0": "2030-01-01",
            "starts_at_1": "10:00:00",
            "ends_at_0": "2030-01-01",
            "ends_at_1": "11:00:00",
            "stock": "9",
            "per_buyer_limit": "1",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    sale = product.sales.get(name="Admin-made")
    assert sale.remaining == sale.stock == 9


@pytest.mark.parametrize(("app", "model"), MODELS)
def test_anonymous_is_sent_to_login(client, db, app, model):
    url = reverse(f"admin:{app}_{model}_changelist")
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    assert f"next={url}" in response["Location"]


def test_buyer_without_staff_is_sent_to_login(client, buyer):
    client.force_login(buyer)
    response = client.get(reverse("admin:sales_sale_changelist"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
