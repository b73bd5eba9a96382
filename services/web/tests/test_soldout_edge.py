"""orders.soldout_edge: a sold-out buy answered before Django, with Django's own answer, and
every other request handed to Django (issue 20).

Each request is sent twice through WSGI, to Django alone and to the edge in front of it, and
the two answers must be the same: status, body and every header but the request id."""

import io
import json

import pytest
from django.core.handlers.wsgi import WSGIHandler

from accounts.models import User
from orders import soldout
from orders.soldout_edge import SoldOutEdge

from .wsgi import call, code_session, environ

pytestmark = pytest.mark.django_db(transaction=True)  # WSGIHandler closes connections


class Counting:
    """Django behind the edge, counting the requests that reach it."""

    def __init__(self):
        self.django, self.calls = WSGIHandler(), 0

    def __call__(self, environ, start_response):
        self.calls += 1
        return self.django(environ, start_response)


@pytest.fixture
def shop(make_sale, settings):
    settings.SOLD_OUT_MEMO = 60
    soldout._until.clear()
    user = User.objects.create_user("+12015550166")
    yield {"sale": make_sale(stock=0), **code_session(user)}
    soldout._until.clear()


def same_answers(app, env: dict) -> tuple[str, dict, bytes]:
    """The edge's answer, checked against Django's own for the same request."""
    body = env["wsgi.input"].getvalue()
    django = call(WSGIHandler(), {**env, "wsgi.input": io.BytesIO(body)})
    edge = call(app, env)
    for answer in (django, edge):
        answer[1].pop("x-request-id")
    assert edge == django
    return edge


def sold_out(shop, **extra):
    """The memo learned, as in a storm: the gate said sold out once."""
    app = Counting()
    status, _, body = call(app.django, environ(shop, **extra))
    assert (status, json.loads(body)) == ("409 Conflict", {"error": "sold_out"})
    return app


def test_a_sold_out_buy_is_answered_before_django_with_djangos_answer(shop):
    app = sold_out(shop)
    edge = SoldOutEdge(app)
    first = same_answers(edge, environ(shop))  # recorded from Django's memo answer
    calls = app.calls

    for env in (environ(shop), environ(shop, body=b'{"quantity": 1}'), environ(shop, body=b"{}")):
        assert same_answers(edge, env) == first

    assert app.calls == calls  # none of the three reached Django
    assert first[0] == "409 Conflict" and json.loads(first[2]) == {"error": "sold_out"}
    assert {"content-security-policy", "x-frame-options", "x-content-type-options"} <= set(first[1])
    assert "set-cookie" not in first[1] and "vary" not in first[1]


def test_each_answer_has_its_own_request_id_or_the_one_given(shop):
    edge = SoldOutEdge(sold_out(shop))
    call(edge, environ(shop))
    ids = {call(edge, environ(shop))[1]["x-request-id"] for _ in range(3)}
    assert len(ids) == 3
    given = call(edge, environ(shop, HTTP_X_REQUEST_ID="lb-7"))[1]["x-request-id"]
    assert given == "lb-7"


REFUSED = {  # each a change of the good request, from the shop's session and token
    "no session": lambda shop: {"HTTP_COOKIE": shop["csrf_cookie"]},
    "no CSRF header": lambda shop: {"HTTP_X_CSRFTOKEN": None},
    "a wrong CSRF token": lambda shop: {"HTTP_X_CSRFTOKEN": "x" * 64},
    "another site's Origin": lambda shop: {"HTTP_ORIGIN": "https://evil.example"},
    "a host not allowed": lambda shop: {"HTTP_HOST": "evil.example"},
    "bad JSON": lambda shop: {"body": b"{"},
    "not JSON": lambda shop: {"body": b"q=1", "ctype": "application/x-www-form-urlencoded"},
    "a quantity that is a string": lambda shop: {"body": b'{"quantity": "2"}'},
    "a quantity of 0": lambda shop: {"body": b'{"quantity": 0}'},
    "a body over the limit": lambda shop: {"body": b'{"q": "' + b"x" * 20000 + b'"}'},
    "a bad length": lambda shop: {"CONTENT_LENGTH": "x"},
    "GET": lambda shop: {"method": "GET"},
}


@pytest.mark.parametrize("change", REFUSED.values(), ids=REFUSED.keys())
def test_anything_django_would_refuse_is_refused_by_django(shop, change):
    app = sold_out(shop)
    edge = SoldOutEdge(app)
    call(edge, environ(shop))  # recorded
    calls = app.calls

    status, _, body = same_answers(edge, environ(shop, **change(shop)))

    assert app.calls == calls + 1  # handed to Django
    assert not status.startswith("409"), (status, body)


def test_https_is_recorded_apart_and_plain_http_is_redirected(shop, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 3600
    settings.CSRF_TRUSTED_ORIGINS = ["https://localhost"]
    https = {"HTTP_X_FORWARDED_PROTO": "https", "HTTP_REFERER": "https://localhost/sales/"}
    app = sold_out(shop, **https)
    edge = SoldOutEdge(app)

    recorded = same_answers(edge, environ(shop, **https))
    calls = app.calls
    assert same_answers(edge, environ(shop, **https)) == recorded
    assert app.calls == calls
    assert "strict-transport-security" in recorded[1]
    status, headers, _ = same_answers(edge, environ(shop))  # plain HTTP: Django's 301
    assert status.startswith("301") and headers["location"].startswith("https://")


def test_a_sale_not_known_sold_out_goes_to_django(shop, make_sale):
    app = Counting()
    edge = SoldOutEdge(app)
    open_sale = make_sale(stock=5)
    env = environ(shop, PATH_INFO=f"/api/sales/{open_sale.pk}/buy")
    status, _, body = call(edge, env)
    assert status.startswith("202") and app.calls == 1, body
    assert soldout.known(shop["sale"].pk) is False
    call(edge, environ(shop))  # the gate's sold_out, through Django
    assert app.calls == 2
