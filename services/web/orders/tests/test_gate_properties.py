"""The gate's Lua scripts under generated sequences of calls (hypothesis), on the real Redis.

Whatever the order of reservations, releases (twice, with or without forgetting the buyer) and
confirmations, no item is created or lost: stock + reserved + sold == total, nothing is negative,
a buyer holds at most one reservation and never more than the per-buyer limit in all.
"""

import itertools
import threading
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from orders import gate
from sales import services as sale_services

pytestmark = pytest.mark.django_db

BUYERS = st.integers(min_value=1, max_value=5)  # few, so that buyers meet again
STOCKS = st.integers(min_value=0, max_value=8)
LIMITS = st.integers(min_value=1, max_value=3)


def redis_state(sale_id: int) -> tuple[int, dict[int, int], dict[str, tuple[int, int]]]:
    """(stock, buyer -> quantity, token -> (buyer, quantity)) as the scripts left them."""
    conn = gate.redis()
    sale_key, buyers_key, _ = gate.keys(sale_id)
    stock = int(conn.hget(sale_key, "stock"))
    buyers = {int(b): int(q) for b, q in conn.hgetall(buyers_key).items()}
    resv = {t: (b, q) for t, (b, q, _at) in gate.reservations(sale_id=sale_id).items()}
    return stock, buyers, resv


def check_conservation(sale_id: int, total: int, limit: int, sold: dict[int, int]) -> None:
    """The invariants that hold at any instant, whatever ran before."""
    stock, _, resv = redis_state(sale_id)
    assert stock >= 0
    assert all(q >= 1 for _, q in resv.values())
    assert stock + sum(q for _, q in resv.values()) + sum(sold.values()) == total
    per_buyer = Counter(b for b, _ in resv.values())
    assert max(per_buyer.values(), default=0) <= 1
    held = Counter(sold)
    for b, q in resv.values():
        held[b] += q
    assert max(held.values(), default=0) <= limit


class GateMachine(RuleBasedStateMachine):
    """Each rule calls the real script and a plain-Python model of it; they must agree."""

    reserved = Bundle("reserved")  # tokens holding a reservation
    spent = Bundle("spent")  # tokens released or confirmed

    def __init__(self):
        super().__init__()
        self.tokens = itertools.count()

    @initialize(stock=STOCKS, limit=LIMITS)
    def open_sale(self, stock, limit):
        self.sale = sale_services.sale_create(name="Kettle", stock=stock, per_buyer_limit=limit)
        assert gate.load(self.sale)
        self.total, self.limit, self.stock = stock, limit, stock
        self.buyers: dict[int, int] = {}
        self.resv: dict[str, tuple[int, int]] = {}
        self.sold: dict[int, int] = {}

    def expected(self, buyer: int, quantity: int) -> gate.Reservation:
        """What RESERVE promises, in its order of checks."""
        if self.stock <= 0:
            return gate.Reservation("sold_out", 0)
        if buyer in self.buyers:
            return gate.Reservation("already_bought", -1)
        if quantity > self.limit:
            return gate.Reservation("over_limit", -1)
        if self.stock < quantity:
            return gate.Reservation("sold_out", self.stock)
        return gate.Reservation("ok", self.stock - quantity)

    def reserve(self, buyer: int, quantity: int) -> str | None:
        token = f"t-{next(self.tokens)}"
        expected = self.expected(buyer, quantity)
        got = gate.reserve(sale_id=self.sale.pk, buyer_id=buyer, token=token, quantity=quantity)
        assert got == expected
        if got.outcome != "ok":
            return None
        self.stock -= quantity
        self.buyers[buyer] = quantity
        self.resv[token] = (buyer, quantity)
        return token

    @rule(target=reserved, buyer=BUYERS, quantity=st.integers(min_value=1, max_value=4))
    def reserve_one(self, buyer, quantity):
        token = self.reserve(buyer, quantity)
        return multiple() if token is None else token  # a refusal adds no token

    @rule(target=spent, token=consumes(reserved), forget_buyer=st.booleans())
    def release(self, token, forget_buyer):
        buyer, quantity = self.resv.pop(token)
        assert (
            gate.release(sale_id=self.sale.pk, token=token, forget_buyer=forget_buyer) == quantity
        )
        self.stock += quantity
        if forget_buyer:
            del self.buyers[buyer]
        return token

    @rule(target=spent, token=consumes(reserved))
    def confirm(self, token):
        # The order task's COMMIT went through: the reservation is dropped, its stock stays sold.
        buyer, quantity = self.resv.pop(token)
        gate.drop(sale_id=self.sale.pk, token=token)
        self.sold[buyer] = self.sold.get(buyer, 0) + quantity
        return token

    @rule(token=spent, forget_buyer=st.booleans())
    def release_again(self, token, forget_buyer):
        # A retried task or a second reconciler run: keyed by token, so nothing moves.
        assert gate.release(sale_id=self.sale.pk, token=token, forget_buyer=forget_buyer) == 0

    @rule(forget_buyer=st.booleans())
    def release_unknown_token(self, forget_buyer):
        assert gate.release(sale_id=self.sale.pk, token="never", forget_buyer=forget_buyer) == 0

    @invariant()
    def redis_matches_the_model(self):
        if not hasattr(self, "sale"):
            return
        assert redis_state(self.sale.pk) == (self.stock, self.buyers, self.resv)
        check_conservation(self.sale.pk, self.total, self.limit, self.sold)

    def teardown(self):
        if hasattr(self, "sale"):
            gate.forget(self.sale.pk)


def test_any_sequence_of_gate_calls_keeps_every_item_accounted_for():
    run_state_machine_as_test(GateMachine)


THREADS = 4
OPS = st.lists(
    st.tuples(
        st.sampled_from(["reserve", "release", "release-forget", "confirm"]),
        BUYERS,
        st.integers(min_value=1, max_value=3),
    ),
    min_size=1,
    max_size=12,
)


@given(STOCKS, LIMITS, st.lists(OPS, min_size=THREADS, max_size=THREADS))
def test_threads_interleaving_reserve_release_and_confirm_keep_the_count(stock, limit, plans):
    sale = sale_services.sale_create(name="Kettle", stock=stock, per_buyer_limit=limit)
    assert gate.load(sale)
    start = threading.Barrier(THREADS)
    sold_by_thread: list[dict[int, int]] = [{} for _ in plans]
    errors = []

    def run(n, plan):
        # Each thread settles only its own reservations, as a web process and its order do.
        mine: list[tuple[str, int, int]] = []
        sold = sold_by_thread[n]
        start.wait()
        try:
            for i, (op, buyer, quantity) in enumerate(plan):
                if op == "reserve":
                    token = f"t-{n}-{i}"
                    got = gate.reserve(
                        sale_id=sale.pk, buyer_id=buyer, token=token, quantity=quantity
                    )
                    if got.outcome == "ok":
                        mine.append((token, buyer, quantity))
                elif mine:
                    token, buyer, quantity = mine.pop(0)
                    if op == "confirm":
                        gate.drop(sale_id=sale.pk, token=token)
                        sold[buyer] = sold.get(buyer, 0) + quantity
                    else:
                        forget = op == "release-forget"
                        released = gate.release(sale_id=sale.pk, token=token, forget_buyer=forget)
                        assert released == quantity
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n, plan)) for n, plan in enumerate(plans)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    sold = Counter()
    for part in sold_by_thread:
        sold.update(part)
    try:
        check_conservation(sale.pk, stock, limit, sold)
    finally:
        gate.forget(sale.pk)
