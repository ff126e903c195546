"""Fair use of the query engine: no caller can take it from the others.

- Each caller may hold a few live streams open; one more is a 429.
- Each caller's uncached questions run at most `share` at a time, and at most `waiting` more
  wait behind them; beyond that the request is a 429. A caller flooding the API therefore
  holds `share` of the engine, never all of it.
- The whole app runs at most `at_once` questions on the engine (Log Analytics runs 5 at once
  per identity and queues the rest; the local engine has the machine's cores); a question
  that cannot start within `queue_s` is a 503.

Answers shared from the cache cost nothing and are not counted. A caller is a signed-in
principal (Entra ID). A shared token, a function key or the open local server does not tell
one person from another (and behind the Functions front end, nor does the address), so
their callers share the app's bound only: whoever holds the key is an admin anyway.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterator

from ._access import Principal
from ._backends import BackendUnavailable

#: Ways in that tell callers apart; "" (every other way) has no allowance of its own.
_SIGNED_IN = frozenset({"entra"})


def caller_key(principal: Principal) -> str:
    """Whose allowance a request uses: "" for a shared credential."""
    return f"{principal.via}:{principal.name}" if principal.via in _SIGNED_IN else ""


class Busy(Exception):
    """The caller is over its share: answer 429 with `retry_after`."""

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Fairness:
    def __init__(self, *, streams: int = 4, share: int = 2, waiting: int = 24,
                 at_once: int = 4, queue_s: float = 60.0) -> None:
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
        if not caller:
            yield
            return
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
        if not caller:
            with self._engine_slot():
                yield
            return
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
                with self._engine_slot():
                    yield
            finally:
                share.release()
        finally:
            with self._lock:
                self._asking[caller] -= 1
                if not self._asking[caller]:
                    del self._asking[caller]
                    self._shares.pop(caller, None)

    @contextlib.contextmanager
    def _engine_slot(self) -> Iterator[None]:
        if not self._engine.acquire(timeout=self.queue_s):
            raise BackendUnavailable("the query engine is busy with other questions", 5)
        try:
            yield
        finally:
            self._engine.release()

    def open_streams(self, caller: str) -> int:
        with self._lock:
            return self._open[caller]
