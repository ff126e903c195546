"""Query parameters of the admin endpoints: parsed, validated, and named in every error."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

MAX_RANGE = dt.timedelta(days=31)
LOOKBACK = dt.timedelta(days=30)  # status events and last successful syncs: retention
#: `until` defaults to now rounded down to this, so identical requests share a cache entry.
NOW_GRANULARITY_S = 5
BUCKETS = [dt.timedelta(minutes=m) for m in (1, 5, 15, 30, 60, 180, 360, 720, 1440)]
MAX_BUCKETS = 96

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
_DEFAULT_WINDOW = "24h"

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
    #: The window ends at "now" (neither `since` nor `until` given): an answer for the
    #: same window a step or two earlier may stand in while this one is asked.
    live: bool = False
    #: Where the lifecycle's lookback begins: a completed restatement (`_restatement.py`),
    #: else (None) the whole retention before `until`.
    lookback_since: dt.datetime | None = None

    def aligned(self) -> Filters:
        """`since` moved back to a bucket boundary: streams whose windows start anywhere in
        the same bucket then ask identical questions and share one answer."""
        step = int(self.bucket.total_seconds())
        start = int(self.since.timestamp()) // step * step
        return replace(self, since=dt.datetime.fromtimestamp(start, dt.UTC))

    def earlier(self, seconds: int) -> Filters:
        """The same window ending `seconds` earlier."""
        by = dt.timedelta(seconds=seconds)
        return replace(self, since=self.since - by, until=self.until - by)

    def values(self) -> dict[str, Any]:
        """The prelude's values (every query gets all of them)."""
        return {
            "_since": self.since, "_until": self.until, "_lookback_since": self.lookback(),
            "_bucket": self.bucket, "_tenant": self.tenant_id,
            "_integration": self.integration_id, "_adapter": self.adapter_type,
            "_entity": self.entity, "_status": self.status, "_q": self.q,
            "_all_tenants": self.tenants is None, "_tenants": self.tenants or (),
        }

    def lookback(self) -> dt.datetime:
        """Where the lifecycle's lookback begins."""
        if self.lookback_since is not None and \
                self.until - LOOKBACK <= self.lookback_since <= self.until:
            return self.lookback_since
        return self.until - LOOKBACK

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


@dataclass(frozen=True)
class Parameter:
    """A query parameter, defined once: the API document's description and schema come from
    the same fields its reader checks a value against. The reader also applies the rules a
    schema cannot say (window's 1m..31d, q's control characters), and strips the spaces
    around times, windows and limits."""

    name: str
    description: str
    reader: Callable[[Parameter, str, Endpoint], Any]
    type: str = "string"
    pattern: re.Pattern[str] | None = None
    format: str | None = None
    max_length: int | None = None
    minimum: int | None = None
    maximum: int | None = None
    #: The values are the endpoint's `statuses`.
    closed: bool = False
    #: The value used when the parameter is not given, as a caller would write it.
    default: str | None = None

    def read(self, value: str, endpoint: Endpoint) -> Any:
        """The checked value; FilterError naming the parameter when it is wrong."""
        return self.reader(self, value, endpoint)

    def document(self, endpoint: Endpoint) -> dict[str, Any]:
        """The parameter as the endpoint's OpenAPI operation lists it."""
        rules = {"pattern": self.pattern.pattern if self.pattern else None,
                 "format": self.format, "maxLength": self.max_length,
                 "minimum": self.minimum, "maximum": self.maximum,
                 "enum": list(endpoint.statuses) if self.closed else None}
        return {"name": self.name, "in": "query", "required": False,
                "description": self.description,
                "schema": {"type": self.type,
                           **{key: rule for key, rule in rules.items() if rule is not None}}}


def _identifier(parameter: Parameter, value: str, _: Endpoint) -> str:
    if value and not parameter.pattern.fullmatch(value):
        raise FilterError(parameter.name, f"{parameter.name} {value[:40]!r} is not a valid "
                          "identifier: letters, digits and . _ - : @ / only, starting with a "
                          "letter or digit")
    return value


def _time(parameter: Parameter, value: str, _: Endpoint) -> dt.datetime:
    name = parameter.name
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


def _window(parameter: Parameter, value: str, _: Endpoint) -> dt.timedelta:
    match = parameter.pattern.fullmatch(value.strip())
    if not match:
        raise FilterError("window", "window must look like 15m, 6h or 7d")
    span = dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    if not dt.timedelta(minutes=1) <= span <= MAX_RANGE:
        raise FilterError("window", "window must be between 1m and 31d")
    return span


def _status(_: Parameter, value: str, endpoint: Endpoint) -> str:
    if value and value not in endpoint.statuses:
        raise FilterError("status", f"status must be one of {', '.join(endpoint.statuses)}")
    return value


def _text(parameter: Parameter, value: str, _: Endpoint) -> str:
    if len(value) > parameter.max_length:
        raise FilterError("q", f"q is at most {parameter.max_length} characters")
    if _CONTROL.search(value):
        raise FilterError("q", "q must not contain control characters")
    return value


def _count(parameter: Parameter, value: str, _: Endpoint) -> int:
    wrong = FilterError(parameter.name, f"{parameter.name} must be a whole number from "
                        f"{parameter.minimum} to {parameter.maximum}")
    if not re.fullmatch(r"[0-9]{1,4}", value.strip()):
        raise wrong
    if not parameter.minimum <= int(value) <= parameter.maximum:
        raise wrong
    return int(value)


#: Every query parameter, in the order the API document lists them.
PARAMETERS = {p.name: p for p in (
    Parameter("tenantId", "only this tenant", _identifier, pattern=_ID),
    Parameter("integrationId", "only this integration", _identifier, pattern=_ID),
    Parameter("adapterType", "only this adapter type (salesforce, hubspot, ...)", _identifier,
              pattern=re.compile(r"^[a-z][a-z0-9_-]{0,63}$")),
    Parameter("entity", "only this entity (contact, deal, ...)", _identifier,
              pattern=re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")),
    Parameter("since", "start of the range, ISO 8601 (default: until - window)", _time,
              format="date-time"),
    Parameter("until", "end of the range, ISO 8601 (default: now)", _time, format="date-time"),
    Parameter("window", "length of the range when since is not given: 15m, 6h, 7d (default "
              f"{_DEFAULT_WINDOW}, at most 31d)", _window,
              pattern=re.compile(r"^([0-9]{1,4})(m|h|d)$"), default=_DEFAULT_WINDOW),
    Parameter("status", "only this status", _status, closed=True),
    Parameter("q", "text to find in errors, ids and task ids", _text, max_length=200),
    Parameter("limit", "how many rows in lists", _count, type="integer", minimum=1,
              maximum=1000),
)}


def openapi_parameters(endpoint: str) -> list[dict[str, Any]]:
    """The endpoint's query parameters for its OpenAPI operation."""
    spec = ENDPOINTS[endpoint]
    return [p.document(spec) for p in PARAMETERS.values() if p.name in spec.allowed]


def definitions() -> dict[str, Any]:
    """What the dashboard builds its filters from: each endpoint's parameters as the API
    document lists them, and the defaults the document gives only in words."""
    return {"endpoints": {endpoint: openapi_parameters(endpoint) for endpoint in ENDPOINTS},
            "defaults": {p.name: p.default for p in PARAMETERS.values() if p.default}}


def parse_filters(endpoint: str, params: Mapping[str, str] | Any,
                  now: dt.datetime | None = None, step_s: int = NOW_GRANULARITY_S) -> Filters:
    """Validate query parameters for an endpoint; raises FilterError naming the parameter.
    A default `until` is now rounded down to `step_s` (the backend's `until_step_s`)."""
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

    read: dict[str, Any] = {}

    def given(name: str, absent: Any = "") -> Any:
        if name not in read:
            parameter = PARAMETERS[name]
            value = seen.get(name, parameter.default)
            read[name] = absent if value is None else parameter.read(value, spec)
        return read[name]

    now = now or dt.datetime.now(dt.UTC)
    until = given("until", None) or _floor(now, step_s)
    if "window" in seen and "since" in seen:
        raise FilterError("window", "give either window or since, not both")
    since = given("since", None) or until - given("window")
    if since >= until:
        raise FilterError("since", "since must be before until")
    if until - since > MAX_RANGE:
        raise FilterError("since", "the time range is at most 31 days")
    filters = Filters(
        since=since, until=until, bucket=bucket_for(until - since), status=given("status"),
        tenant_id=given("tenantId"), integration_id=given("integrationId"),
        adapter_type=given("adapterType"), entity=given("entity"),
        q=given("q"), limit=given("limit", spec.default_limit),
        live="until" not in seen and "since" not in seen,
    )
    for name in seen:  # every value given is checked by its definition, used or not
        given(name)
    return filters


def bucket_for(span: dt.timedelta) -> dt.timedelta:
    """The smallest bucket that splits the range into at most 96 points."""
    for bucket in BUCKETS:
        if span / bucket <= MAX_BUCKETS:
            return bucket
    return BUCKETS[-1]


def _floor(now: dt.datetime, step_s: int) -> dt.datetime:
    seconds = int(now.timestamp()) // step_s * step_s
    return dt.datetime.fromtimestamp(seconds, dt.UTC)
