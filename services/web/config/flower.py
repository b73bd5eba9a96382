"""Flower as qbuy runs it (services/worker/start-flower.sh: ``python -m config.flower``).

Flower serves /metrics without its login (flower#1342): task names and counts, the shop's order
volume, to anyone who reaches its port. Here /metrics asks for the same login as every other
page (give Prometheus the credentials: ``basic_auth`` in its scrape config); /healthcheck stays
open for the probes, it says "OK" and nothing more.
"""

import sys

from celery.bin.celery import main as celery
from flower import urls
from flower.views.monitor import Metrics
from tornado import web


class LoginMetrics(Metrics):
    @web.authenticated
    async def get(self):
        await super().get()


def metrics_behind_the_login(handlers: list) -> None:
    """Swap Flower's /metrics handler for LoginMetrics in its URL table, in place (Flower reads
    the same list when it builds its application). Fails loudly if Flower's table changed."""
    found = [i for i, h in enumerate(handlers) if isinstance(h, tuple) and h[1] is Metrics]
    if len(found) != 1:
        raise RuntimeError("Flower's URL table has no single /metrics handler to protect")
    pattern, _, *rest = handlers[found[0]]
    handlers[found[0]] = (pattern, LoginMetrics, *rest)


if __name__ == "__main__":
    metrics_behind_the_login(urls.handlers)
    sys.argv = ["celery", "-A", "config.celery_app", "flower", *sys.argv[1:]]
    sys.exit(celery())
