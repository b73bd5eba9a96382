"""Live sale figures for the admin's live view (sales.admin): buy answers per second by
outcome and settle latency per second, per sale, added up over every process, and sale_live,
which reads them with the sale's stock and orders.

``record`` runs on every buy answer, the sold-out answers given before Django included
(orders.soldout_edge: thousands a second per process), so all it does is count in this process's
memory; a daemon thread adds the counts to Redis once a second, one pipeline per flush. These
are figures for a chart, not a ledger (Postgres is the ledger, Prometheus has exact counters): a
flush that Redis refuses is dropped, and a process that exits loses the counts of its last second.

Keys (the gate's Redis, with the sale's hash tag, so one Cluster slot per sale):
  qbuy:{s:ID}:live:SECOND   hash, for the epoch second SECOND: outcome -> buy answers given;
                            settle.n, settle.sum, settle.max -> orders settled in that second,
                            the sum and the largest of their seconds from 202 to settled.
"""

import logging
import os
import threading
import time

from django.db.models import Count, Sum
from redis.exceptions import RedisError

from . import gate

logger = logging.getLogger("qbuy.orders")

KEEP = 300  # seconds each second's hash lives: the view shows the last minute
# Every process flushes this long after a second ends, so a second is whole soon after it ends;
# a reader waits READ_LAG (the flush's own time and the clocks of two machines included).
FLUSH_AFTER = 0.05
READ_LAG = 0.5
SETTLE_FIELDS = ("settle.n", "settle.sum", "settle.max")

# One call per settle batch, so the largest latency is kept without reading it back first.
SETTLED = """
redis.call('HINCRBY', KEYS[1], 'settle.n', ARGV[1])
redis.call('HINCRBYFLOAT', KEYS[1], 'settle.sum', ARGV[2])
local max = tonumber(redis.call('HGET', KEYS[1], 'settle.max'))
if not max or tonumber(ARGV[3]) > max then redis.call('HSET', KEYS[1], 'settle.max', ARGV[3]) end
redis.call('EXPIRE', KEYS[1], ARGV[4])
"""


def key(sale_id: int, second: int) -> str:
    return f"qbuy:{{s:{sale_id}}}:live:{second}"


class _Failures:
    """Logs the first failure of a run of them and the recovery, not one line per second."""

    def __init__(self, what: str):
        self.what = what
        self.failing = False

    def failed(self, exc: Exception) -> None:
        if not self.failing:
            self.failing = True
            logger.warning(
                "live sale figures: %s not written, dropped until Redis answers: %r", self.what, exc
            )

    def ok(self) -> None:
        if self.failing:
            self.failing = False
            logger.info("live sale figures: %s written again", self.what)


class _Tally:
    """This process's counts not yet in Redis, and the thread that writes them."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts: dict[tuple[int, int, str], int] = {}  # (sale, second, outcome) -> answers
        self.thread: threading.Thread | None = None
        self.failures = _Failures("buy answers")

    def add(self, sale_id: int, outcome: str) -> None:
        at = (sale_id, int(time.time()), outcome)
        with self.lock:
            self.counts[at] = self.counts.get(at, 0) + 1
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="qbuy-live", daemon=True)
                self.thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(1 - time.time() % 1 + FLUSH_AFTER)
            self.flush()

    def flush(self) -> None:
        with self.lock:
            counts, self.counts = self.counts, {}
        if not counts:
            return
        try:
            pipe = gate.redis().pipeline(transaction=False)
            keys = set()
            for (sale_id, second, outcome), n in counts.items():
                keys.add(key(sale_id, second))
                pipe.hincrby(key(sale_id, second), outcome, n)
            for name in keys:
                pipe.expire(name, KEEP)
            pipe.execute()
        # Any error, not only Redis's: this thread must outlive it, or the counts would grow
        # with nobody to write them.
        except Exception as exc:
            self.failures.failed(exc)
        else:
            self.failures.ok()


_tally = _Tally()
_settled = _Failures("settle latencies")


def _forked() -> None:
    # gunicorn forks its workers: the parent's counts are the parent's to write, its thread does
    # not exist in the child, and its lock may have been held by that thread at the fork.
    global _tally
    _tally = _Tally()


os.register_at_fork(after_in_child=_forked)


def record(sale_id: int, outcome: str) -> None:
    """Count one buy answer for the live view; never touches the network."""
    _tally.add(sale_id, outcome)


def flush() -> None:
    """Write this process's counts now (the thread does it every second)."""
    _tally.flush()


def record_settled(sale_id: int, seconds: list[float]) -> None:
    """One settle batch: each order's seconds from its 202 to settled. Written at once (one
    call per batch); a Redis error is logged once and dropped, never raised into the batch."""
    if not seconds:
        return
    args = [len(seconds), sum(seconds), max(seconds), KEEP]
    try:
        gate.redis().register_script(SETTLED)(keys=[key(sale_id, int(time.time()))], args=args)
    except Exception as exc:
        _settled.failed(exc)
    else:
        _settled.ok()


def last_whole_second(now: float) -> int:
    """The latest epoch second that every process has flushed by ``now``."""
    return int(now - FLUSH_AFTER - READ_LAG) - 1


def per_second(sale_id: int, *, last: int, count: int) -> list[dict[str, float]]:
    """The figures of the ``count`` seconds up to ``last``, oldest first: field -> value."""
    pipe = gate.redis().pipeline(transaction=False)
    for second in range(last - count + 1, last + 1):
        pipe.hgetall(key(sale_id, second))
    return [{k.decode(): float(v) for k, v in raw.items()} for raw in pipe.execute()]


def sale_live(sale_id: int, *, seconds: int = 60) -> dict:
    """What the admin's live view shows of a sale (raises Sale.DoesNotExist): its last
    ``seconds`` whole seconds of buy answers by outcome and settle latency, the stock left to
    reserve, its orders by state. Without Redis, the per-second figures are None
    and the stock left is Postgres' figure, as the gate would rebuild it."""
    # Here, not at the top: the buy path imports this module before Django's apps are ready.
    from sales.models import Sale

    from .models import Order

    sale = Sale.objects.get(pk=sale_id)
    by_status = Order.objects.filter(sale_id=sale_id).values("status").order_by()
    rows = list(by_status.annotate(n=Count("pk"), quantity=Sum("quantity")))
    counts = {status: 0 for status in Order.Status.values} | {r["status"]: r["n"] for r in rows}
    pending_quantity = sum(r["quantity"] for r in rows if r["status"] == Order.Status.PENDING)
    last = last_whole_second(time.time())
    try:
        figures = per_second(sale_id, last=last, count=seconds)
        in_gate = gate.redis().hget(gate.keys(sale_id)[0], "stock")
    except RedisError:
        figures, in_gate = None, None
    return {
        "sale": sale_id,
        "state": sale.state(),
        "stock": sale.stock,
        "last_second": last,
        "seconds": seconds,
        "answers": None if figures is None else _answers(figures),
        "settle": None if figures is None else _settle_latency(figures),
        "stock_left": (
            int(in_gate) if in_gate is not None else max(0, sale.remaining - pending_quantity)
        ),
        "stock_left_from": "redis" if in_gate is not None else "postgres",
        "orders": counts,
    }


def _answers(figures: list[dict[str, float]]) -> dict[str, list[int]]:
    """outcome -> answers per second, for the outcomes given at least once."""
    outcomes = sorted({name for second in figures for name in second} - set(SETTLE_FIELDS))
    return {o: [int(second.get(o, 0)) for second in figures] for o in outcomes}


def _settle_latency(figures: list[dict[str, float]]) -> dict[str, list]:
    """Orders settled per second and their mean and largest latency in ms (None: none)."""
    settled = [int(second.get("settle.n", 0)) for second in figures]
    mean = [
        round(second["settle.sum"] * 1000 / n, 1) if n else None
        for second, n in zip(figures, settled, strict=True)
    ]
    most = [
        round(s["settle.max"] * 1000, 1) if n else None
        for s, n in zip(figures, settled, strict=True)
    ]
    return {"orders": settled, "mean_ms": mean, "max_ms": most}
