"""The buy path, top to bottom.

1. ``order_reserve`` (web, per request): the Redis gate decides in one atomic step; most
   requests of a flash sale end here with 409. An accepted one becomes a ``pending`` Order row,
   so the 202 the buyer gets is durable before it is sent, even if Redis is lost right after;
   the order task is queued once that row is committed.
2. ``order_place`` (worker): confirms the order with a conditional stock decrement in the same
   transaction, or fails it with a reason and gives the reservation back. Idempotent by token:
   a task that runs twice (a killed worker, the reconciler) changes nothing the second time.
3. ``orders_reconcile`` (beat): re-queues orders left pending, fails those that waited too long,
   and releases Redis reservations that never became an order.

``BUY_STRATEGY`` selects how the buy endpoint decides: ``gate`` (the above, the default) or
``db-lock``, the textbook design kept only to be measured against (``make bench``):
``order_lock_and_confirm`` locks the sale row in Postgres inside the request.
"""

import contextlib
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Sum
from django.utils import timezone
from redis.exceptions import LockError, RedisError

from qbuy_core import page_cache
from sales.models import Sale

from . import gate, soldout
from .models import CANCEL_MESSAGE_MAX, CANCELLED_BY_SHOP, Order

logger = logging.getLogger("qbuy.orders")


@dataclass(frozen=True)
class BuyRefused(Exception):
    outcome: str  # not_found, not_started, ended, already_bought, over_limit, sold_out


def order_reserve(*, sale_id: int, buyer_id: int, quantity: int = 1) -> Order:
    """Reserve in Redis, then record the pending order. Raises BuyRefused.

    Postgres is read only when the sale's Redis state is missing: the hot path of a flash sale
    is one Lua call, plus one INSERT for the few requests that get an item.
    """
    token = str(uuid.uuid4())
    result = gate.reserve(sale_id=sale_id, buyer_id=buyer_id, token=token, quantity=quantity)
    # The sale's Redis state is gone (new sale, Redis restart): rebuild it from Postgres under
    # a lock, then ask again. Bounded: a second miss is a real failure, not a reason to loop.
    for _ in range(2):
        if result.outcome != "missing":
            break
        sale = Sale.objects.filter(pk=sale_id).first()
        if sale is None:
            raise BuyRefused("not_found")
        gate.load(sale)
        result = gate.reserve(sale_id=sale_id, buyer_id=buyer_id, token=token, quantity=quantity)
    if result.outcome == "missing":
        raise RuntimeError(f"sale {sale_id}: Redis state could not be rebuilt")
    if result.outcome != "ok":
        if result.outcome == "sold_out" and result.stock_left == 0:
            soldout.remember(sale_id)
        raise BuyRefused(result.outcome)
    inserted = False
    try:
        with transaction.atomic():
            order = Order.objects.create(
                token=token, sale_id=sale_id, buyer_id=buyer_id, quantity=quantity
            )
            inserted = True
            # robust: a broker outage is logged, not raised. The order is committed by then
            # and stays pending; the reconciler queues it after ORDER_REQUEUE_AFTER.
            transaction.on_commit(lambda: _enqueue(token), robust=True)
    except IntegrityError:
        # Postgres already has a live (not failed) order of this buyer for this sale: the
        # gate's state was rebuilt without it. Give the stock back but keep the buyer marked
        # as a buyer.
        gate.release(sale_id=sale_id, token=token, forget_buyer=False)
        raise BuyRefused("already_bought") from None
    except Exception:
        if not inserted:  # nothing reached Postgres for good: the buy did not happen
            gate.release(sale_id=sale_id, token=token, forget_buyer=True)
            raise
        # The COMMIT failed, and that is ambiguous: the connection may have been lost after
        # Postgres committed. Ask Postgres (the failed atomic block dropped the broken
        # connection, so this is a new one) before giving anything back: releasing a committed
        # order's reservation would tell its buyer "failed" and sell its item twice in Redis.
        # If Postgres can't answer, this raises (a 503) and the reservation stays: the
        # reconciler releases it after ORDER_REQUEUE_AFTER if no order turns up.
        order = Order.objects.filter(token=token).first()
        if order is None:
            gate.release(sale_id=sale_id, token=token, forget_buyer=True)
            raise
        logger.warning("order %s: its COMMIT failed but it exists; the reconciler queues it", token)
    return order


def order_lock_and_confirm(*, sale_id: int, buyer_id: int, quantity: int = 1) -> Order:
    """BUY_STRATEGY=db-lock: every buyer waits for the sale row's lock, then checks, takes the
    stock and records a confirmed order in the same transaction. Raises BuyRefused.

    Same refusals, in the same order, as the gate's script. Correct, and serial: one buyer at a
    time per sale, each holding a web worker and a Postgres connection while it waits.
    """
    with transaction.atomic():
        sale = Sale.objects.select_for_update().filter(pk=sale_id).first()
        if sale is None:
            raise BuyRefused("not_found")
        now = timezone.now()
        if now < sale.starts_at:
            raise BuyRefused("not_started")
        if now >= sale.ends_at:
            raise BuyRefused("ended")
        if sale.remaining <= 0:
            raise BuyRefused("sold_out")
        # A failed order (sold out, timed out, cancelled) does not count, as in the gate.
        mine = Order.objects.filter(sale_id=sale_id, buyer_id=buyer_id)
        if mine.exclude(status=Order.Status.FAILED).exists():
            raise BuyRefused("already_bought")
        if quantity > sale.per_buyer_limit:
            raise BuyRefused("over_limit")
        if sale.remaining < quantity:
            raise BuyRefused("sold_out")
        Sale.objects.filter(pk=sale_id).update(remaining=F("remaining") - quantity)
        order = Order.objects.create(
            sale_id=sale_id, buyer_id=buyer_id, quantity=quantity, status=Order.Status.CONFIRMED
        )
    # Postgres changed behind the gate: its copy of the sale (if one was loaded) is stale.
    gate.forget(sale_id)
    if sale.remaining == quantity:  # update() sends no signal: the page must say sold_out now
        page_cache.drop([sale.get_absolute_url()])
    return order


def _enqueue(token: str) -> None:
    from .tasks import place_order

    place_order.delay(token)


def order_place(*, token: str) -> Order:
    """Confirm or fail a pending order; calling it again is harmless."""
    taken = 0
    with transaction.atomic():
        order = Order.objects.select_for_update().get(token=token)
        # An order no longer pending was settled by an earlier run, which may have died (or
        # lost Redis) between its COMMIT and the Redis clean-up below: only redo the clean-up,
        # which is idempotent by token.
        if order.status == Order.Status.PENDING:
            # Conditional update: the row lock and the CHECK (remaining >= 0) make oversell
            # impossible here even if the Redis gate were wrong.
            taken = Sale.objects.filter(pk=order.sale_id, remaining__gte=order.quantity).update(
                remaining=F("remaining") - order.quantity
            )
            if taken:
                order.status = Order.Status.CONFIRMED
            else:
                order.status, order.reason = Order.Status.FAILED, "sold_out"
            order.save(update_fields=["status", "reason", "updated_at"])
    if order.status == Order.Status.CONFIRMED:
        # The reservation is now an order: drop it so the reconciler does not look at it.
        gate.drop(sale_id=order.sale_id, token=str(order.token))
        if taken and not Sale.objects.filter(pk=order.sale_id, remaining__gt=0).exists():
            # update() sends no signal: drop the sale page so it says "sold_out" now.
            page_cache.drop([order.sale.get_absolute_url()])
    else:
        gate.release(sale_id=order.sale_id, token=str(order.token), forget_buyer=True)
    return order


def order_fail(*, order: Order, reason: str) -> bool:
    """Fail a still-pending order and give its stock back. False if it was no longer pending."""
    with transaction.atomic():
        updated = Order.objects.filter(pk=order.pk, status=Order.Status.PENDING).update(
            status=Order.Status.FAILED, reason=reason, updated_at=timezone.now()
        )
    if updated:
        gate.release(sale_id=order.sale_id, token=str(order.token), forget_buyer=True)
    return bool(updated)


class StockChangeRefused(Exception):
    """The stock asked for is below what is sold or reserved; nothing was changed."""


def sale_stock_check(*, sale: Sale, stock: int) -> None:
    """Raise StockChangeRefused if ``stock`` is below what Postgres knows to be sold or
    reserved (pending orders). The admin form asks first; sale_stock_change asks again under
    the row lock, and the gate's script adds the reservations Postgres does not know yet."""
    sold = sale.stock - sale.remaining
    pending = Order.objects.filter(sale_id=sale.pk, status=Order.Status.PENDING)
    reserved = pending.aggregate(n=Sum("quantity"))["n"] or 0
    if stock < sold + reserved:
        raise StockChangeRefused(
            f"{sold} sold and {reserved} reserved: the stock cannot go below {sold + reserved}."
        )


def sale_stock_change(*, sale_id: int, stock: int) -> Sale:
    """Set a sale's stock; ``remaining`` and the gate's stock move by the same difference.
    Raises StockChangeRefused (nothing changed) below what is sold or reserved.

    Redis is changed under the sale row's lock, before the COMMIT:
    - lowering: the gate's script takes the items only if no reservation holds them, in one
      step, so a buyer caught between the gate and the order INSERT (unknown to Postgres) keeps
      the item and the change is refused instead;
    - raising: buyers may reserve the new items at once; the order task's conditional UPDATE
      of this row waits for the lock, so it confirms them against the new ``remaining``. With
      the COMMIT first, buyers in between would have been refused items Postgres already had.
    If anything fails once the script may have run (the COMMIT, or the script's own reply),
    the difference is taken back in Redis; if reservations already hold raised items, or the
    outcome is unknown, the gate forgets the sale and the next reservation rebuilds it from
    Postgres, the truth. A sale the gate has not loaded needs nothing: the gate's rebuild lock
    is held throughout, so a rebuild reads the row once this change is committed. Durable:
    inside a caller's transaction, a rollback after this returned would leave Redis changed
    with nobody to undo it.

    Each web process's sold-out memo (soldout.py) may still refuse a raised sale for
    SOLD_OUT_MEMO seconds: accepted, as for stock that a failed order gives back.
    """
    if stock < 0:
        raise StockChangeRefused("the stock cannot be negative.")
    try:
        with gate.rebuild_lock(sale_id):
            sale = _stock_change(sale_id, stock)
    except gate.Busy:
        raise StockChangeRefused("the gate is rebuilding this sale; try again.") from None
    # Again after the COMMIT: a request that read the old row may have cached it meanwhile.
    page_cache.drop(sale.cached_paths())
    return sale


def _stock_change(sale_id: int, stock: int) -> Sale:
    in_redis: int | None = 0  # the difference the gate holds; None: unknown (the call failed)
    try:
        with transaction.atomic(durable=True):
            # NO KEY UPDATE: buyers' order INSERTs (a KEY SHARE lock on this row, for the
            # foreign key) go on; order_place's UPDATE of ``remaining`` waits.
            sale = Sale.objects.select_for_update(no_key=True).get(pk=sale_id)
            delta = stock - sale.stock
            if delta == 0:
                return sale
            sale_stock_check(sale=sale, stock=stock)
            in_redis = None
            outcome, left = gate.stock_adjust(sale_id=sale_id, delta=delta)
            in_redis = delta if outcome == "ok" else 0
            if outcome == "short":
                raise StockChangeRefused(
                    "buyers are reserving items right now; the stock cannot go below"
                    f" {sale.stock - left}."
                )
            Sale.objects.filter(pk=sale_id).update(stock=stock, remaining=F("remaining") + delta)
            page_cache.drop(sale.cached_paths())
    except Exception:
        _stock_undo(sale_id, in_redis)
        raise
    sale.refresh_from_db()
    return sale


def _stock_undo(sale_id: int, in_redis: int | None) -> None:
    if in_redis == 0:
        return
    try:
        if in_redis is None or gate.stock_adjust(sale_id=sale_id, delta=-in_redis)[0] == "short":
            gate.forget(sale_id)
    except RedisError:
        # Redis is failing too: a restart rebuilds from Postgres; until then the gate may offer
        # the difference, which order_place's conditional UPDATE refuses (never oversold).
        logger.exception("sale %s: stock change rolled back, Redis not undone", sale_id)


def order_cancel(
    *, order_id: int | None = None, token: str | None = None, message: str = ""
) -> bool:
    """Fail a pending or confirmed order (an admin's decision) and give its stock back in
    Postgres and Redis; its buyer may buy again. The buyer reads CANCELLED_BY_SHOP and the
    optional ``message`` (at most CANCEL_MESSAGE_MAX characters), never who cancelled. False,
    and nothing changed, if it had already failed: cancelling twice is harmless. Raises
    gate.Busy if the sale's Redis state stays locked by a rebuild (it takes milliseconds).

    As in order_place: Postgres commits first, then Redis follows, so in between the gate
    offers less than Postgres has (a buyer may be refused for a moment), never more. The gate's
    rebuild lock is held throughout: a rebuild reading the row before the COMMIT and writing
    after the Redis step would lose the stock given back. If Redis fails after the COMMIT, the
    gate forgets the sale and the next reservation rebuilds it from Postgres.
    """
    lookup = {"pk": order_id} if token is None else {"token": token}
    sale_id = Order.objects.filter(**lookup).values_list("sale_id", flat=True).get()
    with gate.rebuild_lock(sale_id):
        with transaction.atomic(durable=True):
            # order_place's lock: a cancel and the order's task take turns, and each decides on
            # the status it finds, so a pending order is either confirmed then cancelled, or
            # cancelled and then left alone by the task: its stock is given back once.
            order = Order.objects.select_for_update().get(**lookup)
            was = order.status
            if was == Order.Status.FAILED:
                return False
            if was == Order.Status.CONFIRMED:
                # Under the sale row's lock (the UPDATE's), like the decrement it undoes.
                Sale.objects.filter(pk=sale_id).update(remaining=F("remaining") + order.quantity)
            order.status, order.reason = Order.Status.FAILED, cancel_reason(message)
            order.save(update_fields=["status", "reason", "updated_at"])
        try:
            if was == Order.Status.PENDING:
                gate.release(sale_id=sale_id, token=str(order.token), forget_buyer=True)
            else:
                gate.unsell(
                    sale_id=sale_id,
                    token=str(order.token),
                    buyer_id=order.buyer_id,
                    quantity=order.quantity,
                )
        except RedisError:
            with contextlib.suppress(RedisError):  # Redis down: rebuilt from Postgres when back
                gate.forget(sale_id)
            raise
    # update() sends no signal: the sale page must show the stock that came back.
    page_cache.drop(Sale(pk=sale_id).cached_paths())
    return True


def cancel_reason(message: str) -> str:
    message = " ".join(message.split())[:CANCEL_MESSAGE_MAX]
    return f"{CANCELLED_BY_SHOP}: {message}" if message else CANCELLED_BY_SHOP


@dataclass
class ReconcileReport:
    requeued: int = 0
    failed: int = 0
    released: int = 0
    skipped: bool = False  # another reconcile (a second beat) held the lock


# One reconcile at a time, whichever beat (or manual call) runs it. Its expiry matters when the
# holder dies or cannot release it (Redis went away mid-run; with AOF the lock outlives the
# restart): until then every run is skipped, so it is kept to two beat intervals (a run takes
# well under a second). A run that outlasts it overlaps the next harmlessly: each re-queue is
# claimed by its own SET NX, failing and releasing are conditional.
RECONCILE_LOCK = "qbuy:reconcile:lock"


def _reconcile_lock_timeout() -> float:
    return max(2.0, 2 * settings.RECONCILE_INTERVAL)


def _requeue_key(token: str) -> str:
    return f"qbuy:requeued:{token}"


def orders_reconcile(*, now=None) -> ReconcileReport:
    """Nothing accepted stays pending forever (DESIGN.md invariant 3).

    Each stale order is queued again at most once per ORDER_REQUEUE_AFTER (a key per token
    with that TTL), whatever the number of runs: while no worker consumes, the queue holds one
    message per pending order, not one per order per beat tick. Two concurrent runs (two beats)
    do not both act: the run holds a Redis lock, and the per-token key is set atomically.
    """
    now = now or timezone.now()
    report = ReconcileReport()
    conn = gate.redis()
    lock = conn.lock(RECONCILE_LOCK, timeout=_reconcile_lock_timeout(), blocking=False)
    if not lock.acquire():
        report.skipped = True
        return report
    try:
        _reconcile(now=now, report=report, conn=conn)
    finally:
        with contextlib.suppress(LockError):  # expired while we worked: nothing to release
            lock.release()
    return report


def _reconcile(*, now, report: ReconcileReport, conn) -> None:
    requeue_after = timedelta(seconds=settings.ORDER_REQUEUE_AFTER)
    fail_after = timedelta(seconds=settings.ORDER_FAIL_AFTER)
    # Batches of 500: each re-queue is one broker write; a larger batch only delays the beat.
    stale = Order.objects.filter(status=Order.Status.PENDING, created_at__lt=now - requeue_after)
    due = []
    for order in stale.order_by("created_at")[:500]:
        if order.created_at < now - fail_after:
            report.failed += order_fail(order=order, reason="timeout")
        else:
            due.append(str(order.token))
    if due:
        pipe = conn.pipeline(transaction=False)
        for token in due:
            pipe.set(_requeue_key(token), 1, nx=True, ex=settings.ORDER_REQUEUE_AFTER)
        for token, first in zip(due, pipe.execute(), strict=True):
            if first:
                _enqueue(token)
                report.requeued += 1
    report.released = _release_orphans(now=now)


def _release_orphans(*, now) -> int:
    """Reservations older than the re-queue delay whose order is not pending: with no Order
    row, the web process died between the gate and the insert (its buyer never got a 202, so
    may try again); with a settled order, the worker died between its COMMIT and the clean-up
    (a confirmed order's reservation is dropped, a failed one's stock given back)."""
    released = 0
    cutoff = int(now.timestamp() * 1000) - settings.ORDER_REQUEUE_AFTER * 1000
    open_sales = Sale.objects.filter(ends_at__gt=now - timedelta(hours=1))
    for sale_id in open_sales.values_list("pk", flat=True):
        old = [t for t, (_, _, at) in gate.reservations(sale_id=sale_id).items() if at < cutoff]
        if not old:
            continue
        rows = Order.objects.filter(token__in=old).values_list("token", "status")
        status = {str(t): s for t, s in rows}
        for token in old:
            if status.get(token) == Order.Status.CONFIRMED:
                gate.drop(sale_id=sale_id, token=token)
            elif status.get(token) != Order.Status.PENDING:
                released += gate.release(sale_id=sale_id, token=token, forget_buyer=True) > 0
    return released


def sales_warm(*, now=None) -> int:
    """Load the Redis state of sales opening soon, so the first buyers never wait on a rebuild."""
    now = now or timezone.now()
    soon = Sale.objects.filter(
        starts_at__lte=now + timedelta(seconds=settings.WARM_AHEAD), ends_at__gt=now
    )
    warmed = 0
    for sale in soon:
        if not gate.redis().exists(gate.keys(sale.pk)[0]):
            warmed += gate.load(sale)
    return warmed
