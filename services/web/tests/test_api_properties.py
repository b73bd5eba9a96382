"""The JSON API's parsing under generated input (hypothesis), over HTTP with Django's test client.

Only the HTTP contract is checked (README "The JSON API"), not how the views parse: whatever
body, content type or query string a client sends, the answer is never a 5xx, an error is JSON
with an "error" string, the status is one the endpoint documents, and a refused buy reserves
nothing. The test client is the one thing kept across examples: every example starts with empty
caches (rate limits, sessions, the gate's Redis state) and logs in again where it needs to.
"""

import contextlib
import json

import pytest
from django.conf import settings
from django.core.cache import caches
from django.db import DatabaseError
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from accounts.phone import normalize_phone
from orders import gate
from orders.models import Order
from qbuy_core import sms

pytestmark = pytest.mark.django_db

# The client and the sale live for the whole test; every example resets what they touch.
examples_share_fixtures = hypothesis_settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)

DOCUMENTED = {
    "code": {202, 400, 413, 415, 429},
    "login": {200, 400, 413, 415, 429},
    "buy": {202, 400, 401, 403, 404, 405, 409, 410, 413, 415},
    "list": {200, 400, 404},  # 404 no_such_page: a page past the last
}

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def json_objects(*fields: str) -> st.SearchStrategy[dict]:
    """Objects that hold the endpoint's fields (or not), of any JSON type, among other keys."""
    return st.builds(
        lambda extra, known: {**extra, **known},
        st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=3),
        st.fixed_dictionaries({}, optional={f: JSON_VALUES for f in fields}),
    )


def encoded(value) -> st.SearchStrategy[bytes]:
    """``value`` as JSON bytes, ASCII-escaped or as UTF-8 (lone surrogates kept as escapes)."""
    return st.sampled_from(
        [
            json.dumps(value).encode(),
            json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"),
        ]
    )


def deep(n: int) -> bytes:
    """A small body nested deeper than a recursive parser's stack."""
    return b'{"phone": ' + b"[" * n + b"]" * n + b', "code": "1", "quantity": 1}'


def bodies(*fields: str) -> st.SearchStrategy[bytes]:
    return st.one_of(
        json_objects(*fields).flatmap(encoded),
        JSON_VALUES.flatmap(encoded),
        st.binary(max_size=64),
        st.text(max_size=64).map(lambda t: t.encode("utf-8", "surrogatepass")),
        # Hypothesis favours small integers: name the depths around Python's recursion limit.
        (st.integers(min_value=1, max_value=8000) | st.sampled_from([999, 1001, 8000])).map(deep),
        # Around the body limit: 413, or parsed as usual just below it.
        st.integers(min_value=-64, max_value=64).map(
            lambda d: b'{"pad": "' + b"x" * (settings.API_MAX_BODY_BYTES - 11 + d) + b'"}'
        ),
    )


# What gunicorn lets through to Django: latin-1 header text without control characters.
HEADER_TEXT = st.text(
    st.characters(codec="latin-1", exclude_categories=["Cc"]) | st.just("\t"), max_size=40
)
CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON ; charset=latin-1",
            "application/json-patch+json",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=xyz",
            "multipart/form-data",
            "",
        ]
    ),
    HEADER_TEXT,
)
# A raw query string as a server hands it to Django: latin-1 text, %-escapes of any byte.
QUERY_STRINGS = st.one_of(
    HEADER_TEXT,
    st.builds("page={}".format, HEADER_TEXT),
    st.builds("page={}".format, st.integers().map(str)),
    st.builds(
        lambda raw: "page=" + "".join(f"%{b:02X}" for b in raw), st.binary(min_size=1, max_size=8)
    ),
    st.lists(st.sampled_from(["page=1", "page=", "page", "&", "=", "page=2", "page=0"])).map(
        "&".join
    ),
)


def fresh() -> None:
    """What the autouse fixture does between tests, between examples: rate limits, sessions
    and the gate's Redis state start empty."""
    sms.outbox.clear()
    for alias in caches.settings:
        with contextlib.suppress(DatabaseError):
            caches[alias].clear()


def assert_documented(response, endpoint: str) -> dict | None:
    status = response.status_code
    assert status < 500, response.content[:500]
    assert status in DOCUMENTED[endpoint], (status, response.content[:500])
    if status == 204:
        return None
    assert response["Content-Type"].split(";")[0] == "application/json"
    body = json.loads(response.content)
    if status >= 400:
        assert isinstance(body, dict) and isinstance(body.get("error"), str), body
    if status == 429:
        assert int(response["Retry-After"]) > 0
    return body


def assert_json_only(response, body: bytes, content_type: str) -> None:
    """A body in any other media type is refused, unread (413 may be said first)."""
    if body and content_type.split(";")[0].strip().lower() != "application/json":
        expected = {415, 413} if len(body) > settings.API_MAX_BODY_BYTES else {415}
        assert response.status_code in expected


def post(client, path: str, body: bytes, content_type: str):
    # generic(): the bytes and the Content-Type exactly as given (post() would encode them).
    return client.generic("POST", path, body, content_type=content_type)


@pytest.mark.parametrize("endpoint", ["code", "login"])
@given(body=bodies("phone", "code"), content_type=CONTENT_TYPES)
@examples_share_fixtures
def test_auth_answers_any_body_as_documented(client, endpoint, body, content_type):
    fresh()
    r = post(client, f"/api/auth/{endpoint}", body, content_type)
    assert_documented(r, endpoint)
    assert_json_only(r, body, content_type)


@pytest.mark.parametrize("endpoint", ["code", "login"])
@given(data=json_objects("phone", "code"))
@examples_share_fixtures
def test_auth_reads_a_json_object_field_by_field(client, endpoint, data):
    fresh()
    r = post(client, f"/api/auth/{endpoint}", json.dumps(data).encode(), "application/json")
    body = assert_documented(r, endpoint)
    fields = ["phone"] if endpoint == "code" else ["phone", "code"]
    missing = [f for f in fields if f not in data]
    wrong = [f for f in fields if f in data and not isinstance(data[f], str)]
    if missing:
        assert (r.status_code, body["error"]) == (400, "missing_fields")
    elif wrong:
        assert (r.status_code, body["error"]) == (400, "wrong_type")
    elif normalize_phone(data["phone"]) is None:
        assert (r.status_code, body["error"]) == (400, "invalid_phone")
    elif endpoint == "code":
        assert r.status_code == 202
    else:  # no code was sent to this phone: one answer for every wrong code
        assert (r.status_code, body["error"]) == (400, "invalid_code")


@pytest.fixture
def sale(make_sale):
    return make_sale(stock=5, per_buyer_limit=2)


@pytest.fixture
def buyer_client(client, buyer):
    def login():
        client.force_login(buyer)
        return client

    return login


def assert_nothing_reserved(sale) -> None:
    assert not Order.objects.filter(sale=sale).exists()
    remaining = type(sale).objects.values_list("remaining", flat=True).get(pk=sale.pk)
    assert remaining == sale.stock
    stock = gate.redis().hget(gate.keys(sale.pk)[0], "stock")
    assert stock is None or int(stock) == sale.stock


def valid_quantity(data, limit: int) -> bool:
    if not isinstance(data, dict):
        return False
    q = data.get("quantity", 1)
    return isinstance(q, int) and not isinstance(q, bool) and 1 <= q <= limit


def buy_and_check(client, sale, body: bytes, content_type: str):
    Order.objects.filter(sale=sale).delete()  # the previous example's accepted buy
    fresh()
    r = post(client(), f"/api/sales/{sale.pk}/buy", body, content_type)
    answer = assert_documented(r, "buy")
    if r.status_code == 202:
        order = Order.objects.get(sale=sale)
        assert str(order.token) == answer["order"]
        assert 1 <= order.quantity <= sale.per_buyer_limit
    else:
        assert_nothing_reserved(sale)
    return r, answer


@given(body=bodies("quantity"), content_type=CONTENT_TYPES)
@examples_share_fixtures
def test_buy_answers_any_body_as_documented_and_a_refusal_reserves_nothing(
    buyer_client, sale, body, content_type
):
    r, _ = buy_and_check(buyer_client, sale, body, content_type)
    assert_json_only(r, body, content_type)


@given(data=JSON_VALUES | json_objects("quantity"))
@examples_share_fixtures
def test_buy_accepts_exactly_a_missing_or_allowed_integer_quantity(buyer_client, sale, data):
    r, answer = buy_and_check(buyer_client, sale, json.dumps(data).encode(), "application/json")
    if valid_quantity(data, sale.per_buyer_limit):
        assert r.status_code == 202
    else:
        assert r.status_code == 400
        assert answer["error"] in {"invalid_json", "invalid_quantity", "over_limit", "wrong_type"}


@pytest.mark.parametrize("path", ["/api/sales/", "/api/orders/"])
@given(query=QUERY_STRINGS)
@examples_share_fixtures
def test_lists_answer_any_query_string_as_documented(buyer_client, sale, path, query):
    fresh()
    r = buyer_client().get(path, QUERY_STRING=query)
    body = assert_documented(r, "list")
    if r.status_code == 200:
        assert body["page"]["number"] >= 1


@pytest.mark.parametrize("path", ["/api/sales/", "/api/orders/"])
@given(page=st.integers(min_value=-(10**30), max_value=10**30))
@examples_share_fixtures
def test_lists_answer_a_page_number_by_its_range(buyer_client, sale, path, page):
    fresh()
    r = buyer_client().get(path, {"page": page})
    body = assert_documented(r, "list")
    # One sale and no order: page 1 exists (empty for the orders), no other.
    expected = 400 if page < 1 else 200 if page == 1 else 404
    assert r.status_code == expected, body
