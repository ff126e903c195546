"""Identical queries within the TTL share one computation; concurrent ones wait for it."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from integration_monitoring.admin import SharedQueries


def until(condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    """Wait for `condition`, however busy the machine; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def test_hundred_concurrent_callers_cause_one_computation():
    """100 callers asking the same question at once wait for a single computation."""
    cache = SharedQueries(ttl_s=15)

    def slow() -> str:
        until(lambda: cache.waiting == 99)  # every other caller is waiting for this one
        return "answer"

    with ThreadPoolExecutor(max_workers=100) as pool:
        answers = list(pool.map(lambda _: cache.get("stats", slow), range(100)))
    assert answers == ["answer"] * 100
    assert cache.calls == 1


def test_entries_expire_after_the_ttl_and_keys_are_separate():
    """After the TTL, or for another key, the computation runs again."""
    now = [0.0]
    cache = SharedQueries(ttl_s=10, clock=lambda: now[0])
    assert cache.get("a", lambda: 1) == 1
    assert cache.get("a", lambda: 2) == 1
    assert cache.get("b", lambda: 3) == 3
    now[0] = 10.5
    assert cache.get("a", lambda: 4) == 4
    assert cache.calls == 3


def test_errors_reach_every_waiter_and_are_not_cached():
    """A failed computation fails its waiters too; the next call tries again."""
    cache = SharedQueries(ttl_s=10)

    def boom() -> None:
        until(lambda: cache.waiting == 9)
        raise RuntimeError("backend down")

    with ThreadPoolExecutor(max_workers=10) as pool:
        futures = [pool.submit(cache.get, "k", boom) for _ in range(10)]
        for future in futures:
            with pytest.raises(RuntimeError):
                future.result()
    assert cache.get("k", lambda: "ok") == "ok"
    assert (cache.calls, cache.waiting) == (2, 0)


def test_the_cache_stays_bounded():
    """Old entries make room: the cache never holds more than its maximum."""
    cache = SharedQueries(ttl_s=60, max_entries=5)
    for key in range(20):
        cache.get(key, lambda key=key: key)
    assert len(cache._entries) <= 5
