"""Plain stdlib `logging` calls become seed events, the same as the structured logger's."""

from __future__ import annotations

import logging
from typing import Any

from ._core import Telemetry, camel
from ._current import current

#: Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "taskName"}
_FIELDS = {"service", "operation", "tenantId", "tenant_id", "integrationId", "integration_id",
           "metadata"}

#: Loggers whose records are plumbing (HTTP clients, exporters, servers), not events;
#: forwarding them would also loop: an exporter logging about its own export.
DEFAULT_EXCLUDED = ("azure", "opentelemetry", "urllib3", "uvicorn", "asyncio", "httpx",
                    "httpcore", "integration_monitoring.internal")


def level_name(levelno: int) -> str | None:
    """The seed's level for a stdlib level; DEBUG and below have none."""
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warn"
    if levelno >= logging.INFO:
        return "info"
    return None


class SeedLogHandler(logging.Handler):
    """Forwards stdlib records as seed events.

    `extra={"operation": ..., "tenantId": ..., "integrationId": ..., "service": ...}` fill
    the top level (snake_case names work too); `extra={"metadata": {...}}` and every other
    extra key become metadata. Without `operation` the message is the operation; the
    service defaults to the logger's name. An exception attached to the record becomes
    `metadata.error` and `metadata.errorType`.
    """

    def __init__(self, telemetry: Telemetry | None = None, *,
                 exclude: tuple[str, ...] = DEFAULT_EXCLUDED, level: int = logging.INFO) -> None:
        super().__init__(level)
        self._telemetry = telemetry
        self._exclude = tuple(exclude)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = level_name(record.levelno)
            if level is None or self._excluded(record.name):
                return
            fields = record.__dict__
            metadata: dict[str, Any] = {}
            nested = fields.get("metadata")
            if isinstance(nested, dict):
                metadata.update(nested)
            for key, value in fields.items():
                if key not in _STANDARD and key not in _FIELDS:
                    metadata[camel(key)] = value
            message = record.getMessage()
            operation = fields.get("operation") or message
            if operation != message and message:
                metadata.setdefault("message", message)
            if record.exc_info and record.exc_info[1] is not None:
                exc = record.exc_info[1]
                metadata.setdefault("error", str(exc) or type(exc).__name__)
                metadata.setdefault("errorType", type(exc).__name__)
            telemetry = self._telemetry or current()
            telemetry.emit(
                level,
                fields.get("service") or record.name,
                operation,
                fields.get("tenantId", fields.get("tenant_id")),
                fields.get("integrationId", fields.get("integration_id")),
                metadata,
            )
        except Exception:  # logging must never raise into the caller
            self.handleError(record)

    def _excluded(self, name: str) -> bool:
        return any(name == prefix or name.startswith(prefix + ".") for prefix in self._exclude)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - stdlib name
        # Count instead of printing a traceback to stderr for every bad record.
        try:
            (self._telemetry or current())._count("events_dropped")
        except Exception:
            pass
