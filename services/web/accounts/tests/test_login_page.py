"""The /login/ page: step 1 sends a code to a phone, step 2 logs in with it."""

import html
import re

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.http import HttpResponseRedirect
from django.test import Client

from qbuy_core import code_store, sms

PHONE = "+12015550123"

User = get_user_model()

pytestmark = pytest.mark.django_db


def send_code(client, phone=PHONE, **data):
    r = client.post("/login/", {"step": "phone", "phone": phone, **data})
    assert r.status_code == 200
    return r


def enter_code(client, code, phone=PHONE, **data):
    return client.post("/login/", {"step": "code", "phone": phone, "code": code, **data})


def logged_in_user_id(client):
    return client.session.get("_auth_user_id")


def test_get_renders_the_phone_form(client):
    r = client.get("/login/")

    assert r.status_code == 200
    assert "accounts/login.html" in [t.name for t in r.templates]
    assert r.context["code_form"] is None
    assert r.context["next"] == "/sales/"
    html = r.content.decode()
    assert '<input type="hidden" name="step" value="phone">' in html
    assert 'name="phone"' in html
    assert 'name="code"' not in html
    assert '<input type="hidden" name="next" value="/sales/">' in html


def test_get_keeps_a_local_next(client):
    r = client.get("/login/", {"next": "/sales/7/"})

    assert r.context["next"] == "/sales/7/"
    assert '<input type="hidden" name="next" value="/sales/7/">' in r.content.decode()


@pytest.mark.parametrize("phone", ["12345", "+0123456789", "call me", ""])
def test_bad_phone_shows_a_form_error(client, phone):
    r = send_code(client, phone)

    assert r.context["code_form"] is None
    assert "phone" in r.context["phone_form"].errors
    html = r.content.decode()
    assert 'class="errorlist"' in html
    assert 'name="code"' not in html
    assert sms.outbox == []


@pytest.mark.parametrize("phone", ["12345", "+19005550100", "+88299999999", "+15551234567"])
def test_bad_phone_error_text(client, phone):
    r = send_code(client, phone)

    assert (
        "Enter a mobile number with its country code, e.g. +12015550123, from US, CA, GB."
        in r.content.decode()
    )
    assert sms.outbox == []


def test_valid_phone_sends_a_code_and_shows_the_code_form(client, settings):
    assert settings.SMS_BACKEND == "locmem"

    r = send_code(client, "+1 (201) 555-0123")

    assert len(sms.outbox) == 1
    assert sms.outbox[0]["phone"] == PHONE
    code_form = r.context["code_form"]
    assert code_form is not None
    assert code_form.initial == {"phone": PHONE}
    html = r.content.decode()
    assert '<input type="hidden" name="step" value="code">' in html
    assert 'name="code"' in html
    assert f'value="{PHONE}"' in html


def test_the_code_step_says_where_the_code_went(client):
    page = send_code(client, "+1 (201) 555-0123").content.decode()

    assert f"We sent a code by SMS to <strong>{PHONE}</strong>" in page


def test_second_code_within_interval_shows_rate_limit_error(client):
    send_code(client)

    r = send_code(client)

    assert r.context["code_form"] is None
    assert "Too many codes: try again in" in r.content.decode()
    assert len(sms.outbox) == 1


# Every SMS limit, as (settings, first request, second request): (phone, address) pairs where
# the second is refused because of the first. The page and the API must spend and obey the
# same budgets: both go through accounts.services.sms_code_request.
US, OTHER_US, CA, GB = PHONE, "+12015559876", "+16135550123", "+447400123456"
LIMITS = [
    pytest.param({"SMS_IP_HOURLY_LIMIT": 1}, (US, "192.0.2.1"), (OTHER_US, "192.0.2.1"), id="ip"),
    pytest.param({}, (US, "192.0.2.1"), (US, "192.0.2.2"), id="phone-interval"),
    pytest.param(
        {"SMS_PHONE_INTERVAL": 0, "SMS_PHONE_DAILY_LIMIT": 1},
        (US, "192.0.2.1"),
        (US, "192.0.2.2"),
        id="phone-day",
    ),
    pytest.param({"SMS_PREFIX_HOURLY_LIMIT": 1}, (US, "192.0.2.1"), (CA, "192.0.2.2"), id="prefix"),
    pytest.param({"SMS_GLOBAL_HOURLY_LIMIT": 1}, (US, "192.0.2.1"), (GB, "192.0.2.2"), id="global"),
]


def send_by_page(client, api, phone, ip) -> bool:
    r = client.post("/login/", {"step": "phone", "phone": phone}, REMOTE_ADDR=ip)
    assert r.status_code == 200
    if r.context["code_form"] is not None:
        return True
    assert "Too many codes: try again in" in r.content.decode()
    return False


def send_by_api(client, api, phone, ip) -> bool:
    r = api.post("/api/auth/code", {"phone": phone}, REMOTE_ADDR=ip)
    assert r.status_code in (202, 429), r.content
    if r.status_code == 429:
        assert int(r["Retry-After"]) > 0
    return r.status_code == 202


@pytest.mark.parametrize("overrides, first, second", LIMITS)
@pytest.mark.parametrize(
    "first_by, second_by",
    [(send_by_api, send_by_page), (send_by_page, send_by_api), (send_by_page, send_by_page)],
    ids=["api-then-page", "page-then-api", "page-then-page"],
)
def test_the_page_and_the_api_share_every_sms_limit(
    client, api, settings, overrides, first, second, first_by, second_by
):
    for name, value in overrides.items():
        setattr(settings, name, value)

    assert first_by(client, api, *first)
    assert not second_by(client, api, *second)

    assert [m["phone"] for m in sms.outbox] == [first[0]]


def test_right_code_logs_in_and_redirects_to_sales(client):
    send_code(client)

    r = enter_code(client, sms.outbox[0]["code"])

    assert r.status_code == 302
    assert isinstance(r, HttpResponseRedirect)
    assert r.url == "/sales/"
    user = User.objects.get(phone=PHONE)
    assert logged_in_user_id(client) == str(user.pk)
    assert django_settings.SESSION_COOKIE_NAME in r.cookies
    assert client.get("/api/auth/me").json() == {"user": {"id": user.pk, "phone": PHONE}}


def test_right_code_redirects_to_next(client):
    send_code(client, next="/sales/7/")

    r = enter_code(client, sms.outbox[0]["code"], next="/sales/7/")

    assert r.status_code == 302
    assert r.url == "/sales/7/"


def test_next_from_the_query_string_survives_both_steps(client):
    r = client.post("/login/?next=/sales/3/", {"step": "phone", "phone": PHONE})
    assert '<input type="hidden" name="next" value="/sales/3/">' in r.content.decode()

    r = enter_code(client, sms.outbox[0]["code"], next="/sales/3/")

    assert r.url == "/sales/3/"


INVALID_CODE = "Wrong or expired code: check it, or request a new one."


def test_wrong_code_shows_one_message(client):
    send_code(client)
    code = sms.outbox[0]["code"]
    wrong = "".join("1" if c == "0" else "0" for c in code)

    r = enter_code(client, wrong)

    assert r.status_code == 200
    assert INVALID_CODE in r.content.decode()
    assert r.context["code_form"].errors["code"] == [INVALID_CODE]
    assert "tries left" not in r.content.decode()
    assert logged_in_user_id(client) is None
    # The right code still works afterwards.
    assert enter_code(client, code).status_code == 302


def test_no_live_code_shows_the_same_message(client):
    r = enter_code(client, "123456")

    assert r.status_code == 200
    assert r.context["code_form"].errors["code"] == [INVALID_CODE]
    assert logged_in_user_id(client) is None
    assert not User.objects.exists()


def test_too_many_failures_from_an_address_show_when_to_retry(client, settings):
    settings.LOGIN_IP_HOURLY_FAILURES = 2
    for _ in range(2):
        enter_code(client, "123456")

    r = enter_code(client, "123456")

    assert r.status_code == 200
    (error,) = r.context["code_form"].errors["code"]
    assert error.startswith("Too many tries: try again in ")
    assert logged_in_user_id(client) is None


def test_used_code_cannot_log_in_again(client):
    send_code(client)
    code = sms.outbox[0]["code"]
    assert enter_code(client, code).status_code == 302
    client.logout()

    r = enter_code(client, code)

    assert r.status_code == 200
    assert INVALID_CODE in r.content.decode()
    assert logged_in_user_id(client) is None


def test_code_step_with_missing_code_shows_field_error(client):
    code_store.save(phone=PHONE, code="123456")

    r = client.post("/login/", {"step": "code", "phone": PHONE})

    assert r.status_code == 200
    assert "code" in r.context["code_form"].errors
    assert logged_in_user_id(client) is None
    # Not a guess: the code keeps all its tries and still works.
    assert enter_code(client, "123456").status_code == 302


@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.example/",
        "http://evil.example/sales/",
        "//evil.example/",
        "/\\evil.example/",
        "javascript:alert(1)",
    ],
)
def test_off_site_next_is_replaced_by_sales(client, next_url):
    r = client.get("/login/", {"next": next_url})
    assert r.context["next"] == "/sales/"

    send_code(client, next=next_url)
    r = enter_code(client, sms.outbox[0]["code"], next=next_url)

    assert r.status_code == 302
    assert r.url == "/sales/"
    assert logged_in_user_id(client) is not None


def test_other_methods_are_405(client):
    r = client.put("/login/")

    assert r.status_code == 405
    assert r["Allow"] == "GET, POST"


@pytest.mark.parametrize("next_url", ["sales/7/", "evil.example", "?next=/x/", " /sales/7/"])
def test_a_next_that_is_no_absolute_path_is_replaced_by_sales(client, next_url):
    send_code(client, next=next_url)
    r = enter_code(client, sms.outbox[0]["code"], next=next_url)

    assert r.status_code == 302
    assert r.url == "/sales/"


def test_the_sale_pages_login_link_comes_back_to_the_sale(client, make_sale):
    sale = make_sale(name="Round Trip Kettle")
    page = client.get(f"/sales/{sale.pk}/").content.decode()
    href = re.search(r'<a id="login-nav" href="([^"]+)"', page).group(1)
    assert href == f"/login/?next=%2Fsales%2F{sale.pk}%2F"

    form = client.get(html.unescape(href)).content.decode()
    next_url = re.search(
        r'value="phone">\s*<input type="hidden" name="next" value="([^"]+)"', form
    )[1]
    send_code(client, next=next_url)
    r = enter_code(client, sms.outbox[0]["code"], next=next_url)

    assert r.status_code == 302
    assert r.url == f"/sales/{sale.pk}/"
    assert client.get(r.url).status_code == 200


def test_logout_from_the_header_returns_to_the_page(client, buyer):
    client.force_login(buyer)

    r = client.post("/account/", {"action": "logout", "next": "/sales/4/"})

    assert r.status_code == 302
    assert r.url == "/sales/4/"
    assert logged_in_user_id(client) is None


@pytest.mark.parametrize("next_url", ["", "//evil.example/", "https://evil.example/"])
def test_logout_without_a_safe_next_goes_to_the_login_page(client, buyer, next_url):
    client.force_login(buyer)

    r = client.post("/account/", {"action": "logout", "next": next_url})

    assert r.url == "/login/"
    assert logged_in_user_id(client) is None


def test_a_stale_csrf_token_gets_a_page_in_the_sites_style(buyer):
    client = Client(enforce_csrf_checks=True)

    r = client.post("/login/", {"step": "phone", "phone": PHONE})

    assert r.status_code == 403
    page = r.content.decode()
    assert "Please try again" in page
    assert "/static/qbuy/site" in page  # base.html: the stylesheet and the header
    assert 'id="login-nav"' in page
    assert not sms.outbox
    api = client.post("/api/auth/code", {"phone": PHONE}, content_type="application/json")
    assert api.status_code == 403
    assert api.json()["error"] == "csrf_failed"  # the API's handler is unchanged
