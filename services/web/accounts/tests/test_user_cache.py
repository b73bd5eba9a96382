"""The session's user from Redis (accounts.user_cache, issue 20): no Postgres query to know who
asks, and every change that must refuse a session refuses it at once."""

import json

import pytest
from django.test import Client

from accounts import user_cache
from accounts.models import User
from accounts.sessions import user_logout_everywhere
from qbuy_core import sms

PHONE = "+12015550188"

pytestmark = pytest.mark.django_db(transaction=True)  # the invalidation runs after COMMIT


def code_login(client: Client, phone: str = PHONE) -> User:
    post = lambda path, data: client.post(path, json.dumps(data), content_type="application/json")  # noqa: E731
    assert post("/api/auth/code", {"phone": phone}).status_code == 202
    answer = post("/api/auth/login", {"phone": phone, "code": sms.outbox[-1]["code"]})
    assert answer.status_code == 200, answer.content
    return User.objects.get(phone=phone)


def test_who_asks_costs_no_postgres_query(client, django_assert_num_queries):
    code_login(client)
    assert client.get("/api/auth/me").status_code == 200  # the first read fills the cache

    with django_assert_num_queries(0):
        assert client.get("/api/auth/me").json()["user"]["phone"] == PHONE


def test_a_refused_buy_costs_no_postgres_query(
    client, make_sale, settings, django_assert_num_queries
):
    settings.SOLD_OUT_MEMO = 0  # the session, its user and the gate, every time
    sale = make_sale(stock=0)
    code_login(client)
    buy = lambda: client.post(f"/api/sales/{sale.pk}/buy", "{}", content_type="application/json")  # noqa: E731
    assert buy().json() == {"error": "sold_out"}  # the gate loads the sale from Postgres once

    with django_assert_num_queries(0):
        assert buy().json() == {"error": "sold_out"}


def test_a_deactivated_user_is_refused_at_once(client):
    user = code_login(client)
    assert client.get("/api/auth/me").status_code == 200

    user.is_active = False
    user.save()

    assert client.get("/api/auth/me").status_code == 401


def test_a_password_change_refuses_the_session_at_once(client):
    user = code_login(client)
    assert client.get("/api/auth/me").status_code == 200

    user.set_password("a-new-long-password-42")
    user.save()

    assert client.get("/api/auth/me").status_code == 401


def test_log_out_everywhere_refuses_the_other_devices_at_once(client):
    user = code_login(client)
    other = Client()
    other.force_login(user, backend="accounts.backends.SmsCodeBackend")
    for device in (client, other):
        assert device.get("/api/auth/me").status_code == 200

    user_logout_everywhere(user=user)

    for device in (client, other):
        assert device.get("/api/auth/me").status_code == 401


def test_an_entry_written_from_the_old_row_during_a_change_is_never_served(client):
    """A request read the row just before a deactivation committed, and wrote its entry just
    after the change's invalidation: the entry carries the version it was read under."""
    user = code_login(client)
    assert client.get("/api/auth/me").status_code == 200
    key, version_key = user_cache._keys(user.pk)
    cache = user_cache._cache()
    read_under = cache.get(version_key)
    stale = User.objects.get(pk=user.pk)

    User.objects.filter(pk=user.pk).update(is_active=False)
    user_cache.forget(user.pk)
    cache.set(key, (read_under, stale), user_cache.ENTRY_TTL)  # the racing request's write

    assert user_cache.load(user.pk) is None
    assert client.get("/api/auth/me").status_code == 401


def test_staff_are_never_cached():
    staff = User.objects.create_user("+12015550189", "a-long-staff-password", is_staff=True)
    assert user_cache.load(staff.pk) == staff
    assert user_cache._cache().get(user_cache._keys(staff.pk)[0]) is None


def test_a_version_outlives_every_entry_built_before_it():
    # Else an entry written under "no version yet" could become current again when a later
    # version expired.
    assert user_cache.VERSION_TTL > user_cache.ENTRY_TTL
