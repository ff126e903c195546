"""A demo workload that makes a realistic integrations platform's telemetry, fast or live.

    python -m integration_monitoring demo --hours 24 --seed 7 [--tenants 8]
        [--integrations 24] [--live]
"""

from __future__ import annotations

import datetime as dt
import math
import random
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator

from ..store import (
    BufferedWriter,
    SimulatedLoggerProvider,
    SimulatedMeterProvider,
    TelemetryStore,
    open_store,
)
from ..telemetry import Losses, Telemetry
from ._sim import Simulation
from ._workload import MINUTE, SECOND, WORKER_SERVICE, Counts, Timeline, Workload
from ._world import World, build_world

__all__ = ["DemoResult", "build_world", "run_demo", "telemetry_into"]

_EPOCH = dt.datetime(1970, 1, 1)

#: How often simulated telemetry is exported: once a simulated minute, as Azure does.
EXPORT_EVERY_S = 60.0
#: While backfilling, rows are written to the file every few seconds of wall time (each
#: append costs tens of milliseconds whatever its size), and whenever this many are held.
WRITE_EVERY_S = 2.0
WRITE_ROWS = 100_000


@dataclass
class DemoResult:
    started_ns: int
    ended_ns: int
    resumed: bool
    counts: Counts
    events: int
    seconds: float
    #: Log records the pipeline lost, by reason (all zero unless the store refused writes).
    dropped: dict[str, int]


class _Pipeline:
    """A Telemetry on the simulated clock, writing to the store when told to.

    Its providers build rows directly (the store's simulated providers write what the SDK's
    pipeline would, without its per-record objects); spans are the SDK's, with ids drawn
    from the seed so that one seed tells one story down to its operation ids.
    """

    def __init__(self, store: TelemetryStore, sim: Simulation, stdout: IO[str] | None,
                 seed: int) -> None:
        resource = Resource.create({"service.name": WORKER_SERVICE})
        self.losses = Losses()  # what the writer drops is counted, as in production
        self.writer = BufferedWriter(store, max_rows=WRITE_ROWS, losses=self.losses)
        self.logs, self.metrics = _providers(self.writer, resource, sim.clock)
        tracer_provider = TracerProvider(resource=resource, id_generator=_SeededIds(seed))
        self.telemetry = Telemetry(
            logger_provider=self.logs, meter_provider=self.metrics,
            tracer_provider=tracer_provider, stdout=stdout is not None, stream=stdout,
            clock=sim.clock, losses=self.losses)
        self.events = 0
        self.telemetry.add_listener(self._count)
        self._written = time.monotonic()
        self._writer_thread = ThreadPoolExecutor(1, thread_name_prefix="demo-writer")
        self._writing: Future[int] | None = None

    def _count(self, _: dict[str, Any]) -> None:
        self.events += 1

    def export(self, write: bool = True, wait: bool = True) -> None:
        """Export what was emitted; with `write`, also write the buffered rows to the store,
        on the writer thread unless `wait` (DuckDB works without the interpreter's lock, so
        the simulation goes on meanwhile; a write still running is not joined by another)."""
        self.logs.force_flush()
        self.metrics.force_flush()
        if not write:
            return
        self._written = time.monotonic()
        if wait:
            self._join()
            self.writer.flush()
        elif self._writing is None or self._writing.done():
            self._join()
            self._writing = self._writer_thread.submit(self.writer.flush)

    def write_due(self) -> bool:
        """Whether a backfill should write now: its rows reach the file every few seconds."""
        return time.monotonic() - self._written >= WRITE_EVERY_S

    def close(self) -> None:
        self.export()
        self._writer_thread.shutdown()
        self.metrics.shutdown()
        self.logs.shutdown()
        self.writer.close()

    def _join(self) -> None:
        if self._writing is not None:
            self._writing.result()  # the writer keeps what the store refused: nothing raises
            self._writing = None


def _providers(writer: BufferedWriter, resource: Resource,
               clock: Callable[[], int]) -> tuple[Any, Any]:
    """The log and meter providers the demo writes through."""
    return (SimulatedLoggerProvider(writer, resource),
            SimulatedMeterProvider(writer, resource, clock))


class _SeededIds(IdGenerator):
    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed * 104_729 + 3)

    def generate_span_id(self) -> int:
        return self._random.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self._random.getrandbits(128) or 1


def telemetry_into(store: TelemetryStore, clock: Callable[[], int],
                   service: str = WORKER_SERVICE) -> Telemetry:
    """A Telemetry on `clock` whose events and metrics reach `store` when it is flushed,
    through the simulated providers (for writing history at a chosen moment)."""
    writer = BufferedWriter(store, max_rows=WRITE_ROWS)
    resource = Resource.create({"service.name": service})
    logs, metrics = _providers(writer, resource, clock)
    telemetry = Telemetry(logger_provider=logs, meter_provider=metrics, stdout=False,
                          clock=clock)
    telemetry.add_flusher(writer.done)
    return telemetry


def last_demo_time(store: TelemetryStore) -> int | None:
    """When the demo last wrote, so a restart continues instead of backfilling again."""
    rows = store.kql(f'AppTraces | where AppRoleName == "{WORKER_SERVICE}" '
                     "| summarize latest = max(TimeGenerated)").rows
    last = rows[0][0] if rows else None
    if last is None:
        return None
    return (last.replace(tzinfo=None) - _EPOCH) // dt.timedelta(microseconds=1) * 1000


def run_demo(*, hours: float = 24.0, seed: int = 7, tenants: int = 8, integrations: int = 24,
             live: bool = False, store: TelemetryStore | None = None,
             stdout: IO[str] | None = sys.stdout, progress: bool = True,
             sample_queues_live: bool = True, stop: threading.Event | None = None,
             live_telemetry: Telemetry | None = None,
             on_live: Callable[[], None] | None = None,
             now_ns: int | None = None) -> DemoResult:
    """Backfill `hours` of history up to now, then (with `live`) keep running in real time.

    If the store already holds demo telemetry newer than the backfill window, the run
    continues from there instead of writing the history again. Live, the workload writes
    through `live_telemetry` when given (the host's own pipeline, which also feeds
    `/metrics`), else through its own.
    """
    started = time.monotonic()
    store = store or open_store()
    end_ns = now_ns or time.time_ns()
    start_ns = end_ns - int(hours * 3600 * SECOND)
    last = last_demo_time(store)
    resumed = last is not None and last > start_ns
    if resumed:
        start_ns = last
    world = build_world(seed, tenants, integrations)
    sim = Simulation(start_ns)
    pipeline = _Pipeline(store, sim, stdout, seed)
    timeline = Timeline.over(end_ns - int(hours * 3600 * SECOND), end_ns, world)
    workload = Workload(world, sim, pipeline.telemetry, seed, timeline, announce=not resumed)
    workload.start()
    running_live = threading.Event()
    sim.spawn(_exporter(pipeline, running_live.is_set), delay_s=EXPORT_EVERY_S)
    try:
        stop = stop or threading.Event()
        _backfill(sim, pipeline, start_ns, end_ns, progress, stop)
        if live:
            running_live.set()
            workload.sample_queues = sample_queues_live
            if live_telemetry is not None:
                workload.t = live_telemetry
            if on_live is not None:
                on_live()
            _live(sim, stop)
    finally:
        sim.close()
        pipeline.close()
    return DemoResult(start_ns, sim.now_ns, resumed, workload.counts, pipeline.events,
                      time.monotonic() - started, pipeline.losses.snapshot()["logs_dropped"])


def _exporter(pipeline: _Pipeline, live: Callable[[], bool]):
    """Exports once a simulated minute: written at once when live, else every few seconds."""
    while True:
        if live():
            pipeline.export()
        else:
            pipeline.export(write=pipeline.write_due(), wait=False)
        yield EXPORT_EVERY_S


def _backfill(sim: Simulation, pipeline: _Pipeline, start_ns: int, end_ns: int,
              progress: bool, stop: threading.Event) -> None:
    minutes = max(1, math.ceil((end_ns - start_ns) / MINUTE))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=minutes, unit="min", desc="backfill", file=sys.stderr, leave=False,
                   dynamic_ncols=True)
    for minute in range(1, minutes + 1):
        if stop.is_set():
            break
        sim.run_until(min(start_ns + minute * MINUTE, end_ns))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(events=pipeline.events, refresh=False)
    pipeline.export()
    if bar is not None:
        bar.close()


def _live(sim: Simulation, stop: threading.Event) -> None:
    while not stop.wait(0.5):
        sim.run_until(time.time_ns())


def world_summary(world: World) -> str:
    quirks = {q: [i.integration_id for i in world.with_quirk(q)] for q in sorted(
        {q for i in world.integrations for q in i.quirks})}
    paused = [i.integration_id for i in world.integrations if i.paused]
    return f"{len(world.tenants)} tenants, {len(world.integrations)} integrations; " \
           f"paused {paused}; {quirks}"
