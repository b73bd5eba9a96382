"""The flash sale for real: gunicorn, a `-P gevent` Celery worker and beat, started from the
same entry scripts as the containers, against the throwaway Postgres and Redis; buyers log in
with SMS codes and buy over HTTP, all at once."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from django.db import connection, transaction
from django_celery_results.models import TaskResult
from port_for import get_port
from prometheus_client.parser import text_string_to_metric_families

from accounts.models import User
from loadtests.limits import RAISED_LIMITS
from loadtests.storm import Answer, fire, format_summary, log_in_buyers, sms_file_codes, summary
from orders import gate, services
from orders.invariants import check_sale, wait_drained
from orders.models import Order
from sales.models import Sale
from tests.postgres import lock_waiters
from tools.stack import Process, base_env

BUYERS = 200
ATTEMPTS_PER_BUYER = 3  # 600 buy requests
STOCK = 50

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def stack_env(tmp_path, server_urls):
    port = get_port(None)
    env = base_env(
        DJANGO_SETTINGS_MODULE="config.settings.test",
        **server_urls,
        CACHE_URL="locmemcache://",
        SMS_BACKEND="file",
        SMS_FILE_PATH=str(tmp_path / "sms.jsonl"),
        **RAISED_LIMITS,
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS="4",
        CONN_MAX_AGE="0",
        CELERY_BEAT_SCHEDULE_FILE=str(tmp_path / "beat-schedule"),
        HEARTBEAT_FILE=str(tmp_path / "heartbeat"),
        LOG_LEVEL="INFO",
    )
    return {"env": env, "url": f"http://127.0.0.1:{port}", "logs": tmp_path}


@pytest.fixture
def processes():
    started = []
    yield started
    for proc in reversed(started):
        proc.stop()


def start(processes, name, stack_env, ready, **env):
    proc = Process(name, {**stack_env["env"], **env}, stack_env["logs"], ready).start()
    processes.append(proc)
    return proc


def log_in(stack_env, count: int = BUYERS):
    return log_in_buyers(stack_env["url"], sms_file_codes(stack_env["logs"] / "sms.jsonl"), count)


def storm(url: str, sale_id: int, sessions) -> list[Answer]:
    return fire(url, sale_id, sessions, attempts_per_buyer=ATTEMPTS_PER_BUYER)


def assert_invariants(sale: Sale, answers: list[Answer], *, strategy: str = "gate"):
    figures = summary(answers)
    print(f"\n{format_summary(figures)}")
    # Every answer is a 202 or a 409, nothing else (no 5xx, no 429, no connection error).
    assert set(figures["statuses"]) <= {202, 409}
    assert set(figures["refusals"]) <= {"sold_out", "already_bought"}
    accepted = figures["accepted"]
    assert len(accepted) == figures["statuses"].get(202, 0)  # every 202 names its order
    assert len(set(accepted)) == len(accepted)
    # Every 202 ended confirmed or failed, no order exists that was not answered 202, no buyer
    # has two, nothing pending, Postgres adds up and Redis agrees with it.
    report = check_sale(sale.pk, accepted)
    print(f"orders: {report.orders}")
    assert report.violations == []
    assert report.orders.get(Order.Status.CONFIRMED) == STOCK
    assert report.duplicate_buyers == 0
    assert report.remaining == 0
    # The row lock sells behind the gate's back and drops the gate's copy of the sale.
    assert report.redis_stock == {"gate": 0, "db-lock": None}[strategy]


def test_fire_answers_every_request_even_without_a_json_answer():
    """The storm driver never raises mid-storm: no answer is status 0, an HTML error page (a
    proxy's 502) is kept short."""

    class BadGateway(BaseHTTPRequestHandler):
        def do_POST(self):
            self.send_response(502)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>" + b"x" * 500 + b"</html>")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), BadGateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        proxy = f"http://127.0.0.1:{server.server_port}"
        answers = fire(proxy, 1, [requests.Session()], attempts_per_buyer=2)
    finally:
        server.shutdown()
        server.server_close()
    assert [(a.status, a.body["error"], len(a.body["text"])) for a in answers] == [
        (502, "non_json", 200)
    ] * 2
    closed = fire(f"http://127.0.0.1:{get_port(None)}", 1, [requests.Session()])
    assert {(a.status, a.body["error"]) for a in closed} == {(0, "connection_error")}
    figures = summary(answers + closed)
    assert figures["statuses"] == {502: 2, 0: 3}
    assert figures["refusals"] == {"non_json": 2, "connection_error": 3}
    assert figures["accepted"] == []
    assert "5 requests" in format_summary(figures)


@pytest.mark.parametrize("strategy", ["gate", "db-lock"])
def test_storm_sells_exactly_the_stock(stack_env, processes, make_sale, strategy):
    url = stack_env["url"]
    ports = {name: get_port(None) for name in ("web", "worker", "beat")}
    metrics_dir = stack_env["logs"] / "metrics"
    start(
        processes,
        "web",
        stack_env,
        "Listening at",
        BUY_STRATEGY=strategy,
        METRICS_PORT=str(ports["web"]),
        METRICS_ADDR="127.0.0.1",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )
    start(
        processes,
        "worker",
        stack_env,
        " ready.",
        CELERY_WORKER_CONCURRENCY="50",
        METRICS_PORT=str(ports["worker"]),
        METRICS_ADDR="127.0.0.1",
    )
    start(
        processes,
        "beat",
        stack_env,
        "beat: Starting",
        METRICS_PORT=str(ports["beat"]),
        METRICS_ADDR="127.0.0.1",
    )
    heartbeat = stack_env["logs"] / "heartbeat"  # what the Kubernetes liveness probe reads
    deadline = time.monotonic() + 10
    while not heartbeat.exists():
        assert time.monotonic() < deadline, "the worker wrote no heartbeat"
        time.sleep(0.1)
    sessions = log_in(stack_env)
    sale = make_sale(name="Storm", stock=STOCK)

    t0 = time.monotonic()
    answers = storm(url, sale.pk, sessions)
    fired = time.monotonic() - t0
    drained = wait_drained(sale.pk, timeout=60)
    print(f"{len(answers)} requests from {BUYERS} buyers in {fired:.2f}s; drained {drained:.2f}s")

    assert len(answers) >= 500
    assert_invariants(sale, answers, strategy=strategy)
    assert_metrics_add_up(ports, metrics_dir, answers, strategy=strategy)
    # The order rows are settle_sale's result: none is stored in django-celery-results (the
    # reconciler's reports are, see test_worker_faults.py).
    assert not TaskResult.objects.filter(task_name="orders.tasks.settle_sale").exists()


def assert_metrics_add_up(ports: dict, metrics_dir, answers: list[Answer], *, strategy) -> None:
    """What Prometheus would scrape after the storm: the web's counts, summed over its four
    gunicorn workers by the master, are the answers the storm got; the worker settled every
    accepted order (db-lock confirms them in the request); beat reads them from Postgres."""
    time.sleep(1.5)  # the web's processes add their counts once a second (qbuy_core.metrics)
    web, worker, beat = (scrape(ports[name]) for name in ("web", "worker", "beat"))
    # Several processes wrote counts (one file per process and kind of metric).
    assert len(list(metrics_dir.glob("counter_*.db"))) > 1
    figures = summary(answers)
    outcomes = {**figures["refusals"], "accepted": figures["statuses"].get(202, 0)}
    counted = {labels["outcome"]: v for labels, v in web["qbuy_buy_answers_total"] if v}
    assert counted == outcomes
    by_status = {
        int(labels["status"]): v
        for labels, v in web["qbuy_http_request_duration_seconds_count"]
        if labels["view"] == "api:buy" and labels["method"] == "POST"
    }
    assert by_status == figures["statuses"]
    settled = {o["outcome"]: v for o, v in worker.get("qbuy_order_settle_seconds_count", [])}
    assert settled == ({"confirmed": STOCK} if strategy == "gate" else {})
    orders = {labels["state"]: v for labels, v in beat["qbuy_orders"]}
    assert orders["confirmed"] == STOCK and orders["pending"] == 0
    assert beat["qbuy_oldest_pending_order_seconds"] == [({}, 0)]


def scrape(port: int) -> dict[str, list[tuple[dict, float]]]:
    """A process's /metrics: sample name -> [(labels, value)]."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def test_storm_survives_a_killed_worker(stack_env, processes, make_sale):
    """SIGKILL the worker while orders are in flight; restart it; beat reconciles the rest."""
    url = stack_env["url"]
    fast = {"ORDER_REQUEUE_AFTER": "2", "RECONCILE_INTERVAL": "1", "BROKER_VISIBILITY_TIMEOUT": "5"}
    start(processes, "web", stack_env, "Listening at", **fast)
    # A small pool drains slowly enough that the kill lands mid-queue.
    slow = {**fast, "CELERY_WORKER_CONCURRENCY": "2", "WORKER_DB_CONNECTIONS": "2"}
    worker = start(processes, "worker", stack_env, " ready.", **slow)
    sessions = log_in(stack_env)
    sale = make_sale(name="Storm with a kill", stock=STOCK)

    with ThreadPoolExecutor(1) as background:
        firing = background.submit(storm, url, sale.pk, sessions)
        deadline = time.monotonic() + 60
        while not Order.objects.filter(status=Order.Status.CONFIRMED).exists():
            assert time.monotonic() < deadline, "no order was confirmed"
            time.sleep(0.05)
        worker.kill()
        unacked = gate.redis().hlen("unacked")  # kombu's record of delivered, unacked tasks
        answers = firing.result()
    pending_at_kill = Order.objects.filter(status=Order.Status.PENDING).count()
    confirmed_at_kill = Order.objects.filter(status=Order.Status.CONFIRMED).count()
    print(
        f"\nkilled the worker with {unacked} tasks unacked; after the storm: "
        f"{confirmed_at_kill} confirmed, {pending_at_kill} pending"
    )
    assert pending_at_kill > 0, "the kill must land while orders are in flight"

    t0 = time.monotonic()
    start(processes, "worker", stack_env, " ready.", **slow)
    start(processes, "beat", stack_env, "beat: Starting", **fast)
    wait_drained(sale.pk, timeout=90)
    print(f"drained {time.monotonic() - t0:.2f}s after the restart began (worker + beat start)")

    assert_invariants(sale, answers)


def test_sigterm_mid_order_is_bounded_and_the_order_still_ends_confirmed(
    stack_env, processes, make_sale
):
    """`docker stop` / a pod deletion while an order task is stuck on Postgres: the warm
    shutdown ends within the task time limit (not whenever Postgres lets go), and the order it
    could not finish is confirmed by the next worker, once."""
    url = stack_env["url"]
    limit = 3
    # The sender writes the time limit into each task message: web and beat need it too.
    fast = {
        "ORDER_REQUEUE_AFTER": "2",
        "RECONCILE_INTERVAL": "1",
        "BROKER_VISIBILITY_TIMEOUT": "5",
        "CELERY_TASK_TIME_LIMIT": str(limit),
    }
    start(processes, "web", stack_env, "Listening at", **fast)
    worker = start(processes, "worker", stack_env, " ready.", **fast)
    (session,) = log_in(stack_env, count=1)
    sale = make_sale(name="Stuck kettle", stock=5)

    with transaction.atomic():
        # The stock decrement waits for this row lock; the order INSERT (FOR KEY SHARE) does not.
        Sale.objects.select_for_update(no_key=True).get(pk=sale.pk)
        r = session.post(f"{url}/api/sales/{sale.pk}/buy", json={}, timeout=30)
        assert r.status_code == 202, r.text
        token = r.json()["order"]
        deadline = time.monotonic() + 30
        while not lock_waiters():
            assert time.monotonic() < deadline, "the order task never reached the stock update"
            time.sleep(0.05)

        t0 = time.monotonic()
        worker.stop(timeout=30)
        stopped_in = time.monotonic() - t0
        print(f"\nworker stopped {stopped_in:.2f}s after SIGTERM (task time limit {limit}s)")
        assert worker.proc.returncode == 0
        assert stopped_in < limit + 5
        assert f"Hard time limit ({limit}s) exceeded" in worker.log.read_text()
        assert Order.objects.get(token=token).status == Order.Status.PENDING

    start(processes, "worker", stack_env, " ready.", **fast)
    start(processes, "beat", stack_env, "beat: Starting", **fast)
    wait_drained(sale.pk, timeout=60)
    assert Order.objects.get(token=token).status == Order.Status.CONFIRMED
    sale.refresh_from_db()
    assert sale.remaining == 4  # decremented once: the cut-off attempt was rolled back


def test_the_worker_reuses_its_postgres_connections(stack_env, processes, make_sale):
    """Under -P gevent each task's greenlet used to open a Postgres connection and close it
    (two new sessions per order in a storm, issue 10); the worker's pool keeps them."""
    # CONN_MAX_AGE as deployed (this module's other processes run with 0).
    start(processes, "worker", stack_env, " ready.", CONN_MAX_AGE="60")
    sale = make_sale(name="Pool", stock=80)
    buyers = [User.objects.create_user(f"+1415555{n:04d}") for n in range(80)]
    before = postgres_sessions()
    for buyer in buyers:
        services.order_reserve(sale_id=sale.pk, buyer_id=buyer.pk)
    wait_drained(sale.pk, timeout=60)
    opened = postgres_sessions() - before

    assert check_sale(sale.pk).orders == {Order.Status.CONFIRMED: 80}
    # At most WORKER_DB_CONNECTIONS (10), whatever the number of orders.
    assert opened <= 10, f"{opened} Postgres sessions opened for 80 orders"


def postgres_sessions() -> int:
    """Sessions ever opened to the test database, as Postgres counts them (its statistics
    reach the view within a second)."""
    time.sleep(1.5)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]
