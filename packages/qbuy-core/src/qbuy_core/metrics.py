"""Prometheus metrics: each process serves its own on METRICS_PORT, never on the public port.

A scrape of /metrics is answered on a port of its own (the web's, the worker's and beat's), so
nginx and the Ingress have nothing to route to it and the NetworkPolicy can open it to
Prometheus alone (DESIGN.md invariant 9).

gunicorn runs several worker processes behind one port; a scrape reaching one of them would see
a fraction of the counts. In prometheus_client's multi-process mode every process writes its
values to files in PROMETHEUS_MULTIPROC_DIR and gunicorn's master, which answers no requests,
serves their sum (services/web/gunicorn.conf.py). The variable has to be in the environment
before prometheus_client is first imported in a process: it chooses how values are stored then.
"""

import atexit
import bisect
import glob
import logging
import os
import threading
import time

from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, start_http_server

logger = logging.getLogger("qbuy.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The environ key where the middleware names the view that answered (the request metrics'
# label): the view's URL name, or "page-cache" for a page answered from the cache.
VIEW = "qbuy.view"


def multiproc_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def registry() -> CollectorRegistry:
    """What this process serves: every process's files in multi-process mode, else its own."""
    path = multiproc_dir()
    if path is None:
        return REGISTRY
    collected = CollectorRegistry()
    multiprocess.MultiProcessCollector(collected, path=path)
    return collected


def serve(port: int | str, *, collected: CollectorRegistry | None = None) -> None:
    """Answer scrapes on ``port`` from a daemon thread. Every interface unless METRICS_ADDR
    says otherwise: Prometheus scrapes from another container or pod, and the port is published
    nowhere (the NetworkPolicy opens it to Prometheus alone).

    A port that cannot be bound is logged, not raised: the process goes on taking orders, and
    Prometheus, finding no target there, raises the alarm (up == 0)."""
    addr = os.environ.get("METRICS_ADDR", "0.0.0.0")  # noqa: S104
    try:
        start_http_server(int(port), addr=addr, registry=collected or registry())
    except OSError as exc:
        logger.error("metrics not served on %s:%s: %s", addr, port, exc)
        return
    logger.info("metrics on %s:%s/metrics", addr, port)


def clean(path: str) -> None:
    """Forget the files of an earlier run: their processes are gone, and counters that outlive
    a restart would make Prometheus see no reset while the new processes count from zero."""
    for stale in glob.glob(os.path.join(path, "*.db")):
        os.remove(stale)


def process_exited(pid: int) -> None:
    """A worker process is gone: its live gauges stop counting (its counters stay summed)."""
    if multiproc_dir() is not None:
        multiprocess.mark_process_dead(pid)


class Tally:
    """Counts kept in this process's memory and added to their metrics once a second.

    In multi-process mode every ``inc`` and ``observe`` writes a memory-mapped file under a
    lock: three writes per sold-out answer, which took the buy storm to 0.94x of the commit
    before the metrics (make bench-compare). Here an answer costs a dict update; a daemon
    thread, started by the first count (and again in a forked child), adds each second's
    counts. A scrape sees them up to a second late; a process that exits adds its last ones.
    A histogram is written the way its own ``observe`` writes it: the sum, and the first
    bucket whose bound holds the value (prometheus_client keeps buckets uncumulated).
    """

    def __init__(self, interval: float = 1.0):
        self.interval = interval
        self._reset()
        os.register_at_fork(after_in_child=self._reset)
        atexit.register(self.flush)

    def _reset(self) -> None:
        self._lock = threading.Lock()  # a lock held in the parent at fork would stay held
        self._counts: dict = {}  # a counter -> n, or (a histogram, bucket index) -> n
        self._sums: dict = {}  # a histogram -> the sum of its values
        self._thread: threading.Thread | None = None

    def inc(self, counter) -> None:
        with self._lock:
            self._counts[counter] = self._counts.get(counter, 0) + 1
        if self._thread is None:
            self._start()

    def observe(self, histogram, value: float) -> None:
        key = (histogram, bisect.bisect_left(histogram._upper_bounds, value))
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1
            self._sums[histogram] = self._sums.get(histogram, 0.0) + value
        if self._thread is None:
            self._start()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="qbuy-metrics", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            self.flush()

    def flush(self) -> None:
        with self._lock:
            counts, self._counts = self._counts, {}
            sums, self._sums = self._sums, {}
        for key, count in counts.items():
            if isinstance(key, tuple):
                histogram, index = key
                histogram._buckets[index].inc(count)
            else:
                key.inc(count)
        for histogram, total in sums.items():
            histogram._sum.inc(total)


tally = Tally()
