"""No phantom orders (issue 9, item 3): when the buy's COMMIT fails ambiguously or the task
can't be queued, the answer matches what Postgres holds, and the reservation with it.

A real gunicorn whose Postgres connections go through loadtests.pgproxy, which can cut one at
the COMMIT (after Postgres answered it, or before Postgres saw it), and whose Celery broker is
a real Redis that has been stopped, while the gate uses the live one.
"""

import pytest
from port_for import get_port

from loadtests.pgproxy import PgProxy
from loadtests.storm import log_in_buyers, sms_file_codes
from orders import gate
from orders.models import Order
from tools import devservers
from tools.stack import Process, base_env

pytestmark = pytest.mark.django_db(transaction=True)

STOCK = 5


@pytest.fixture
def stack(tmp_path, server_urls, make_sale, settings):
    broker = devservers.Redis().start()
    broker.halt()  # a real Redis, stopped: the broker is down, the gate's Redis is not
    db = settings.DATABASES["default"]
    proxy = PgProxy(int(db["PORT"])).start()
    port = get_port(None)
    env = base_env(
        DJANGO_SETTINGS_MODULE="config.settings.test",
        REDIS_URL=server_urls["REDIS_URL"],
        DATABASE_URL=f"postgres://{db['USER']}@127.0.0.1:{proxy.port}/{db['NAME']}",
        CELERY_BROKER_URL=broker.url,
        CACHE_URL="locmemcache://",
        SMS_BACKEND="file",
        SMS_FILE_PATH=str(tmp_path / "sms.jsonl"),
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS="1",
        CONN_MAX_AGE="0",
    )
    web = Process("web", env, tmp_path, "Listening at").start()
    url = f"http://127.0.0.1:{port}"
    try:
        buyer = log_in_buyers(url, sms_file_codes(tmp_path / "sms.jsonl"), 1)[0]
        sale = make_sale(stock=STOCK)
        yield {"url": url, "buyer": buyer, "sale": sale, "proxy": proxy}
    finally:
        web.stop()
        proxy.stop()
        broker.stop()


def buy(stack):
    url, sale = stack["url"], stack["sale"]
    return stack["buyer"].post(f"{url}/api/sales/{sale.pk}/buy", json={}, timeout=30)


def redis_stock(sale) -> int:
    return int(gate.redis().hget(gate.keys(sale.pk)[0], "stock"))


def assert_accepted_and_kept(stack, r):
    """A 202 for an order that exists, is pending (its task is the reconciler's to queue) and
    still holds its reservation."""
    assert r.status_code == 202, r.text
    token = r.json()["order"]
    assert Order.objects.get(token=token).status == Order.Status.PENDING
    assert token in gate.reservations(sale_id=stack["sale"].pk)
    assert redis_stock(stack["sale"]) == STOCK - 1


def test_broker_down_when_queueing_still_answers_202_and_keeps_the_reservation(stack):
    """Was a 500 with the reservation released, for an order already committed."""
    assert_accepted_and_kept(stack, buy(stack))


def test_connection_lost_after_postgres_committed_answers_202(stack):
    """Was a 500 (then 503) with the reservation released: a phantom order, later confirmed."""
    stack["proxy"].arm("after")
    r = buy(stack)
    assert stack["proxy"].cuts == 1
    assert_accepted_and_kept(stack, r)


def test_connection_lost_before_the_commit_answers_503_and_gives_the_item_back(stack):
    stack["proxy"].arm("before")
    r = buy(stack)
    assert stack["proxy"].cuts == 1
    assert (r.status_code, r.json()["error"]) == (503, "unavailable")
    assert Order.objects.count() == 0
    assert gate.reservations(sale_id=stack["sale"].pk) == {}
    assert redis_stock(stack["sale"]) == STOCK
    assert_accepted_and_kept(stack, buy(stack))  # the buyer may try again, and gets it


def test_outcome_unknown_answers_503_and_keeps_the_reservation(stack):
    """Postgres committed, then can't be reached to ask: 503, and the reservation stays (the
    reconciler re-queues the order it belongs to, or releases it if there is none)."""
    proxy = stack["proxy"]
    proxy.arm("after", then_refuse=True)  # from the cut on, no new connection gets through
    r = buy(stack)
    proxy.refuse.clear()
    assert proxy.cuts == 1
    assert (r.status_code, r.json()["error"]) == (503, "unavailable")
    (order,) = Order.objects.all()
    assert str(order.token) in gate.reservations(sale_id=stack["sale"].pk)
    assert redis_stock(stack["sale"]) == STOCK - 1
