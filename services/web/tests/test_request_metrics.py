"""config.metrics.RequestMetrics: every answer counted once, by view and status, and a buy's
by outcome, whether Django or the sold-out edge gave it (issue 21). Through the real WSGI
application in-process; the storm across gunicorn's processes is in test_buy_storm.py."""

import json

import pytest
from django.core.handlers.wsgi import WSGIHandler
from prometheus_client import REGISTRY

from config.metrics import RequestMetrics
from orders.soldout_edge import SoldOutEdge
from tests.test_soldout_edge import call, environ, shop  # noqa: F401 (shop: a fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def counted(outcome: str) -> float:
    return REGISTRY.get_sample_value("qbuy_buy_answers_total", {"outcome": outcome}) or 0


def requests(view: str, method: str, status: str) -> float:
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
