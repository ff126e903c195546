"""Values reach KQL as escaped literals in a `let` prelude: the query API has no parameters."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from typing import Any

from .._time import naive_utc

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_NEEDS_ESCAPE = re.compile(r'[\\"\n\r\t]')
#: Control characters other than tab and newlines have no portable escape in both engines.
_UNSUPPORTED = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_NAME = re.compile(r"^_[a-z][a-z0-9_]*$")


class LiteralError(ValueError):
    """A value that cannot be written as a KQL literal."""


def kql_string(value: str) -> str:
    """A double-quoted KQL string literal whose value is exactly `value`."""
    if not isinstance(value, str):
        raise LiteralError(f"not a string: {type(value).__name__}")
    if _UNSUPPORTED.search(value):
        raise LiteralError("control characters are not allowed")
    return '"' + _NEEDS_ESCAPE.sub(lambda m: _ESCAPES[m.group()], value) + '"'


def kql_datetime(value: dt.datetime) -> str:
    """`datetime(...)` in UTC with microseconds."""
    value = naive_utc(value)
    return f"datetime({value.strftime('%Y-%m-%dT%H:%M:%S.%f')}Z)"


def kql_timespan(value: dt.timedelta) -> str:
    """A timespan literal in whole seconds (`90s`), the unit both engines agree on."""
    seconds = value.total_seconds()
    if seconds <= 0 or seconds != int(seconds):
        raise LiteralError("timespans must be a positive whole number of seconds")
    return f"{int(seconds)}s"


def kql_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"long({value})"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise LiteralError("numbers must be finite")
        return f"real({value!r})"
    if isinstance(value, str):
        return kql_string(value)
    if isinstance(value, dt.datetime):
        return kql_datetime(value)
    if isinstance(value, dt.timedelta):
        return kql_timespan(value)
    if isinstance(value, (tuple, list)):  # of strings: a dynamic array for `in (...)`
        return "dynamic([" + ", ".join(kql_string(item) for item in value) + "])"
    raise LiteralError(f"no KQL literal for {type(value).__name__}")


def prelude(values: Mapping[str, Any]) -> str:
    """`let _name = <literal>;` for each value, one per line, in a stable order."""
    lines = []
    for name in sorted(values):
        if not _NAME.match(name):
            raise LiteralError(f"bad let name {name!r}")
        lines.append(f"let {name} = {kql_literal(values[name])};")
    return "\n".join(lines) + "\n"


def _kql_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "real"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dt.datetime):
        return "datetime"
    if isinstance(value, dt.timedelta):
        return "timespan"
    if isinstance(value, (tuple, list)):
        return "dynamic"
    raise LiteralError(f"no KQL type for {type(value).__name__}")


def declaration(values: Mapping[str, Any]) -> str:
    """`declare query_parameters(...)` naming each value and its type, in a stable order:
    the same text whatever the values, so an engine that binds parameters translates it
    once."""
    for name in values:
        if not _NAME.match(name):
            raise LiteralError(f"bad parameter name {name!r}")
    kinds = ", ".join(f"{name}:{_kql_type(values[name])}" for name in sorted(values))
    return f"declare query_parameters({kinds});\n"


def bound(values: Mapping[str, Any]) -> dict[str, Any]:
    """The values as the engine binds them (what `prelude` would have written)."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        kql_literal(value)  # the same refusals as the literal form
        if isinstance(value, dt.datetime):
            value = naive_utc(value)
        elif isinstance(value, (tuple, list)):
            value = list(value)
        out[name] = value
    return out
