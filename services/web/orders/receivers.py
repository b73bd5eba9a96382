from . import gate
from .models import OrderDeletion


def record_order_deletion(sender, instance, using, **kwargs):
    OrderDeletion.objects.using(using).create(
        token=instance.token,
        sale_id_at_deletion=instance.sale_id,
        buyer_phone=instance.buyer.phone,
        status=instance.status,
        quantity=instance.quantity,
        ordered_at=instance.created_at,
    )


def sync_sale_window(sender, instance, **kwargs):
    # An admin who moves a sale's window or limit must move the gate's copy too.
    gate.sync_window(instance)
