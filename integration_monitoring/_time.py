"""Time helpers shared across the package: every stored or queried time is naive UTC."""

from __future__ import annotations

import datetime as dt
import email.utils
from typing import Any


def naive_utc(moment: Any) -> Any:
    """An aware datetime as naive UTC (naive ones are UTC already and pass through)."""
    if getattr(moment, "tzinfo", None) is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date; None if unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())
