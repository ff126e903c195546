"""Export pipelines that count what they lose.

The SDK's batch processor and periodic metric reader drop records silently (a full queue,
a failed export, records left at shutdown); these wrappers count each loss in `Losses`, and
so in `Telemetry.stats()`. Both the Azure and the local pipeline are built from them.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk._logs import LogRecordProcessor
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExporter,
    LogRecordExportResult,
)
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData

from ._core import Losses
from ._env import _positive


class CountedBatchLogRecordProcessor(LogRecordProcessor):
    """The SDK's BatchLogRecordProcessor, with every record it would lose counted.

    The SDK's queue drops its oldest record without a word when it is full, forgets a batch
    whose export failed, and leaves what is still queued when shutdown gives up. Here the
    queue's bound is enforced in front of it: a record that would overflow is refused and
    counted (`queue_full`), so the SDK's queue, as large, never drops one; the exporter is
    wrapped so a batch it fails counts as `export_failed`; records still queued when the
    processor shuts down, or emitted afterwards, count as `shutdown`. Every count goes to
    `losses.logs` and so to `Telemetry.stats()["logs_dropped"]`. Queue sizes default to the
    SDK's (`OTEL_BLRP_*`, 2048 and 512).
    """

    def __init__(self, exporter: LogRecordExporter, losses: Losses, *,
                 max_queue_size: int | None = None, max_export_batch_size: int | None = None,
                 schedule_delay_millis: float | None = None,
                 export_timeout_millis: float | None = None) -> None:
        self.exporter = exporter
        self.losses = losses
        self.max_queue_size = max_queue_size or _positive("OTEL_BLRP_MAX_QUEUE_SIZE", 2048)
        batch = max_export_batch_size or _positive("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", 512)
        self._lock = threading.Lock()
        self._queued = 0  # given to the SDK's queue, not yet to the exporter
        self._closed = False
        self._shutdown_counted = False
        self._failed_batches = 0
        self._batches = BatchLogRecordProcessor(
            _CountedLogExporter(exporter, self), schedule_delay_millis=schedule_delay_millis,
            max_export_batch_size=min(batch, self.max_queue_size),
            export_timeout_millis=export_timeout_millis, max_queue_size=self.max_queue_size)
        if hasattr(os, "register_at_fork"):  # a child starts with the SDK's queue emptied
            this = weakref.ref(self)

            def forked() -> None:
                processor = this()
                if processor is not None:
                    processor._forked()

            os.register_at_fork(after_in_child=forked)

    @property
    def queued(self) -> int:
        """Records waiting for export."""
        return self._queued

    def on_emit(self, log_record: Any) -> None:
        with self._lock:
            if self._closed:
                refused = "shutdown"
            elif self._queued >= self.max_queue_size:
                refused = "queue_full"
            else:
                refused = None
                self._queued += 1
        if refused is not None:
            self.losses.logs_lost(refused, 1, f"the export queue holds {self.max_queue_size}"
                                  if refused == "queue_full" else "emitted after shutdown")
            return
        try:
            self._batches.on_emit(log_record)
        except Exception:
            with self._lock:
                self._queued -= 1
            raise  # Telemetry counts it (otel_failed)

    def _handed(self, count: int) -> None:
        """The SDK gave `count` queued records to the exporter."""
        with self._lock:
            self._queued -= count
            late = self._shutdown_counted
        if late:  # counted as lost at shutdown, but exported after all
            self.losses.logs_recovered("shutdown", count)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export what is queued; False if a batch failed meanwhile (it was lost)."""
        failed = self._failed_batches
        return self._batches.force_flush(timeout_millis) and self._failed_batches == failed

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
        try:
            self._batches.shutdown()
        finally:
            with self._lock:
                left, self._shutdown_counted = self._queued, True
            self.losses.logs_lost("shutdown", left, "still queued when the pipeline stopped")

    def _forked(self) -> None:
        self._lock = threading.Lock()
        self._queued = 0


class _CountedLogExporter(LogRecordExporter):
    """What the SDK's batch processor exports through: counts failed batches."""

    def __init__(self, exporter: LogRecordExporter,
                 processor: CountedBatchLogRecordProcessor) -> None:
        self.exporter = exporter
        self.processor = processor

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        count = len(batch)
        self.processor._handed(count)
        name = type(self.exporter).__name__
        try:
            result = self.exporter.export(batch)
            detail = f"{name} reported a failure"
        except Exception as error:
            result = LogRecordExportResult.FAILURE
            detail = f"{name} raised {type(error).__name__}: {error}"
        losses = self.processor.losses
        if result != LogRecordExportResult.SUCCESS:
            self.processor._failed_batches += 1  # only the SDK's export lock holder gets here
            losses.logs_lost("export_failed", count, detail)
            losses.problem("log_export", f"log export failing: {detail}")
        else:
            losses.resolved("log_export", f"log export works again ({name})")
        return result

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.exporter.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.exporter.shutdown()


class CountedMetricExporter(MetricExporter):
    """A metric exporter whose failed exports are counted, with the data points they lost
    (`metric_exports_failed`, `metric_points_dropped["export_failed"]` in the stats)."""

    def __init__(self, exporter: MetricExporter, losses: Losses) -> None:
        # The reader asks its exporter for these; the wrapped exporter's answers stand.
        super().__init__(preferred_temporality=exporter._preferred_temporality,
                         preferred_aggregation=exporter._preferred_aggregation)
        self.exporter = exporter
        self.losses = losses
        self._last_failed = False

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000,
               **kwargs: Any) -> MetricExportResult:
        name = type(self.exporter).__name__
        try:
            result = self.exporter.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
            detail = f"{name} reported a failure"
        except Exception as error:
            result = MetricExportResult.FAILURE
            detail = f"{name} raised {type(error).__name__}: {error}"
        self._last_failed = result != MetricExportResult.SUCCESS
        if self._last_failed:
            self.losses.metric_export_failed(_points(metrics_data), detail)
            self.losses.problem("metric_export", f"metric export failing: {detail}")
        else:
            self.losses.resolved("metric_export", f"metric export works again ({name})")
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.exporter.force_flush(timeout_millis=timeout_millis)

    def last_export_ok(self, timeout_millis: int = 0) -> bool:
        """False if the latest export failed. The SDK's reader ignores its exporter's
        answers, so `Telemetry.flush` asks this after the meter provider's flush."""
        return not self._last_failed

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.exporter.shutdown(timeout_millis=timeout_millis, **kwargs)


def _points(metrics_data: MetricsData | None) -> int:
    try:
        return sum(len(metric.data.data_points)
                   for resource_metrics in metrics_data.resource_metrics
                   for scope_metrics in resource_metrics.scope_metrics
                   for metric in scope_metrics.metrics)
    except (AttributeError, TypeError):  # None, or not the SDK's shape
        return 0
