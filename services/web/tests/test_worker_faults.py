"""The worker under faults (issue 9): Postgres and Redis outages with a real `-P gevent` worker
and beat started from their entry scripts, against the session's throwaway servers, which are
halted and started again on the same port (tools/devservers.py)."""

import os
import time
import uuid

import pytest
from django.db import OperationalError, connection, transaction
from django_celery_results.models import TaskResult
from port_for import get_port

from accounts.models import User
from orders import gate
from orders.invariants import check_sale, wait_drained
from orders.models import Order
from sales.models import Sale
from tests.postgres import lock_waiters
from tools import devservers, pytest_servers
from tools.stack import Process, base_env

pytestmark = pytest.mark.django_db(transaction=True)

OUTAGE = 10  # seconds a server stays down
RECOVERY = 30  # seconds from the end of an outage to the last order settled (issue 9's target)
FAST = {"ORDER_REQUEUE_AFTER": "3", "RECONCILE_INTERVAL": "1", "BROKER_VISIBILITY_TIMEOUT": "10"}


def session_server(kind):
    (server,) = [s for s in pytest_servers._servers if isinstance(s, kind)]
    return server


def back_up_after(server):
    """The session's server, started again after the test if the test left it halted."""
    yield server
    if server.executor is None:
        server.start()


@pytest.fixture
def postgres():
    yield from back_up_after(session_server(devservers.Postgres))
    connection.close()


@pytest.fixture
def redis_server():
    yield from back_up_after(session_server(devservers.Redis))


@pytest.fixture
def stack(tmp_path, server_urls):
    started = []

    def start(name, ready, **env):
        full = base_env(
            DJANGO_SETTINGS_MODULE="config.settings.test",
            **server_urls,
            CACHE_URL="locmemcache://",
            GUNICORN_BIND=f"127.0.0.1:{get_port(None)}",
            CONN_MAX_AGE="0",
            CELERY_BEAT_SCHEDULE_FILE=str(tmp_path / "beat-schedule"),
            HEARTBEAT_FILE=str(tmp_path / f"{name}-heartbeat"),
            LOG_LEVEL="INFO",
            **FAST,
            **env,
        )
        proc = Process(name, full, tmp_path, ready).start()
        started.append(proc)
        return proc

    yield start
    for proc in reversed(started):
        proc.stop()


def reserve(sale, count: int, first: int) -> list[str]:
    """Accepted buys: a reservation in the Redis gate and a pending order each, as
    order_reserve leaves them, but not queued yet (the test decides when)."""
    tokens = []
    gate.load(sale)
    for n in range(first, first + count):
        buyer = User.objects.create_user(f"+1213555{n:04d}")
        token = str(uuid.uuid4())
        assert gate.reserve(sale_id=sale.pk, buyer_id=buyer.pk, token=token).outcome == "ok"
        Order.objects.create(token=token, sale=sale, buyer=buyer)
        tokens.append(token)
    return tokens


def send(sale, tokens):
    """A settle_sale message per order, as many deliveries as orders (a backlog of nudges and
    re-queues): each one must give its delivery back when Postgres is away."""
    from orders.tasks import settle_sale

    for _ in tokens:
        settle_sale.delay(sale.pk)


def wait_settled(sale_id: int, timeout: float) -> float:
    # The test's own connection died with the server, and a restarted Postgres may still say
    # "the database system is starting up" (seen on a loaded machine): wait for it to answer.
    deadline = time.monotonic() + timeout
    while True:
        connection.close()
        try:
            connection.ensure_connection()
            break
        except OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    return wait_drained(sale_id, timeout=timeout)


def test_postgres_outages_never_wedge_the_worker(stack, postgres, make_sale):
    """Two 10 s Postgres outages in a row, the same worker at -c 4: every task that fails on
    Postgres (and cannot store its RETRY/FAILURE either) still gives its delivery back, so every
    accepted order ends confirmed within RECOVERY seconds of Postgres' return."""
    worker = stack("worker", " ready.", CELERY_WORKER_CONCURRENCY="4", WORKER_DB_CONNECTIONS="4")
    stack("beat", "beat: Starting")
    sale = make_sale(name="Outage kettle", stock=200)
    accepted = []
    for round_ in range(2):
        tokens = reserve(sale, 40, first=round_ * 100)
        accepted += tokens
        postgres.halt()
        send(sale, tokens)  # the worker takes them while Postgres is down
        time.sleep(OUTAGE)
        postgres.start()
        recovered = wait_settled(sale.pk, timeout=RECOVERY + 30)
        print(f"\noutage {round_ + 1}: {OUTAGE}s down, settled {recovered:.1f}s after it ended")
        assert worker.proc.poll() is None
        assert recovered <= RECOVERY, f"{recovered:.1f}s"
    report = check_sale(sale.pk, accepted)
    assert report.violations == []
    assert report.orders == {Order.Status.CONFIRMED: 80}
    # django-celery-results still records what it is meant to: the reconciler's reports (the
    # orders settle within a second, maybe before beat's next run).
    runs = TaskResult.objects.filter(task_name="orders.tasks.reconcile_orders", status="SUCCESS")
    deadline = time.monotonic() + 10
    while not runs.exists():
        assert time.monotonic() < deadline, "no reconcile_orders result stored"
        time.sleep(0.5)
    assert not TaskResult.objects.filter(task_name="orders.tasks.settle_sale").exists()


def test_redis_outage_under_load_neither_kills_the_worker_nor_drops_orders(
    stack, redis_server, make_sale
):
    """Redis (the broker, the gate) goes away while order tasks are running and comes back
    empty (no persistence): the worker survives kombu's reconnect, and every accepted order
    ends confirmed, through the worker's retries and the reconciler."""
    worker = stack("worker", " ready.", CELERY_WORKER_CONCURRENCY="4", WORKER_DB_CONNECTIONS="4")
    stack("beat", "beat: Starting")
    sale = make_sale(name="Redis outage kettle", stock=100)
    tokens = reserve(sale, 30, first=0)
    with transaction.atomic():
        # The batch waits on this row lock at the stock update (the other deliveries find its
        # orders locked and nothing else to do); Redis goes while it waits.
        Sale.objects.select_for_update(no_key=True).get(pk=sale.pk)
        send(sale, tokens)
        deadline = time.monotonic() + 30
        while lock_waiters() < 1:
            assert time.monotonic() < deadline, "the tasks never reached the stock update"
            time.sleep(0.05)
        redis_server.halt()
    time.sleep(5)  # the tasks commit, then meet Redis gone for their clean-up and their acks
    redis_server.start()
    recovered = wait_settled(sale.pk, timeout=RECOVERY + 30)
    print(f"\nRedis down 5s under load: settled {recovered:.1f}s after it came back")
    assert worker.proc.poll() is None, worker.log.read_text()[-3000:]
    log = worker.log.read_text()
    assert "Unrecoverable error" not in log
    # A Redis error must not turn into Celery's retry-publish failure, which drops the delivery.
    assert "reject requeue=False" not in log
    report = check_sale(sale.pk, tokens)
    assert report.violations == []
    assert report.orders == {Order.Status.CONFIRMED: 30}


def heartbeat_age(path) -> float:
    return time.time() - os.stat(path).st_mtime


def test_heartbeat_means_consuming(stack, redis_server):
    """An idle healthy worker keeps its heartbeat file fresh; once its broker connection is
    gone the file goes stale (the liveness probe then restarts it), and fresh again after."""
    worker = stack("worker", " ready.", CELERY_WORKER_CONCURRENCY="4", HEARTBEAT_SECONDS="1")
    path = worker.env["HEARTBEAT_FILE"]
    time.sleep(4)
    assert heartbeat_age(path) < 2.5  # idle, consuming
    redis_server.halt()
    try:
        time.sleep(6)
        assert heartbeat_age(path) > 4  # process alive, consuming nothing
        assert worker.proc.poll() is None
    finally:
        redis_server.start()
    deadline = time.monotonic() + 30
    while heartbeat_age(path) > 2.5:
        assert time.monotonic() < deadline, "the heartbeat never came back with Redis"
        time.sleep(0.5)
