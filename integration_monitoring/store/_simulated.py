"""Log and meter providers for a simulation: each record and measurement straight to rows.

A simulation emits hours of telemetry in seconds. Through the SDK, each log record becomes
an object whose attributes are cleaned one by one and queued, and each measurement has its
attributes copied and hashed, before the store's exporters build the very same rows from
them; that was most of the demo's time. These providers build a record's `AppTraces` row
when it is emitted and add each measurement into its series at once, and write what the
SDK pipeline with `StoreLogExporter` and `StoreMetricExporter` would write, row for row
(the demo's tests run both and compare): the same attribute limit, series keyed on their
labels whatever their order, counters and histograms as deltas per flush, a synchronous
gauge's last value at every flush, non-finite and (for counters and histograms) negative
values ignored. Metric rows are stamped with the simulated clock when flushed.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk._logs import LogRecordLimits
from opentelemetry.sdk.resources import Resource

from ._exporters import metric_row, role, trace_row
from ._store import BufferedWriter

_get_current_span = trace.get_current_span


class SimulatedLoggerProvider:
    """Log records -> `AppTraces` rows, held until `force_flush` hands them to the writer."""

    def __init__(self, writer: BufferedWriter, resource: Resource) -> None:
        self._writer = writer
        self._role = role(resource)
        self._max_attributes = LogRecordLimits().max_attributes
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._loggers: dict[str, _Logger] = {}

    def get_logger(self, name: str, *args: Any, **kwargs: Any) -> _Logger:
        logger = self._loggers.get(name)
        if logger is None:
            logger = self._loggers[name] = _Logger(name, self)
        return logger

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        with self._lock:
            rows, self._rows = self._rows, []
        self._writer.append("AppTraces", rows)
        return True

    def shutdown(self) -> None:
        self.force_flush()

    def _add(self, row: dict[str, Any]) -> None:
        with self._lock:
            self._rows.append(row)


class _Logger:
    def __init__(self, name: str, provider: SimulatedLoggerProvider) -> None:
        self._name = name
        self._provider = provider

    def emit(self, record: Any = None, *, timestamp: int | None = None,
             observed_timestamp: int | None = None, context: Any = None,
             severity_number: Any = None, severity_text: str | None = None, body: Any = None,
             attributes: Any = None, **kwargs: Any) -> None:
        provider = self._provider
        if attributes and len(attributes) > provider._max_attributes:
            # the SDK keeps the most recently set attributes within its limit
            attributes = dict(list(attributes.items())[-provider._max_attributes:])
        span = _get_current_span(context).get_span_context()
        provider._add(trace_row(timestamp or observed_timestamp, severity_number, body,
                                attributes, self._name, span.trace_id, span.span_id,
                                provider._role))


class SimulatedMeterProvider:
    """Measurements added into their series; `force_flush` writes one `AppMetrics` row per
    series that has a value, stamped with `clock`."""

    def __init__(self, writer: BufferedWriter, resource: Resource,
                 clock: Callable[[], int]) -> None:
        self._writer = writer
        self._role = role(resource)
        self._clock = clock
        self._instruments: list[_Instrument] = []
        self._lock = threading.Lock()

    def get_meter(self, name: str, *args: Any, **kwargs: Any) -> _Meter:
        return _Meter(self)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        now = self._clock()
        rows: list[dict[str, Any]] = []
        with self._lock:
            for instrument in self._instruments:
                instrument.collect(now, self._role, rows)
        self._writer.append("AppMetrics", rows)
        return True

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        """Nothing is exported: like the SDK's reader with no export timer, only a flush
        writes."""

    def _register(self, instrument: _Instrument) -> _Instrument:
        with self._lock:
            self._instruments.append(instrument)
        return instrument


class _Meter:
    def __init__(self, provider: SimulatedMeterProvider) -> None:
        self._provider = provider

    def create_counter(self, name: str, *args: Any, **kwargs: Any) -> _Instrument:
        return self._provider._register(_Instrument(name, self._provider._lock, "delta"))

    def create_histogram(self, name: str, *args: Any, **kwargs: Any) -> _Instrument:
        return self._provider._register(_Instrument(name, self._provider._lock, "histogram"))

    def create_gauge(self, name: str, *args: Any, **kwargs: Any) -> _Instrument:
        return self._provider._register(_Instrument(name, self._provider._lock, "gauge"))


class _Series:
    __slots__ = ("attributes", "count", "high", "low", "total")

    def __init__(self, attributes: dict[str, Any]) -> None:
        self.attributes = attributes
        self.count = 0
        self.total: float = 0
        self.low = math.inf
        self.high = -math.inf


class _Instrument:
    """A counter (`delta`), histogram or gauge: its series by label set."""

    def __init__(self, name: str, lock: threading.Lock, kind: str) -> None:
        self.name = name
        self.kind = kind
        self._lock = lock
        #: a label set as it was passed -> its series (a fast lookup for the usual call)
        self._as_passed: dict[tuple[Any, ...], _Series] = {}
        #: a label set whatever its order -> its series, as the SDK keys them
        self._series: dict[tuple[Any, ...], _Series] = {}

    def add(self, amount: float, attributes: Any = None, context: Any = None) -> None:
        if not math.isfinite(amount) or (amount < 0 and self.kind != "gauge"):
            return
        labels = attributes or {}
        passed = tuple(labels.items())
        with self._lock:
            series = self._as_passed.get(passed)
            if series is None:
                series = self._find(labels, passed)
            if self.kind == "gauge":
                series.total = amount
                series.count = 1
                return
            series.count += 1
            series.total += amount
            if amount < series.low:
                series.low = amount
            if amount > series.high:
                series.high = amount

    record = add
    set = add

    def _find(self, labels: Any, passed: tuple[Any, ...]) -> _Series:
        key = tuple(sorted((str(k), type(v).__name__, v) for k, v in labels.items()))
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(dict(labels))
        self._as_passed[passed] = series
        return series

    def collect(self, now: int, role_of_resource: tuple[str, str, str],
                rows: list[dict[str, Any]]) -> None:
        """Append a row per series with a value; counters and histograms start again."""
        for series in self._series.values():
            if not series.count:
                continue
            if self.kind == "gauge":
                rows.append(metric_row(self.name, now, series.total, 1, series.total,
                                       series.total, series.attributes, role_of_resource))
                continue  # a synchronous gauge keeps its last value
            if self.kind == "delta":
                rows.append(metric_row(self.name, now, series.total, 1, series.total,
                                       series.total, series.attributes, role_of_resource))
            else:
                rows.append(metric_row(self.name, now, series.total, series.count, series.low,
                                       series.high, series.attributes, role_of_resource))
            series.count = 0
            series.total = 0
            series.low = math.inf
            series.high = -math.inf
