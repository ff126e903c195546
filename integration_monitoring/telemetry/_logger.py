"""The structured logger adapters and sync services call."""

from __future__ import annotations

from typing import Any

from ._context import bind
from ._core import Telemetry, camel
from ._current import current


class ServiceLogger:
    """A logger bound to one service name, writing events in the seed's schema.

    Keyword arguments become metadata; snake_case names are written in the seed's
    camelCase (`record_count=5` -> `"recordCount": 5`).
    """

    __slots__ = ("_telemetry", "service")

    def __init__(self, service: str, telemetry: Telemetry | None = None) -> None:
        self.service = service
        self._telemetry = telemetry

    def info(self, operation: str, /, *, tenant_id: str | None = None,
             integration_id: str | None = None, **metadata: Any) -> dict[str, Any] | None:
        """Normal operations: sync started, records fetched."""
        return self.log("info", operation, tenant_id, integration_id, metadata)

    def warn(self, operation: str, /, *, tenant_id: str | None = None,
             integration_id: str | None = None, **metadata: Any) -> dict[str, Any] | None:
        """Recoverable issues: rate limit warnings, retries."""
        return self.log("warn", operation, tenant_id, integration_id, metadata)

    warning = warn

    def error(self, operation: str, /, *, tenant_id: str | None = None,
              integration_id: str | None = None, **metadata: Any) -> dict[str, Any] | None:
        """Failures requiring attention: connection failures, API errors."""
        return self.log("error", operation, tenant_id, integration_id, metadata)

    def log(self, level: str, operation: str, /, tenant_id: str | None = None,
            integration_id: str | None = None,
            metadata: dict[str, Any] | None = None) -> dict[str, Any] | None:
        telemetry = self._telemetry or current()
        try:
            if metadata:
                metadata = {camel(key) if isinstance(key, str) else key: value
                            for key, value in metadata.items()}
        except Exception:  # not a mapping: keep it, the event pipeline copes or counts
            pass
        return telemetry.emit(level, self.service, operation, tenant_id, integration_id,
                              metadata)

    bind = staticmethod(bind)


def get_logger(service: str, telemetry: Telemetry | None = None) -> ServiceLogger:
    """A structured logger for `service` (e.g. `salesforce-adapter`, `sync-task-service`)."""
    return ServiceLogger(service, telemetry)
