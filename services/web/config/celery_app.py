import os
import threading
import time
from pathlib import Path

from celery import Celery, bootsteps, signals
from celery.worker import state

# HEARTBEAT_SECONDS: the probes allow a minute; tests shorten it.
HEARTBEAT_SECONDS = float(os.environ.get("HEARTBEAT_SECONDS", "10"))

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("qbuy")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


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
