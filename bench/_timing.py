"""Interleaved timing: each round runs one repeat of every variant, so drift hits all alike."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

_CALIBRATE_NS = 20_000_000  # time a calibration batch must reach before it is trusted


@dataclass
class Variant:
    """One thing to time: `call()` once per iteration.

    `max_iterations` caps a repeat (e.g. below a batch processor's export threshold).
    `settle` runs right after each timed loop and is timed separately, so a result carries
    both the caller's cost and the cost with the work the loop left behind (e.g. a flush
    of what it queued) amortised over it; it also leaves nothing queued to bleed into the
    next variant. `reset` runs untimed around calibration and warm-up.
    """

    name: str
    call: Callable[[], object]
    reset: Callable[[], object] | None = None
    settle: Callable[[], object] | None = None
    max_iterations: int | None = None
    iterations: int = 0
    caller_ns: list[float] = field(default_factory=list)
    settled_ns: list[float] = field(default_factory=list)

    @property
    def median_ns(self) -> float:
        return statistics.median(self.caller_ns)

    @property
    def median_settled_ns(self) -> float:
        return statistics.median(self.settled_ns)

    def summary(self) -> dict[str, object]:
        return {
            "iterations_per_repeat": self.iterations,
            "median_ns": round(self.median_ns, 1),
            "median_with_settle_ns": round(self.median_settled_ns, 1),
            "min_ns": round(min(self.caller_ns), 1),
            "max_ns": round(max(self.caller_ns), 1),
            "repeats_ns": [round(x, 1) for x in self.caller_ns],
            "repeats_with_settle_ns": [round(x, 1) for x in self.settled_ns],
        }


def _loop_ns(call: Callable[[], object], n: int) -> int:
    start = time.perf_counter_ns()
    for _ in range(n):
        call()
    return time.perf_counter_ns() - start


def calibrate(call: Callable[[], object], target_ns: float, minimum: int = 200) -> int:
    """Iterations that make one repeat last about `target_ns` (this also warms `call` up)."""
    n = 32
    while True:
        elapsed = _loop_ns(call, n)
        if elapsed >= _CALIBRATE_NS or n >= 1 << 20:
            break
        n *= 4
    return max(minimum, int(target_ns / (elapsed / n)))


def run_repeat(variant: Variant) -> None:
    """One timed repeat; the garbage collector is off while it runs (for every variant)."""
    call, n = variant.call, variant.iterations
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for _ in range(n):
            call()
        looped = time.perf_counter_ns()
        if variant.settle is not None:
            variant.settle()
        settled = time.perf_counter_ns()
    finally:
        gc.enable()
    variant.caller_ns.append((looped - start) / n)
    variant.settled_ns.append((settled - start) / n)


def measure(
    variants: Sequence[Variant], *, repeats: int, target_ns: float, warmup_ns: float
) -> None:
    """Calibrate and warm up every variant, then run `repeats` interleaved rounds."""
    for variant in variants:
        if variant.reset is not None:
            variant.reset()
        variant.iterations = calibrate(variant.call, target_ns)
        if variant.max_iterations is not None:
            variant.iterations = min(variant.iterations, variant.max_iterations)
        _loop_ns(variant.call, max(1, int(variant.iterations * warmup_ns / target_ns)))
        if variant.settle is not None:
            variant.settle()
        if variant.reset is not None:
            variant.reset()
    for _ in range(repeats):
        for variant in variants:
            run_repeat(variant)


def ratio(ours: Variant, base: Variant) -> dict[str, float]:
    """Median ours / median baseline, and the spread of the per-round ratios."""
    rounds = [a / b for a, b in zip(ours.caller_ns, base.caller_ns, strict=True)]
    return {
        "ratio": ours.median_ns / base.median_ns,
        "round_min": min(rounds),
        "round_max": max(rounds),
    }


def paced(call: Callable[[], object], rate_hz: float, duration_s: float) -> list[int]:
    """Call at a steady rate, sleeping between calls; the latency of each call, in ns.

    Models a service emitting events while doing other (GIL-releasing) work, so the SDK's
    background threads get to run and export during the window. Only the calls are timed;
    a call that falls behind schedule runs at once.
    """
    period = 1e9 / rate_hz
    latencies = [0] * max(1, int(rate_hz * duration_s))
    gc.collect()
    gc.disable()
    try:
        due = time.perf_counter_ns()
        for i in range(len(latencies)):
            wait = due - time.perf_counter_ns()
            if wait > 0:
                time.sleep(wait / 1e9)
            start = time.perf_counter_ns()
            call()
            latencies[i] = time.perf_counter_ns() - start
            due += period
    finally:
        gc.enable()
    return latencies


def distribution(latencies: Sequence[float]) -> dict[str, float]:
    ordered = sorted(latencies)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "n": len(ordered),
        "median_ns": statistics.median(ordered),
        "mean_ns": statistics.fmean(ordered),
        "p90_ns": pct(0.90),
        "p99_ns": pct(0.99),
        "max_ns": ordered[-1],
    }
