"""Test helpers for adapter authors: capture what your code emits and assert on it.

    from integration_monitoring.testing import capture_telemetry

    def test_contact_sync_counts_created_records():
        with capture_telemetry() as captured:
            run_contact_sync()
        captured.assert_event("sync.completed", tenantId="tenant-123", recordCount=12)
        assert captured.metric("sync_records_created_total", entity="contact") == 12
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from .telemetry import Telemetry, use

_TOP_LEVEL = ("timestamp", "level", "service", "operation", "tenantId", "integrationId")


class Captured:
    """Events and metrics emitted inside `capture_telemetry()`."""

    def __init__(self, telemetry: Telemetry, reader: InMemoryMetricReader,
                 exporter: InMemoryLogRecordExporter) -> None:
        self.telemetry = telemetry
        self.events: list[dict[str, Any]] = []
        self._reader = reader
        self._exporter = exporter

    # -- events ---------------------------------------------------------------------------

    def find(self, operation: str | None = None, level: str | None = None,
             **fields: Any) -> list[dict[str, Any]]:
        """Events matching an operation, a level and fields (top-level or metadata keys)."""
        return [e for e in self.events
                if (operation is None or e["operation"] == operation)
                and (level is None or e["level"] == level)
                and all(_field(e, key) == value for key, value in fields.items())]

    def assert_event(self, operation: str, level: str | None = None,
                     **fields: Any) -> dict[str, Any]:
        """The first matching event; fails listing what was emitted when there is none."""
        found = self.find(operation, level, **fields)
        if not found:
            seen = [(e["level"], e["operation"]) for e in self.events]
            raise AssertionError(
                f"no event {operation!r} (level={level}, {fields}) among {seen}")
        return found[0]

    @property
    def operations(self) -> list[str]:
        return [e["operation"] for e in self.events]

    @property
    def log_records(self) -> list[Any]:
        """The OpenTelemetry log records, as an exporter receives them."""
        return [item.log_record for item in self._exporter.get_finished_logs()]

    # -- metrics --------------------------------------------------------------------------

    def series(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """Every series of a metric: (labels, point)."""
        data = self._reader.get_metrics_data()
        found = []
        if data is None:
            return found
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name == name:
                        found.extend((dict(p.attributes or {}), p)
                                     for p in metric.data.data_points)
        return found

    def metric(self, name: str, **labels: str) -> float:
        """A counter's total, a gauge's value, or a histogram's sum, over matching series."""
        total = 0.0
        for _attributes, point in self._matching(name, labels):
            total += point.sum if isinstance(point, HistogramDataPoint) else point.value
        return total

    def histogram_count(self, name: str, **labels: str) -> int:
        """How many measurements a histogram recorded over matching series."""
        return sum(int(point.count) for _, point in self._matching(name, labels))

    def _matching(self, name: str, labels: dict[str, str]) -> list[tuple[dict[str, Any], Any]]:
        return [(a, p) for a, p in self.series(name)
                if all(a.get(k) == v for k, v in labels.items())]


def _field(event: dict[str, Any], key: str) -> Any:
    if key in _TOP_LEVEL:
        return event[key]
    return event["metadata"].get(key)


@contextmanager
def capture_telemetry(*, cardinality_limit: int = 2000,
                      stdout: bool = False) -> Iterator[Captured]:
    """Route everything emitted in the block to memory, isolated from global configuration."""
    reader = InMemoryMetricReader()
    exporter = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[reader])
    telemetry = Telemetry(logger_provider=logger_provider, meter_provider=meter_provider,
                          tracer_provider=TracerProvider(), stdout=stdout,
                          cardinality_limit=cardinality_limit)
    captured = Captured(telemetry, reader, exporter)
    telemetry.add_listener(captured.events.append)
    previous = use(telemetry)
    try:
        yield captured
    finally:
        use(previous)
        logger_provider.shutdown()
        meter_provider.shutdown()
