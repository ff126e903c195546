"""The calls being compared: one sync event through our library, and what plain stdlib does."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import IO, Any

from integration_monitoring import Telemetry, get_logger, sync_job

TENANT = "tenant-123"
INTEGRATION = "salesforce-connection-1"
ADAPTER = "salesforce"
ENTITY = "contact"
SERVICE = "salesforce-adapter"
LABELS = {
    "tenant_id": TENANT,
    "integration_id": INTEGRATION,
    "adapter_type": ADAPTER,
    "entity": ENTITY,
    "status": "completed",
}

Call = Callable[[], object]


# -- baseline: stdlib logging with a JSON formatter -----------------------------------------


class JsonFormatter(logging.Formatter):
    """A typical hand-rolled JSON formatter: the record's fields plus its extras, as JSON."""

    STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
        "message",
        "asctime",
        "taskName",
    }

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in self.STANDARD:
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def baseline_logger(sink: IO[str], name: str = "bench.baseline") -> logging.Logger:
    """A logger with one StreamHandler + JsonFormatter writing to `sink`, nothing else."""
    logger = logging.getLogger(name)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sink)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def baseline_event(logger: logging.Logger) -> Call:
    """One stdlib JSON log call carrying the same fields as our event."""

    def call() -> None:
        logger.info(
            "sync.completed",
            extra={
                "tenant_id": TENANT,
                "integration_id": INTEGRATION,
                "entity": ENTITY,
                "recordCount": 42,
            },
        )

    return call


def baseline_sync_job(logger: logging.Logger) -> Call:
    """What a hand-written sync job logs: started and completed, with counts and duration."""

    def call() -> None:
        extra = {
            "tenant_id": TENANT,
            "integration_id": INTEGRATION,
            "adapter_type": ADAPTER,
            "entity": ENTITY,
        }
        logger.info("sync.started", extra=extra)
        started = time.perf_counter()
        created, updated = 10, 3
        logger.info(
            "sync.completed",
            extra={
                **extra,
                "recordCount": created + updated,
                "recordsCreated": created,
                "recordsUpdated": updated,
                "recordsFailed": 0,
                "duration": round((time.perf_counter() - started) * 1000.0, 3),
            },
        )

    return call


# -- ours -------------------------------------------------------------------------------------


def ours_event(telemetry: Telemetry) -> Call:
    """One instrumented sync event: a structured log call, a counter and a histogram."""
    log = get_logger(SERVICE, telemetry)

    def call() -> None:
        log.info(
            "sync.completed",
            tenant_id=TENANT,
            integration_id=INTEGRATION,
            entity=ENTITY,
            recordCount=42,
        )
        telemetry.metric("sync_jobs_total", 1, LABELS)
        telemetry.metric("sync_latency_ms", 123.0, LABELS)

    return call


def ours_log(telemetry: Telemetry) -> Call:
    """The structured log call alone."""
    log = get_logger(SERVICE, telemetry)

    def call() -> None:
        log.info(
            "sync.completed",
            tenant_id=TENANT,
            integration_id=INTEGRATION,
            entity=ENTITY,
            recordCount=42,
        )

    return call


def ours_sync_job(telemetry: Telemetry) -> Call:
    """`sync_job()`: span, started + completed events, and the sync metrics."""

    def call() -> None:
        with sync_job(
            tenant_id=TENANT,
            integration_id=INTEGRATION,
            adapter_type=ADAPTER,
            entity=ENTITY,
            telemetry=telemetry,
        ) as job:
            job.records(created=10, updated=3)

    return call


def ours_counter(telemetry: Telemetry) -> Call:
    def call() -> None:
        telemetry.metric("sync_jobs_total", 1, LABELS)

    return call


def ours_histogram(telemetry: Telemetry) -> Call:
    def call() -> None:
        telemetry.metric("sync_latency_ms", 123.0, LABELS)

    return call


# -- the OpenTelemetry SDK alone, for where the cost goes ------------------------------------


def sdk_floor_event(telemetry: Telemetry) -> Call:
    """The SDK calls our event ends in, made directly: logger.emit, counter.add, record.

    No library on top of the OpenTelemetry SDK can be cheaper than this for the same
    event, so its ratio to the baseline is the floor for ours.
    """
    from opentelemetry._logs import SeverityNumber

    logger = telemetry.logger_provider.get_logger(SERVICE)
    meter = telemetry.meter_provider.get_meter("bench.sdk_floor")
    counter = meter.create_counter("bench_sdk_floor_total")
    histogram = meter.create_histogram("bench_sdk_floor_ms")

    def call() -> None:
        now = time.time_ns()
        logger.emit(
            timestamp=now,
            observed_timestamp=now,
            severity_number=SeverityNumber.INFO,
            severity_text="INFO",
            body="sync.completed",
            attributes={
                "entity": ENTITY,
                "recordCount": "42",
                "service": SERVICE,
                "operation": "sync.completed",
                "tenantId": TENANT,
                "integrationId": INTEGRATION,
            },
        )
        counter.add(1, LABELS)
        histogram.record(123.0, LABELS)

    return call


def sdk_span(telemetry: Telemetry) -> Call:
    """The span `sync_job()` opens, alone."""
    tracer = telemetry.tracer
    attributes = {
        "tenant_id": TENANT,
        "integration_id": INTEGRATION,
        "adapter_type": ADAPTER,
        "entity": ENTITY,
    }

    def call() -> None:
        with tracer.start_as_current_span("sync.job", attributes=attributes):
            pass

    return call
