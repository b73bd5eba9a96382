"""SMS_BACKEND=webhook against a local HTTP server standing in for the SMS provider (the one
thing we cannot reach), and the answers when the provider fails."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import Client
from port_for import get_port

from qbuy_core import sms

PHONE = "+12015550123"
TOKEN = "test-gateway-token-0123456789"

pytestmark = pytest.mark.django_db


class Gateway:
    """Records what it was sent; answers ``status`` after ``delay`` seconds."""

    def __init__(self):
        self.received: list[dict] = []
        self.status, self.delay = 202, 0.0
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                gateway.received.append(
                    {"path": self.path, "headers": dict(self.headers), "json": json.loads(body)}
                )
                time.sleep(gateway.delay)
                self.send_response(gateway.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1/messages"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway(settings):
    gw = Gateway()
    settings.SMS_BACKEND = "webhook"
    settings.SMS_WEBHOOK_URL = gw.url
    settings.SMS_WEBHOOK_TOKEN = TOKEN
    settings.SMS_WEBHOOK_TIMEOUT = 1.0
    yield gw
    gw.close()


def request_code(client=None):
    client = client or Client()
    return client.post("/api/auth/code", {"phone": PHONE}, content_type="application/json")


def test_the_code_is_posted_to_the_gateway_with_the_bearer_token(gateway):
    r = request_code()

    assert r.status_code == 202, r.content
    [sent] = gateway.received
    assert sent["path"] == "/v1/messages"
    assert sent["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert sent["headers"]["Content-Type"] == "application/json"
    assert sent["json"]["to"] == PHONE
    assert "Your qbuy code is " in sent["json"]["text"]


def test_the_gateways_code_logs_in(gateway):
    client = Client()
    request_code(client)
    code = gateway.received[-1]["json"]["text"].split("code is ")[1][:6]

    r = client.post(
        "/api/auth/login", {"phone": PHONE, "code": code}, content_type="application/json"
    )

    assert r.status_code == 200, r.content


@pytest.mark.parametrize("status", [400, 401, 500, 503])
def test_a_gateway_error_is_a_503_sms_unavailable(gateway, settings, status):
    gateway.status = status

    r = request_code()

    assert r.status_code == 503
    assert r.json() == {
        "error": "sms_unavailable",
        "retry_after": settings.SMS_UNAVAILABLE_RETRY_AFTER,
    }
    assert r["Retry-After"] == str(settings.SMS_UNAVAILABLE_RETRY_AFTER)


def test_a_failed_delivery_spends_neither_the_phones_interval_nor_its_day(gateway, settings):
    settings.SMS_PHONE_DAILY_LIMIT = 1
    gateway.status = 503
    assert request_code().status_code == 503

    gateway.status = 202
    r = request_code()  # at once, as the 503's Retry-After allows: not 429

    assert r.status_code == 202, r.content
    assert [m["json"]["to"] for m in gateway.received] == [PHONE, PHONE]
    assert request_code().status_code == 429  # the one code that arrived is the day's


def test_a_slow_gateway_is_cut_at_the_timeout(gateway, settings):
    settings.SMS_WEBHOOK_TIMEOUT = 0.3
    gateway.delay = 2.0

    started = time.monotonic()
    r = request_code()

    assert r.status_code == 503
    assert r.json()["error"] == "sms_unavailable"
    assert time.monotonic() - started < 1.5


def test_an_unreachable_gateway_is_a_503(settings):
    settings.SMS_BACKEND = "webhook"
    settings.SMS_WEBHOOK_URL = f"http://127.0.0.1:{get_port(None)}/nobody-listens"

    r = request_code()

    assert r.status_code == 503
    assert r.json()["error"] == "sms_unavailable"


def test_the_delivery_error_names_neither_phone_nor_code(gateway):
    gateway.status = 500

    with pytest.raises(sms.SmsDeliveryError) as failed:
        sms.get_backend().send(phone=PHONE, code="424242")

    assert str(failed.value) == "SMS gateway answered 500"


def test_the_login_page_shows_a_form_error_when_the_gateway_fails(gateway, settings):
    gateway.status = 500

    r = Client().post("/login/", {"step": "phone", "phone": PHONE})

    assert r.status_code == 200
    assert "could not send the SMS" in r.content.decode()
    assert 'name="code"' not in r.content.decode()


def test_webhook_without_a_url_is_improperly_configured(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.SMS_BACKEND = "webhook"
    settings.SMS_WEBHOOK_URL = ""

    with pytest.raises(ImproperlyConfigured, match="SMS_WEBHOOK_URL"):
        sms.get_backend()
