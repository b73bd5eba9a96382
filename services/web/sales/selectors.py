from django.conf import settings
from django.core.paginator import Paginator

from .models import Sale


def sale_page(*, number: int):
    """One page of sales, newest window first; raises EmptyPage past the end."""
    sales = Sale.objects.select_related("product").order_by("-starts_at", "-pk")
    return Paginator(sales, settings.SALES_PER_PAGE).page(number)


def sale_payload(sale: Sale) -> dict:
    return {
        "id": sale.pk,
        "name": sale.name,
        "product": {
            "id": sale.product_id,
            "name": sale.product.name,
            "price": str(sale.product.price),
        },
        "starts_at": sale.starts_at.isoformat(),
        "ends_at": sale.ends_at.isoformat(),
        "stock": sale.stock,
        "remaining": sale.remaining,
        "per_buyer_limit": sale.per_buyer_limit,
        "state": sale.state(),
        "url": sale.get_absolute_url(),
    }
