"""The buy path's invariants (DESIGN.md 1-3), checked from the server side: Postgres is the
truth, Redis must agree with it. Used by the storm tests, by ``manage.py check_invariants`` (the
container and fault suites) and by load tests; the client side is ``loadtests.storm``.

Every check is a snapshot: it is exact when no buy is in flight (the storm is over, and with
``expect_drained`` the order tasks are done too). Only the Redis comparison can be fooled by a
request caught between the gate and the order INSERT; call it after the storm.
"""

import time
import uuid
from dataclasses import asdict, dataclass, field

from django.db.models import Count, Sum

from sales.models import Sale

from . import gate
from .models import Order


@dataclass
class Report:
    sale: int
    stock: int
    remaining: int
    redis_stock: int | None  # None: the sale has no Redis state (never loaded, or Redis lost it)
    orders: dict[str, int]  # status -> number of orders
    confirmed_quantity: int
    pending_quantity: int
    duplicate_buyers: int  # buyers with more than one live (not failed) order
    orphan_reservations: int  # Redis reservations with no order row (quantity)
    unanswered: int = 0  # with ``accepted``: orders whose token was not answered 202 (phantoms)
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def as_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def check_sale(
    sale_id: int, accepted: list[str] | None = None, *, expect_drained: bool = True
) -> Report:
    """Check one sale. ``accepted``: the order tokens answered 202 (all of them, for this
    sale); ``expect_drained``: no order may still be pending."""
    # Redis first, then Postgres: a reservation that becomes an order in between counts as
    # pending, not as an orphan. (One made after the Redis read can still skew the comparison:
    # the snapshot is exact at rest only.)
    redis_stock, reserved = _redis_state(sale_id)
    sale = Sale.objects.get(pk=sale_id)
    orders = Order.objects.filter(sale_id=sale_id).order_by()
    by_status, quantity = {}, {}
    for status, n, q in (
        orders.values("status")
        .annotate(n=Count("pk"), q=Sum("quantity"))
        .values_list("status", "n", "q")
    ):
        by_status[status], quantity[status] = n, q
    confirmed = quantity.get(Order.Status.CONFIRMED, 0)
    pending = quantity.get(Order.Status.PENDING, 0)
    # A failed order (sold out, timed out, cancelled) gave its stock back and its buyer may
    # buy again: only live ones count towards one per buyer and the limit.
    live = orders.exclude(status=Order.Status.FAILED).values("buyer_id")
    duplicates = sorted(row["buyer_id"] for row in live.annotate(n=Count("pk")) if row["n"] > 1)
    over_limit = sorted(
        row["buyer_id"]
        for row in live.annotate(q=Sum("quantity"))
        if row["q"] > sale.per_buyer_limit
    )
    known = {
        str(t)
        for t in Order.objects.filter(token__in=[t for t in reserved if _is_uuid(t)]).values_list(
            "token", flat=True
        )
    }
    orphans = sum(q for t, q in reserved.items() if t not in known)

    report = Report(
        sale=sale.pk,
        stock=sale.stock,
        remaining=sale.remaining,
        redis_stock=redis_stock,
        orders=by_status,
        confirmed_quantity=confirmed,
        pending_quantity=pending,
        duplicate_buyers=len(duplicates),
        orphan_reservations=orphans,
    )
    v = report.violations
    if confirmed > sale.stock:
        v.append(f"oversold: {confirmed} items confirmed for a stock of {sale.stock}")
    if confirmed + sale.remaining != sale.stock:
        v.append(
            f"stock does not add up: {confirmed} confirmed + {sale.remaining} remaining"
            f" != stock {sale.stock}"
        )
    if duplicates:
        v.append(
            f"{len(duplicates)} buyers have more than one live order, e.g. buyer {duplicates[0]}"
        )
    if over_limit:
        v.append(
            f"{len(over_limit)} buyers hold more than the per-buyer limit of"
            f" {sale.per_buyer_limit}, e.g. buyer {over_limit[0]}"
        )
    if expect_drained and pending:
        v.append(f"{by_status[Order.Status.PENDING]} orders still pending")
    if unexplained := orders.filter(status=Order.Status.FAILED, reason="").count():
        v.append(f"{unexplained} failed orders have no reason")
    if accepted is not None:
        tokens = {str(t) for t in orders.values_list("token", flat=True)}
        answered = {str(t) for t in accepted}
        if unanswered := tokens - answered:
            report.unanswered = len(unanswered)
            v.append(
                f"{len(unanswered)} orders were never answered 202, e.g. {sorted(unanswered)[0]}"
            )
        if lost := answered - tokens:
            v.append(f"{len(lost)} tokens answered 202 have no order, e.g. {sorted(lost)[0]}")
    if redis_stock is not None:
        # What gate.load would rebuild (remaining - pending), less the stock held by
        # reservations that have no order row (yet, or ever: the reconciler releases them).
        expected = max(0, sale.remaining - pending) - orphans
        if redis_stock != expected:
            held = f" - {orphans} held by reservations without an order" if orphans else ""
            v.append(
                f"Redis stock {redis_stock} disagrees with Postgres: {sale.remaining} remaining"
                f" - {pending} pending{held} = {expected}"
            )
    return report


def _redis_state(sale_id: int) -> tuple[int | None, dict[str, int]]:
    """The sale's Redis stock (None if not loaded) and its reservations, token -> quantity,
    read in one transaction."""
    sale_key, _, resv_key = gate.keys(sale_id)
    pipe = gate.redis().pipeline(transaction=True)
    pipe.hget(sale_key, "stock")
    pipe.hgetall(resv_key)
    stock, resv = pipe.execute()
    reserved = {t: qty for t, (_, qty, _) in gate.parse_reservations(resv).items()}
    return (None if stock is None else int(stock)), reserved


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def pending_orders(sale_id: int) -> int:
    return Order.objects.filter(sale_id=sale_id, status=Order.Status.PENDING).count()


def wait_drained(sale_id: int, timeout: float, *, interval: float = 0.2) -> float:
    """Wait until no order of the sale is pending; return the seconds waited. TimeoutError
    after ``timeout`` seconds."""
    started = time.monotonic()
    while left := pending_orders(sale_id):
        waited = time.monotonic() - started
        if waited > timeout:
            raise TimeoutError(f"sale {sale_id}: {left} orders still pending after {waited:.1f}s")
        time.sleep(interval)
    return time.monotonic() - started
