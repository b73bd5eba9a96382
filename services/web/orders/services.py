"""The buy path, top to bottom.

1. ``order_reserve`` (web, per request): the Redis gate decides in one atomic step; most
   requests of a flash sale end here with 409. An accepted one becomes a ``pending`` Order row,
   so the 202 the buyer gets is durable before it is sent, even if Redis is lost right after;
   then the sale's settling is nudged (``settle_nudge``: one task per sale per
   SETTLE_WINDOW_MS, not one per order).
2. ``orders_settle`` (worker, ``settle_sale``): confirms the sale's pending orders in batches,
   one transaction and one conditional decrement of the sale row per batch, or fails those
   Postgres has no stock for, giving their reservations back. Idempotent: it only ever touches
   pending orders, so a task that runs twice (a killed worker, the reconciler) changes nothing
   the second time.
3. ``orders_reconcile`` (beat): settles again the sales whose orders were left pending, fails
   those that waited too long, and releases Redis reservations that never became an order.

``BUY_STRATEGY`` selects how the buy endpoint decides: ``gate`` (the above, the default) or
``db-lock``, the textbook design kept only to be measured against (``make bench``):
``order_lock_and_confirm`` locks the sale row in Postgres inside the request.
"""

import contextlib
import functools
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F, Sum
from django.utils import timezone
from redis.exceptions import LockError, RedisError
from waitingroom import store as room_store

from qbuy_core import logcontext, page_cache
from sales.models import Sale

from . import gate, metrics, soldout
from .models import CANCEL_MESSAGE_MAX, CANCELLED_BY_SHOP, Order

logger = logging.getLogger("qbuy.orders")


@dataclass(frozen=True)
class BuyRefused(Exception):
    # not_found, not_started, ended, already_bought, not_admitted, over_limit, sold_out
    outcome: str


def order_reserve(
    *, sale_id: int, buyer_id: int, quantity: int = 1, pass_issued_ms: int = -1
) -> Order:
    """Reserve in Redis, then record the pending order. Raises BuyRefused.
    ``pass_issued_ms``: the buyer's checked waiting-room pass (gate.reserve), -1 without one.

    Postgres is read only when the sale's Redis state is missing: the hot path of a flash sale
    is one Lua call, plus one INSERT for the few requests that get an item.
    """
    token = str(uuid.uuid4())
    ask = functools.partial(
        gate.reserve,
        sale_id=sale_id,
        buyer_id=buyer_id,
        token=token,
        quantity=quantity,
        pass_issued_ms=pass_issued_ms,
    )
    result = ask()
    # The sale's Redis state is gone (new sale, Redis restart): rebuild it from Postgres under
    # a lock, then ask again. Bounded: a second miss is a real failure, not a reason to loop.
    for _ in range(2):
        if result.outcome != "missing":
            break
        sale = Sale.objects.filter(pk=sale_id).first()
        if sale is None:
            raise BuyRefused("not_found")
        gate.load(sale)
        result = ask()
    if result.outcome == "missing":
        raise RuntimeError(f"sale {sale_id}: Redis state could not be rebuilt")
    if result.outcome != "ok":
        if result.outcome == "sold_out" and result.stock_left == 0:
            soldout.remember(sale_id)
        raise BuyRefused(result.outcome)
    logcontext.bind(order=token)
    order = Order(token=token, sale_id=sale_id, buyer_id=buyer_id, quantity=quantity)
    try:
        # One statement in autocommit: its own transaction, committed when Postgres answers.
        _insert(order)
    except IntegrityError:
        # Postgres already has a live (not failed) order of this buyer for this sale: the
        # gate's state was rebuilt without it. Give the stock back but keep the buyer marked
        # as a buyer.
        gate.release(sale_id=sale_id, token=token, forget_buyer=False)
        raise BuyRefused("already_bought") from None
    except Exception:
        # The INSERT failed, and that is ambiguous: the connection may have been lost after
        # Postgres committed it. Ask Postgres, on a new connection if this one broke, before
        # giving anything back: releasing a committed order's reservation would tell its buyer
        # "failed" and sell its item twice in Redis. If Postgres can't answer, this raises (a
        # 503) and the reservation stays: the reconciler releases it after
        # ORDER_REQUEUE_AFTER if no order turns up.
        connection.close_if_unusable_or_obsolete()
        order = Order.objects.filter(token=token).first()
        if order is None:
            gate.release(sale_id=sale_id, token=token, forget_buyer=True)
            raise
        logger.warning("order %s: its INSERT's answer was lost, but Postgres has it", token)
    # At once in autocommit, else after the caller's COMMIT: the task must find the row. Never
    # raised: the order is committed and its buyer gets the 202 (robust; the reconciler
    # settles an order whose nudge was lost).
    transaction.on_commit(lambda: settle_nudge(sale_id), robust=True)
    return order


def _insert(order: Order) -> None:
    """``order.save()`` for a new order, as Django's INSERT does it (the fields' own pre_save
    and database values), without compiling the statement anew: the ORM's compiler cost the
    buy path 0.5 ms of CPU per accepted order, more than the round trip (issue 20). No model
    signal is sent: none is connected for orders' saves."""
    fields = _insert_fields()
    values = [f.get_db_prep_save(f.pre_save(order, True), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(), values)
        order.pk = cursor.fetchone()[0]
    order._state.adding = False


@functools.cache
def _insert_fields() -> list:
    return [f for f in Order._meta.concrete_fields if not f.primary_key]


@functools.cache
def _insert_sql() -> str:
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in _insert_fields())
    values = ", ".join(["%s"] * len(_insert_fields()))
    pk = quote(Order._meta.pk.column)
    table = quote(Order._meta.db_table)
    # Names from the model, quoted; every value is a parameter.
    return f"INSERT INTO {table} ({columns}) VALUES ({values}) RETURNING {pk}"  # noqa: S608


def order_lock_and_confirm(
    *, sale_id: int, buyer_id: int, quantity: int = 1, pass_issued_ms: int = -1
) -> Order:
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
        # The pass's signature only: this design keeps no room state to spend it in.
        if sale.waiting_room and pass_issued_ms < 0:
            raise BuyRefused("not_admitted")
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


def _settle_key(sale_id: int) -> str:
    return f"qbuy:{{s:{sale_id}}}:settle"


# Per process: sale id -> the monotonic time until which a queued settle_sale task is known to
# read every order committed before it (see settle_nudge).
_settle_covered: dict[int, float] = {}
# Clocks of two machines (this one's, Redis') may run apart by this much over a window.
_WINDOW_MARGIN = 0.005

# Open the window (-1: the caller queues the task), or say how many ms the open one has left.
NUDGE = """
if redis.call('SET', KEYS[1], 1, 'NX', 'PX', ARGV[1]) then return -1 end
return redis.call('PTTL', KEYS[1])
"""


def settle_nudge(sale_id: int) -> None:
    """Make sure a settle_sale task for ``sale_id`` will run after this moment: queue one, unless
    one is already queued for the current window. Called once an order is committed.

    The window is a Redis key that lives SETTLE_WINDOW_MS: the caller that creates it queues
    the task, and the task waits for the key to expire before it reads the pending orders
    (settle_window_wait). So every order committed before a nudge that found the key is read by
    that window's task, and a storm of accepted buys costs one task and one batch per window,
    not a Celery message, a task and a hot-row update per order. Each process remembers how
    long the window it saw is open (counted from before it asked, so never longer than Redis
    keeps the key) and asks Redis again only after that. A broker outage is logged, not
    raised: the order is committed and stays pending until the reconciler settles its sale.
    """
    from .tasks import settle_sale

    asked_at = time.monotonic()
    if asked_at < _settle_covered.get(sale_id, 0.0):
        return
    key = _settle_key(sale_id)
    left = int(gate.redis().register_script(NUDGE)(keys=[key], args=[settings.SETTLE_WINDOW_MS]))
    if left != -1:
        _settle_covered[sale_id] = asked_at + left / 1000 - _WINDOW_MARGIN
        return
    try:
        settle_sale.delay(sale_id)
    except Exception:
        logger.exception("sale %s: settling not queued; the reconciler will", sale_id)
        with contextlib.suppress(RedisError):
            gate.redis().delete(key)  # the next order's nudge tries again
        return
    _settle_covered[sale_id] = asked_at + settings.SETTLE_WINDOW_MS / 1000 - _WINDOW_MARGIN


def settle_window_wait(sale_id: int) -> None:
    """Wait until the nudge window of ``sale_id`` is over (see settle_nudge), by Redis's clock."""
    left = gate.redis().pttl(_settle_key(sale_id))
    if left > 0:
        time.sleep(left / 1000)


@dataclass
class SettleReport:
    confirmed: int = 0
    failed: int = 0
    batches: int = 0


def orders_settle(*, sale_id: int, tokens: list[str] | None = None) -> SettleReport:
    """Confirm or fail the pending orders of ``sale_id`` (only ``tokens``, if given), in batches
    of SETTLE_BATCH, oldest first; calling it again is harmless.

    A batch is one transaction: the orders locked (SKIP LOCKED: another task's batch or a
    cancel holding one is left to them), one conditional decrement of the sale row for the
    whole batch, one UPDATE of the orders. Postgres has the last word: if ``remaining`` cannot
    cover the batch (the gate was wrong), the row is locked and the orders that fit are
    confirmed in order, the rest failed ``sold_out``; ``CHECK (remaining >= 0)`` holds whatever
    happens. Redis follows each COMMIT: confirmed reservations are dropped, failed ones given
    back. A worker that dies mid-batch rolls it back: the orders stay pending for the next task.
    """
    report = SettleReport()
    while True:
        confirmed, failed = _settle_batch(sale_id, tokens)
        if not confirmed and not failed:
            return report
        report.batches += 1
        report.confirmed += len(confirmed)
        report.failed += len(failed)
        # After the COMMIT: the reservations are orders now, or their stock comes back.
        gate.drop_many(sale_id=sale_id, tokens=confirmed)
        for token in failed:
            # The gate accepted more than Postgres had: it should not happen, and a buyer was
            # told 202 for nothing, so a line per order says which.
            logger.warning(
                "order %s failed: sale %s has no stock left in Postgres for it",
                token,
                sale_id,
                extra={"order": token},
            )
            gate.release(sale_id=sale_id, token=token, forget_buyer=True)
        if confirmed and not Sale.objects.filter(pk=sale_id, remaining__gt=0).exists():
            # update() sends no signal: drop the sale page so it says "sold_out" now.
            page_cache.drop(Sale(pk=sale_id).cached_paths())
        if len(confirmed) + len(failed) < settings.SETTLE_BATCH:
            return report


def _settle_batch(sale_id: int, tokens: list[str] | None) -> tuple[list[str], list[str]]:
    """One batch in one transaction -> (tokens confirmed, tokens failed)."""
    with transaction.atomic():
        pending = Order.objects.filter(sale_id=sale_id, status=Order.Status.PENDING)
        if tokens is not None:
            pending = pending.filter(token__in=tokens)
        # The worker's batches skip orders another batch or a cancel holds; one order asked
        # for by its token waits for it (order_place).
        batch = list(
            pending.select_for_update(skip_locked=tokens is None)
            .order_by("pk")
            .values_list("pk", "token", "quantity", "created_at")[: settings.SETTLE_BATCH]
        )
        if not batch:
            return [], []
        total = sum(quantity for _, _, quantity, _ in batch)
        taken = Sale.objects.filter(pk=sale_id, remaining__gte=total).update(
            remaining=F("remaining") - total
        )
        if taken:
            fits, short = batch, []
        else:
            fits, short = _allocate(sale_id, batch)
        now = timezone.now()
        if fits:
            Order.objects.filter(pk__in=[pk for pk, _, _, _ in fits]).update(
                status=Order.Status.CONFIRMED, updated_at=now
            )
        if short:
            Order.objects.filter(pk__in=[pk for pk, _, _, _ in short]).update(
                status=Order.Status.FAILED, reason="sold_out", updated_at=now
            )
    metrics.orders_settled(
        sale_id=sale_id,
        confirmed=[(now - created).total_seconds() for _, _, _, created in fits],
        failed=[(now - created).total_seconds() for _, _, _, created in short],
    )
    return [str(t) for _, t, _, _ in fits], [str(t) for _, t, _, _ in short]


def _allocate(sale_id: int, batch: list) -> tuple[list, list]:
    """Postgres cannot cover the whole batch: under the sale row's lock, confirm the orders
    that fit, in the order they were accepted, and take their stock."""
    remaining = (
        Sale.objects.select_for_update(no_key=True)
        .values_list("remaining", flat=True)
        .get(pk=sale_id)
    )
    fits, short = [], []
    for order in batch:
        if order[2] <= remaining:
            remaining -= order[2]
            fits.append(order)
        else:
            short.append(order)
    if fits:
        Sale.objects.filter(pk=sale_id).update(remaining=remaining)
    return fits, short


def order_place(*, token: str) -> Order:
    """Settle one order (confirm or fail it), as a batch of one; calling it again is harmless.
    What the worker runs is orders_settle for the whole sale; this is for callers that hold a
    token (a cancel racing the worker in tests, an operator in the shell)."""
    sale_id = Order.objects.values_list("sale_id", flat=True).get(token=token)
    orders_settle(sale_id=sale_id, tokens=[token])
    order = Order.objects.get(token=token)
    # A settled order's clean-up again (idempotent by token): a worker may have died between
    # its COMMIT and the clean-up.
    if order.status == Order.Status.CONFIRMED:
        gate.drop(sale_id=sale_id, token=token)
    elif order.status == Order.Status.FAILED:
        gate.release(sale_id=sale_id, token=token, forget_buyer=True)
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
            # foreign key) go on; the settling's UPDATE of ``remaining`` waits.
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
        # the difference, which the settling's conditional UPDATE refuses (never oversold).
        logger.exception("sale %s: stock change rolled back, Redis not undone", sale_id)


def order_cancel(
    *, order_id: int | None = None, token: str | None = None, message: str = ""
) -> bool:
    """Fail a pending or confirmed order (an admin's decision) and give its stock back in
    Postgres and Redis; its buyer may buy again. The buyer reads CANCELLED_BY_SHOP and the
    optional ``message`` (at most CANCEL_MESSAGE_MAX characters), never who cancelled. False,
    and nothing changed, if it had already failed: cancelling twice is harmless. Raises
    gate.Busy if the sale's Redis state stays locked by a rebuild (it takes milliseconds).

    As in orders_settle: Postgres commits first, then Redis follows, so in between the gate
    offers less than Postgres has (a buyer may be refused for a moment), never more. The gate's
    rebuild lock is held throughout: a rebuild reading the row before the COMMIT and writing
    after the Redis step would lose the stock given back. If Redis fails after the COMMIT, the
    gate forgets the sale and the next reservation rebuilds it from Postgres.
    """
    lookup = {"pk": order_id} if token is None else {"token": token}
    sale_id = Order.objects.filter(**lookup).values_list("sale_id", flat=True).get()
    with gate.rebuild_lock(sale_id):
        with transaction.atomic(durable=True):
            # The settling's lock: a cancel and the order's batch take turns, and each decides on
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
    requeued: int = 0  # pending orders whose sale was settled again
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


def _requeue_key(sale_id: int) -> str:
    return f"qbuy:{{s:{sale_id}}}:requeued"


def orders_reconcile(*, now=None) -> ReconcileReport:
    """Nothing accepted stays pending forever (DESIGN.md invariant 3).

    A sale with orders pending for longer than ORDER_REQUEUE_AFTER gets a settle_sale task
    again, at most once per ORDER_REQUEUE_AFTER (a key per sale with that TTL), whatever the
    number of runs: while no worker consumes, the queue holds one message per waiting sale,
    not one per order per beat tick. Two concurrent runs (two beats) do not both act: the run
    holds a Redis lock, and the per-sale key is set atomically.
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
    from .tasks import settle_sale

    requeue_after = timedelta(seconds=settings.ORDER_REQUEUE_AFTER)
    fail_after = timedelta(seconds=settings.ORDER_FAIL_AFTER)
    stale = Order.objects.filter(status=Order.Status.PENDING, created_at__lt=now - requeue_after)
    # Batches of 500: each one a transaction and a Redis call; a larger batch only delays beat.
    for order in stale.filter(created_at__lt=now - fail_after).order_by("created_at")[:500]:
        report.failed += order_fail(order=order, reason="timeout")
    waiting = dict(
        stale.order_by().values_list("sale_id").annotate(n=Count("pk")).values_list("sale_id", "n")
    )
    if waiting:
        pipe = conn.pipeline(transaction=False)
        for sale_id in waiting:
            pipe.set(_requeue_key(sale_id), 1, nx=True, ex=settings.ORDER_REQUEUE_AFTER)
        for sale_id, first in zip(waiting, pipe.execute(), strict=True):
            if first:
                settle_sale.delay(sale_id)
                report.requeued += waiting[sale_id]
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
    """Load the Redis state of sales opening soon, so the first buyers never wait on a rebuild,
    and build their waiting rooms."""
    now = now or timezone.now()
    soon = Sale.objects.filter(
        starts_at__lte=now + timedelta(seconds=settings.WARM_AHEAD), ends_at__gt=now
    )
    warmed = 0
    for sale in soon:
        if not gate.redis().exists(gate.keys(sale.pk)[0]):
            warmed += gate.load(sale)
        if sale.waiting_room:
            room_store.create(sale)
    return warmed
