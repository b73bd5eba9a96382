import inspect
import logging
import logging.config
import os
import threading
import time
from pathlib import Path

from celery import Celery, bootsteps, signals
from celery.worker import state
from django.conf import settings

from qbuy_core import logcontext

# HEARTBEAT_SECONDS: the probes allow a minute; tests shorten it.
HEARTBEAT_SECONDS = float(os.environ.get("HEARTBEAT_SECONDS", "10"))

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("qbuy")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

logger = logging.getLogger("qbuy.celery")
# The message header that carries the id of the web request that queued a task.
REQUEST_ID_HEADER = "qbuy_request_id"


@signals.setup_logging.connect
def log_as_web_does(**kwargs):
    """The worker and beat log with settings.LOGGING: LOG_FORMAT, LOG_LEVEL (what the entry
    scripts give --loglevel) and the context fields, as web does. With a receiver here Celery
    neither hijacks the root logger (worker_hijack_root_logger) nor puts its plain format on it
    and on its task logger."""
    logging.config.dictConfig(settings.LOGGING)


@signals.celeryd_after_setup.connect
def banner_as_one_line(sender, instance, **kwargs):
    """Under LOG_FORMAT=json the worker's start-up banner (twenty lines printed to stdout) is
    logged as one JSON line instead, so that every line of its output is an object."""
    if settings.LOG_FORMAT == "json":
        instance.quiet = True
        logger.info("%s", instance.startup_info(artlines=False))


@signals.before_task_publish.connect
def carry_request_id(headers, **kwargs):
    """A task queued while a web request is answered (a buy's settle_sale) logs that
    request's id: its lines and the buy's are found together."""
    request_id = logcontext.current().get("request_id")
    if request_id:
        headers[REQUEST_ID_HEADER] = request_id


@signals.task_prerun.connect
def begin_log_scope(task_id, task, args, kwargs, **extra):
    """Every line logged while a task runs, Celery's "succeeded" included, names the task,
    its sale (a task with a ``sale_id`` argument) and the request that queued it."""
    fields = {"task_id": task_id}
    request_id = task.request.get(REQUEST_ID_HEADER)
    if request_id:
        fields["request_id"] = request_id
    try:
        sale_id = inspect.signature(task.run).bind(*args, **kwargs).arguments.get("sale_id")
    except TypeError:  # arguments that do not fit: the task itself will say so
        sale_id = None
    if sale_id is not None:
        fields["sale_id"] = sale_id
    task.request.log_scope = logcontext.begin(**fields)


@signals.task_postrun.connect
def end_log_scope(task, **kwargs):
    scope = getattr(task.request, "log_scope", None)
    if scope is not None:
        logcontext.end(scope)


def _heartbeat_path() -> Path:
    return Path(os.environ.get("HEARTBEAT_FILE", "/tmp/qbuy-heartbeat"))  # noqa: S108


def _every(seconds: float, beat) -> None:
    def loop():
        while True:
            beat()
            time.sleep(seconds)

    threading.Thread(target=loop, name="qbuy-heartbeat", daemon=True).start()


@signals.beat_init.connect
def start_beat_heartbeat(**kwargs):
    """Beat: touch HEARTBEAT_FILE every few seconds from inside the process. The liveness
    probes (k8s, compose, the Dockerfile) check the file's age without asking the broker."""
    _every(HEARTBEAT_SECONDS, _heartbeat_path().touch)


class ConsumingHeartbeat(bootsteps.StartStopStep):
    """Worker: touch HEARTBEAT_FILE only while the consumer is consuming.

    "Alive" is not enough: a worker can sit in epoll_wait with its broker connection gone or
    every prefetch slot held by a task that will never end (issue 9), and a file touched
    whatever happens kept the liveness probe happy. The file is touched when the consumer has
    a live broker connection and no task has been running longer than the hard time limit
    (which would have ended it). No broker round trip: a slow Redis cannot get a healthy worker
    killed.
    """

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c, **kwargs):
        self.running = False
        super().__init__(c, **kwargs)

    def start(self, c):
        if not self.running:  # the consumer restarts this step after every reconnect
            self.running = True
            _every(HEARTBEAT_SECONDS, lambda: self.beat(c))

    def beat(self, c):
        if consuming(c):
            _heartbeat_path().touch()


def consuming(c) -> bool:
    connection = c.connection
    if connection is None or not connection.connected:
        return False
    limit = (c.app.conf.task_time_limit or 0) + 2 * HEARTBEAT_SECONDS
    now = time.time()  # Request.time_start is wall-clock time
    oldest = min((r.time_start or now for r in state.active_requests), default=now)
    return not (c.app.conf.task_time_limit and now - oldest > limit)


app.steps["consumer"].add(ConsumingHeartbeat)

# Metrics on METRICS_PORT for the worker and beat (config/celery_metrics.py).
import config.celery_metrics  # noqa: E402, F401
