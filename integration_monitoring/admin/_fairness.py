"""Fair use of the query engine: no caller can take it from the others.

- Each caller may hold a few live streams open; one more is a 429.
- Each caller's uncached questions run at most `share` at a time, and at most `waiting` more
  wait behind them; beyond that the request is a 429. A caller flooding the API therefore
  holds `share` of the engine, never all of it.
- The whole app runs at most `at_once` questions on the engine (Log Analytics runs 5 at once
  per identity and queues the rest; the local engine has the machine's cores); a question
  that cannot start within `queue_s` is a 503.

Answers shared from the cache cost nothing and are not counted. A caller is a signed-in
principal; with a shared token or no sign-in at all it is the client's address as well, so
that colleagues sharing one token do not share one allowance.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterator

from ._access import Principal
from ._backends import BackendUnavailable

#: Ways in where every caller is the same principal: tell them apart by address too.
_SHARED_PRINCIPALS = frozenset({"open", "token", "function-key"})


def caller_key(principal: Principal, client: str | None) -> str:
    """Whose allowance a request uses."""
    key = f"{principal.via}:{principal.name}"
    return f"{key}@{client or '?'}" if principal.via in _SHARED_PRINCIPALS else key


class Busy(Exception):
    """The caller is over its share: answer 429 with `retry_after`."""

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Fairness:
    def __init__(self, *, streams: int = 4, share: int = 2, waiting: int = 24,
                 at_once: int = 4, queue_s: float = 30.0) -> None:
        self.streams = streams
        self.share = share
        self.waiting = waiting
        self.queue_s = queue_s
        self._open: Counter[str] = Counter()
        self._asking: Counter[str] = Counter()  # running and waiting, per caller
        self._shares: dict[str, threading.BoundedSemaphore] = {}
        self._engine = threading.BoundedSemaphore(at_once)
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def stream(self, caller: str) -> Iterator[None]:
        """Hold one of the caller's live streams for the block."""
        with self._lock:
            if self._open[caller] >= self.streams:
                raise Busy(f"at most {self.streams} live streams per caller are open at once; "
                           "close one (another tab) or try again later", 30)
            self._open[caller] += 1
        try:
            yield
        finally:
            with self._lock:
                self._open[caller] -= 1
                if not self._open[caller]:
                    del self._open[caller]

    @contextlib.contextmanager
    def question(self, caller: str) -> Iterator[None]:
        """Run one uncached question in the block, within the caller's share and the app's."""
        with self._lock:
            if self._asking[caller] >= self.share + self.waiting:
                raise Busy(f"too many questions at once from this caller (at most "
                           f"{self.share + self.waiting} in flight); try again shortly")
            self._asking[caller] += 1
            share = self._shares.setdefault(caller, threading.BoundedSemaphore(self.share))
        try:
            if not share.acquire(timeout=self.queue_s):
                raise BackendUnavailable("this caller's earlier questions are still running", 5)
            try:
                if not self._engine.acquire(timeout=self.queue_s):
                    raise BackendUnavailable("the query engine is busy with other questions", 5)
                try:
                    yield
                finally:
                    self._engine.release()
            finally:
                share.release()
        finally:
            with self._lock:
                self._asking[caller] -= 1
                if not self._asking[caller]:
                    del self._asking[caller]
                    self._shares.pop(caller, None)

    def open_streams(self, caller: str) -> int:
        with self._lock:
            return self._open[caller]
