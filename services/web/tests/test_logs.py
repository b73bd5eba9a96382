"""Structured logs (issue 21): a buy's lines in gunicorn and in the `-P gevent` worker, both
started from the containers' entry scripts against the throwaway servers, read from their
output. LOG_FORMAT=json: every line is one JSON object and the buy's lines name its request,
sale and order; LOG_FORMAT=text: plain lines, the same names at the end of the message."""

import itertools
import json
import time
import uuid

import pytest
import requests
from django.conf import settings
from django.test import Client
from port_for import get_port

from accounts.models import User
from orders import gate
from orders.models import Order
from qbuy_core import logcontext
from sales.models import Sale
from tools.stack import Process, base_env

pytestmark = pytest.mark.django_db(transaction=True)

_phones = itertools.count()


@pytest.fixture(params=["json", "text"])
def log_format(request):
    return request.param


@pytest.fixture
def stack(tmp_path, server_urls, log_format):
    port = get_port(None)
    env = base_env(
        DJANGO_SETTINGS_MODULE="config.settings.test",
        **server_urls,
        CACHE_URL="locmemcache://",
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS="1",
        CONN_MAX_AGE="0",
        HEARTBEAT_FILE=str(tmp_path / "heartbeat"),
        LOG_LEVEL="INFO",
        LOG_FORMAT=log_format,
    )
    started = []

    def start(name, ready, **overrides):
        proc = Process(name, {**env, **overrides}, tmp_path, ready).start()
        started.append(proc)
        return proc

    start.url = f"http://127.0.0.1:{port}"
    yield start
    for proc in reversed(started):
        proc.stop()


def buy(url: str, sale: Sale) -> tuple[str, str]:
    """One buy over HTTP by a new buyer, with a request id of its own -> (request id, order)."""
    client = Client()
    client.force_login(User.objects.create_user(f"+1201555{next(_phones):04d}"))
    web = requests.Session()
    web.cookies[settings.SESSION_COOKIE_NAME] = client.cookies[settings.SESSION_COOKIE_NAME].value
    web.headers["X-CSRFToken"] = web.get(f"{url}/api/auth/csrf", timeout=10).json()["csrf_token"]
    request_id = f"logtest-{uuid.uuid4().hex}"
    answer = web.post(
        f"{url}/api/sales/{sale.pk}/buy", headers={"X-Request-ID": request_id}, timeout=30
    )
    assert answer.status_code == 202, answer.text
    assert answer.headers["X-Request-ID"] == request_id
    return request_id, answer.json()["order"]


def lines(proc: Process) -> list[str]:
    proc.stop()  # everything it would log is in the file
    return proc.log.read_text().splitlines()


def lines_once(proc: Process, text: str, timeout: float = 20) -> list[str]:
    """The lines of a running process once ``text`` is among them. The worker is read before
    it stops: Celery prints its "Warm shutdown" itself, not through logging."""
    deadline = time.monotonic() + timeout
    while text not in proc.log.read_text():
        assert time.monotonic() < deadline, f"{proc.name} did not log {text!r}"
        time.sleep(0.2)
    return proc.log.read_text().splitlines()


def as_json(lines: list[str]) -> list[dict]:
    """Every line, parsed: one that is not a JSON object fails the test."""
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
        assert isinstance(record, dict), line
        assert {"time", "level", "logger", "message"} <= record.keys(), line
        records.append(record)
    return records


def is_json(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def one(records: list[dict], **match) -> dict:
    found = [r for r in records if all(r.get(k) == v for k, v in match.items())]
    assert len(found) == 1, (match, records)
    return found[0]


def test_a_buy_settled_by_the_worker_is_named_on_its_lines_in_both(stack, make_sale, log_format):
    """The worker fails the order (Postgres has no stock for what the gate accepted): its line
    names the order, and every line of the task the sale and the request that queued it."""
    web = stack("web", "Booting worker")
    # Celery warns a worker run as root (the tests here; not the images, user 10001) with
    # warnings.warn, before any logging is set up: a plain line.
    worker = stack(
        "worker",
        " ready.",
        CELERY_WORKER_CONCURRENCY="2",
        PYTHONWARNINGS="ignore:You're running the worker with superuser privileges",
    )
    sale = make_sale(stock=1)
    gate.load(sale)
    Sale.objects.filter(pk=sale.pk).update(remaining=0)  # Postgres disagrees with the gate
    request_id, order = buy(stack.url, sale)

    worker_lines = lines_once(worker, "] succeeded in ")
    web_lines = lines(web)
    assert Order.objects.get(token=order).status == Order.Status.FAILED
    if log_format == "text":
        assert not any(is_json(line) for line in web_lines + worker_lines)
        (failed,) = [line for line in worker_lines if f"order {order} failed" in line]
        assert f"request_id={request_id}" in failed
        assert f"sale_id={sale.pk}" in failed
        assert f"order={order}" in failed
        return
    access = one(as_json(web_lines), logger="gunicorn.access", request_id=request_id)
    assert f"/api/sales/{sale.pk}/buy" in access["message"]
    assert (access["sale_id"], access["order"]) == (sale.pk, order)
    # The request's own fields (qbuy_core.access_log), not only an Apache-style string.
    assert (access["status"], access["remote"]) == (202, "127.0.0.1")
    assert access["bytes"] > 0 and access["seconds"] > 0
    records = as_json(worker_lines)
    failed = one(records, level="WARNING", order=order)
    assert failed["logger"] == "qbuy.orders"
    assert (failed["sale_id"], failed["request_id"]) == (sale.pk, request_id)
    # Celery's own line at the end of the task, inside the same scope.
    done = one(records, logger="celery.app.trace", task_id=failed["task_id"])
    assert "succeeded" in done["message"]
    assert (done["sale_id"], done["request_id"]) == (sale.pk, request_id)


def test_an_error_on_the_buy_path_names_request_sale_and_order(stack, make_sale, log_format):
    """The web cannot queue the settling (its broker is gone): the 202 is given all the same,
    and the one line it logs names the request, the sale and the order, traceback included."""
    web = stack("web", "Booting worker", CELERY_BROKER_URL=f"redis://127.0.0.1:{get_port(None)}/0")
    sale = make_sale(stock=1)
    request_id, order = buy(stack.url, sale)

    web_lines = lines(web)
    if log_format == "text":
        assert not any(is_json(line) for line in web_lines)
        (warning,) = [line for line in web_lines if "settling not queued" in line]
        assert f"[request_id={request_id} sale_id={sale.pk} order={order}]" in warning
        return
    records = as_json(web_lines)
    warning = one(records, logger="qbuy.orders")
    assert "settling not queued" in warning["message"]
    assert (warning["request_id"], warning["sale_id"], warning["order"]) == (
        request_id,
        sale.pk,
        order,
    )
    assert "Traceback" in warning["exc_info"]
    assert one(records, logger="gunicorn.access", request_id=request_id)


def test_log_format_is_json_under_production_settings_unless_told(monkeypatch):
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    for module, expected in [
        ("config.settings.production", "json"),
        ("config.settings.local", "text"),
        ("config.settings.test", "text"),
    ]:
        monkeypatch.setenv("DJANGO_SETTINGS_MODULE", module)
        assert logcontext.log_format() == expected
    monkeypatch.setenv("LOG_FORMAT", "text")
    assert logcontext.log_format() == "text"
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        logcontext.log_format()
