from django.apps import AppConfig
from django.db.models.signals import pre_delete


class OrdersConfig(AppConfig):
    name = "orders"

    def ready(self):
        from .models import Order
        from .receivers import record_order_deletion

        # pre_delete, not post_delete: the row and its relations must still be readable.
        pre_delete.connect(
            record_order_deletion, sender=Order, dispatch_uid="orders.record_order_deletion"
        )
