"""The local telemetry store, mirroring the Log Analytics tables Application Insights writes."""

from ._exporters import StoreLogExporter, StoreMetricExporter, properties, severity_level
from ._retention import RetentionJob, retention_days
from ._schema import TABLES, physical
from ._simulated import SimulatedLoggerProvider, SimulatedMeterProvider
from ._store import (
    BufferedWriter,
    QueryResult,
    StoreLocked,
    TelemetryStore,
    default_path,
    open_store,
)

__all__ = [
    "TABLES",
    "BufferedWriter",
    "QueryResult",
    "RetentionJob",
    "SimulatedLoggerProvider",
    "SimulatedMeterProvider",
    "StoreLocked",
    "StoreLogExporter",
    "StoreMetricExporter",
    "TelemetryStore",
    "default_path",
    "open_store",
    "physical",
    "properties",
    "retention_days",
    "severity_level",
]
