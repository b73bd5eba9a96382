from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from .models import Product, Sale


@transaction.atomic
def sale_create(
    *,
    name: str,
    stock: int,
    starts_in: int = 0,
    duration: int = 3600,
    per_buyer_limit: int = 1,
    product: Product | None = None,
    price: Decimal = Decimal("9.99"),
    waiting_room: bool = False,
    admission_rate: int | None = None,
) -> Sale:
    if stock < 0:
        raise ValueError("stock must be >= 0")
    if duration <= 0:
        raise ValueError("duration must be > 0 seconds")
    if per_buyer_limit < 1:
        raise ValueError("per_buyer_limit must be >= 1")
    if admission_rate is not None and admission_rate < 1:
        raise ValueError("admission_rate must be >= 1 buyer a second")
    if product is None:
        product = Product.objects.create(name=name, price=price)
    starts_at = timezone.now() + timedelta(seconds=starts_in)
    return Sale.objects.create(
        name=name,
        product=product,
        stock=stock,
        remaining=stock,
        per_buyer_limit=per_buyer_limit,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(seconds=duration),
        waiting_room=waiting_room,
        admission_rate=admission_rate,
    )
