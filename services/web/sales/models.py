from django.db import models
from django.urls import reverse
from django.utils import timezone


class Product(models.Model):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    price = models.DecimalField(max_digits=10, decimal_places=2)

    def __str__(self):
        return self.name

    def cached_paths(self):
        # A product's name and price show on each of its sale pages.
        return [sale.get_absolute_url() for sale in self.sales.only("pk")]


def windows(now) -> dict[str, models.Q]:
    """Sale.state's windows at ``now`` in SQL: upcoming, live (open or sold out) and ended."""
    return {
        "upcoming": models.Q(starts_at__gt=now),
        "live": models.Q(starts_at__lte=now, ends_at__gt=now),
        "ended": models.Q(ends_at__lte=now),
    }


class SaleQuerySet(models.QuerySet):
    def in_state(self, state: str, now=None) -> "SaleQuerySet":
        """The sales whose ``state(now)`` is ``state``, in one query (the admin's filter)."""
        window = windows(now or timezone.now())
        return self.filter(
            {
                "upcoming": window["upcoming"],
                "open": window["live"] & models.Q(remaining__gt=0),
                "sold_out": window["live"] & models.Q(remaining__lte=0),
                "ended": window["ended"],
            }[state]
        )


class Sale(models.Model):
    name = models.CharField(max_length=200)
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="sales")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    stock = models.PositiveIntegerField(help_text="Items offered in this sale.")
    remaining = models.IntegerField(help_text="Items not yet sold; orders decrement it.")
    per_buyer_limit = models.PositiveSmallIntegerField(default=1)
    waiting_room = models.BooleanField(
        default=False,
        help_text="Buyers wait in a room that opens before the start, are put in a random order"
        " at the start and are let in at the admission rate; a buy needs the room's pass.",
    )
    admission_rate = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Buyers the waiting room lets in per second (blank: WAITING_ROOM_RATE).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = SaleQuerySet.as_manager()

    class Meta:
        ordering = ["starts_at", "pk"]
        constraints = [
            # The last line against oversell: no code path can take stock below zero.
            models.CheckConstraint(
                condition=models.Q(remaining__gte=0), name="sale_remaining_gte_0"
            ),
            models.CheckConstraint(
                condition=models.Q(remaining__lte=models.F("stock")),
                name="sale_remaining_lte_stock",
            ),
            models.CheckConstraint(
                condition=models.Q(ends_at__gt=models.F("starts_at")), name="sale_ends_after_start"
            ),
            models.CheckConstraint(
                condition=models.Q(per_buyer_limit__gte=1), name="sale_per_buyer_limit_gte_1"
            ),
            models.CheckConstraint(
                condition=models.Q(admission_rate__gte=1), name="sale_admission_rate_gte_1"
            ),
        ]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        if self.remaining is None:
            self.remaining = self.stock
        super().save(*args, **kwargs)

    def get_absolute_url(self):
        return reverse("sale-detail", args=[self.pk])

    def cached_paths(self):
        return [self.get_absolute_url()]

    def state(self, now=None) -> str:
        # windows() is the same rule in SQL: change both together.
        now = now or timezone.now()
        if now < self.starts_at:
            return "upcoming"
        if now >= self.ends_at:
            return "ended"
        return "sold_out" if self.remaining <= 0 else "open"
