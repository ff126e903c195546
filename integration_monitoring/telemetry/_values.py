"""Make arbitrary metadata safe to log: JSON-ready, bounded, and free of secrets."""

from __future__ import annotations

import datetime as _dt
import enum
import functools
import json
import math
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[REDACTED]"

#: Keys whose values are secrets, matched on the key lower-cased with `-`, `_`, `.`
#: and spaces removed, so `client_secret`, `Client-Secret` and `clientSecret` agree.
#: Matched as a suffix, so `sessionToken` is hidden but `tokenExpiresAt` is kept.
_SECRET_KEY = re.compile(
    r"(token|secret|password|passwd|pwd|passphrase|authorization|apikey|connectionstring"
    r"|accesskey|accountkey|sharedaccesskey|privatekey|signature|cookie|credentials?)$"
)
_KEY_NOISE = re.compile(r"[-_.\s]")

#: Secrets that hide inside free text such as error messages.
_SECRET_TEXT = [
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9\-._~+/]{8,}=*"), r"\1 " + REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), REDACTED),
    (
        re.compile(
            r"(?i)\b(password|pwd|accountkey|sharedaccesskey|client_secret|api_key|apikey"
            r"|access_token|refresh_token|sig|code)=([^;&\s\"']+)"
        ),
        r"\1=" + REDACTED,
    ),
    (re.compile(r"(?i)https://hooks\.slack\.com/[^\s\"']+"), "https://hooks.slack.com/" + REDACTED),
]

MAX_DEPTH = 8
MAX_STRING = 8192
MAX_ITEMS = 256


@functools.lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """True when a metadata key names a secret (cached: the same keys recur in every event)."""
    return bool(_SECRET_KEY.search(_KEY_NOISE.sub("", key.lower())))


def scrub_text(text: str) -> str:
    """Hide bearer tokens, JWTs and key=value secrets inside a string."""
    if len(text) > MAX_STRING:
        text = text[:MAX_STRING] + "…"
    for pattern, replacement in _SECRET_TEXT:
        text = pattern.sub(replacement, text)
    return text


def clean(value: Any, depth: int = 0) -> Any:
    """Return a JSON-ready copy of `value` with secrets redacted; never raises."""
    try:
        return _clean(value, depth)
    except Exception:  # a hostile __str__ or __iter__ must not reach the caller
        return "<unserialisable>"


def _clean(value: Any, depth: int) -> Any:
    if value is None or value is True or value is False:
        return value
    kind = type(value)
    if kind is str:
        return scrub_text(value) if _may_hold_secret(value) else value
    if kind is int:
        return value
    if kind is float:
        return value if math.isfinite(value) else str(value)
    if depth >= MAX_DEPTH:
        return "<too deep>"
    if isinstance(value, Mapping):
        return clean_mapping(value, depth + 1)
    if isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)[:MAX_ITEMS]
        return [_clean(item, depth + 1) for item in items]
    if isinstance(value, BaseException):
        return scrub_text(f"{type(value).__name__}: {value}")
    if isinstance(value, enum.Enum):
        return _clean(value.value, depth + 1)
    if isinstance(value, bool | int):
        return int(value)
    if isinstance(value, float):
        return _clean(float(value), depth)
    if isinstance(value, _dt.datetime):
        return iso_utc(value)
    if isinstance(value, (_dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return value.total_seconds() * 1000.0
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    try:
        return scrub_text(str(value))
    except Exception:  # a hostile __str__
        return "<unserialisable>"


def clean_mapping(mapping: Mapping[Any, Any], depth: int = 0) -> dict[str, Any]:
    """Clean every value of a mapping, redacting the values of secret-named keys."""
    out: dict[str, Any] = {}
    for index, (key, value) in enumerate(mapping.items()):
        if index >= MAX_ITEMS:
            out["_truncated"] = True
            break
        name = key if type(key) is str else clean(key)
        if not isinstance(name, str):
            name = json.dumps(name)
        out[name] = REDACTED if is_secret_key(name) else clean(value, depth)
    return out


def _may_hold_secret(text: str) -> bool:
    # Cheap pre-check keeps the regexes off the hot path for ordinary short strings.
    return len(text) > MAX_STRING or (
        len(text) > 12 and ("=" in text or "ey" in text or " " in text or "hooks." in text)
    )


def iso_utc(moment: _dt.datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a `Z`, as the seed's timestamps are."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.UTC)
    moment = moment.astimezone(_dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def property_string(value: Any) -> str:
    """How a cleaned value is stored as an Application Insights property (always a string).

    Strings stay as they are; everything else is JSON, so `true`, `5`, `1.5` and nested
    objects read back with KQL's `tobool`, `toint`, `todouble` and `parse_json`.
    """
    kind = type(value)
    if kind is str:
        return value
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:  # cleaned floats are finite, and repr is what JSON writes
        return repr(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
