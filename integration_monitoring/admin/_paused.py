"""A paused integration's alerts are silenced without anyone asking.

Every few minutes (the PAUSED_SILENCE_SCHEDULE timer) the job asks which integrations are
paused, the same status question /health answers, and keeps one silence per paused
integration (source `paused-integration`, matchers tenantId and integrationId Equals): it
makes one for an integration newly paused and expires the one of an integration that is no
longer paused, which sends at once what it held if the alert still fires. A partial answer
changes nothing: an integration missing from it may still be paused.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

from ..alerts import Silence, Silencer
from ._service import AdminService

SOURCE = "paused-integration"
#: Who the job's silences are made and ended by, in the audit events.
BY = "integration-monitoring"
#: How long a paused integration's silence is made for; the job makes another if it ends
#: while the integration is still paused.
SPAN = dt.timedelta(days=365)


class PausedUnknown(RuntimeError):
    """The status answer was partial: no silence was made or ended."""


@dataclass
class PausedRun:
    paused: int = 0
    made: int = 0
    ended: int = 0


def silence_paused(service: AdminService, silencer: Silencer,
                   now: dt.datetime | None = None) -> PausedRun:
    now = now or dt.datetime.now(dt.UTC)
    f = replace(service.parse("health", {"status": "paused"}, now), tenants=None)
    answer = service.health(f)
    if answer["partial"]:
        raise PausedUnknown("; ".join(answer["partialReasons"]) or "partial answer")
    paused = {(row["tenantId"], row["integrationId"]): row for row in answer["integrations"]
              if row["status"] == "paused"}
    kept: dict[tuple[str, str], Silence] = {}
    for silence in silencer.deliverer.silences():
        key = _integration(silence)
        if silence.source == SOURCE and key and silence.state(now) != "expired":
            kept[key] = silence
    run = PausedRun(paused=len(paused))
    for key in sorted(paused.keys() - kept.keys()):
        silencer.create(_body(key, paused[key], now), by=BY, tenants=None, source=SOURCE)
        run.made += 1
    for key in sorted(kept.keys() - paused.keys()):
        silencer.expire(kept[key].id, by=BY, tenants=None)
        run.ended += 1
    return run


def _integration(silence: Silence) -> tuple[str, str] | None:
    values = {m.label: m.values for m in silence.matchers if m.operator == "Equals"}
    tenant, integration = values.get("tenantId", ()), values.get("integrationId", ())
    if len(tenant) == 1 and len(integration) == 1:
        return tenant[0], integration[0]
    return None


def _body(key: tuple[str, str], row: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    tenant, integration = key
    since = row.get("statusChangedAt")
    reason = row.get("statusReason")
    comment = (f"{integration} is paused" + (f" since {since}" if since else "")
               + (f" ({reason})" if reason else "")
               + "; its alerts are silenced until it is resumed")
    return {"matchers": [{"label": "tenantId", "values": [tenant]},
                         {"label": "integrationId", "values": [integration]}],
            "endsAt": (now + SPAN).isoformat(), "comment": comment[:1000]}


def run_paused_silences(now: dt.datetime | None = None) -> PausedRun:
    """The timer job, on the configured backend and the relay's own deliverer."""
    from ..alerts import ProcessingRules, default_deliverer
    from ..telemetry import current
    from ._backends import backend_from_settings

    service = AdminService(backend_from_settings(), restatements=True)
    try:
        return silence_paused(service, Silencer(default_deliverer(),
                                                ProcessingRules.from_env()), now)
    finally:
        service.close()
        current().flush()
