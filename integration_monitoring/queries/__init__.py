"""The KQL the admin API and alerts run, one file per question, on either engine.

A query is rendered as a `let` prelude of escaped values, the shared views in
`_common.kql`, then the question's file. The same text runs on Log Analytics and, through
duckdb-kql, on the local store.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._literals import (
    LiteralError,
    bound,
    declaration,
    kql_datetime,
    kql_literal,
    kql_string,
    prelude,
)

FOLDER = Path(__file__).resolve().parent

__all__ = ["FOLDER", "LiteralError", "kql_datetime", "kql_literal", "kql_string", "names",
           "parameterized", "prelude", "render", "text"]


@functools.cache
def text(name: str) -> str:
    """The text of `<name>.kql`."""
    path = FOLDER / f"{name}.kql"
    if not name.isidentifier() or not path.is_file():
        raise KeyError(f"no query named {name!r}")
    return path.read_text()


def names() -> list[str]:
    """Every question's name (the shared `_common` is not one)."""
    return sorted(p.stem for p in FOLDER.glob("*.kql") if not p.stem.startswith("_"))


def render(name: str, values: Mapping[str, Any]) -> str:
    """Prelude + shared views + the question: the full text sent to an engine."""
    return prelude(values) + text("_common") + text(name)


def parameterized(name: str, values: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The same question with its values declared as query parameters instead of written
    into a prelude: (text, values to bind). The text depends only on the question, the
    values' types and the few values written as literals, so an engine can translate it
    once and bind each request's values.

    Timespans and booleans stay literals: they come from small closed sets (the buckets,
    the caller's scope), and as literals the engine plans `bin()` on a datetime and drops
    a constant condition, which it cannot do for a placeholder."""
    written = {k: v for k, v in values.items() if isinstance(v, (bool, dt.timedelta))}
    declared = {k: v for k, v in values.items() if k not in written}
    return (declaration(declared) + prelude(written) + text("_common") + text(name),
            bound(declared))
