"""Silences: "do not notify anyone about alerts like these, between then and then".

    silence = Silence.parse(body, created_by="ops@example.com", now=now)   # SilenceError
    silence.matches(labels_of(notice))     # every matcher holds
    silence.state(now)                     # "active" | "pending" | "expired"
    silence.window(now)                    # the window in force or next, or None

A silence has matchers on an alert's labels (LABELS), a start and an end, and optionally a
weekly window (days and local times in a time zone) that it holds only within, such as
"Saturdays 02:00-04:00 Europe/Berlin" for an adapter's announced maintenance. A weekly window
follows the zone's clock, so it keeps its local hours across a daylight-saving change.

The matcher operators and the weekly recurrence are those of Azure Monitor's alert
processing rules (Equals, NotEquals, Contains, DoesNotContain; a Weekly recurrence with
daysOfWeek, startTime and endTime), so a silence becomes one such rule in Azure.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ._payload import AlertNotice

#: The labels a matcher may name: the alert's rule and severity, and its dimensions.
LABELS = ("ruleId", "severity", "tenantId", "integrationId", "adapterType", "queue")
OPERATORS = ("Equals", "NotEquals", "Contains", "DoesNotContain")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
STATES = ("active", "pending", "expired")
#: Who made a silence: a person through the API, or the app for a paused integration.
SOURCES = ("user", "paused-integration")
MAX_MATCHERS = 16
MAX_VALUES = 50
MAX_VALUE_LENGTH = 200
MAX_COMMENT = 1000
#: The longest silence: a longer one is a rule change, not a silence.
MAX_SPAN = dt.timedelta(days=366)
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_VALUE = re.compile(r"^[^\x00-\x1f\x7f]*$")


class SilenceError(ValueError):
    """A silence that cannot be made; `field` is the path of what is wrong in the request."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Matcher:
    """One condition on a label: Equals / NotEquals any of `values` exactly, Contains /
    DoesNotContain any of them as a substring, ignoring case. A label the alert lacks is
    the empty text."""

    label: str
    operator: str
    values: tuple[str, ...]

    def holds(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.label) or ""
        if self.operator in ("Equals", "NotEquals"):
            found = value in self.values
        else:
            found = any(v.casefold() in value.casefold() for v in self.values)
        return found if self.operator in ("Equals", "Contains") else not found

    def record(self) -> dict[str, Any]:
        return {"label": self.label, "operator": self.operator, "values": list(self.values)}


@dataclass(frozen=True)
class Weekly:
    """Within [start, end) local time on each of `days`; an end at or before the start runs
    past midnight into the next day."""

    days: tuple[str, ...]
    start: dt.time
    end: dt.time

    def record(self) -> dict[str, Any]:
        return {"days": list(self.days), "startTime": self.start.strftime("%H:%M"),
                "endTime": self.end.strftime("%H:%M")}


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: dt.datetime
    ends_at: dt.datetime
    created_by: str
    comment: str
    created_at: dt.datetime
    time_zone: str = "UTC"
    weekly: Weekly | None = None
    expired_at: dt.datetime | None = None
    source: str = "user"
    #: The stored version this copy was read at (None before it is stored).
    etag: str | None = field(default=None, compare=False)

    # -- what it holds back -----------------------------------------------------------------

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.holds(labels) for m in self.matchers)

    def holds(self, labels: Mapping[str, str], now: dt.datetime) -> bool:
        """Whether this silence stops a notification with these labels at `now`."""
        return self.state(now) == "active" and self.matches(labels)

    @property
    def ended_at(self) -> dt.datetime:
        """When it stops for good: its end, or when it was expired early."""
        return min(self.ends_at, self.expired_at) if self.expired_at else self.ends_at

    def state(self, now: dt.datetime) -> str:
        if now >= self.ended_at:
            return "expired"
        window = self.window(now)
        if window is None:
            return "expired"
        return "active" if window[0] <= now else "pending"

    def window(self, now: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
        """The window in force at `now`, else the next one; None when there is no more."""
        begin, end = max(self.starts_at, now), self.ended_at
        if begin >= end:
            return None
        if self.weekly is None:
            return self.starts_at, end
        for start, stop in _occurrences(self.weekly, ZoneInfo(self.time_zone), begin, end):
            start, stop = max(start, self.starts_at), min(stop, end)
            if stop > now and start < stop:
                return start, stop
        return None

    # -- storage and the API ----------------------------------------------------------------

    def record(self) -> dict[str, Any]:
        """JSON-ready, as stored and as the API shows it (with `state` and `window` added by
        `describe`)."""
        return {
            "id": self.id, "matchers": [m.record() for m in self.matchers],
            "startsAt": _text(self.starts_at), "endsAt": _text(self.ends_at),
            "timeZone": self.time_zone,
            "weekly": self.weekly.record() if self.weekly else None,
            "createdBy": self.created_by, "comment": self.comment,
            "createdAt": _text(self.created_at),
            "expiredAt": _text(self.expired_at) if self.expired_at else None,
            "source": self.source,
        }

    def describe(self, now: dt.datetime) -> dict[str, Any]:
        window = self.window(now)
        return {**self.record(), "state": self.state(now),
                "window": {"startsAt": _text(window[0]), "endsAt": _text(window[1])}
                if window else None}

    @classmethod
    def from_record(cls, record: Mapping[str, Any], etag: str | None = None) -> Silence:
        weekly = record.get("weekly")
        return cls(
            id=record["id"],
            matchers=tuple(Matcher(m["label"], m["operator"], tuple(m["values"]))
                           for m in record["matchers"]),
            starts_at=_time(record["startsAt"]), ends_at=_time(record["endsAt"]),
            created_by=record.get("createdBy") or "", comment=record.get("comment") or "",
            created_at=_time(record["createdAt"]), time_zone=record.get("timeZone") or "UTC",
            weekly=Weekly(tuple(weekly["days"]), _clock(weekly["startTime"]),
                          _clock(weekly["endTime"])) if weekly else None,
            expired_at=_time(record["expiredAt"]) if record.get("expiredAt") else None,
            source=record.get("source") or "user", etag=etag)

    def expire(self, now: dt.datetime) -> Silence:
        return replace(self, expired_at=min(now, self.ended_at))

    @classmethod
    def parse(cls, body: Any, *, created_by: str, now: dt.datetime,
              source: str = "user") -> Silence:
        """A new silence from an API request body; SilenceError names what is wrong.

        {"matchers": [{"label", "operator" (default Equals), "values" | "value"}],
         "startsAt" (default now), "endsAt", "timeZone" (default UTC),
         "weekly": {"days", "startTime", "endTime"} | null, "comment"}
        """
        if not isinstance(body, dict):
            raise SilenceError("body", "the body must be a JSON object")
        unknown = sorted(set(body) - {"matchers", "startsAt", "endsAt", "timeZone", "weekly",
                                      "comment", "createdBy"})
        if unknown:
            raise SilenceError(unknown[0], f"unknown field {unknown[0]!r}")
        matchers = _matchers(body.get("matchers"))
        zone = body.get("timeZone", "UTC")
        if not isinstance(zone, str) or not zone or len(zone) > 64:
            raise SilenceError("timeZone", "timeZone must be an IANA time zone name")
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SilenceError("timeZone", f"unknown time zone {zone!r} (an IANA name such as "
                                           "Europe/Berlin)") from None
        now = now.astimezone(dt.UTC).replace(microsecond=0)  # stored to the second
        starts_at = _moment(body, "startsAt") if body.get("startsAt") is not None else now
        if "endsAt" not in body:
            raise SilenceError("endsAt", "endsAt is required")
        ends_at = _moment(body, "endsAt")
        if ends_at <= starts_at:
            raise SilenceError("endsAt", "endsAt must be after startsAt")
        if ends_at <= now:
            raise SilenceError("endsAt", "endsAt is in the past: the silence would never hold")
        if ends_at - starts_at > MAX_SPAN:
            raise SilenceError("endsAt", f"a silence lasts at most {MAX_SPAN.days} days")
        weekly = _weekly(body.get("weekly"))
        comment = body.get("comment", "")
        if not isinstance(comment, str) or not comment.strip():
            raise SilenceError("comment", "say why in comment: the next on-call reads it")
        if len(comment) > MAX_COMMENT:
            raise SilenceError("comment", f"comment is longer than {MAX_COMMENT} characters")
        silence = cls(id=str(uuid.uuid4()), matchers=matchers, starts_at=starts_at,
                      ends_at=ends_at, created_by=created_by, comment=comment.strip(),
                      created_at=now, time_zone=zone, weekly=weekly, source=source)
        if silence.window(now) is None:
            raise SilenceError("weekly", "the weekly window never falls between startsAt and "
                                         "endsAt")
        return silence


def labels_of(notice: AlertNotice) -> dict[str, str]:
    """An alert's labels as matchers see them."""
    dims = notice.dimensions
    return {"ruleId": notice.rule_id, "severity": notice.severity_name,
            **{k: str(dims[k]) for k in ("tenantId", "integrationId", "adapterType", "queue")
               if dims.get(k)}}


def silencing(silences: Iterable[Silence], labels: Mapping[str, str],
              now: dt.datetime) -> Silence | None:
    """The silence that stops a notification with these labels now (the one that ends last),
    or None."""
    holding = [s for s in silences if s.holds(labels, now)]
    return max(holding, key=lambda s: (s.ended_at, s.id)) if holding else None


def tenants_named(silence: Silence) -> set[str] | None:
    """The tenants a silence is limited to (an Equals matcher on tenantId), or None when it
    may hold for any tenant."""
    limits = [set(m.values) for m in silence.matchers
              if m.label == "tenantId" and m.operator == "Equals"]
    if not limits:
        return None
    return set.intersection(*limits)


# -- parsing ----------------------------------------------------------------------------------


def _matchers(raw: Any) -> tuple[Matcher, ...]:
    if not isinstance(raw, list) or not raw:
        raise SilenceError("matchers", "matchers must be a non-empty list: a silence of every "
                                       "alert is not a silence, it is switching alerts off")
    if len(raw) > MAX_MATCHERS:
        raise SilenceError("matchers", f"at most {MAX_MATCHERS} matchers")
    out = []
    for i, entry in enumerate(raw):
        where = f"matchers[{i}]"
        if not isinstance(entry, dict):
            raise SilenceError(where, f"{where} must be an object with label, operator, values")
        unknown = sorted(set(entry) - {"label", "operator", "values", "value"})
        if unknown:
            raise SilenceError(f"{where}.{unknown[0]}", f"unknown field {unknown[0]!r}")
        label = entry.get("label")
        if label not in LABELS:
            raise SilenceError(f"{where}.label", f"label must be one of {', '.join(LABELS)}")
        operator = entry.get("operator", "Equals")
        if operator not in OPERATORS:
            raise SilenceError(f"{where}.operator",
                               f"operator must be one of {', '.join(OPERATORS)}")
        if "values" in entry and "value" in entry:
            raise SilenceError(f"{where}.value", "give values or value, not both")
        values = entry["values"] if "values" in entry else [entry.get("value")]
        if not isinstance(values, list) or not values or len(values) > MAX_VALUES:
            raise SilenceError(f"{where}.values", f"values must be a list of 1 to {MAX_VALUES} "
                                                  "texts")
        for value in values:
            if not isinstance(value, str) or not value or len(value) > MAX_VALUE_LENGTH \
                    or not _VALUE.match(value):
                raise SilenceError(f"{where}.values", "each value must be a non-empty text of "
                                   f"at most {MAX_VALUE_LENGTH} printable characters")
        if label == "severity" and operator in ("Equals", "NotEquals"):
            bad = [v for v in values if v not in ("Sev0", "Sev1", "Sev2", "Sev3", "Sev4")]
            if bad:
                raise SilenceError(f"{where}.values", f"severity is Sev0..Sev4, not {bad[0]!r}")
        out.append(Matcher(label, operator, tuple(dict.fromkeys(values))))
    return tuple(out)


def _weekly(raw: Any) -> Weekly | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise SilenceError("weekly", "weekly must be an object with days, startTime, endTime")
    unknown = sorted(set(raw) - {"days", "startTime", "endTime"})
    if unknown:
        raise SilenceError(f"weekly.{unknown[0]}", f"unknown field {unknown[0]!r}")
    days = raw.get("days")
    if not isinstance(days, list) or not days or any(d not in DAYS for d in days):
        raise SilenceError("weekly.days", f"days must be a non-empty list of {', '.join(DAYS)}")
    times = []
    for name in ("startTime", "endTime"):
        text = raw.get(name)
        if not isinstance(text, str) or not _TIME.match(text):
            raise SilenceError(f"weekly.{name}", f"{name} must be HH:MM (24 h)")
        times.append(_clock(text))
    if times[0] == times[1]:
        raise SilenceError("weekly.endTime", "endTime must differ from startTime")
    return Weekly(tuple(d for d in DAYS if d in days), times[0], times[1])


def _moment(body: Mapping[str, Any], name: str) -> dt.datetime:
    text = body.get(name)
    if not isinstance(text, str) or len(text) > 40:
        raise SilenceError(name, f"{name} must be an ISO 8601 date-time with a UTC offset")
    try:
        moment = dt.datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise SilenceError(name, f"{name} is not an ISO 8601 date-time: {text!r}") from None
    if moment.tzinfo is None:
        raise SilenceError(name, f"{name} needs a UTC offset or Z: {text!r}")
    if not 2000 <= moment.year <= 2200:  # and clear of datetime's own ends
        raise SilenceError(name, f"{name} must fall between the years 2000 and 2200")
    return moment.astimezone(dt.UTC).replace(microsecond=0)


def _occurrences(weekly: Weekly, zone: ZoneInfo, begin: dt.datetime,
                 end: dt.datetime) -> Iterable[tuple[dt.datetime, dt.datetime]]:
    """Each weekly window, in UTC, that may overlap [begin, end), in order: local dates from
    the day before `begin` (a window that runs past midnight) to the one of `end`."""
    day = begin.astimezone(zone).date() - dt.timedelta(days=1)
    last = end.astimezone(zone).date()
    while day <= last:
        if DAYS[day.weekday()] in weekly.days:
            start = _local(day, weekly.start, zone)
            stop_day = day if weekly.end > weekly.start else day + dt.timedelta(days=1)
            yield start, _local(stop_day, weekly.end, zone)
        day += dt.timedelta(days=1)


def _local(day: dt.date, clock: dt.time, zone: ZoneInfo) -> dt.datetime:
    """A local wall-clock time as UTC; a time the clocks skip (spring forward) counts from
    the same offset as just before it, so it lands after the gap."""
    return dt.datetime.combine(day, clock, tzinfo=zone).astimezone(dt.UTC)


def _clock(text: str) -> dt.time:
    hours, minutes = text.split(":")
    return dt.time(int(hours), int(minutes))


def _text(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC)
