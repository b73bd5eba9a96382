"""The buy path's metrics (qbuy_core.metrics serves them): answers by outcome, the gate's
round trip, the time from a 202 to its order settled, the reconciler's actions.

A buy is counted once, where its answer leaves the process (config.metrics.RequestMetrics):
the view or the sold-out edge names the outcome in the environ (OUTCOME); an answer given
before the view ran (a body Django refused, an outage's 503, the CSRF check) is named by its
status. nginx's own 429s (limit_req) never reach the app: nginx's metrics count those.
"""

from prometheus_client import Counter, Histogram

from qbuy_core.metrics import tally

from . import live

OUTCOME = "qbuy.buy_outcome"
BY_STATUS = {
    202: "accepted",
    400: "invalid",
    401: "not_authenticated",
    403: "invalid",
    404: "not_found",
    413: "invalid",
    415: "invalid",
    429: "rate_limited",
    503: "unavailable",
}

BUY_ANSWERS = Counter("qbuy_buy_answers", "Buy answers by outcome.", ["outcome"])
GATE = Histogram(
    "qbuy_gate_seconds",
    "The Redis gate's check-and-reserve script, one round trip.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
SETTLE = Histogram(
    "qbuy_order_settle_seconds",
    "From an order's 202 (its INSERT) to its batch's COMMIT, by how it ended.",
    ["outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
RECONCILER = Counter("qbuy_reconciler_actions", "What the reconciler did, by action.", ["action"])


_answers: dict[str, object] = {}  # outcome -> its counter (labels() locks and builds a key)


def buy_answered(*, sale_id: int, status: int, outcome: str | None) -> None:
    outcome = outcome or BY_STATUS.get(status) or ("error" if status >= 500 else "invalid")
    child = _answers.get(outcome)
    if child is None:
        child = _answers[outcome] = BUY_ANSWERS.labels(outcome)
    tally.inc(child)
    live.record(sale_id, outcome)


def orders_settled(*, sale_id: int, confirmed: list[float], failed: list[float]) -> None:
    """Seconds from 202 to settled of each order of a committed batch."""
    for outcome, seconds in (("confirmed", confirmed), ("failed", failed)):
        for value in seconds:
            SETTLE.labels(outcome).observe(value)
    live.record_settled(sale_id, confirmed + failed)


def reconciled(report: dict) -> None:
    for action, count in report.items():
        if count:
            RECONCILER.labels(action).inc(count)
