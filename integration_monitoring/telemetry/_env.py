"""Settings read from the environment, where an empty or malformed value means the default.

The names `_flag` and `_int` stay as they are: tests/test_infra.py finds the settings the
code reads by looking for calls to them.
"""

from __future__ import annotations

import os


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() not in {"0", "false", "no", "off"}


def _int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name) or default)
    except ValueError:
        return default


def _positive(name: str, default: int) -> int:
    value = _int(name, default)
    return value if value > 0 else default
