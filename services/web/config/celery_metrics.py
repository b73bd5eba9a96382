"""The worker's and beat's metrics, each on its own METRICS_PORT (qbuy_core.metrics).

The worker counts its tasks by outcome and time; the buy path's worker-side figures (settle
latency, the reconciler's actions) are counted where they happen (orders.metrics).

Beat, the one process of which exactly one runs, answers the figures that are the same
whichever process reads them, read when Prometheus scrapes: orders by state and the oldest
pending order's age from Postgres, the Celery queue's length from the broker, the site's SMS
count against its hourly cap. Read from every web replica they would be summed or duplicated.
"""

import logging
import os
import time

import redis
from celery import signals
from django.conf import settings
from django.db import DatabaseError, close_old_connections
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from redis.exceptions import RedisError

from qbuy_core import metrics

logger = logging.getLogger("qbuy.metrics")

TASKS = Counter("qbuy_celery_tasks", "Tasks run by this worker, by outcome.", ["task", "outcome"])
TASK_SECONDS = Histogram(
    "qbuy_celery_task_seconds",
    "Task run time.",
    ["task"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
OUTCOMES = {"SUCCESS": "succeeded", "FAILURE": "failed", "RETRY": "retried"}
_started: dict[str, float] = {}


@signals.task_prerun.connect(dispatch_uid="qbuy.metrics.task_prerun")
def task_started(task_id=None, **kwargs):
    _started[task_id] = time.perf_counter()


@signals.task_postrun.connect(dispatch_uid="qbuy.metrics.task_postrun")
def task_ended(task_id=None, task=None, state=None, **kwargs):
    started = _started.pop(task_id, None)
    TASKS.labels(task.name, OUTCOMES.get(state, str(state).lower())).inc()
    if started is not None:
        TASK_SECONDS.labels(task.name).observe(time.perf_counter() - started)


@signals.worker_init.connect(dispatch_uid="qbuy.metrics.worker")
def serve_worker_metrics(**kwargs):
    _serve()


@signals.beat_init.connect(dispatch_uid="qbuy.metrics.beat")
def serve_beat_metrics(sender=None, **kwargs):
    _serve(SharedFigures(sender.app.conf.task_default_queue))


def _serve(*collectors) -> None:
    port = os.environ.get("METRICS_PORT")
    if not port:
        return
    collected = metrics.registry()
    for collector in collectors:
        collected.register(collector)
    metrics.serve(port, collected=collected)


class SharedFigures:
    """Read at each scrape. A source that cannot be read is left out of that scrape (and
    logged): the other figures, and the alert on a scrape that stopped, still work."""

    def __init__(self, queue: str):
        self.queue = queue
        self.broker = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=2)

    def collect(self):
        yield from self._orders()
        yield from self._broker()

    def _orders(self):
        from accounts.services import sms_hour_count
        from orders.selectors import order_states

        try:
            states, oldest = order_states()
            sms_sent = sms_hour_count()
        except (DatabaseError, RedisError) as exc:
            logger.warning("metrics: orders or SMS figures not read: %r", exc)
            return
        finally:
            close_old_connections()  # this runs in the metrics server's thread
        orders = GaugeMetricFamily("qbuy_orders", "Orders by state.", labels=["state"])
        for state, count in states.items():
            orders.add_metric([state], count)
        yield orders
        yield GaugeMetricFamily(
            "qbuy_oldest_pending_order_seconds",
            "Age of the oldest pending order (0: none pending).",
            value=oldest or 0,
        )
        yield GaugeMetricFamily(
            "qbuy_sms_hour_sent", "SMS codes sent in this hour's window.", value=sms_sent
        )
        yield GaugeMetricFamily(
            "qbuy_sms_hour_limit",
            "SMS codes the site may send per hour (SMS_GLOBAL_HOURLY_LIMIT).",
            value=settings.SMS_GLOBAL_HOURLY_LIMIT,
        )

    def _broker(self):
        try:
            length = self.broker.llen(self.queue)
        except RedisError as exc:
            logger.warning("metrics: queue length not read: %r", exc)
            return
        queue = GaugeMetricFamily(
            "qbuy_celery_queue_length", "Messages waiting in the queue.", labels=["queue"]
        )
        queue.add_metric([self.queue], length)
        yield queue
