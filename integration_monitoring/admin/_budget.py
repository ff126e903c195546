"""The app's share of Log Analytics' query rate: at most so many queries in any 30 seconds.

Azure Monitor lets one identity send 200 queries per 30 seconds; every query of the app runs
as its one managed identity, so every viewer's questions come out of that allowance. The
budget keeps below it with room to spare (120 by default, so that the queries the service
counts in any 30 s, which arrive a little bunched, stay under 150; `LOG_ANALYTICS_QUERIES_PER_30S`,
divided between instances when the app scales out), and a query that finds it spent waits
for a place instead of earning a 429 for everyone. A wait longer than `max_wait_s` is not
made: the caller hears when to come back, as from the service. The cache's stale answers
(`_cache.py`) mean viewers rarely wait at all.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class BudgetSpent(Exception):
    """No place for a query within the longest wait; try again after `retry_after` s."""

    def __init__(self, reason: str, retry_after: int) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class QueryBudget:
    def __init__(self, per_window: int = 120, window_s: float = 30.0, max_wait_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if per_window < 1:
            raise ValueError("a query budget needs at least one query per window")
        self.per_window = per_window
        self.window_s = window_s
        self.max_wait_s = max_wait_s
        self.clock = clock
        self._sent: deque[float] = deque()
        self._lock = threading.Condition()

    def take(self) -> None:
        """A place for one query now, after waiting for one if need be."""
        deadline = self.clock() + self.max_wait_s
        with self._lock:
            while True:
                now = self.clock()
                while self._sent and now - self._sent[0] >= self.window_s:
                    self._sent.popleft()
                if len(self._sent) < self.per_window:
                    self._sent.append(now)
                    return
                free_at = self._sent[0] + self.window_s
                if free_at > deadline:
                    raise BudgetSpent(
                        f"the app's Log Analytics budget of {self.per_window} queries per "
                        f"{self.window_s:g} s is spent", max(1, round(free_at - now)))
                self._lock.wait(free_at - now)

    def spent(self) -> int:
        """Queries sent within the last window."""
        with self._lock:
            now = self.clock()
            return sum(1 for t in self._sent if now - t < self.window_s)
