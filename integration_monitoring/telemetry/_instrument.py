"""One-line helpers that turn sync jobs, adapter requests and queue work into events + metrics."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ._context import bind, current_labels
from ._core import Telemetry
from ._current import current
from ._logger import ServiceLogger

SYNC_SERVICE = "sync-task-service"


@dataclass
class SyncJob:
    """What a running sync job reports; yielded by `sync_job()`."""

    created: int = 0
    updated: int = 0
    failed: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    failure: str | None = None

    def records(self, created: int = 0, updated: int = 0, failed: int = 0) -> None:
        """Add to the job's record counts (call once per page or batch)."""
        self.created += created
        self.updated += updated
        self.failed += failed

    def fail(self, error: str, **metadata: Any) -> None:
        """Mark the job failed without raising (e.g. every record was rejected)."""
        self.failure = error
        self.metadata.update(metadata)

    @property
    def record_count(self) -> int:
        return self.created + self.updated + self.failed


def job_enqueued(*, tenant_id: str, integration_id: str, adapter_type: str | None = None,
                 entity: str | None = None, service: str = SYNC_SERVICE,
                 telemetry: Telemetry | None = None, **metadata: Any) -> None:
    """A sync job was put on the queue: `sync_jobs_total{status="pending"}` and `sync.enqueued`."""
    t = telemetry or current()
    with bind(tenant_id=tenant_id, integration_id=integration_id, adapter_type=adapter_type,
              entity=entity):
        t.metric("sync_jobs_total", 1, {**current_labels({}), "status": "pending"})
        ServiceLogger(service, t).info("sync.enqueued", **metadata)


@contextmanager
def sync_job(*, tenant_id: str, integration_id: str, adapter_type: str | None = None,
             entity: str | None = None, sync_type: str | None = None,
             task_id: str | None = None, service: str = SYNC_SERVICE,
             telemetry: Telemetry | None = None, **metadata: Any) -> Iterator[SyncJob]:
    """Run a sync job under telemetry.

    Binds tenant, integration, adapter, entity, task and any other keyword (e.g. `attempt`)
    for every event inside, starts a
    span so all of the job's records share one operation id, emits `sync.started`, then
    `sync.completed` or `sync.failed` (re-raising the error) with record counts and
    duration, and records the sync metrics.
    """
    t = telemetry or current()
    log = ServiceLogger(service, t)
    job = SyncJob()
    with bind(tenant_id=tenant_id, integration_id=integration_id, adapter_type=adapter_type,
              entity=entity, task_id=task_id, sync_type=sync_type, **metadata), \
            t.tracer.start_as_current_span("sync.job", attributes=_span_attributes(
                tenant_id, integration_id, adapter_type, entity)):
        labels = current_labels({})
        t.metric("sync_jobs_total", 1, {**labels, "status": "processing"})
        t.metric("sync_jobs_by_integration_total", 1, labels)
        log.info("sync.started")
        started = t.monotonic()
        try:
            yield job
        except GeneratorExit:
            raise  # the code running the job was closed mid-job: nothing finished
        except BaseException as exc:
            _guarded(_finish, t, log, job, labels, started, error=exc)
            raise
        _guarded(_finish, t, log, job, labels, started, error=None)


def _finish(t: Telemetry, log: ServiceLogger, job: SyncJob, labels: dict[str, str],
            started: int, error: BaseException | None) -> None:
    duration_ms = round((t.monotonic() - started) / 1e6, 3)
    failed = error is not None or job.failure is not None
    status = "failed" if failed else "completed"
    series = {**labels, "status": status}
    t.metric("sync_jobs_total", 1, series)
    t.metric("sync_jobs_processed_total", 1, series)
    t.metric("sync_latency_ms", duration_ms, series)
    if failed:
        t.metric("sync_jobs_failed_total", 1, series)
    for name, count in (("sync_records_created_total", job.created),
                        ("sync_records_updated_total", job.updated),
                        ("sync_records_failed_total", job.failed)):
        if count:
            t.metric(name, count, labels)
    details: dict[str, Any] = {
        "recordCount": job.record_count, "recordsCreated": job.created,
        "recordsUpdated": job.updated, "recordsFailed": job.failed, "duration": duration_ms,
        **job.metadata,
    }
    if not failed:
        log.info("sync.completed", **details)
        return
    if error is not None:
        details["error"] = str(error) or type(error).__name__
        details["errorType"] = type(error).__name__
        retryable = getattr(error, "retryable", None)
        if retryable is not None:
            details["retryable"] = bool(retryable)
    else:
        details["error"] = job.failure
    log.error("sync.failed", **details)


@dataclass
class AdapterCall:
    """What an adapter request reports; yielded by `adapter_request()`."""

    status_code: int | None = None
    retry_after: float | None = None


@contextmanager
def adapter_request(adapter_type: str | None = None, operation: str = "request", *,
                    entity: str | None = None, tenant_id: str | None = None,
                    integration_id: str | None = None, service: str | None = None,
                    telemetry: Telemetry | None = None) -> Iterator[AdapterCall]:
    """Time one adapter API call and classify it.

    Set `call.status_code` (and `call.retry_after` on a 429) from the response. A 429
    counts a rate-limit hit and logs `<operation>.rate_limited` (warn); an exception that
    is a connection failure counts one and logs `<operation>.connection_failed` (error).
    Other exceptions are re-raised untouched after the request is counted.
    """
    t = telemetry or current()
    call = AdapterCall()
    started = t.monotonic()
    where = (adapter_type, operation, entity, tenant_id, integration_id, service)
    try:
        yield call
    except GeneratorExit:
        raise  # closed mid-request: there is no outcome to record
    except BaseException as exc:
        _guarded(_adapter_done, t, call, *where, (t.monotonic() - started) / 1e9, exc)
        raise
    _guarded(_adapter_done, t, call, *where, (t.monotonic() - started) / 1e9, None)


def _guarded(record, t: Telemetry, *args: Any, **kwargs: Any) -> None:
    """Telemetry about the caller's work must not fail the caller's work."""
    try:
        record(t, *args, **kwargs)
    except Exception:
        t._count("events_dropped")


def _adapter_done(t, call, adapter_type, operation, entity, tenant_id, integration_id, service,
                  seconds, error) -> None:
    labels = current_labels({"adapter_type": adapter_type, "entity": entity,
                             "tenant_id": tenant_id, "integration_id": integration_id})
    connection_failed = error is not None and is_connection_error(error)
    status = request_status(call.status_code, error, connection_failed)
    series = {**labels, "status": status}
    t.metric("adapter_requests_total", 1, series)
    t.metric("adapter_request_duration_seconds", seconds, series)
    adapter = labels.get("adapter_type", "adapter")
    log = ServiceLogger(service or f"{adapter}-adapter", t)
    if status == "rate_limited":
        t.metric("adapter_rate_limit_hits_total", 1, labels)
        log.warn(f"{operation}.rate_limited", tenant_id=tenant_id, integration_id=integration_id,
                 statusCode=429, retryAfter=call.retry_after, duration=round(seconds * 1000, 3))
    elif connection_failed:
        t.metric("adapter_connection_failures_total", 1, labels)
        log.error(f"{operation}.connection_failed", tenant_id=tenant_id,
                  integration_id=integration_id, error=str(error) or type(error).__name__,
                  errorType=type(error).__name__, retryable=True,
                  duration=round(seconds * 1000, 3))


def request_status(status_code: Any, error: BaseException | None,
                   connection_failed: bool) -> str:
    """The `status` label of an adapter request."""
    try:
        status_code = None if status_code is None else int(status_code)
    except (TypeError, ValueError):
        status_code = None
    if connection_failed:
        return "connection_failed"
    if status_code == 429:
        return "rate_limited"
    if status_code is not None and status_code >= 500:
        return "server_error"
    if status_code is not None and status_code >= 400:
        return "client_error"
    return "error" if error is not None else "success"


_CONNECTION_ERRORS = (ConnectionError, TimeoutError, socket.gaierror, socket.timeout,
                      ssl.SSLError)


def is_connection_error(error: BaseException) -> bool:
    """True for DNS, refused, reset, TLS and timeout failures, of any HTTP library."""
    if isinstance(error, _CONNECTION_ERRORS):
        return True
    # httpx.ConnectError, requests' ConnectionError and ConnectTimeout, aiohttp's
    # ClientConnectorError: matched by name so no HTTP library has to be imported.
    return any(
        "Connect" in cls.__name__ or "Timeout" in cls.__name__ for cls in type(error).__mro__
    )


def record_queue_depth(queue: str, active: int, dead_letter: int | None = None, *,
                       telemetry: Telemetry | None = None) -> None:
    """Sampled depths of a Service Bus queue and its dead-letter subqueue."""
    t = telemetry or current()
    t.metric("service_bus_queue_depth", active, {"queue": queue})
    if dead_letter is not None:
        t.metric("service_bus_dlq_depth", dead_letter, {"queue": queue})


def message_processed(queue: str, status: str = "completed", *,
                      telemetry: Telemetry | None = None, **labels: str | None) -> None:
    """A Service Bus message was processed (labels from the bound context unless given)."""
    t = telemetry or current()
    t.metric("service_bus_messages_processed_total", 1,
             {"queue": queue, **current_labels(labels), "status": status})


def message_failed(queue: str, status: str = "abandoned", *,
                   telemetry: Telemetry | None = None,
                   **labels: str | None) -> None:
    """Processing a Service Bus message failed (it will be retried or dead-lettered)."""
    t = telemetry or current()
    t.metric("service_bus_messages_failed_total", 1,
             {"queue": queue, **current_labels(labels), "status": status})


def _span_attributes(*values: str | None) -> dict[str, str]:
    names = ("tenant_id", "integration_id", "adapter_type", "entity")
    return {name: value for name, value in zip(names, values, strict=True) if value}


INTEGRATION_STATUSES = ("active", "paused", "error")
CONNECTION_STATUSES = ("connected", "failing", "expired", "revoked")
INTEGRATION_SERVICE = "integration-service"


def integration_status_changed(*, tenant_id: str, integration_id: str, status: str,
                               adapter_type: str | None = None, previous: str | None = None,
                               reason: str | None = None, service: str = INTEGRATION_SERVICE,
                               telemetry: Telemetry | None = None, **metadata: Any) -> None:
    """An integration became `active`, `paused` or `error` (`integration.status_changed`).

    The admin API reads an integration's status as the last of these events; emit one when
    an integration is created, paused, resumed, or put into error by the platform.
    """
    level = "warn" if status == "error" else "info"
    ServiceLogger(service, telemetry).log(level, "integration.status_changed", tenant_id,
                                          integration_id, {
        "status": status, "previousStatus": previous, "adapterType": adapter_type,
        "reason": reason, **metadata})


def connection_status_changed(*, tenant_id: str, integration_id: str, status: str,
                              adapter_type: str | None = None, previous: str | None = None,
                              reason: str | None = None, service: str = INTEGRATION_SERVICE,
                              telemetry: Telemetry | None = None, **metadata: Any) -> None:
    """The connection's credentials became `connected`, `failing`, `expired` or `revoked`."""
    level = {"connected": "info", "failing": "warn"}.get(status, "error")
    ServiceLogger(service, telemetry).log(level, "connection.status_changed", tenant_id,
                                          integration_id, {
        "status": status, "previousStatus": previous, "adapterType": adapter_type,
        "reason": reason, **metadata})
