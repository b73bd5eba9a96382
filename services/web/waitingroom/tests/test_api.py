"""The room's API over the Django test client (real Redis and Postgres): joining, the public
room, the place, and the buy endpoint's pass check for a sale with a room."""

import itertools
import json
import time
from dataclasses import dataclass

import pytest
from django.core import signing
from django.test import Client

from accounts.models import User
from orders import gate
from orders.models import Order
from sales.models import Sale
from waitingroom import passes, store
from waitingroom.services import moment

from .conftest import draw_now, redis_now_ms, set_room

pytestmark = pytest.mark.django_db


@dataclass
class Buyer:
    """A logged-in buyer's browser, speaking the room's API."""

    user: User
    client: Client

    def join(self, sale_id: int, **extra):
        return self.client.post(f"/api/sales/{sale_id}/room", "", "application/json", **extra)

    def me(self, sale_id: int) -> dict:
        r = self.client.get(f"/api/sales/{sale_id}/room/me")
        assert r.status_code == 200, r.content
        return r.json()

    def buy(self, sale_id: int, pass_: str | None = None):
        body = {} if pass_ is None else {"pass": pass_}
        return self.client.post(f"/api/sales/{sale_id}/buy", json.dumps(body), "application/json")


_phones = itertools.count(1)


def buyers(n: int) -> list[Buyer]:
    """n new accounts, each logged in in its own client."""
    made = []
    for _ in range(n):
        user = User.objects.create_user(f"+1202555{next(_phones):04d}")
        client = Client()
        client.force_login(user)
        made.append(Buyer(user, client))
    return made


def live_room(room_sale, **kw) -> Sale:
    """A sale that started a second ago, with a room. Built after the start, the room draws
    WAITING_ROOM_REDRAW s later: whoever joins now is drawn when the test calls draw_now."""
    return room_sale(starts_in=-1, **kw)


@pytest.fixture(params=["gate", "db-lock"])
def strategy(request, settings):
    settings.BUY_STRATEGY = request.param
    return request.param


def room(sale_id: int, client: Client | None = None):
    return (client or Client()).get(f"/api/sales/{sale_id}/room")


def pass_of(buyer: Buyer, sale_id: int) -> str:
    place = buyer.me(sale_id)
    assert place["state"] == "admitted", place
    return place["pass"]


def admitted_in_redis(sale_id: int) -> set[int]:
    return {int(b) for b in gate.redis().zrange(store.keys(sale_id)[2], 0, -1)}


def nothing_reserved(sale: Sale):
    assert not Order.objects.filter(sale=sale).exists()
    assert int(gate.redis().hget(gate.keys(sale.pk)[0], "stock")) == sale.stock


def at(ms: int) -> str:
    return moment(ms).isoformat()


def clear_of_a_window_edge():
    # The join limit counts in fixed minutes: a test that spends one must not straddle two.
    if time.time() % 60 > 58:
        time.sleep(60 - time.time() % 60)


# --- joining ------------------------------------------------------------------------------------


def test_join_is_201_then_200_with_the_same_place(room_sale):
    sale = room_sale(stock=5)
    alice, bob = buyers(2)
    first = alice.join(sale.pk)
    assert first.status_code == 201
    assert first.json()["state"] == "drawing"
    assert "place" not in first.json()  # places exist from the draw on
    key = gate.redis().zscore(store.keys(sale.pk)[1], alice.user.pk)
    again = alice.join(sale.pk)
    assert (again.status_code, again.json()["state"]) == (200, "drawing")
    assert gate.redis().zscore(store.keys(sale.pk)[1], alice.user.pk) == key
    draw_now(sale)
    drawn = alice.join(sale.pk)
    assert drawn.status_code == 200
    assert drawn.json()["place"] == alice.me(sale.pk)["place"]
    # After the draw a newcomer queues behind, and keeps that place too.
    late = bob.join(sale.pk)
    assert (late.status_code, late.json()["place"]) == (201, 2)
    assert (bob.join(sale.pk).status_code, bob.me(sale.pk)["place"]) == (200, 2)


def test_join_needs_a_login(room_sale):
    sale = room_sale(stock=5)
    r = Client().post(f"/api/sales/{sale.pk}/room", "", "application/json")
    assert (r.status_code, r.json()["error"]) == (401, "not_authenticated")
    assert store.visit(sale.pk).waiting == 0


def test_join_before_the_room_opens_is_403_with_the_opening(room_sale, settings):
    settings.WAITING_ROOM_OPENS = 30
    sale = room_sale(stock=5, starts_in=120)
    (alice,) = buyers(1)
    r = alice.join(sale.pk)
    assert (r.status_code, r.json()["error"]) == (403, "room_not_open")
    assert r.json()["detail"] == room(sale.pk).json()["opens_at"]
    assert store.visit(sale.pk).waiting == 0


def test_join_of_no_sale_or_a_sale_without_a_room_is_404(make_sale):
    (alice,) = buyers(1)
    plain = make_sale(stock=5)
    r = alice.join(plain.pk)
    assert (r.status_code, r.json()["error"]) == (404, "no_waiting_room")
    r = alice.join(plain.pk + 1000)
    assert (r.status_code, r.json()["error"]) == (404, "not_found")


def test_joins_are_limited_per_address(room_sale, settings):
    settings.WAITING_ROOM_JOINS_PER_MINUTE = 3
    sale = room_sale(stock=5)
    alice, bob, carol = buyers(3)
    clear_of_a_window_edge()
    here, there = {"REMOTE_ADDR": "203.0.113.7"}, {"REMOTE_ADDR": "203.0.113.8"}
    assert [b.join(sale.pk, **here).status_code for b in (alice, alice, bob)] == [201, 200, 201]
    refused = carol.join(sale.pk, **here)
    assert (refused.status_code, refused.json()["error"]) == (429, "rate_limited")
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused.json()["retry_after"] == int(refused["Retry-After"])
    assert store.visit(sale.pk, carol.user.pk).state == "out"
    assert carol.join(sale.pk, **there).status_code == 201


def test_join_needs_the_csrf_token(room_sale):
    sale = room_sale(stock=5)
    (alice,) = buyers(1)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice.user)
    r = client.post(f"/api/sales/{sale.pk}/room", "", "application/json")
    assert (r.status_code, r.json()["error"]) == (403, "csrf_failed")
    assert store.visit(sale.pk).waiting == 0
    token = client.get("/api/auth/csrf").json()["csrf_token"]
    r = client.post(f"/api/sales/{sale.pk}/room", "", "application/json", HTTP_X_CSRFTOKEN=token)
    assert r.status_code == 201


def test_the_place_is_private_and_needs_a_login(room_sale):
    sale = room_sale(stock=5)
    (alice,) = buyers(1)
    r = Client().get(f"/api/sales/{sale.pk}/room/me")
    assert (r.status_code, r.json()["error"]) == (401, "not_authenticated")
    r = alice.client.get(f"/api/sales/{sale.pk}/room/me")
    assert r.json()["state"] == "out"
    assert r["Cache-Control"] == "private, no-store"


# --- the public room ----------------------------------------------------------------------------


def test_the_room_is_public_and_never_reads_the_session(room_sale):
    """Cached by the edge for a second and the same for everyone: what it says must not
    depend on who asks, so it must not even look at the session."""
    sale = room_sale(stock=5)
    (alice,) = buyers(1)
    r = room(sale.pk, alice.client)
    assert r.status_code == 200
    assert r["Cache-Control"] == "public, max-age=1"
    assert "Cookie" not in r.get("Vary", "")
    assert "Set-Cookie" not in r
    assert not r.wsgi_request.session.accessed


def test_the_room_tells_its_figures(room_sale, settings):
    settings.WAITING_ROOM_OPENS = 600
    sale = room_sale(stock=4, admission_rate=2, starts_in=60)
    trio = buyers(3)
    for b in trio:
        b.join(sale.pk)
    before = room(sale.pk).json()
    starts = int(sale.starts_at.timestamp() * 1000)
    assert {k: before[k] for k in ("sale", "state", "admitted", "waiting", "rate")} == {
        "sale": sale.pk,
        "state": "drawing",
        "admitted": 0,
        "waiting": 3,
        "rate": 2,
    }
    assert before["stock_left"] == 4
    assert before["opens_at"] == at(starts - 600_000)
    assert before["draws_at"] == at(starts)
    assert before["ends_at"] == at(int(sale.ends_at.timestamp() * 1000))
    # A second after the draw, at 2 a second: the first two places are in.
    draw_now(sale, ago_ms=1000)
    during = room(sale.pk).json()
    assert (during["state"], during["admitted"], during["waiting"]) == ("admitting", 2, 1)
    first = next(b for b in trio if b.me(sale.pk)["state"] == "admitted")
    assert first.buy(sale.pk, pass_of(first, sale.pk)).status_code == 202
    assert room(sale.pk).json()["stock_left"] == 3


@pytest.mark.parametrize(
    "kwargs, state",
    [
        ({"stock": 5, "starts_in": 3600}, "not_open"),
        ({"stock": 5, "starts_in": 60}, "drawing"),
        ({"stock": 0, "starts_in": -5}, "sold_out"),
        ({"stock": 5, "starts_in": -120, "duration": 60}, "ended"),
        # Ended over an hour ago: its room outlives the end by an hour in Redis.
        ({"stock": 5, "starts_in": -7200, "duration": 3600}, "ended"),
    ],
)
def test_the_room_state(make_sale, kwargs, state):
    sale = make_sale(waiting_room=True, **kwargs)
    if state == "sold_out":
        # Built after the start, the room draws WAITING_ROOM_REDRAW s later: be past it.
        room(sale.pk)
        draw_now(sale, ago_ms=1000)
    r = room(sale.pk)
    assert (r.status_code, r.json()["state"]) == (200, state)


def test_the_room_of_no_sale_or_a_sale_without_one_is_404(make_sale):
    plain = make_sale(stock=5)
    r = room(plain.pk)
    assert (r.status_code, r.json()["error"]) == (404, "no_waiting_room")
    r = room(plain.pk + 1000)
    assert (r.status_code, r.json()["error"]) == (404, "not_found")


# --- buying with a room -------------------------------------------------------------------------


def test_a_buy_without_a_pass_is_refused(room_sale, strategy):
    sale = live_room(room_sale, stock=5, admission_rate=1000)
    (alice,) = buyers(1)
    alice.join(sale.pk)
    draw_now(sale, ago_ms=1000)
    r = alice.buy(sale.pk)
    assert (r.status_code, r.json()["error"]) == (403, "not_admitted")
    nothing_reserved(sale)


def _bad_passes(sale, other, alice, bob):
    """Every pass alice might try that is not hers for this sale, alive and signed here."""
    now = redis_now_ms()
    bobs = pass_of(bob, sale.pk)
    other_sales = pass_of(alice, other.pk)
    expired = passes.issue(
        sale_id=sale.pk, buyer_id=alice.user.pk, issued_ms=now - 10_000, deadline_ms=now - 1
    )
    value, signature = pass_of(alice, sale.pk).rsplit(":", 1)
    sale_id, buyer_id, issued, deadline = value.split(".")
    longer = f"{sale_id}.{buyer_id}.{issued}.{int(deadline) + 3_600_000}:{signature}"
    elsewhere = signing.Signer(key="not-this-site", salt="qbuy.waitingroom.pass")
    forged = elsewhere.sign(f"{sale.pk}.{alice.user.pk}.{now}.{now + 60_000}")
    return {
        "another account's": bobs,
        "another sale's": other_sales,
        "expired": expired,
        "altered": longer,
        "forged": forged,
        "not a pass": "nope",
    }


def test_a_pass_not_of_this_buyer_for_this_sale_alive_and_signed_here_is_refused(
    room_sale, strategy
):
    sale = live_room(room_sale, stock=5, admission_rate=1000)
    other = live_room(room_sale, stock=5, admission_rate=1000)
    alice, bob = buyers(2)
    for b in (alice, bob):
        b.join(sale.pk)
    alice.join(other.pk)
    draw_now(sale, ago_ms=1000)
    draw_now(other, ago_ms=1000)
    for why, bad in _bad_passes(sale, other, alice, bob).items():
        r = alice.buy(sale.pk, bad)
        assert (r.status_code, r.json()["error"]) == (403, "not_admitted"), why
    nothing_reserved(sale)
    # Her own pass still works.
    assert alice.buy(sale.pk, pass_of(alice, sale.pk)).status_code == 202


def test_a_signed_pass_the_room_never_admitted_is_refused_by_the_gate(room_sale, settings):
    """The gate checks the admission in Redis, not only the signature: a pass issued now (after
    the room was built) must be an admission the room gave and nobody spent."""
    settings.BUY_STRATEGY = "gate"
    sale = live_room(room_sale, stock=5, admission_rate=1)
    alice, bob = buyers(2)
    alice.join(sale.pk)
    bob.join(sale.pk)
    draw_now(sale)  # drawn, nobody admitted yet
    now = redis_now_ms()
    made_up = passes.issue(
        sale_id=sale.pk, buyer_id=alice.user.pk, issued_ms=now, deadline_ms=now + 60_000
    )
    r = alice.buy(sale.pk, made_up)
    assert (r.status_code, r.json()["error"]) == (403, "not_admitted")
    nothing_reserved(sale)


def test_db_lock_checks_the_pass_signature_only(room_sale, settings):
    """BUY_STRATEGY=db-lock is the Postgres-only design the gate is measured against: its buy
    never reads Redis, where the room keeps its admissions, so a pass of this buyer for this
    sale, signed here and alive, is all it can check (a room with db-lock is a bench setup)."""
    settings.BUY_STRATEGY = "db-lock"
    sale = live_room(room_sale, stock=5, admission_rate=1)
    (alice,) = buyers(1)
    alice.join(sale.pk)
    draw_now(sale)
    now = redis_now_ms()
    made_up = passes.issue(
        sale_id=sale.pk, buyer_id=alice.user.pk, issued_ms=now, deadline_ms=now + 60_000
    )
    assert alice.buy(sale.pk, made_up).status_code == 202


def test_a_valid_pass_buys_once(room_sale, strategy):
    sale = live_room(room_sale, stock=5, admission_rate=1000)
    (alice,) = buyers(1)
    alice.join(sale.pk)
    draw_now(sale, ago_ms=1000)
    pass_ = pass_of(alice, sale.pk)
    r = alice.buy(sale.pk, pass_)
    assert r.status_code == 202
    assert Order.objects.get(token=r.json()["order"]).buyer == alice.user
    if strategy == "gate":
        # Spent with the reservation: the room counts it no more, the buyer had her turn.
        assert alice.user.pk not in admitted_in_redis(sale.pk)
        assert alice.me(sale.pk)["state"] == "passed"
    again = alice.buy(sale.pk, pass_)
    assert (again.status_code, again.json()["error"]) == (409, "already_bought")


def test_after_a_buy_the_next_place_comes_in_as_the_rate_allows(room_sale, settings):
    settings.BUY_STRATEGY = "gate"
    sale = live_room(room_sale, stock=5, admission_rate=1)
    trio = buyers(3)
    for b in trio:
        b.join(sale.pk)
    draw_now(sale, ago_ms=1000)  # one second at 1 a second: one place
    assert room(sale.pk).json()["admitted"] == 1
    (first,) = [b for b in trio if b.me(sale.pk)["state"] == "admitted"]
    assert first.buy(sale.pk, pass_of(first, sale.pk)).status_code == 202
    # The spent pass does not bring the next place in before its second.
    assert room(sale.pk).json()["admitted"] == 1
    draw = int(gate.redis().hget(store.keys(sale.pk)[0], "draw"))
    set_room(sale, draw=draw - 1000)
    assert room(sale.pk).json()["admitted"] == 2
    (second,) = [b for b in trio if b is not first and b.me(sale.pk)["state"] == "admitted"]
    assert second.me(sale.pk)["place"] == 2


def test_after_a_buy_the_next_place_comes_in_as_the_stock_allows(room_sale, settings):
    """Stock 2 and a margin of 1: three passes out at most. A buy takes an item and a pass, so
    it makes no room for a fourth (2 passes for 1 item is the margin already); sold out, the
    rest are told so."""
    settings.BUY_STRATEGY = "gate"
    settings.WAITING_ROOM_MARGIN = 0.1
    sale = live_room(room_sale, stock=2, admission_rate=1000)
    five = buyers(5)
    for b in five:
        b.join(sale.pk)
    draw_now(sale, ago_ms=5000)
    assert room(sale.pk).json()["admitted"] == 3
    lucky = [b for b in five if b.me(sale.pk)["state"] == "admitted"]
    passes = [pass_of(b, sale.pk) for b in lucky]
    assert lucky[0].buy(sale.pk, passes[0]).status_code == 202
    assert room(sale.pk).json()["admitted"] == 3
    assert lucky[1].buy(sale.pk, passes[1]).status_code == 202
    assert room(sale.pk).json()["state"] == "sold_out"
    r = lucky[2].buy(sale.pk, passes[2])
    assert (r.status_code, r.json()["error"]) == (409, "sold_out")
    # Told at once, the admitted one with an unspent pass too; those who bought had their turn.
    assert {b.me(sale.pk)["state"] for b in five if b not in lucky[:2]} == {"sold_out"}
    assert {b.me(sale.pk)["state"] for b in lucky[:2]} == {"passed"}


# --- the OpenAPI document -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def document() -> dict:
    return Client().get("/api/openapi.json").json()


@pytest.mark.parametrize(
    "path, method, refusals",
    [
        ("/api/sales/{pk}/room", "get", {404: ["not_found", "no_waiting_room"]}),
        (
            "/api/sales/{pk}/room",
            "post",
            {
                401: ["not_authenticated"],
                403: ["room_not_open", "csrf_failed"],
                404: ["not_found", "no_waiting_room"],
                429: ["rate_limited"],
            },
        ),
        (
            "/api/sales/{pk}/room/me",
            "get",
            {401: ["not_authenticated"], 404: ["not_found", "no_waiting_room"]},
        ),
        ("/api/sales/{pk}/buy", "post", {403: ["not_admitted", "not_started"]}),
    ],
)
def test_the_room_operations_document_their_refusals(document, path, method, refusals):
    responses = document["paths"][path][method]["responses"]
    for status, codes in refusals.items():
        for code in codes:
            assert f"`{code}`" in responses[str(status)]["description"], (status, code)
    if 429 in refusals:
        assert "Retry-After" in responses["429"]["headers"]
