"""The KQL the admin API and alerts run, one file per question, on either engine.

A query is rendered as a `let` prelude of escaped values, the shared views in
`_common.kql`, then the question's file. The same text runs on Log Analytics and, through
duckdb-kql, on the local store.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ._literals import LiteralError, kql_datetime, kql_literal, kql_string, prelude

FOLDER = Path(__file__).resolve().parent

__all__ = ["FOLDER", "LiteralError", "kql_datetime", "kql_literal", "kql_string", "names",
           "prelude", "render", "text"]


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
