import logging

from redis.exceptions import RedisError

from . import gate
from .models import OrderDeletion

logger = logging.getLogger("qbuy.orders")


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
    # An admin who moves a sale's window or limit must move the gate's copy too. If Redis is
    # down the copy is lost anyway and gate.load rebuilds it from this row: log, don't fail.
    try:
        gate.sync_window(instance)
    except RedisError:
        logger.warning("sale %s saved but its Redis window was not updated", instance.pk)
