"""An endpoint's answer as the JSON it was sent as, kept for a few seconds per request.

Identical requests within 5 s get the same answer; building it again
from the cached questions and serialising tens of kilobytes would cost a busy server most
of its time per request. Incomplete answers are not kept, and neither is anything of the
alerts, which an acknowledgement changes at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable


class RenderedAnswers:
    def __init__(self, ttl_s: float = 5.0, max_entries: int = 256,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        self.builds = 0  # answers built rather than found, for tests and benchmarks
        self._entries: dict[Hashable, tuple[float, bytes]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, build: Callable[[], tuple[bytes, bool]]) -> bytes:
        """The kept body, or `build()`'s (body, whether it may be kept)."""
        now = self.clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and now < entry[0]:
                return entry[1]
        self.builds += 1
        body, keep = build()
        if keep:
            with self._lock:
                if len(self._entries) >= self.max_entries:
                    for old in [k for k, (until, _) in self._entries.items() if now >= until]:
                        del self._entries[old]
                    while len(self._entries) >= self.max_entries:
                        del self._entries[next(iter(self._entries))]
                self._entries[key] = (now + self.ttl_s, body)
        return body
