"""The event pipeline: one call becomes a seed-format JSON line and an OpenTelemetry log record."""

from __future__ import annotations

import functools
import json
import re
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from opentelemetry import _logs, metrics, trace
from opentelemetry._logs import SeverityNumber

from ._context import bound
from ._metrics import Instruments
from ._values import _UNCHANGED, clean, clean_mapping, property_string, scrub, scrub_labels

LEVELS = {
    "info": (SeverityNumber.INFO, "INFO"),
    "warn": (SeverityNumber.WARN, "WARN"),
    "error": (SeverityNumber.ERROR, "ERROR"),
}

#: Attribute names the Azure Monitor exporter reads as instructions (they would turn a
#: trace into an exception or custom event); metadata keys with these names are renamed.
_RESERVED_PREFIXES = ("exception.", "microsoft.", "_MS.", "ai.", "enduser.", "session.", "client.",
                      "APPLICATION_INSIGHTS_")
_TOP_LEVEL_BOUND = ("tenant_id", "integration_id")
_SNAKE = re.compile(r"_([a-z0-9])")


@functools.lru_cache(maxsize=4096)
def camel(key: str) -> str:
    """`record_count` -> `recordCount`; keys already in camelCase pass through."""
    if "_" not in key or key.startswith("_"):
        return key
    return _SNAKE.sub(lambda m: m.group(1).upper(), key)


#: Why log records were lost: refused because the processor's queue was full, in a batch
#: the exporter reported as failed, dropped by the store's writer after the store refused
#: writes for longer than its memory bound allows, or still queued (or arriving) when the
#: pipeline shut down.
LOG_LOSS_REASONS = ("queue_full", "export_failed", "store_failed", "shutdown")
#: Why metric data points were lost (a failed export loses its deltas).
METRIC_LOSS_REASONS = ("export_failed", "store_failed", "shutdown")
#: Seconds between two stderr notes about the same kind of loss.
_NOTE_EVERY_S = 60.0


class Losses:
    """What the export pipelines lost, by reason, and what is wrong with them right now.

    Processors, exporters and the store's writer report here instead of raising into the
    caller or logging once per record; `Telemetry.stats()` (and so /api/health) shows it,
    and a short note goes to stderr when a loss or a problem starts, at most once a minute
    per kind, and when a problem clears.
    """

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream
        self._lock = threading.Lock()
        self.logs = dict.fromkeys(LOG_LOSS_REASONS, 0)
        self.metric_points = dict.fromkeys(METRIC_LOSS_REASONS, 0)
        self.metric_exports_failed = 0
        self._problems: dict[str, str] = {}
        self._watched: dict[str, Callable[[], dict[str, Any]]] = {}
        self._noted: dict[str, float] = {}

    def logs_lost(self, reason: str, count: int, detail: str = "") -> None:
        if count <= 0:
            return
        with self._lock:
            self.logs[reason] = self.logs.get(reason, 0) + count
            total = self.logs[reason]
        self._note(f"logs:{reason}", f"dropping log records ({reason}, {total} so far)", detail)

    def logs_recovered(self, reason: str, count: int) -> None:
        """Take back records counted as lost that went out after all."""
        with self._lock:
            self.logs[reason] = max(0, self.logs.get(reason, 0) - count)

    def metric_export_failed(self, points: int, detail: str = "") -> None:
        with self._lock:
            self.metric_exports_failed += 1
            self.metric_points["export_failed"] += points
            failed = self.metric_exports_failed
        self._note("metrics:export_failed", f"metric exports failing ({failed} so far)", detail)

    def metric_points_lost(self, reason: str, count: int, detail: str = "") -> None:
        if count <= 0:
            return
        with self._lock:
            self.metric_points[reason] = self.metric_points.get(reason, 0) + count
            total = self.metric_points[reason]
        self._note(f"metrics:{reason}", f"dropping metric points ({reason}, {total} so far)",
                   detail)

    def problem(self, name: str, message: str) -> None:
        """Say what is wrong with part `name` of the pipeline (stderr hears it once)."""
        message = scrub(message)  # shown by /api/health; error texts can carry secrets
        with self._lock:
            new = name not in self._problems
            self._problems[name] = message
        if new:
            self._write(f"telemetry: {message}")

    def resolved(self, name: str, message: str) -> None:
        """Part `name` works again; `message` says so on stderr."""
        with self._lock:
            was = self._problems.pop(name, None)
        if was is not None:
            self._write(f"telemetry: {message}")

    def watch(self, name: str, state: Callable[[], dict[str, Any]]) -> None:
        """Show `state()` under `name` in the snapshot (e.g. the store writer's backlog)."""
        with self._lock:
            self._watched[name] = state

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            snapshot: dict[str, Any] = {
                "logs_dropped": dict(self.logs),
                "metric_exports_failed": self.metric_exports_failed,
                "metric_points_dropped": dict(self.metric_points),
                "problems": dict(self._problems),
            }
            watched = list(self._watched.items())
        for name, state in watched:
            try:
                snapshot[name] = state()
            except Exception:
                snapshot[name] = None
        return snapshot

    def _note(self, kind: str, message: str, detail: str) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._noted.get(kind)
            if last is not None and now - last < _NOTE_EVERY_S:
                return
            self._noted[kind] = now
        self._write(f"telemetry: {message}" + (f": {detail}" if detail else ""))

    def _write(self, line: str) -> None:
        try:
            stream = self.stream or sys.stderr
            # One line, whatever errors say, and scrubbed like every other text we write.
            stream.write(" ".join(scrub(line).split()) + "\n")
            stream.flush()
        except Exception:
            pass  # stderr closed: the counts are still there


class Telemetry:
    """Everything one process emits through: structured events, metrics and spans.

    Providers are injected (tests and benchmarks build their own); by default the global
    OpenTelemetry providers are used, so whatever `configure_telemetry` set up applies.
    `clock` (nanoseconds since the epoch) replaces wall and duration time alike, for
    simulations that write history faster than real time.
    """

    def __init__(
        self,
        *,
        logger_provider: Any = None,
        meter_provider: Any = None,
        tracer_provider: Any = None,
        stdout: bool = True,
        stream: IO[str] | None = None,
        cardinality_limit: int = 2000,
        clock: Callable[[], int] | None = None,
        losses: Losses | None = None,
    ) -> None:
        self.logger_provider = logger_provider or _logs.get_logger_provider()
        self.meter_provider = meter_provider or metrics.get_meter_provider()
        self.tracer_provider = tracer_provider or trace.get_tracer_provider()
        self.instruments = Instruments(
            self.meter_provider.get_meter("integration_monitoring"), cardinality_limit
        )
        self.tracer = self.tracer_provider.get_tracer("integration_monitoring")
        self.stdout = stdout
        self.stream = stream
        #: Timestamps; and the clock durations are measured on (monotonic unless simulated).
        self.clock = clock or time.time_ns
        self.monotonic = clock or time.perf_counter_ns
        self._otel_loggers: dict[str, Any] = {}
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        self._lock = threading.Lock()
        #: Problems counted instead of raised into the caller.
        self.errors = {"events_dropped": 0, "stdout_failed": 0, "otel_failed": 0,
                       "metrics_dropped": 0}
        #: What the export pipelines behind the providers lost (see `Losses`).
        self.losses = losses or Losses()
        self._flushers: list[Callable[[int], bool]] = []

    # -- events ---------------------------------------------------------------------------

    def emit(
        self,
        level: str,
        service: str,
        operation: str,
        tenant_id: str | None = None,
        integration_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Write one event in the seed's schema; returns it, or None if it was dropped.

        Every text in the event (service, operation, ids, metadata keys and values, error
        texts) has been through `scrub()`, so the stdout line, the local store, Azure and
        listeners all get the same redacted event.
        """
        try:
            event, now_ns = self._build(level, service, operation, tenant_id, integration_id,
                                        metadata)
        except Exception:
            self._count("events_dropped")
            return None
        if self.stdout:
            self._write_line(event)
        self._emit_otel(event, now_ns)
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                self._count("events_dropped")
        return event

    def _build(self, level, service, operation, tenant_id, integration_id, metadata):
        if level not in LEVELS:
            level = {"warning": "warn", "critical": "error", "fatal": "error"}.get(
                str(level).lower(), "info")
        ctx = bound()
        merged: dict[str, Any] = {}
        for key, value in ctx.items():
            if key not in _TOP_LEVEL_BOUND:
                merged[camel(key)] = value
        if metadata:
            merged.update(metadata)
        if tenant_id is None:
            tenant_id = ctx.get("tenant_id", "")
        if integration_id is None:
            integration_id = ctx.get("integration_id", "")
        now_ns = self.clock()
        event = {
            "timestamp": _iso_from_ns(now_ns),
            "level": level,
            "service": _text(service),
            "operation": _text(operation),
            "tenantId": _text(tenant_id),
            "integrationId": _text(integration_id),
            "metadata": clean_mapping(merged),
        }
        return event, now_ns

    def _write_line(self, event: dict[str, Any]) -> None:
        try:
            line = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
            (self.stream or sys.stdout).write(line + "\n")
        except Exception:
            self._count("stdout_failed")

    def _emit_otel(self, event: dict[str, Any], now_ns: int) -> None:
        try:
            service = event["service"]
            logger = self._otel_loggers.get(service)
            if logger is None:
                logger = self._otel_loggers[service] = self.logger_provider.get_logger(service)
            attributes = {}
            for key, value in event["metadata"].items():
                if value is None:
                    continue
                if not key or key.startswith(_RESERVED_PREFIXES):
                    key = "metadata." + key
                attributes[key] = property_string(value)
            attributes["service"] = service
            attributes["operation"] = event["operation"]
            attributes["tenantId"] = event["tenantId"]
            attributes["integrationId"] = event["integrationId"]
            severity, severity_text = LEVELS[event["level"]]
            logger.emit(
                timestamp=now_ns,
                observed_timestamp=now_ns,
                severity_number=severity,
                severity_text=severity_text,
                body=event["operation"],
                attributes=attributes,
            )
        except Exception:
            self._count("otel_failed")

    # -- metrics --------------------------------------------------------------------------

    def metric(self, name: str, value: float, labels: dict[str, str]) -> None:
        """Record one measurement of a seed metric (label values scrubbed); never raises."""
        try:
            self.instruments.record(name, value, scrub_labels(labels))
        except Exception:
            self._count("metrics_dropped")

    # -- plumbing -------------------------------------------------------------------------

    def add_listener(self, listener: Callable[[dict[str, Any]], None]) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[dict[str, Any]], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _count(self, what: str) -> None:
        with self._lock:
            self.errors[what] += 1

    def stats(self) -> dict[str, Any]:
        """Counts of what was dropped or capped, for health checks and the dashboard.

        Events that could not be built or written (`events_dropped`, `stdout_failed`,
        `otel_failed`, `metrics_dropped`), label sets over the cap (`series_overflowed`),
        what the export pipelines lost (`logs_dropped` and `metric_points_dropped` by
        reason, `metric_exports_failed`), what is wrong with them now (`problems`) and, in
        local mode, the store writer's backlog (`store`).
        """
        return {**self.errors, "series_overflowed": dict(self.instruments.overflowed),
                **self.losses.snapshot()}

    def add_flusher(self, flush: Callable[[int], bool]) -> None:
        """Also run `flush(timeout_millis)` in `flush()`, after the providers (e.g. a store
        writer holding rows); it returns False when something is left."""
        self._flushers.append(flush)

    def flush(self, timeout_millis: int = 10_000) -> bool:
        """Export everything buffered now, within the timeout; False if anything was left
        or an export failed meanwhile (what it lost is counted in `stats()`).

        Call it before a short invocation returns. The SDK's batch processor does not honour
        its own timeout against an endpoint that never answers, so the flushes run on a
        helper thread and the caller waits at most `timeout_millis` in all.
        """
        outcome: list[bool] = []

        def run() -> None:
            ok = True
            for provider in (self.tracer_provider, self.logger_provider, self.meter_provider):
                force_flush = getattr(provider, "force_flush", None)
                if force_flush is None:
                    continue
                try:
                    ok = force_flush(timeout_millis) is not False and ok
                except Exception:
                    ok = False
            for extra in self._flushers:
                try:
                    ok = extra(timeout_millis) is not False and ok
                except Exception:
                    ok = False
            outcome.append(ok)

        worker = threading.Thread(target=run, name="telemetry-flush", daemon=True)
        worker.start()
        worker.join(timeout_millis / 1000.0)
        return bool(outcome) and outcome[0]


def _text(value: Any) -> str:
    """A top-level field (service, operation, tenantId, integrationId) as scrubbed text."""
    if type(value) is str:
        return value if value in _UNCHANGED else scrub(value)  # known-clean ids: a lookup
    if value is None:
        return ""
    cleaned = clean(value)
    return cleaned if isinstance(cleaned, str) else property_string(cleaned)


@functools.lru_cache(maxsize=64)
def _iso_second(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def _iso_from_ns(now_ns: int) -> str:
    seconds, rest = divmod(now_ns, 1_000_000_000)
    return f"{_iso_second(seconds)}.{rest // 1_000_000:03d}Z"
