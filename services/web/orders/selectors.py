from django.core.paginator import Page, Paginator

from .models import Order

ORDERS_PER_PAGE = 20


def buyer_order_page(*, buyer, number: int, sale_id: int | None = None) -> Page:
    """One page of ``buyer``'s orders (of one sale, with ``sale_id``), newest first, with their
    sale; raises InvalidPage (EmptyPage past the end). GET /api/orders/ and /orders/ share it."""
    orders = Order.objects.filter(buyer=buyer).select_related("sale")
    if sale_id is not None:
        orders = orders.filter(sale_id=sale_id)
    return Paginator(orders.order_by("-created_at", "-pk"), ORDERS_PER_PAGE).page(number)
