"""The JSON auth API: /api/auth/{csrf,code,login,logout,me}."""

import json
import time
from importlib import import_module

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.test import Client

from qbuy_core import code_store, sms

PHONE = "+12015550123"
OTHER_PHONE = "+12015559876"

User = get_user_model()

# Logging in creates users, and most tests check that bad requests created none.
pytestmark = pytest.mark.django_db


def request_code(api, phone=PHONE, **kw) -> str:
    r = api.post("/api/auth/code", {"phone": phone}, **kw)
    assert r.status_code == 202, r.content
    return sms.outbox[-1]["code"]


def log_in(api, phone=PHONE):
    code = request_code(api, phone)
    r = api.post("/api/auth/login", {"phone": phone, "code": code})
    assert r.status_code == 200, r.content
    return r


def wrong_for(code: str) -> str:
    return "".join("1" if c == "0" else "0" for c in code)


def session_store(key):
    return import_module(django_settings.SESSION_ENGINE).SessionStore(session_key=key)


def post_json(client, path, data, **kw):
    return client.post(path, json.dumps(data), content_type="application/json", **kw)


# --- /api/auth/csrf ---------------------------------------------------------------------------


def test_csrf_sets_cookie_and_returns_token(api):
    r = api.get("/api/auth/csrf")

    assert r.status_code == 200
    token = r.json()["csrf_token"]
    assert isinstance(token, str)
    assert len(token) >= 32
    assert r.cookies[django_settings.CSRF_COOKIE_NAME].value
    assert "no-cache" in r["Cache-Control"]  # a token must never come from a shared cache


# --- /api/auth/code ---------------------------------------------------------------------------


def test_request_code_accepted(api):
    r = api.post("/api/auth/code", {"phone": "+1 (201) 555-0123"})

    assert r.status_code == 202
    assert r.json() == {"sent": True, "expires_in": 300}
    assert [m["phone"] for m in sms.outbox] == [PHONE]
    assert caches["codes"].get(f"sms:code:{PHONE}") == sms.outbox[0]["code"]


def test_expires_in_follows_setting(api, settings):
    settings.SMS_CODE_TTL = 120

    r = api.post("/api/auth/code", {"phone": PHONE})

    assert r.json() == {"sent": True, "expires_in": 120}


@pytest.mark.parametrize(
    "phone",
    ["", "12345", "+0123456789", "call me", "+1201555\u0660\u0661\u0662\u0663"],
)
def test_request_code_invalid_phone(api, phone):
    r = api.post("/api/auth/code", {"phone": phone})

    assert r.status_code == 400
    assert r.json()["error"] == "invalid_phone"
    assert sms.outbox == []


@pytest.mark.parametrize(
    "phone",
    [
        "+15551234567",  # unassigned
        "+19005550100",  # premium rate
        "+88299999999",  # non-geographic
        "+442071234567",  # a landline
        "+33612345678",  # a country not in SMS_ALLOWED_COUNTRIES
    ],
)
def test_numbers_that_cannot_or_should_not_get_an_sms_are_400(api, phone):
    r = api.post("/api/auth/code", {"phone": phone})

    assert r.status_code == 400
    assert r.json() == {
        "error": "invalid_phone",
        "detail": "use a mobile number with its country code, e.g. +12015550123, from US, CA, GB",
    }
    assert sms.outbox == []


def test_phone_daily_limit_is_429_until_the_day_ends(api, settings):
    settings.SMS_PHONE_INTERVAL = 0
    settings.SMS_PHONE_DAILY_LIMIT = 2
    request_code(api, REMOTE_ADDR="192.0.2.1")
    request_code(api, REMOTE_ADDR="192.0.2.2")

    r = api.post("/api/auth/code", {"phone": PHONE}, REMOTE_ADDR="192.0.2.3")

    assert r.status_code == 429
    assert r.json()["error"] == "rate_limited"
    assert abs(int(r["Retry-After"]) - (86400 - int(time.time()) % 86400)) <= 1
    assert len(sms.outbox) == 2


def test_global_limit_is_429(api, settings):
    settings.SMS_GLOBAL_HOURLY_LIMIT = 1
    request_code(api)

    r = api.post("/api/auth/code", {"phone": "+447400123456"}, REMOTE_ADDR="192.0.2.1")

    assert r.status_code == 429
    assert 0 < int(r["Retry-After"]) <= 3600


def test_second_request_within_interval_is_429_with_retry_after(api):
    request_code(api)

    r = api.post("/api/auth/code", {"phone": PHONE})

    assert r.status_code == 429
    body = r.json()
    assert body["error"] == "rate_limited"
    assert 0 < int(r["Retry-After"]) <= 60
    assert body["retry_after"] == int(r["Retry-After"])
    assert len(sms.outbox) == 1


def test_ip_hourly_limit_is_429(api, settings):
    settings.SMS_IP_HOURLY_LIMIT = 1
    request_code(api, PHONE)

    r = api.post("/api/auth/code", {"phone": OTHER_PHONE})
    assert r.status_code == 429
    assert 0 < int(r["Retry-After"]) <= 3600

    # Another client address has its own budget.
    request_code(api, OTHER_PHONE, REMOTE_ADDR="198.51.100.9")
    assert [m["phone"] for m in sms.outbox] == [PHONE, OTHER_PHONE]


def test_forwarded_address_header_is_ignored_by_default(api, settings):
    settings.SMS_IP_HOURLY_LIMIT = 1
    request_code(api, PHONE, HTTP_X_REAL_IP="192.0.2.1")

    # A spoofed header must not buy a fresh budget.
    r = api.post("/api/auth/code", {"phone": OTHER_PHONE}, HTTP_X_REAL_IP="192.0.2.2")

    assert r.status_code == 429


def test_client_ip_meta_setting_selects_the_header(api, settings):
    settings.SMS_IP_HOURLY_LIMIT = 1
    settings.CLIENT_IP_META = "HTTP_X_REAL_IP"
    request_code(api, PHONE, HTTP_X_REAL_IP="192.0.2.1")

    r = api.post("/api/auth/code", {"phone": OTHER_PHONE}, HTTP_X_REAL_IP="192.0.2.1")
    assert r.status_code == 429

    request_code(api, OTHER_PHONE, HTTP_X_REAL_IP="192.0.2.2")
    assert [m["phone"] for m in sms.outbox] == [PHONE, OTHER_PHONE]


# --- /api/auth/login --------------------------------------------------------------------------


def test_login_returns_user_and_creates_it(api):
    r = log_in(api)

    user = User.objects.get(phone=PHONE)
    assert r.json() == {"user": {"id": user.pk, "phone": PHONE}}


def test_login_sets_session_cookie_backed_by_sessions_cache(api, settings):
    r = log_in(api)

    cookie = r.cookies["SESSION_ID"]
    assert cookie["path"] == "/"
    assert int(cookie["max-age"]) == settings.SESSION_COOKIE_AGE
    assert cookie["httponly"]
    assert cookie["samesite"] == "Lax"
    store = session_store(cookie.value)
    assert store.exists(cookie.value)
    assert caches["sessions"].get(store.cache_key) is not None
    assert caches["default"].get(store.cache_key) is None
    assert store.load()["_auth_user_id"] == str(User.objects.get(phone=PHONE).pk)


def test_login_rotates_a_pre_existing_session(api, client):
    session = client.session
    session["cart"] = "kettle"
    session.save()
    old_key = session.session_key

    r = log_in(api)

    new_key = r.cookies["SESSION_ID"].value
    assert new_key != old_key
    assert not session_store(old_key).exists(old_key)  # no session fixation
    assert session_store(new_key).load()["cart"] == "kettle"


def test_login_with_formatted_phone(api):
    code = request_code(api)

    formatted = f"{PHONE[:2]} {PHONE[2:5]} {PHONE[5:8]} {PHONE[8:]}"
    r = api.post("/api/auth/login", {"phone": formatted, "code": code})

    assert r.status_code == 200
    assert r.json()["user"]["phone"] == PHONE


def test_login_with_existing_user(api, buyer):
    code_store.save(phone=buyer.phone, code="123456")

    r = api.post("/api/auth/login", {"phone": buyer.phone, "code": "123456"})

    assert r.json() == {"user": {"id": buyer.pk, "phone": buyer.phone}}


INVALID_CODE = {
    "error": "invalid_code",
    "detail": "wrong or expired code: check it, or request a new one",
}


def test_wrong_code_is_400_invalid_code(api):
    code = request_code(api)

    r = api.post("/api/auth/login", {"phone": PHONE, "code": wrong_for(code)})

    assert r.status_code == 400
    assert r.json() == INVALID_CODE  # no attempts_left: nothing to count down for a stranger
    assert "SESSION_ID" not in r.cookies
    assert api.get("/api/auth/me").status_code == 401


def test_login_invalid_phone_is_400(api):
    r = api.post("/api/auth/login", {"phone": "12345", "code": "123456"})

    assert r.status_code == 400
    assert r.json()["error"] == "invalid_phone"


def test_no_code_used_code_dead_code_and_wrong_code_are_one_answer(api):
    """No oracle: the answer does not say whether the phone has a live code."""
    never_sent = api.post("/api/auth/login", {"phone": PHONE, "code": "123456"})
    code = request_code(api)
    wrong = api.post("/api/auth/login", {"phone": PHONE, "code": wrong_for(code)})
    for _ in range(4):
        api.post("/api/auth/login", {"phone": PHONE, "code": wrong_for(code)})
    dead = api.post("/api/auth/login", {"phone": PHONE, "code": code})  # 5 tries spent
    other = request_code(api, OTHER_PHONE)
    assert api.post("/api/auth/login", {"phone": OTHER_PHONE, "code": other}).status_code == 200
    used = api.post("/api/auth/login", {"phone": OTHER_PHONE, "code": other})

    answers = {
        (r.status_code, r.content, r["Content-Type"]) for r in (never_sent, wrong, dead, used)
    }
    assert answers == {(400, json.dumps(INVALID_CODE).encode(), "application/json")}
    assert User.objects.filter(phone=PHONE).count() == 0


def test_inactive_user_is_400_invalid_code(api, buyer):
    buyer.is_active = False
    buyer.save()
    code_store.save(phone=buyer.phone, code="123456", owner="127.0.0.1")

    r = api.post("/api/auth/login", {"phone": buyer.phone, "code": "123456"})

    assert (r.status_code, r.json()) == (400, INVALID_CODE)
    assert api.get("/api/auth/me").status_code == 401


def test_strangers_past_the_phone_budget_get_429_and_the_owner_logs_in(api, settings):
    code = request_code(api)  # from the test client's 127.0.0.1
    attacker = {"REMOTE_ADDR": "203.0.113.66"}
    statuses = [
        api.post("/api/auth/login", {"phone": PHONE, "code": wrong_for(code)}, **attacker)
        for _ in range(settings.LOGIN_PHONE_DAILY_FAILURES + 1)
    ]

    assert [r.status_code for r in statuses] == [400] * settings.LOGIN_PHONE_DAILY_FAILURES + [429]
    refused = statuses[-1]
    assert 0 < int(refused["Retry-After"]) <= 86400
    assert refused.json() == {"error": "rate_limited", "retry_after": int(refused["Retry-After"])}
    r = api.post("/api/auth/login", {"phone": PHONE, "code": code})
    assert r.status_code == 200, r.content


def test_failed_verifications_per_address_are_limited_across_phones(api, settings):
    settings.LOGIN_IP_HOURLY_FAILURES = 3
    for n in range(3):  # no code live for any of them: still failures of this address
        r = api.post("/api/auth/login", {"phone": f"+1201555{n:04d}", "code": "123456"})
        assert r.status_code == 400

    code = request_code(api)
    r = api.post("/api/auth/login", {"phone": PHONE, "code": code})  # right, but refused

    assert r.status_code == 429
    assert 0 < int(r["Retry-After"]) <= 3600
    # Another address has its own budget (and the code was not spent by the refusal).
    r = api.post("/api/auth/login", {"phone": PHONE, "code": code}, REMOTE_ADDR="192.0.2.5")
    assert r.status_code == 200


# --- /api/auth/me and /api/auth/logout --------------------------------------------------------


def test_me_anonymous_is_401(api):
    r = api.get("/api/auth/me")

    assert r.status_code == 401
    assert r.json() == {"error": "not_authenticated"}


def test_me_after_login(api):
    log_in(api)

    r = api.get("/api/auth/me")

    assert r.status_code == 200
    assert r.json() == {"user": {"id": User.objects.get(phone=PHONE).pk, "phone": PHONE}}
    assert "no-cache" in r["Cache-Control"]


def test_logout_ends_the_session(api):
    key = log_in(api).cookies["SESSION_ID"].value

    r = api.post("/api/auth/logout")

    assert r.status_code == 204
    assert r.content == b""
    assert not session_store(key).exists(key)
    assert api.get("/api/auth/me").status_code == 401


def test_logout_when_anonymous_is_204(api):
    assert api.post("/api/auth/logout").status_code == 204


# --- CSRF -------------------------------------------------------------------------------------


@pytest.fixture
def csrf_client():
    return Client(enforce_csrf_checks=True)


@pytest.mark.parametrize(
    "path, data",
    [
        ("/api/auth/code", {"phone": PHONE}),
        ("/api/auth/login", {"phone": PHONE, "code": "123456"}),
        ("/api/auth/logout", {}),
    ],
)
def test_post_without_csrf_token_is_403_json(csrf_client, path, data):
    r = post_json(csrf_client, path, data)

    assert r.status_code == 403
    assert r["Content-Type"] == "application/json"
    body = r.json()
    assert body["error"] == "csrf_failed"
    assert "detail" in body
    assert sms.outbox == []


def test_post_with_wrong_csrf_token_is_403(csrf_client):
    csrf_client.get("/api/auth/csrf")

    r = post_json(csrf_client, "/api/auth/code", {"phone": PHONE}, HTTP_X_CSRFTOKEN="x" * 64)

    assert r.status_code == 403
    assert r.json()["error"] == "csrf_failed"
    assert sms.outbox == []


def test_csrf_token_from_endpoint_works_for_the_whole_flow(csrf_client):
    token = csrf_client.get("/api/auth/csrf").json()["csrf_token"]

    r = post_json(csrf_client, "/api/auth/code", {"phone": PHONE}, HTTP_X_CSRFTOKEN=token)
    assert r.status_code == 202
    code = sms.outbox[0]["code"]

    r = post_json(
        csrf_client, "/api/auth/login", {"phone": PHONE, "code": code}, HTTP_X_CSRFTOKEN=token
    )
    assert r.status_code == 200
    assert csrf_client.get("/api/auth/me").status_code == 200

    # Logging in rotates the CSRF secret: the old token is dead, a fresh one works.
    r = post_json(csrf_client, "/api/auth/logout", {}, HTTP_X_CSRFTOKEN=token)
    assert r.status_code == 403
    fresh = csrf_client.get("/api/auth/csrf").json()["csrf_token"]
    r = post_json(csrf_client, "/api/auth/logout", {}, HTTP_X_CSRFTOKEN=fresh)
    assert r.status_code == 204
    assert csrf_client.get("/api/auth/me").status_code == 401


# --- bad input --------------------------------------------------------------------------------

HUGE = object()  # replaced by a body just over settings.API_MAX_BODY_BYTES
HUGE_JSON = object()  # a valid JSON object over the limit
VERY_HUGE = object()  # over DATA_UPLOAD_MAX_MEMORY_SIZE too

BAD_BODIES = [
    pytest.param({}, 400, "missing_fields", id="empty-object"),
    pytest.param({"code": "123456"}, 400, "missing_fields", id="no-phone"),
    pytest.param({"phone": 12015550123, "code": "123456"}, 400, "wrong_type", id="phone-int"),
    pytest.param({"phone": None, "code": "123456"}, 400, "wrong_type", id="phone-null"),
    pytest.param({"phone": [PHONE], "code": "123456"}, 400, "wrong_type", id="phone-list"),
    pytest.param({"phone": {"n": PHONE}, "code": "1"}, 400, "wrong_type", id="phone-object"),
    pytest.param({"phone": True, "code": "123456"}, 400, "wrong_type", id="phone-bool"),
    pytest.param("", 400, "invalid_json", id="empty-body"),
    pytest.param("phone=+12015550123", 400, "invalid_json", id="not-json"),
    pytest.param("{'phone': '+12015550123'}", 400, "invalid_json", id="python-dict"),
    pytest.param('{"phone": "+12015550123"', 400, "invalid_json", id="truncated-json"),
    pytest.param(b"\xff\xfe\x00garbage", 400, "invalid_json", id="not-utf8"),
    pytest.param("[1, 2]", 400, "invalid_json", id="json-array"),
    pytest.param('["phone", "code"]', 400, "invalid_json", id="json-array-of-names"),
    pytest.param('"+12015550123"', 400, "invalid_json", id="json-string"),
    pytest.param("42", 400, "invalid_json", id="json-number"),
    pytest.param("null", 400, "invalid_json", id="json-null"),
    pytest.param(HUGE, 413, "body_too_large", id="huge"),
    pytest.param(HUGE_JSON, 413, "body_too_large", id="huge-valid-json"),
    pytest.param(VERY_HUGE, 413, "body_too_large", id="over-upload-limit"),
]


def resolve_body(body, settings):
    if body is HUGE:
        return "x" * (settings.API_MAX_BODY_BYTES + 1)
    if body is HUGE_JSON:
        return json.dumps({"phone": PHONE, "code": "1", "pad": "x" * settings.API_MAX_BODY_BYTES})
    if body is VERY_HUGE:
        return "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    return body


def assert_json_error(r, status):
    assert 400 <= r.status_code < 500, (r.status_code, r.content[:200])
    assert r.status_code == status, r.content[:200]
    assert r["Content-Type"] == "application/json"
    body = r.json()
    assert isinstance(body, dict)
    assert "error" in body
    return body


@pytest.mark.parametrize("path", ["/api/auth/code", "/api/auth/login"])
@pytest.mark.parametrize("body, status, error", BAD_BODIES)
def test_bad_body_is_a_json_4xx(api, settings, path, body, status, error):
    r = api.post(path, resolve_body(body, settings))

    assert assert_json_error(r, status)["error"] == error
    assert sms.outbox == []
    assert not User.objects.exists()


def test_missing_fields_are_named(api):
    r = api.post("/api/auth/login", {"phone": PHONE})

    assert r.status_code == 400
    assert r.json() == {"error": "missing_fields", "fields": ["code"]}


def test_wrong_types_are_named(api):
    code = request_code(api)

    r = api.post("/api/auth/login", {"phone": PHONE, "code": [code]})

    assert r.status_code == 400
    assert r.json() == {"error": "wrong_type", "fields": ["code"], "expected": "string"}
    # A malformed request is not a guess: the code keeps all its tries.
    assert caches["codes"].get(f"sms:tries:{PHONE}") == 0


@pytest.mark.parametrize(
    "code",
    [
        "\ud800",  # a lone surrogate: valid in JSON, not encodable as UTF-8
        "\x00" * 6,
        "\uff11\uff12\uff13\uff14\uff15\uff16",  # fullwidth digits
        "' OR 1=1 --",
    ],
)
def test_strange_code_strings_are_wrong_codes(api, code):
    request_code(api)

    r = api.post("/api/auth/login", {"phone": PHONE, "code": code})

    assert r.status_code == 400
    assert r.json() == INVALID_CODE
    assert caches["codes"].get(f"sms:tries:{PHONE}") == 1


def test_code_as_number_is_400(api):
    code = request_code(api)

    r = api.post("/api/auth/login", {"phone": PHONE, "code": int("1" + code)})

    assert_json_error(r, 400)
    assert r.json()["error"] == "wrong_type"


def test_unparseable_content_length_is_400(api):
    r = api.post("/api/auth/code", {"phone": PHONE}, CONTENT_LENGTH="lots")

    assert assert_json_error(r, 400)["error"] == "bad_content_length"
    assert sms.outbox == []


@pytest.mark.parametrize("path", ["/api/auth/code", "/api/auth/login"])
def test_form_encoded_body_is_415(client, path):
    r = client.post(
        path, "phone=%2B12015550123&code=123456", content_type="application/x-www-form-urlencoded"
    )

    assert assert_json_error(r, 415)["error"] == "unsupported_media_type"


# json.loads raises RecursionError (not ValueError) on deep nesting.
@pytest.mark.parametrize("path", ["/api/auth/code", "/api/auth/login"])
def test_deeply_nested_json_is_400(api, path):
    body = '{"phone": ' + "[" * 5000 + "]" * 5000 + ', "code": "1"}'
    assert len(body) < django_settings.API_MAX_BODY_BYTES

    r = api.post(path, body)

    assert_json_error(r, 400)
    assert sms.outbox == []


# CsrfViewMiddleware reads request.POST, which consumes a multipart stream: the content type
# must be refused before request.body is touched.
@pytest.mark.parametrize("path", ["/api/auth/code", "/api/auth/login"])
def test_multipart_body_with_csrf_token_is_415(csrf_client, path):
    token = csrf_client.get("/api/auth/csrf").json()["csrf_token"]

    r = csrf_client.post(path, {"phone": PHONE, "code": "123456"}, HTTP_X_CSRFTOKEN=token)

    assert assert_json_error(r, 415)["error"] == "unsupported_media_type"
    assert sms.outbox == []


@pytest.mark.parametrize(
    "method, path, allowed",
    [
        ("get", "/api/auth/code", ["POST"]),
        ("get", "/api/auth/login", ["POST"]),
        ("get", "/api/auth/logout", ["POST"]),
        ("put", "/api/auth/code", ["POST"]),
        ("delete", "/api/auth/login", ["POST"]),
        ("patch", "/api/auth/logout", ["POST"]),
        ("post", "/api/auth/me", ["GET"]),
        ("post", "/api/auth/csrf", ["GET"]),
        ("put", "/api/auth/me", ["GET"]),
    ],
)
def test_wrong_method_is_405_json(client, method, path, allowed):
    r = getattr(client, method)(path)

    body = assert_json_error(r, 405)
    assert body == {"error": "method_not_allowed", "allowed": allowed}
    assert r["Allow"] == ", ".join(allowed)
    assert sms.outbox == []


def test_unknown_api_path_is_404_json(api):
    r = api.get("/api/auth/nope")

    assert assert_json_error(r, 404)["error"] == "not_found"
