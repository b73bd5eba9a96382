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

import glob
import logging
import os

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
