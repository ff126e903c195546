"""Identical queries within a short TTL share one backend call; concurrent ones wait for it.

Log Analytics allows 5 concurrent queries and 200 per 30 s per identity: cost must not grow
with the number of people looking at the dashboard.

With `stale_s`, an answer past its TTL is still served, at once, for that long while one
caller's refresh runs in the background (and so is the answer to an earlier form of the
question, such as the same window a minute before, while the new one is first asked):
viewers never wait for a question that was answered before, and when the engine's budget is
short the answers only grow older (Log Analytics shows an event minutes after it happened
anyway).

Failures are never kept: the next caller asks again. An answer that says it is incomplete
(a true `partial` attribute, as `Answer` has) is kept only `partial_ttl_s`: enough to spare
the engine a burst of identical requests, short enough that the complete answer is served
as soon as the engine gives it again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterable
from typing import Any


class _Flight:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


class SharedQueries:
    """A TTL cache with single flight: one computation per key per TTL."""

    def __init__(self, ttl_s: float = 15.0, max_entries: int = 512,
                 clock: Callable[[], float] = time.monotonic,
                 partial_ttl_s: float = 2.0, stale_s: float = 0.0) -> None:
        self.ttl_s = ttl_s
        self.stale_s = stale_s
        self.partial_ttl_s = min(partial_ttl_s, ttl_s)
        self.max_entries = max_entries
        self.clock = clock
        self.calls = 0  # backend computations, for tests and benchmarks
        self.waiting = 0  # callers waiting right now for another's computation
        self._entries: dict[Hashable, tuple[float, Any]] = {}  # key: (expires at, value)
        self._flights: dict[Hashable, _Flight] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], Any],
            earlier: Iterable[Hashable] = ()) -> Any:
        """The value for `key`. Without one, the first of `earlier` (keys of older forms
        of the same question, newest first) still within its stale time is served at once
        while `key` is computed in the background."""
        with self._lock:
            entry = self._entries.get(key)
            now = self.clock()
            if entry is not None and now < entry[0]:
                return entry[1]
            if entry is None:
                entry = next((e for e in map(self._entries.get, earlier)
                              if e is not None and now < e[0] + self.stale_s), None)
            if entry is not None and now < entry[0] + self.stale_s:
                if key not in self._flights:  # one refresh, in the background
                    flight = self._flights[key] = _Flight()
                    threading.Thread(target=self._fly, args=(key, flight, compute),
                                     daemon=True, name="cache-refresh").start()
                return entry[1]
            flight = self._flights.get(key)
            leader = flight is None
            if leader:
                flight = self._flights[key] = _Flight()
            else:
                self.waiting += 1
        if not leader:
            try:
                flight.done.wait()
            finally:
                with self._lock:
                    self.waiting -= 1
        else:
            self._fly(key, flight, compute)
        if flight.error is not None:
            raise flight.error
        return flight.value

    def _fly(self, key: Hashable, flight: _Flight, compute: Callable[[], Any]) -> None:
        """Compute for everyone waiting on `flight`: its value is kept, its error is shared
        with the waiters but never kept (a stale answer stays until it is too old)."""
        try:
            self.calls += 1
            flight.value = compute()
        except BaseException as error:
            flight.error = error
        finally:
            with self._lock:
                self._flights.pop(key, None)
                if flight.error is None:
                    self._store(key, flight.value)
            flight.done.set()

    def forget(self, predicate: Callable[[Hashable], bool]) -> None:
        """Drop cached answers whose key matches (after a write that changes them)."""
        with self._lock:
            for key in [k for k in self._entries if predicate(k)]:
                del self._entries[key]

    def _store(self, key: Hashable, value: Any) -> None:
        now = self.clock()
        ttl = self.partial_ttl_s if getattr(value, "partial", None) else self.ttl_s
        if ttl <= 0:
            self._entries.pop(key, None)
            return
        if len(self._entries) >= self.max_entries:
            for stale in [k for k, (until, _) in self._entries.items()
                          if now >= until + self.stale_s]:
                del self._entries[stale]
            while len(self._entries) >= self.max_entries:
                del self._entries[next(iter(self._entries))]
        self._entries.pop(key, None)  # re-inserted last: the newest is evicted last
        self._entries[key] = (now + ttl, value)
