import os
import threading
import time
from pathlib import Path

from celery import Celery, signals

HEARTBEAT_SECONDS = 10

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("qbuy")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_ready.connect
@signals.beat_init.connect
def start_heartbeat(**kwargs):
    """Touch HEARTBEAT_FILE every few seconds from inside the process.

    The Kubernetes liveness probe checks the file's age: it proves the process (and, under
    gevent, its event loop) is alive without asking the broker, so a slow Redis cannot get a
    healthy worker killed.
    """
    path = Path(os.environ.get("HEARTBEAT_FILE", "/tmp/qbuy-heartbeat"))  # noqa: S108

    def beat():
        while True:
            path.touch()
            time.sleep(HEARTBEAT_SECONDS)

    threading.Thread(target=beat, name="qbuy-heartbeat", daemon=True).start()
