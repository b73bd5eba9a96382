"""Celery tasks: thin wrappers that fetch by id and call one service."""

import logging
import time

from celery import shared_task
from django.db import DatabaseError
from redis.exceptions import RedisError

from config.worker_db import db_slot

from . import metrics, services

logger = logging.getLogger("qbuy.orders")


# Which results go to django-celery-results (CELERY_TASK_IGNORE_RESULT is on for the rest):
# - settle_sale: none. The order rows are its result (status, reason, updated_at); a result row
#   per task would add Postgres writes to a flash sale, on a connection outside
#   WORKER_DB_CONNECTIONS, and a failure would need Postgres just when Postgres failed.
# - reconcile_orders: stored. Its report (re-queued, failed, released, skipped) is the one
#   record of what the backstop did, to read in the admin or Flower; one small row per run.
# - warm_sales and celery.backend_cleanup: none, nothing to learn from them.
# A result that cannot be stored is logged, never raised (config/celery_results.py).

# In-process waits for Redis before settle_sale gives up on an attempt; within the task time
# limit, and the sleeps cost a greenlet, not a database slot.
REDIS_WAITS = (0.5, 1, 2, 4)


@shared_task(
    acks_late=True,  # acked after it ran: a killed worker's task is delivered again
    reject_on_worker_lost=True,
    # Only database errors are retried through the broker. Celery's retry publishes a new
    # message; with Redis (the broker) down that publish fails and Celery rejects the delivery
    # without requeueing it: the message would be dropped. Redis errors wait in-process below.
    autoretry_for=(DatabaseError,),
    retry_backoff=True,
    retry_backoff_max=30,
    max_retries=10,
)
def settle_sale(sale_id: int) -> int:
    """Confirm or fail every pending order of the sale (orders.services.orders_settle), once
    the nudge window this task was queued for is over; returns how many were settled."""
    # orders_settle touches Redis only after each COMMIT (the reservations' clean-up), and a
    # second call finds nothing pending: retrying it here is safe. If Redis stays down the task
    # fails; its ack needs Redis too, so kombu delivers the message again once Redis is back
    # (if Redis lost it, the reconciler settles the sale again from Postgres).
    for wait in REDIS_WAITS:
        try:
            return _settle(sale_id)
        except RedisError as exc:
            logger.warning("sale %s: Redis error, again in %ss: %r", sale_id, wait, exc)
            time.sleep(wait)
    return _settle(sale_id)


def _settle(sale_id: int) -> int:
    services.settle_window_wait(sale_id)
    with db_slot():
        report = services.orders_settle(sale_id=sale_id)
    return report.confirmed + report.failed


@shared_task(ignore_result=False)
def reconcile_orders() -> dict:
    with db_slot():
        report = services.orders_reconcile()
    actions = {
        "requeued": report.requeued,
        "failed": report.failed,
        "released": report.released,
        "skipped": report.skipped,
    }
    metrics.reconciled(actions)
    return actions


@shared_task
def warm_sales() -> int:
    with db_slot():
        return services.sales_warm()
