"""The process's current Telemetry, which the module-level API writes through."""

from __future__ import annotations

import threading

from ._core import Telemetry

_current: Telemetry | None = None
_lock = threading.Lock()


def current() -> Telemetry:
    """The Telemetry in use: the configured one, else one over the global providers."""
    global _current
    if _current is None:
        with _lock:
            if _current is None:
                _current = Telemetry()
    return _current


def use(telemetry: Telemetry | None) -> Telemetry | None:
    """Make `telemetry` current (None: back to the default); returns the previous one."""
    global _current
    with _lock:
        previous, _current = _current, telemetry
    return previous
