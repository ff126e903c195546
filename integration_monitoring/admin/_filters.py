"""Query parameters of the admin endpoints: parsed, validated, and named in every error."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

MAX_RANGE = dt.timedelta(days=31)
LOOKBACK = dt.timedelta(days=30)  # status events and last successful syncs: retention
DEFAULT_WINDOW = dt.timedelta(hours=24)
#: `until` defaults to now rounded down to this, so identical requests share a cache entry.
NOW_GRANULARITY_S = 5
BUCKETS = [dt.timedelta(minutes=m) for m in (1, 5, 15, 30, 60, 180, 360, 720, 1440)]
MAX_BUCKETS = 96

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$")
_ADAPTER = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_ENTITY = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
_WINDOW = re.compile(r"^([0-9]{1,4})(m|h|d)$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}

INTEGRATION_STATUSES = ("active", "paused", "error", "healthy", "degraded", "failing", "stale")
JOB_STATUSES = ("completed", "failed", "running")
ALERT_STATES = ("active", "resolved")


class FilterError(ValueError):
    """A bad query parameter; `parameter` names it."""

    def __init__(self, parameter: str, message: str, code: str = "invalid_parameter") -> None:
        super().__init__(message)
        self.parameter = parameter
        self.code = code


@dataclass(frozen=True)
class Filters:
    since: dt.datetime
    until: dt.datetime
    bucket: dt.timedelta
    tenant_id: str = ""
    integration_id: str = ""
    adapter_type: str = ""
    entity: str = ""
    status: str = ""
    q: str = ""
    limit: int = 100
    #: The tenants the caller may read; None: every tenant (an admin). The default reads
    #: none, so filters that were never scoped to a caller (`_access.scope`) answer nothing.
    tenants: tuple[str, ...] | None = ()
    #: Who asks (`_fairness.caller_key`), for the per-caller limits; never part of a query.
    caller: str = ""

    def aligned(self) -> Filters:
        """`since` moved back to a bucket boundary: streams whose windows start anywhere in
        the same bucket then ask identical questions and share one answer."""
        step = int(self.bucket.total_seconds())
        start = int(self.since.timestamp()) // step * step
        return replace(self, since=dt.datetime.fromtimestamp(start, dt.UTC))

    def values(self) -> dict[str, Any]:
        """The prelude's values (every query gets all of them)."""
        return {
            "_since": self.since, "_until": self.until, "_lookback_since": self.until - LOOKBACK,
            "_bucket": self.bucket, "_tenant": self.tenant_id,
            "_integration": self.integration_id, "_adapter": self.adapter_type,
            "_entity": self.entity, "_status": self.status, "_q": self.q,
            "_all_tenants": self.tenants is None, "_tenants": self.tenants or (),
        }

    def describe(self) -> dict[str, Any]:
        scope = {} if self.tenants is None else {"tenants": list(self.tenants)}
        return {
            **scope,
            "since": self.since, "until": self.until,
            "bucketSeconds": int(self.bucket.total_seconds()),
            "filters": {k: v for k, v in {
                "tenantId": self.tenant_id, "integrationId": self.integration_id,
                "adapterType": self.adapter_type, "entity": self.entity,
                "status": self.status, "q": self.q}.items() if v},
        }


@dataclass(frozen=True)
class Endpoint:
    """Which parameters an endpoint takes, and its closed set of statuses."""

    allowed: frozenset[str]
    statuses: tuple[str, ...] = ()
    default_limit: int = 100


COMMON = frozenset({"tenantId", "integrationId", "adapterType", "entity", "since", "until",
                    "window"})
ENDPOINTS = {
    "stats": Endpoint(COMMON | {"limit"}, default_limit=10),
    "health": Endpoint(COMMON | {"status", "q"}, INTEGRATION_STATUSES),
    "sync-activity": Endpoint(COMMON | {"status", "q", "limit"}, JOB_STATUSES, 100),
    "errors": Endpoint(COMMON | {"q", "limit"}, default_limit=50),
    "performance": Endpoint(COMMON | {"limit"}, default_limit=50),
    "alerts": Endpoint(COMMON | {"status", "q", "limit"}, ALERT_STATES),
    "stream": Endpoint(COMMON),
}


def parse_filters(endpoint: str, params: Mapping[str, str] | Any,
                  now: dt.datetime | None = None) -> Filters:
    """Validate query parameters for an endpoint; raises FilterError naming the parameter."""
    spec = ENDPOINTS[endpoint]
    items = list(params.multi_items()) if hasattr(params, "multi_items") else list(
        params.items())
    seen: dict[str, str] = {}
    for key, value in items:
        if key not in spec.allowed:
            raise FilterError(key, f"unknown parameter {key!r}; this endpoint takes "
                              f"{', '.join(sorted(spec.allowed))}", "unknown_parameter")
        if key in seen:
            raise FilterError(key, f"{key} is given more than once")
        seen[key] = value
    now = now or dt.datetime.now(dt.UTC)
    until = _time(seen, "until") or _floor(now)
    if "window" in seen and "since" in seen:
        raise FilterError("window", "give either window or since, not both")
    since = _time(seen, "since") or until - _window(seen)
    if since >= until:
        raise FilterError("since", "since must be before until")
    if until - since > MAX_RANGE:
        raise FilterError("since", "the time range is at most 31 days")
    status = seen.get("status", "")
    if status and status not in spec.statuses:
        raise FilterError("status", f"status must be one of {', '.join(spec.statuses)}")
    return Filters(
        since=since, until=until, bucket=bucket_for(until - since),
        tenant_id=_match(seen, "tenantId", _ID), integration_id=_match(seen, "integrationId", _ID),
        adapter_type=_match(seen, "adapterType", _ADAPTER), entity=_match(seen, "entity", _ENTITY),
        status=status, q=_text(seen), limit=_limit(seen, spec.default_limit),
    )


def bucket_for(span: dt.timedelta) -> dt.timedelta:
    """The smallest bucket that splits the range into at most 96 points."""
    for bucket in BUCKETS:
        if span / bucket <= MAX_BUCKETS:
            return bucket
    return BUCKETS[-1]


def _floor(now: dt.datetime) -> dt.datetime:
    seconds = int(now.timestamp()) // NOW_GRANULARITY_S * NOW_GRANULARITY_S
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def _time(seen: dict[str, str], name: str) -> dt.datetime | None:
    value = seen.get(name)
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace(
            "z", "+00:00"))
    except ValueError:
        raise FilterError(name, f"{name} must be an ISO 8601 time such as "
                          "2025-12-20T10:30:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    if not dt.datetime(2000, 1, 1, tzinfo=dt.UTC) <= moment <= dt.datetime(
            2100, 1, 1, tzinfo=dt.UTC):
        raise FilterError(name, f"{name} is out of range")
    return moment.astimezone(dt.UTC)


def _window(seen: dict[str, str]) -> dt.timedelta:
    value = seen.get("window")
    if value is None:
        return DEFAULT_WINDOW
    match = _WINDOW.fullmatch(value.strip())
    if not match:
        raise FilterError("window", "window must look like 15m, 6h or 7d")
    span = dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    if not dt.timedelta(minutes=1) <= span <= MAX_RANGE:
        raise FilterError("window", "window must be between 1m and 31d")
    return span


def _match(seen: dict[str, str], name: str, pattern: re.Pattern[str]) -> str:
    value = seen.get(name, "")
    if value and not pattern.fullmatch(value):
        raise FilterError(name, f"{name} {value[:40]!r} is not a valid identifier: letters, "
                          "digits and . _ - : @ / only, starting with a letter or digit")
    return value


def _text(seen: dict[str, str]) -> str:
    value = seen.get("q", "")
    if len(value) > 200:
        raise FilterError("q", "q is at most 200 characters")
    if _CONTROL.search(value):
        raise FilterError("q", "q must not contain control characters")
    return value


def _limit(seen: dict[str, str], default: int) -> int:
    value = seen.get("limit")
    if value is None:
        return default
    if not re.fullmatch(r"[0-9]{1,4}", value.strip()):
        raise FilterError("limit", "limit must be a whole number from 1 to 1000")
    limit = int(value)
    if not 1 <= limit <= 1000:
        raise FilterError("limit", "limit must be a whole number from 1 to 1000")
    return limit
