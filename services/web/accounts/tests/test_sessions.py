"""Sessions: log out everywhere, their lifetime, and personal answers kept out of caches."""

import json

import pytest
from django.test import Client

from accounts.models import User
from accounts.sessions import user_logout_everywhere
from qbuy_core import sms

PHONE = "+12015550123"

pytestmark = pytest.mark.django_db


def post_json(client, path, data=None):
    return client.post(path, json.dumps(data or {}), content_type="application/json")


def api_log_in(client, phone=PHONE):
    assert post_json(client, "/api/auth/code", {"phone": phone}).status_code == 202
    r = post_json(client, "/api/auth/login", {"phone": phone, "code": sms.outbox[-1]["code"]})
    assert r.status_code == 200, r.content
    return r


def csrf_client() -> Client:
    client = Client(enforce_csrf_checks=True)
    client.get("/api/auth/csrf")
    return client


def csrf_post(client, path, data=None, **kw):
    token = client.cookies["csrftoken"].value
    return client.post(path, data or {}, HTTP_X_CSRFTOKEN=token, **kw)


# --- log out everywhere ------------------------------------------------------------------------


def test_logout_all_ends_the_sessions_of_every_device(make_sale):
    phone, laptop = Client(), Client()
    api_log_in(phone)
    laptop.force_login(User.objects.get(phone=PHONE))
    assert laptop.get("/api/auth/me").status_code == 200
    sale = make_sale(stock=5)

    r = post_json(phone, "/api/auth/logout-all")

    assert r.status_code == 204
    assert phone.get("/api/auth/me").status_code == 401
    assert laptop.get("/api/auth/me").status_code == 401
    refused = post_json(laptop, f"/api/sales/{sale.pk}/buy")
    assert refused.status_code == 401
    assert refused.json()["error"] == "not_authenticated"


def test_logout_all_leaves_other_users_logged_in():
    mine, theirs = Client(), Client()
    api_log_in(mine)
    theirs.force_login(User.objects.create_user("+12015550124"))

    assert post_json(mine, "/api/auth/logout-all").status_code == 204

    assert theirs.get("/api/auth/me").status_code == 200


def test_a_new_login_after_logout_all_works():
    client = Client()
    api_log_in(client)
    post_json(client, "/api/auth/logout-all")
    user = User.objects.get(phone=PHONE)
    assert user.session_generation == 1

    client.force_login(user)

    assert client.get("/api/auth/me").json()["user"]["phone"] == PHONE


def test_logout_all_needs_a_login():
    r = post_json(Client(), "/api/auth/logout-all")

    assert r.status_code == 401
    assert r.json()["error"] == "not_authenticated"


def test_logout_all_needs_csrf():
    client = Client(enforce_csrf_checks=True)
    client.force_login(User.objects.create_user(PHONE))

    r = post_json(client, "/api/auth/logout-all")

    assert r.status_code == 403
    assert r.json()["error"] == "csrf_failed"
    assert client.get("/api/auth/me").status_code == 200


def test_logout_all_rejects_get():
    client = Client()
    client.force_login(User.objects.create_user(PHONE))

    assert client.get("/api/auth/logout-all").status_code == 405


def test_generation_zero_keeps_djangos_hash(settings):
    """Sessions made before the field existed stay valid: the migration logs nobody out."""
    from django.contrib.auth.base_user import AbstractBaseUser

    user = User.objects.create_user(PHONE)

    assert user.get_session_auth_hash() == AbstractBaseUser.get_session_auth_hash(user)
    user_logout_everywhere(user=user)
    assert user.get_session_auth_hash() != AbstractBaseUser.get_session_auth_hash(user)


def test_a_rotated_secret_key_keeps_sessions_through_the_fallbacks(settings):
    user = User.objects.create_user(PHONE)
    user_logout_everywhere(user=user)
    client = Client()
    client.force_login(user)

    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "rotated-" + "k" * 50

    assert client.get("/api/auth/me").status_code == 200
    user_logout_everywhere(user=user)
    assert client.get("/api/auth/me").status_code == 401


# --- the account page --------------------------------------------------------------------------


def test_account_page_needs_a_login():
    r = Client().get("/account/")

    assert r.status_code == 302
    assert r["Location"] == "/login/?next=/account/"


def test_account_page_shows_the_phone_and_is_never_cached():
    client = Client()
    client.force_login(User.objects.create_user(PHONE))

    r = client.get("/account/")

    assert r.status_code == 200
    assert PHONE in r.content.decode()
    assert 'value="logout-all"' in r.content.decode()
    assert "no-store" in r["Cache-Control"]
    assert "private" in r["Cache-Control"]


def test_account_page_logs_out_everywhere_with_csrf():
    page, other = csrf_client(), Client()
    user = User.objects.create_user(PHONE)
    page.force_login(user)
    other.force_login(user)

    r = csrf_post(page, "/account/", {"action": "logout-all"})

    assert r.status_code == 302
    assert r["Location"] == "/login/"
    assert other.get("/api/auth/me").status_code == 401
    assert page.get("/api/auth/me").status_code == 401


def test_account_page_logout_ends_only_this_session():
    page, other = csrf_client(), Client()
    user = User.objects.create_user(PHONE)
    page.force_login(user)
    other.force_login(user)

    assert csrf_post(page, "/account/", {"action": "logout"}).status_code == 302

    assert page.get("/api/auth/me").status_code == 401
    assert other.get("/api/auth/me").status_code == 200


def test_account_page_refuses_a_post_without_csrf():
    client = Client(enforce_csrf_checks=True)
    client.force_login(User.objects.create_user(PHONE))

    assert client.post("/account/", {"action": "logout-all"}).status_code == 403
    assert client.get("/api/auth/me").status_code == 200


def test_account_page_unknown_action_is_a_form_error():
    client = Client()
    client.force_login(User.objects.create_user(PHONE))

    r = client.post("/account/", {"action": "delete-everything"})

    assert r.status_code == 400
    assert "Unknown action" in r.content.decode()
    assert client.get("/api/auth/me").status_code == 200


def test_the_page_header_links_the_account_page(make_sale):
    r = Client().get("/sales/")

    # The logged-in buyer's phone (site.js fills it in) is the link to the account page.
    assert '<a id="who-phone" href="/account/"></a>' in r.content.decode()


# --- session lifetime --------------------------------------------------------------------------


def test_sessions_last_one_day_by_default(settings):
    morsel = api_log_in(Client()).cookies[settings.SESSION_COOKIE_NAME]

    assert settings.SESSION_COOKIE_AGE == 86400
    assert int(morsel["max-age"]) == 86400


def test_the_session_cookie_follows_session_cookie_age(settings):
    settings.SESSION_COOKIE_AGE = 600

    morsel = api_log_in(Client()).cookies[settings.SESSION_COOKIE_NAME]

    assert int(morsel["max-age"]) == 600


# --- Cache-Control on personal API answers ----------------------------------------------------


def test_authenticated_api_answers_are_private_no_store():
    client = Client()
    api_log_in(client)

    for r in (client.get("/api/auth/me"), client.get("/api/orders/")):
        assert r.status_code == 200
        directives = {d.strip() for d in r["Cache-Control"].split(",")}
        assert {"private", "no-store"} <= directives, r["Cache-Control"]


def test_login_and_a_refused_session_are_private_no_store():
    client = Client()
    login = api_log_in(client)
    post_json(client, "/api/auth/logout")
    anonymous = client.get("/api/orders/")

    for r in (login, anonymous):
        assert "private" in r["Cache-Control"]
        assert "no-store" in r["Cache-Control"]


def test_public_api_answers_stay_cacheable(make_sale):
    make_sale()

    r = Client().get("/api/sales/")

    assert r.status_code == 200
    assert "private" not in r.get("Cache-Control", "")
    assert "no-store" not in r.get("Cache-Control", "")


def test_the_sold_out_memo_answers_without_reading_the_session(make_sale, settings):
    """The buy endpoint's hot path (orders/soldout.py) stays free of a session read, so its
    answer is not marked private: the marker shows whether the session was touched."""
    from orders import soldout

    settings.BUY_STRATEGY, settings.SOLD_OUT_MEMO = "gate", 60
    sale = make_sale(stock=1)
    soldout.remember(sale.pk)
    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = "whatever-the-session-is"

    try:
        r = post_json(client, f"/api/sales/{sale.pk}/buy")
    finally:
        soldout._until.pop(sale.pk, None)  # the memo is process-wide

    assert r.status_code == 409
    assert r.json()["error"] == "sold_out"
    assert "private" not in r.get("Cache-Control", "")
