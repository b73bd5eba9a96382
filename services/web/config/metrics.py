"""Request metrics, observed around the whole WSGI application.

Around it, not in a middleware: the sold-out answers the edge gives before Django
(orders.soldout_edge) are most of a sale's requests, and a page-cache hit never reaches the
view. One histogram gives requests by view and status (its _count) and their latency; a buy's
answer is also counted by outcome (orders.metrics). The view is named in the environ by
qbuy_core's middleware; what no view answered (a 404, a refused host) is "none".
"""

import re
import time

from prometheus_client import Histogram

from orders import metrics as buy_metrics
from qbuy_core.metrics import VIEW, tally

REQUESTS = Histogram(
    "qbuy_http_request_duration_seconds",
    "Time to the application's answer, by view, method and status.",
    ["view", "method", "status"],
    buckets=(0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
_BUY = re.compile(r"/api/sales/([0-9]+)/buy")


class RequestMetrics:
    def __init__(self, app):
        self.app = app
        # labels() takes a lock and builds a key on every call: the few children a process
        # ever uses are kept here instead.
        self.children: dict[tuple[str, str, str], object] = {}

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        answered = []

        def observed(status, headers, exc_info=None):
            answered.append(status)
            return start_response(status, headers, exc_info)

        result = self.app(environ, observed)
        status = answered[-1][:3] if answered else "500"
        view = environ.get(VIEW, "none")
        key = (view, environ.get("REQUEST_METHOD", ""), status)
        child = self.children.get(key)
        if child is None:
            child = self.children[key] = REQUESTS.labels(*key)
        tally.observe(child, time.perf_counter() - started)
        if key[1] == "POST":
            match = _BUY.fullmatch(environ.get("PATH_INFO", ""))
            if match is not None:
                buy_metrics.buy_answered(
                    sale_id=int(match[1]),
                    status=int(status),
                    outcome=environ.get(buy_metrics.OUTCOME),
                )
        return result
