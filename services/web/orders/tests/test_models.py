import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse

from accounts.models import User
from orders.models import Order, OrderDeletion


@pytest.fixture
def sale(make_sale):
    return make_sale(stock=5)


@pytest.fixture
def admin_client(client, db):
    client.force_login(User.objects.create_superuser("+12015559999", "pw"))
    return client


def test_one_order_per_buyer_per_sale(sale, buyer):
    Order.objects.create(sale=sale, buyer=buyer)
    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.create(sale=sale, buyer=buyer)
    assert Order.objects.filter(sale=sale, buyer=buyer).count() == 1


def test_same_buyer_may_order_from_another_sale(sale, buyer, make_sale):
    Order.objects.create(sale=sale, buyer=buyer)
    Order.objects.create(sale=make_sale(name="Other"), buyer=buyer)
    assert buyer.orders.count() == 2


def test_quantity_must_be_at_least_one(sale, buyer):
    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.create(sale=sale, buyer=buyer, quantity=0)
    assert not Order.objects.exists()
    assert Order.objects.create(sale=sale, buyer=buyer, quantity=1).quantity == 1


def test_order_gets_a_unique_token(sale, buyer, make_sale):
    first = Order.objects.create(sale=sale, buyer=buyer)
    second = Order.objects.create(sale=make_sale(name="Other"), buyer=buyer)
    assert first.token != second.token
    assert first.status == Order.Status.PENDING


def _assert_audited(order, deletion):
    assert deletion.token == order.token
    assert deletion.sale_id_at_deletion == order.sale_id
    assert deletion.buyer_phone == order.buyer.phone
    assert deletion.status == order.status
    assert deletion.quantity == order.quantity
    assert deletion.ordered_at == order.created_at
    assert deletion.deleted_at is not None


def test_deleting_an_order_writes_an_audit_row(sale, buyer):
    order = Order.objects.create(sale=sale, buyer=buyer, status=Order.Status.CONFIRMED)
    order.delete()
    assert not Order.objects.exists()
    (deletion,) = OrderDeletion.objects.all()
    _assert_audited(order, deletion)
    assert deletion.status == "confirmed"


def test_queryset_delete_audits_every_order(sale, make_sale):
    buyers = [User.objects.create_user(f"+1201555010{n}") for n in range(3)]
    orders = [Order.objects.create(sale=sale, buyer=b) for b in buyers]
    Order.objects.all().delete()
    assert sorted(d.token for d in OrderDeletion.objects.all()) == sorted(o.token for o in orders)
    assert set(OrderDeletion.objects.values_list("buyer_phone", flat=True)) == {
        b.phone for b in buyers
    }


def test_failed_delete_leaves_no_audit_row(sale, buyer):
    pk = Order.objects.create(sale=sale, buyer=buyer).pk
    # The receiver writes in the same transaction: if the delete is rolled back, so is the row.
    with pytest.raises(RuntimeError), transaction.atomic():
        Order.objects.get(pk=pk).delete()
        raise RuntimeError
    assert Order.objects.filter(pk=pk).exists()
    assert not OrderDeletion.objects.exists()


def test_admin_delete_writes_an_audit_row(admin_client, sale, buyer):
    order = Order.objects.create(sale=sale, buyer=buyer, quantity=1)
    url = reverse("admin:orders_order_delete", args=[order.pk])
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(url, {"post": "yes"})
    assert response.status_code == 302
    assert not Order.objects.filter(pk=order.pk).exists()
    (deletion,) = OrderDeletion.objects.all()
    _assert_audited(order, deletion)


def test_admin_bulk_delete_action_writes_audit_rows(admin_client, sale, buyer):
    other = User.objects.create_user("+12015550002")
    orders = [Order.objects.create(sale=sale, buyer=b) for b in (buyer, other)]
    response = admin_client.post(
        reverse("admin:orders_order_changelist"),
        {
            "action": "delete_selected",
            "_selected_action": [o.pk for o in orders],
            "post": "yes",
        },
    )
    assert response.status_code == 302
    assert not Order.objects.exists()
    assert sorted(OrderDeletion.objects.values_list("token", flat=True)) == sorted(
        o.token for o in orders
    )
