"""The login limiter: fixed-window counters in Redis (the codes cache)."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from accounts.ratelimit import Limit, RateLimited


def test_the_limit_th_event_passes_and_the_next_is_refused_until_the_window_ends():
    limit = Limit("test", 3, 3600)
    assert [limit.hit("a") for _ in range(3)] == [1, 2, 3]

    with pytest.raises(RateLimited) as refused:
        limit.hit("a")

    window_left = 3600 - int(time.time()) % 3600
    assert 1 <= refused.value.retry_after <= window_left
    limit.hit("b")  # another identity has its own budget


def test_check_refuses_a_spent_budget_without_counting():
    limit = Limit("test-check", 2, 3600)
    limit.check("a")
    assert limit.count("a") == 0
    limit.hit("a")
    limit.hit("a")

    with pytest.raises(RateLimited):
        limit.check("a")
    assert limit.count("a") == 2


def test_parallel_hits_are_counted_exactly_once_each():
    limit = Limit("test-parallel", 20, 3600)

    def hit(_):
        try:
            limit.hit("a")
            return True
        except RateLimited:
            return False

    with ThreadPoolExecutor(16) as pool:
        passed = list(pool.map(hit, range(50)))

    assert passed.count(True) == 20
    assert limit.count("a") == 50
