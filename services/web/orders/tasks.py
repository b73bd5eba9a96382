"""Celery tasks: thin wrappers that fetch by id and call one service."""

import contextlib
import functools
import threading

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError, connection
from redis.exceptions import RedisError

from . import services


@functools.cache
def _db_slots():
    # Under `-P gevent` Django opens one Postgres connection per greenlet, so -c 500 would mean
    # 500 connections. This semaphore (gevent's, once the worker has monkey-patched threading)
    # caps one worker process at WORKER_DB_CONNECTIONS, whatever -c is.
    return threading.BoundedSemaphore(settings.WORKER_DB_CONNECTIONS)


@contextlib.contextmanager
def db_slot():
    """Hold a slot for a task's database work; close the connection before giving it back."""
    _db_slots().acquire()
    try:
        yield
    finally:
        try:
            connection.close()
        finally:
            _db_slots().release()


@shared_task(
    acks_late=True,  # acked after it ran: a killed worker's task is delivered again
    reject_on_worker_lost=True,
    autoretry_for=(DatabaseError, RedisError),
    retry_backoff=True,
    retry_backoff_max=30,
    max_retries=10,
)
def place_order(token: str) -> str:
    with db_slot():
        return services.order_place(token=token).status


@shared_task
def reconcile_orders() -> dict:
    with db_slot():
        report = services.orders_reconcile()
    return {
        "requeued": report.requeued,
        "failed": report.failed,
        "released": report.released,
        "skipped": report.skipped,
    }


@shared_task
def warm_sales() -> int:
    with db_slot():
        return services.sales_warm()
