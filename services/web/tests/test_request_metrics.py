"""config.metrics.RequestMetrics: every answer counted once, by view and status, and a buy's
by outcome, whether Django or the sold-out edge gave it (issue 21). Through the real WSGI
application in-process; the storm across gunicorn's processes is in test_buy_storm.py."""

import json

import pytest
from django.core.handlers.wsgi import WSGIHandler
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from config.metrics import RequestMetrics
from orders.soldout_edge import SoldOutEdge
from qbuy_core.metrics import Tally, tally
from tests.test_soldout_edge import shop  # noqa: F401 (a fixture)
from tests.wsgi import call, environ

pytestmark = pytest.mark.django_db(transaction=True)


def counted(outcome: str) -> float:
    tally.flush()  # what the flush thread adds within a second
    return REGISTRY.get_sample_value("qbuy_buy_answers_total", {"outcome": outcome}) or 0


def requests(view: str, method: str, status: str) -> float:
    tally.flush()
    labels = {"view": view, "method": method, "status": status}
    return REGISTRY.get_sample_value("qbuy_http_request_duration_seconds_count", labels) or 0


def test_buys_are_counted_by_outcome_before_django_too(shop):  # noqa: F811
    app = RequestMetrics(SoldOutEdge(WSGIHandler()))
    before = {o: counted(o) for o in ("sold_out", "invalid", "not_authenticated")}
    buys = requests("api:buy", "POST", "409")

    answers = [
        call(app, environ(shop)),  # Django's memo answer, recorded by the edge
        call(app, environ(shop)),  # the edge's
        call(app, environ(shop, body=b"{nope")),
        call(app, environ(shop, HTTP_COOKIE=shop["csrf_cookie"])),
    ]

    assert [status for status, _, _ in answers] == [
        "409 Conflict",
        "409 Conflict",
        "400 Bad Request",
        "401 Unauthorized",
    ]
    assert json.loads(answers[1][2]) == {"error": "sold_out"}
    assert counted("sold_out") - before["sold_out"] == 2
    assert counted("invalid") - before["invalid"] == 1
    assert counted("not_authenticated") - before["not_authenticated"] == 1
    assert requests("api:buy", "POST", "409") - buys == 2


def test_every_request_is_counted_by_view_and_status(shop):  # noqa: F811
    app = RequestMetrics(WSGIHandler())
    health = requests("healthz", "GET", "200")
    missing = requests("none", "GET", "404")

    call(app, environ(shop, method="GET", PATH_INFO="/healthz"))
    call(app, environ(shop, method="GET", PATH_INFO="/no/such/page"))

    assert requests("healthz", "GET", "200") - health == 1
    assert requests("none", "GET", "404") - missing == 1


def test_a_tally_adds_what_the_metrics_own_calls_would():
    """qbuy_core.metrics.Tally writes a histogram's sum and buckets itself (prometheus_client
    has no call for many values at once): the same samples as observe() and inc(), one by one."""
    registry = CollectorRegistry()
    buckets = (0.01, 0.1, 1)
    direct = Histogram("direct", "", buckets=buckets, registry=registry)
    tallied = Histogram("tallied", "", buckets=buckets, registry=registry)
    hits = Counter("hits", "", registry=registry)
    counts = Tally(interval=3600)
    values = [0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 30]
    for value in values:
        direct.observe(value)
        counts.observe(tallied, value)
        counts.inc(hits)
    assert registry.get_sample_value("hits_total") == 0  # nothing before the flush
    counts.flush()
    counts.flush()  # a second flush adds nothing

    def samples(name):
        return {
            (s.name.removeprefix(name), tuple(sorted(s.labels.items()))): s.value
            for metric in registry.collect()
            if metric.name == name
            for s in metric.samples
            if not s.name.endswith("_created")
        }

    assert samples("tallied") == samples("direct")
    assert samples("tallied")[("_count", ())] == len(values)
    assert registry.get_sample_value("hits_total") == len(values)
