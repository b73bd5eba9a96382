from datetime import datetime

from django.conf import settings
from django.core.paginator import Page, Paginator
from django.db.models import Case, F, IntegerField, Value, When
from django.utils import timezone

from .models import Sale, windows

LIVE, UPCOMING, ENDED = 0, 1, 2


def sale_page(*, number: int, now: datetime | None = None) -> Page:
    """One page of sales as a buyer wants them: live ones first (open or sold out, soonest
    end first), then upcoming (soonest start first), then ended (latest end first); raises
    EmptyPage past the end. The /sales/ page and /api/sales/ share it, so their pages agree."""
    window = windows(now or timezone.now())
    live, upcoming = window["live"], window["upcoming"]
    sales = (
        Sale.objects.select_related("product")
        .annotate(
            rank=Case(
                When(live, then=Value(LIVE)),
                When(upcoming, then=Value(UPCOMING)),
                default=Value(ENDED),
                output_field=IntegerField(),
            ),
            # Within a group, the next moment that matters: the end of a live sale, the start
            # of an upcoming one; NULL for ended sales, ordered by -ends_at below.
            next_moment=Case(When(live, then=F("ends_at")), When(upcoming, then=F("starts_at"))),
        )
        .order_by("rank", F("next_moment").asc(nulls_last=True), "-ends_at", "-pk")
    )
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
        "waiting_room": sale.waiting_room,
        "state": sale.state(),
        "url": sale.get_absolute_url(),
    }


def sale_detail_payload(sale: Sale) -> dict:
    """One sale with the server's clock: the sale page counts down to the start from it, not
    from the browser's clock (which may be minutes off)."""
    return {**sale_payload(sale), "server_time": timezone.now().isoformat()}
