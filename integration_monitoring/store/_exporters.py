"""OpenTelemetry exporters that write what Application Insights would store for the same data.

The mapping follows the Azure Monitor exporter: properties are strings cut at 8 KiB, the
logger (scope) name joins them as `logger_name`, severity numbers map to levels 0-4,
operation and parent ids are the trace and span ids in hex (zeros outside a span), and
counters and histograms are exported as deltas, one row per series and interval.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    HistogramDataPoint,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    Sum,
)
from opentelemetry.sdk.metrics.export import Histogram as HistogramData
from opentelemetry.sdk.resources import Resource
from opentelemetry.version import __version__ as otel_version

from ._store import BufferedWriter, TelemetryStore

MAX_PROPERTY = 8192
MAX_MESSAGE = 32768
#: Attributes the Azure exporter reads as instructions and leaves out of Properties.
IGNORED_ATTRIBUTES = frozenset({
    "exception.type", "exception.message", "exception.stacktrace", "exception.escaped",
    "microsoft.custom_event.name", "microsoft.custom_measurements",
    "microsoft.availability.id", "microsoft.availability.name",
    "microsoft.availability.duration", "microsoft.availability.success",
    "microsoft.availability.runLocation", "microsoft.availability.message",
    "APPLICATION_INSIGHTS_EVENT_MARKER_ATTRIBUTE", "enduser.id", "enduser.pseudo.id",
    "session.id",
})
DELTA_TEMPORALITY = {
    Counter: AggregationTemporality.DELTA,
    Histogram: AggregationTemporality.DELTA,
    ObservableCounter: AggregationTemporality.DELTA,
    ObservableGauge: AggregationTemporality.CUMULATIVE,
    ObservableUpDownCounter: AggregationTemporality.CUMULATIVE,
    UpDownCounter: AggregationTemporality.CUMULATIVE,
}
SDK_VERSION = f"local:otel{otel_version}"
_EPOCH = dt.datetime(1970, 1, 1)


def properties(attributes: Any) -> dict[str, str]:
    """Attributes as Application Insights stores them: strings, keys ≤150, values ≤8 KiB."""
    out: dict[str, str] = {}
    if not attributes:
        return out
    for key, value in attributes.items():
        if not key or len(key) > 150 or value is None or key in IGNORED_ATTRIBUTES:
            continue
        out[key] = str(value)[:MAX_PROPERTY]
    return out


def severity_level(severity_number: Any) -> int:
    """OpenTelemetry severity number -> Application Insights SeverityLevel (0..4)."""
    if severity_number is None or severity_number.value < 9:
        return 0
    return int((severity_number.value - 1) / 4 - 1)


def role(resource: Resource | None) -> tuple[str, str, str]:
    """AppRoleName, AppRoleInstance and AppVersion from the resource, as Azure derives them."""
    attributes = resource.attributes if resource else {}
    name = str(attributes.get("service.name") or "")
    namespace = attributes.get("service.namespace")
    if namespace and name:
        name = f"{namespace}.{name}"
    instance = str(attributes.get("k8s.pod.name") or attributes.get("service.instance.id")
                   or socket.gethostname())
    return name, instance, str(attributes.get("service.version") or "")


def _time(ns: int | None) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=(ns or 0) // 1000)


def trace_row(timestamp: int | None, severity_number: Any, body: Any, attributes: Any,
              scope_name: str | None, trace_id: int | None, span_id: int | None,
              role_of_resource: tuple[str, str, str]) -> dict[str, Any]:
    """One log record's `AppTraces` row."""
    props = properties(attributes)
    if scope_name:
        props.setdefault("logger_name", str(scope_name))
    message = (body if isinstance(body, str) else json.dumps(body, default=str) if body
               else "")[:MAX_MESSAGE].strip() or "n/a"
    role_name, role_instance, version = role_of_resource
    return {
        "TimeGenerated": _time(timestamp),
        "Message": message,
        "SeverityLevel": severity_level(severity_number),
        "Properties": json.dumps(props, ensure_ascii=False),
        "Measurements": "{}",
        "OperationId": f"{trace_id or 0:032x}",
        "ParentId": f"{span_id or 0:016x}",
        "AppRoleName": role_name,
        "AppRoleInstance": role_instance,
        "AppVersion": version,
        "SDKVersion": SDK_VERSION,
        "ItemCount": 1,
        "Type": "AppTraces",
        "SourceSystem": "Azure",
    }


class StoreLogExporter(LogRecordExporter):
    """Log records -> `AppTraces` rows, into the store or through a BufferedWriter (which
    keeps them while the store refuses writes, so the export succeeds)."""

    def __init__(self, store: TelemetryStore | BufferedWriter) -> None:
        self.store = store
        self.failed_batches = 0
        self._roles: dict[int, tuple[str, str, str]] = {}

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        try:
            self.store.append("AppTraces", [self._row(item) for item in batch])
        except Exception:
            self.failed_batches += 1
            return LogRecordExportResult.FAILURE
        return LogRecordExportResult.SUCCESS

    def _row(self, item: ReadableLogRecord) -> dict[str, Any]:
        record = item.log_record
        scope = item.instrumentation_scope
        return trace_row(record.timestamp or record.observed_timestamp, record.severity_number,
                         record.body, record.attributes, scope.name if scope else None,
                         record.trace_id, record.span_id, self._role(item.resource))

    def _role(self, resource: Resource | None) -> tuple[str, str, str]:
        key = id(resource)
        if key not in self._roles:
            self._roles[key] = role(resource)
        return self._roles[key]

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


class StoreMetricExporter(MetricExporter):
    """Metric points -> `AppMetrics` rows, one per series and export interval.

    With `clock`, rows are stamped with its time at export instead of the collection time,
    so a simulation that exports once per simulated interval writes history.
    """

    def __init__(self, store: TelemetryStore | BufferedWriter,
                 clock: Callable[[], int] | None = None) -> None:
        super().__init__(preferred_temporality=DELTA_TEMPORALITY)
        self.store = store
        self.clock = clock
        self.failed_batches = 0
        self._lock = threading.Lock()

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000,
               **kwargs: Any) -> MetricExportResult:
        rows = []
        for resource_metrics in metrics_data.resource_metrics:
            role_name, role_instance, version = role(resource_metrics.resource)
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if not isinstance(metric.data, (Sum, Gauge, HistogramData)):
                        continue  # exponential histograms: not used, not stored by Azure
                    for point in metric.data.data_points:
                        rows.append(_metric_row(metric.name, point, role_name, role_instance,
                                                version, self.clock))
        try:
            with self._lock:
                self.store.append("AppMetrics", rows)
        except Exception:
            self.failed_batches += 1
            return MetricExportResult.FAILURE
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


def _metric_row(name: str, point: Any, role_name: str, role_instance: str, version: str,
                clock: Callable[[], int] | None) -> dict[str, Any]:
    if isinstance(point, HistogramDataPoint):
        total, count, low, high = point.sum, int(point.count), point.min, point.max
    else:
        total = low = high = point.value
        count = 1
    return metric_row(name, clock() if clock else point.time_unix_nano, total, count, low, high,
                      point.attributes, (role_name, role_instance, version))


def metric_row(name: str, timestamp: int | None, total: float, count: int, low: float,
               high: float, attributes: Any,
               role_of_resource: tuple[str, str, str]) -> dict[str, Any]:
    """One series' `AppMetrics` row for one interval: a histogram's sum, count, min and max,
    or a counter's delta or a gauge's value (count 1)."""
    role_name, role_instance, version = role_of_resource
    return {
        "TimeGenerated": _time(timestamp),
        "Name": name,
        "Sum": float(total),
        "Min": float(low),
        "Max": float(high),
        "ItemCount": count,
        "Properties": json.dumps(properties(attributes), ensure_ascii=False),
        "OperationId": "",
        "ParentId": "",
        "AppRoleName": role_name,
        "AppRoleInstance": role_instance,
        "AppVersion": version,
        "SDKVersion": SDK_VERSION,
        "Type": "AppMetrics",
        "SourceSystem": "Azure",
    }
