"""django-celery-results' backends, with one change: a result that cannot be stored is logged,
not raised.

Celery stores a task's RETRY/FAILURE through the result backend after the task failed; with
``django-db`` that needs Postgres, which is what the task just failed on. The store's error
then escapes the worker's tracer, the task is neither acked nor rejected, and the worker has one
prefetch slot less until it restarts: a 10 s Postgres outage took all 16 slots of a `-c 4`
worker (issue 9). A result row is a record for people (the admin, Flower); a delivery is an
order. Losing the first must never cost the second.

``CELERY_RESULT_BACKEND=django-db`` / ``django-cache`` select these classes (settings/base.py).
"""

import logging

from django_celery_results import backends

logger = logging.getLogger("qbuy.celery")


class SafeStoreMixin:
    def store_result(self, task_id, result, state, traceback=None, request=None, **kwargs):
        try:
            return super().store_result(
                task_id, result, state, traceback=traceback, request=request, **kwargs
            )
        except Exception as exc:  # any backend error: Postgres, the cache, the encoder
            logger.warning("result of task %s (%s) not stored: %r", task_id, state, exc)
            return result


class DatabaseBackend(SafeStoreMixin, backends.DatabaseBackend):
    pass


class CacheBackend(SafeStoreMixin, backends.CacheBackend):
    pass
