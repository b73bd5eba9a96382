"""Postgres connections for the worker's greenlets: at most WORKER_DB_CONNECTIONS per process,
kept open from one task to the next.

Under `-P gevent` Django's connections are per greenlet, and Celery runs each task in a new
greenlet and closes its connections before and after it: every order opened and closed its own
Postgres session (issue 10: 80 sessions for 80 orders, Postgres spending half a core on
connection set-up in a storm). Here a task's database work borrows one of a few Django
connection wrappers, which stay connected between tasks; Django's own rules still close one
that is broken, in a failed transaction or older than CONN_MAX_AGE, and its health check
(CONN_HEALTH_CHECKS) tests a reused one before the first query, so a Postgres restart costs a
reconnection, not a failed task.

psycopg_pool was tried first: after a Postgres restart its waiters under gevent never got a
connection again (the fault suite's "Postgres restart -c 4", second round: 19 orders stuck).
"""

import contextlib
import functools
import threading

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

_idle: list = []  # wrappers not lent to a task, connected or not


@functools.cache
def _slots() -> threading.BoundedSemaphore:
    # gevent's semaphore once the worker has monkey-patched threading: -c 500 greenlets wait
    # here for one of WORKER_DB_CONNECTIONS wrappers, whatever -c is.
    return threading.BoundedSemaphore(settings.WORKER_DB_CONNECTIONS)


def _new_wrapper():
    wrapper = connections.create_connection(DEFAULT_DB_ALIAS)
    wrapper.inc_thread_sharing()  # lent to one greenlet at a time, but to many over its life
    return wrapper


@contextlib.contextmanager
def db_slot():
    """Lend the calling greenlet a database connection for the block; Django's
    ``connection`` is that one inside it."""
    _slots().acquire()
    wrapper = _idle.pop() if _idle else _new_wrapper()
    connections[DEFAULT_DB_ALIAS] = wrapper
    try:
        yield
    finally:
        try:
            wrapper.close_if_unusable_or_obsolete()
        finally:
            # Out of the greenlet's own connections, so Celery's clean-up after the task does
            # not close it while another task uses it.
            del connections[DEFAULT_DB_ALIAS]
            _idle.append(wrapper)
            _slots().release()
