"""The local pipeline: logs and metrics into the DuckDB store, counted as the Azure one is.

The app's local mode and the bench build it with `local_pipeline`, so its sizes are set
here and nowhere else. (The demo's backfill writes through the store's simulated providers,
which write the same rows without the SDK's per-record work.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

from ._core import Losses
from ._counted import CountedBatchLogRecordProcessor, CountedMetricExporter

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from ..store import BufferedWriter, StoreLogExporter, StoreMetricExporter, TelemetryStore


@dataclass(frozen=True)
class Sizes:
    """How the local pipeline batches: the log processor's delay, queue and batch, the rows
    the store writer holds before a DuckDB append, and the metric export interval."""

    schedule_delay_ms: float
    max_queue_size: int
    max_export_batch_size: int
    write_rows: int
    export_interval_ms: float


#: Records reach the store within a second, every export written through at once. (A
#: simulation, which writes hours in seconds, uses the store's simulated providers.)
LIVE = Sizes(schedule_delay_ms=1000, max_queue_size=65_536, max_export_batch_size=4096,
             write_rows=1, export_interval_ms=10_000)


@dataclass
class LocalPipeline:
    """The providers of one local pipeline, and the parts its callers look into."""

    writer: BufferedWriter
    processor: CountedBatchLogRecordProcessor
    log_exporter: StoreLogExporter
    metric_exporter: StoreMetricExporter
    counted_metrics: CountedMetricExporter
    logger_provider: LoggerProvider
    meter_provider: MeterProvider
    tracer_provider: TracerProvider

    def providers(self) -> dict[str, Any]:
        """Keyword arguments that put a `Telemetry` on these providers."""
        return {"logger_provider": self.logger_provider,
                "meter_provider": self.meter_provider,
                "tracer_provider": self.tracer_provider}

    @property
    def flushers(self) -> list[Callable[..., bool]]:
        """What `Telemetry.flush` should also ask: the SDK's reader ignores its exporter's
        answer, and the writer may still hold rows the store refused."""
        return [self.counted_metrics.last_export_ok, self.writer.done]


def local_pipeline(store: TelemetryStore, losses: Losses, resource: Any, *,
                   export_interval_ms: float | None = None,
                   readers: Sequence[Any] = ()) -> LocalPipeline:
    """Build the local pipeline over `store` (not installed as the global providers); what it
    loses is counted in `losses`.

    It uses the `LIVE` sizes, metrics exported every `export_interval_ms` (default `LIVE`'s).
    `readers` are further metric readers (the Prometheus one).
    """
    # Imported here so that importing the telemetry package loads neither DuckDB nor the
    # trace SDK: the Azure mode needs neither.
    from opentelemetry.sdk.trace import TracerProvider

    from ..store import BufferedWriter, StoreLogExporter, StoreMetricExporter

    sizes = LIVE
    writer = BufferedWriter(store, max_rows=sizes.write_rows, losses=losses)
    log_exporter = StoreLogExporter(writer)
    processor = CountedBatchLogRecordProcessor(
        log_exporter, losses, schedule_delay_millis=sizes.schedule_delay_ms,
        max_queue_size=sizes.max_queue_size, max_export_batch_size=sizes.max_export_batch_size)
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(processor)
    metric_exporter = StoreMetricExporter(writer)
    counted_metrics = CountedMetricExporter(metric_exporter, losses)
    reader = PeriodicExportingMetricReader(
        counted_metrics, export_interval_millis=export_interval_ms or sizes.export_interval_ms)
    meter_provider = MeterProvider(metric_readers=[reader, *readers], resource=resource,
                                   exemplar_filter=AlwaysOffExemplarFilter())
    return LocalPipeline(writer=writer, processor=processor, log_exporter=log_exporter,
                         metric_exporter=metric_exporter, counted_metrics=counted_metrics,
                         logger_provider=logger_provider, meter_provider=meter_provider,
                         tracer_provider=TracerProvider(resource=resource))
