import uuid

from django.conf import settings
from django.db import models

# What a buyer reads when the shop cancelled their order (the staff member is in the admin's
# history, not here), and how long the staff member's optional message may be.
CANCELLED_BY_SHOP = "cancelled by the shop"
CANCEL_MESSAGE_MAX = 120


class Order(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        CONFIRMED = "confirmed"
        FAILED = "failed"

    # The reservation token from the Redis gate: the idempotency key of the order task.
    token = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    sale = models.ForeignKey("sales.Sale", on_delete=models.PROTECT, related_name="orders")
    buyer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders"
    )
    quantity = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # A code (sold_out, timeout) or CANCELLED_BY_SHOP with its message: shown to the buyer.
    reason = models.CharField(max_length=160, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            # The last line against a buyer ordering twice, whatever the Redis gate did. A
            # failed order (sold out, timed out, cancelled) does not count: the gate forgets
            # its buyer, who may buy again.
            models.UniqueConstraint(
                fields=["sale", "buyer"],
                condition=~models.Q(status="failed"),
                name="order_one_per_buyer_per_sale",
            ),
            models.CheckConstraint(
                condition=models.Q(quantity__gte=1), name="order_quantity_gte_1"
            ),
        ]

    def __str__(self):
        return f"{self.token} ({self.status})"


class OrderDeletion(models.Model):
    """Audit trail: who bought what, kept after an order is deleted (e.g. in the admin)."""

    token = models.UUIDField()
    sale_id_at_deletion = models.BigIntegerField()
    buyer_phone = models.CharField(max_length=16)
    status = models.CharField(max_length=16)
    quantity = models.PositiveSmallIntegerField()
    ordered_at = models.DateTimeField()
    deleted_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-deleted_at"]

    def __str__(self):
        return f"{self.token} deleted {self.deleted_at:%Y-%m-%d %H:%M}"
