"""A small discrete-event simulation: generator processes on a nanosecond clock.

Each process runs in its own `contextvars` context, so the telemetry context a sync job
binds (tenant, integration, the job's span) stays with that job while others interleave.
"""

from __future__ import annotations

import contextvars
import heapq
import itertools
from collections.abc import Generator
from typing import Any

Process = Generator[float, None, Any]  # yields seconds to wait


class Simulation:
    def __init__(self, start_ns: int) -> None:
        self.now_ns = start_ns
        self._heap: list[tuple[int, int, Process, contextvars.Context]] = []
        self._order = itertools.count()

    def clock(self) -> int:
        """The simulated time, in nanoseconds since the epoch (a Telemetry clock)."""
        return self.now_ns

    def spawn(self, process: Process, delay_s: float = 0.0) -> None:
        """Start a process after `delay_s` simulated seconds, in a fresh context."""
        context = contextvars.Context()
        self._push(self.now_ns + int(delay_s * 1e9), process, context)

    def run_until(self, end_ns: int) -> int:
        """Advance to `end_ns`, running every step due by then; returns the steps run."""
        steps = 0
        heap = self._heap
        while heap and heap[0][0] <= end_ns:
            at, _, process, context = heapq.heappop(heap)
            self.now_ns = at
            steps += 1
            try:
                wait_s = context.run(process.send, None)
            except StopIteration:
                continue
            self._push(at + max(int(wait_s * 1e9), 1), process, context)
        self.now_ns = max(self.now_ns, end_ns)
        return steps

    def close(self) -> None:
        """Close every pending process inside its own context (a job in flight just stops)."""
        while self._heap:
            _, _, process, context = heapq.heappop(self._heap)
            context.run(process.close)

    def _push(self, at: int, process: Process, context: contextvars.Context) -> None:
        heapq.heappush(self._heap, (at, next(self._order), process, context))
