"""Retention for the local store: the seed asks for at least 30 days of trend data."""

from __future__ import annotations

import os
import threading

from ._store import TelemetryStore

DEFAULT_DAYS = 30.0


def retention_days() -> float:
    """`TELEMETRY_RETENTION_DAYS`, else 30."""
    try:
        days = float(os.environ.get("TELEMETRY_RETENTION_DAYS") or DEFAULT_DAYS)
    except ValueError:
        return DEFAULT_DAYS
    return days if days > 0 else DEFAULT_DAYS


class RetentionJob:
    """Deletes old rows now and then every `interval_s` on a daemon thread."""

    def __init__(self, store: TelemetryStore, days: float | None = None,
                 interval_s: float = 3600.0) -> None:
        self.store = store
        self.days = days if days is not None else retention_days()
        self.interval_s = interval_s
        self.last_deleted: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> dict[str, int]:
        self.last_deleted = self.store.delete_older_than(self.days)
        return self.last_deleted

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="telemetry-retention",
                                        daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                pass  # a locked or full file: try again next interval
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
