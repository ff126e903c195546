"""The daily restatement of every integration's lifecycle, and where the status question's
lookback may begin because of it.

Without it, an integration's status is the last of its status events over the whole
retention (30 days), so every status question reads 30 days of lifecycle events, most of
them successful syncs. Once a day the restatement job asks `integration_state` (each
integration's status, interval, connection, last successful sync and when it was last
heard of, as of an hour ago) and writes one `integration.status_restated` event per
integration (and a `connection.status_restated` for each that has a connection status),
with the properties of the events they stand for, then
`integration.restatement_completed`. A status question may then begin its lookback at the
latest completed restatement: the events since say everything the whole retention would
(`_lifecycle.kql` orders a restatement among them by the moment it describes). Each job
reads back only to the restatement before it.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Any

from .._time import naive_utc
from ._backends import Backend
from ._filters import LOOKBACK, Filters

RESTATED = "integration.status_restated"
CONNECTION_RESTATED = "connection.status_restated"
COMPLETED = "integration.restatement_completed"
#: The service that writes them.
SERVICE = "integration-monitoring"
#: Events reach Log Analytics minutes after they happen: a restatement describes the moment
#: this long before it runs, and what happened after that is read from the events.
SETTLE = dt.timedelta(hours=1)
#: A restatement is read from this long after it was written (its events have all arrived).
ARRIVAL = dt.timedelta(minutes=15)
#: How often the completed restatements are looked up again; after a failed look, a minute.
REFRESH_S = 600.0
RETRY_S = 60.0


def _moment(value: Any) -> dt.datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return naive_utc(value).replace(tzinfo=dt.UTC)


def _text(value: Any) -> str | None:
    """A moment as restated: ISO 8601 to the microsecond, as the workspace stores times."""
    moment = _moment(value)
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Restatements:
    """The completed restatements a backend holds, looked up at most every `REFRESH_S` (on
    the backend itself: one question in ten minutes needs no sharing)."""

    def __init__(self, backend: Backend,
                 clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self._backend = backend
        self._clock = clock
        self._now = now
        self._known: list[tuple[dt.datetime, dt.datetime]] = []  # (written, restated)
        self._next = 0.0
        self._lock = threading.Lock()

    def lookback(self, until: dt.datetime) -> dt.datetime | None:
        """The latest restatement a question ending at `until` may begin its lookback at:
        written (and arrived) by then, within the retention; None: the whole retention."""
        until = naive_utc(until).replace(tzinfo=dt.UTC)
        fits = [restated for written, restated in self.known()
                if written <= until - ARRIVAL and until - LOOKBACK <= restated <= until]
        return max(fits, default=None)

    def known(self) -> list[tuple[dt.datetime, dt.datetime]]:
        with self._lock:
            if self._clock() < self._next:
                return self._known
            self._next = self._clock() + RETRY_S  # one look at a time; a failure waits
        now = self._now()
        f = Filters(since=now - dt.timedelta(hours=1), until=now,
                    bucket=dt.timedelta(hours=1), tenants=None)
        try:
            rows = self._backend.ask("restatements", f.values()).dicts()
            known = [(w, r) for w, r in ((_moment(row["writtenAt"]), _moment(row["restatedAt"]))
                                         for row in rows) if w is not None and r is not None]
        except Exception:
            return self._known  # the whole retention is read meanwhile: slower, still right
        with self._lock:
            self._known = known
            self._next = self._clock() + REFRESH_S
        return known

    def forget(self) -> None:
        """Look again on the next question (a restatement was just written)."""
        with self._lock:
            self._next = 0.0


class RestatementIncomplete(RuntimeError):
    """The job did not write a whole restatement, so it wrote no `COMPLETED` either: status
    questions go on reading back to the one before (or the whole retention)."""


def restate_integrations(backend: Backend, restatements: Restatements,
                         telemetry: Any = None, now: dt.datetime | None = None) -> int:
    """Write every integration's lifecycle as of `SETTLE` before `now`, reading back to the
    restatement before, and then say it is complete; returns how many were restated.

    Raises `RestatementIncomplete` (having said nothing is complete) when the engine gave a
    partial answer or the events could not all be written: a restatement missing some
    integrations would hide them from every status question after it."""
    from ..telemetry import current, get_logger

    t = telemetry or current()
    as_of = naive_utc(now or dt.datetime.now(dt.UTC)).replace(tzinfo=dt.UTC) - SETTLE
    f = Filters(since=as_of - dt.timedelta(hours=1), until=as_of,
                bucket=dt.timedelta(hours=1), tenants=None,
                lookback_since=restatements.lookback(as_of))
    answer = backend.ask("integration_state", f.values())
    if answer.partial:
        raise RestatementIncomplete(f"partial answer: {'; '.join(answer.partial)}")
    rows = answer.dicts()
    log = get_logger(SERVICE, t)
    restated_at = _text(as_of)
    for row in rows:
        ids = {"tenant_id": row["tenantId"], "integration_id": row["integrationId"],
               "adapterType": row["adapterType"] or None, "restatedAt": restated_at}
        log.info(RESTATED, **ids, status=row["status"] or None,
                 reason=row["statusReason"] or None,
                 statusChangedAt=_text(row["statusChangedAt"]),
                 syncIntervalMinutes=row["expectedIntervalMinutes"],
                 lastSuccessfulSync=_text(row["lastSuccessfulSync"]),
                 lastSeenAt=_text(row["lastSeenAt"]))
        if row["connectionStatus"]:
            log.info(CONNECTION_RESTATED, **ids, status=row["connectionStatus"],
                     reason=row["connectionReason"] or None)
    if not t.flush():
        raise RestatementIncomplete("the restated events could not all be written")
    log.info(COMPLETED, restatedAt=restated_at, integrations=len(rows))
    t.flush()
    restatements.forget()
    return len(rows)


def run_restatement(backend: Backend | None = None, telemetry: Any = None,
                    now: dt.datetime | None = None) -> int:
    """The timer job: restate on the configured backend (Log Analytics in Azure)."""
    from ._backends import backend_from_settings

    backend = backend or backend_from_settings()
    return restate_integrations(backend, Restatements(backend), telemetry, now)
