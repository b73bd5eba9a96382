from django.apps import AppConfig
from django.db.models.signals import post_save, pre_delete


class OrdersConfig(AppConfig):
    name = "orders"

    def ready(self):
        from sales.models import Sale

        from .models import Order
        from .receivers import record_order_deletion, sync_sale_window

        # pre_delete, not post_delete: the row and its relations must still be readable.
        pre_delete.connect(
            record_order_deletion, sender=Order, dispatch_uid="orders.record_order_deletion"
        )
        post_save.connect(sync_sale_window, sender=Sale, dispatch_uid="orders.sync_sale_window")
