"""The KQL the admin API and alerts run, one file per question, on either engine.

A query is rendered as a `let` prelude of escaped values, the shared views in
`_common.kql`, then the question's file. The same text runs on Log Analytics and, through
duckdb-kql, on the local store.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
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

__all__ = ["BY_TENANT", "FOLDER", "LiteralError", "by_tenant", "cap", "forms", "kql_datetime",
           "kql_literal", "kql_string", "names", "parameterized", "prelude", "render", "text"]


#: The suffix of a question's variant grouped by tenant as well (`by_tenant`).
BY_TENANT = ".by_tenant"
#: How many times deeper a list's by-tenant form reaches (`by_tenant`).
DEEPER = 10
#: A question's row cap: a top-level `take`.
_TAKE = re.compile(r"^\| take (\d+)", flags=re.MULTILINE)
#: A line that puts a shared file's `let`s before a question: `// uses: _lifecycle` (the
#: workbook joins the same files in the same order).
_USES = re.compile(r"^// uses: (_[a-z_]+)\n", flags=re.MULTILINE)


@functools.cache
def text(name: str) -> str:
    """The text of `<name>.kql`, or of its variant `<name>.by_tenant`."""
    if name.endswith(BY_TENANT):
        return by_tenant(text(name.removesuffix(BY_TENANT)))
    path = FOLDER / f"{name}.kql"
    if not name.isidentifier() or not path.is_file():
        raise KeyError(f"no query named {name!r}")
    body = path.read_text()
    return "".join(text(used) for used in _USES.findall(body)) + body


def by_tenant(question: str) -> str:
    """The question with `tenantId` added to the groups of its first `summarize`: one
    answer for every tenant at once, whose rows for one tenant are that tenant's answer.
    A list that never summarizes takes `DEEPER` times its rows instead, so that each
    tenant's latest rows are likely among them. A question that groups in two steps has no
    such variant."""
    lines = question.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.startswith("| summarize ")]
    if not starts:
        deeper, takes = _TAKE.subn(lambda m: f"| take {int(m.group(1)) * DEEPER}", question)
        if takes == 1:
            return deeper
    if len(starts) != 1:
        raise KeyError("only a question with one top-level summarize, or a list with one "
                       "take, has a by-tenant form")
    end = starts[0] + 1
    while end < len(lines) and lines[end].startswith((" ", "\t")):
        end += 1
    clause = "".join(lines[starts[0]:end]).rstrip("\n")
    grouped = (clause + ", tenantId" if _groups(clause)
               else clause + "\n    by tenantId")
    rest = "".join(lines[end:])
    # a projection after it keeps the tenant too
    rest = re.sub(r"^(\| project (?:[^|]|\n )*?)(\n(?=\|)|\n?$)",
                  lambda m: m.group(1).rstrip() + ", tenantId" + m.group(2), rest,
                  count=1, flags=re.MULTILINE)
    return "".join(lines[:starts[0]]) + grouped + "\n" + rest


def _groups(clause: str) -> bool:
    """Whether a summarize clause has a `by` outside parentheses and strings."""
    depth = 0
    quoted = False
    for index, char in enumerate(clause):
        if char == '"':
            quoted = not quoted
        elif not quoted and char in "([":
            depth += 1
        elif not quoted and char in ")]":
            depth -= 1
        elif (not quoted and depth == 0 and clause.startswith("by ", index)
              and clause[index - 1] in " \n"):
            return True
    return False


@functools.cache
def cap(name: str) -> int | None:
    """The most rows the question (or form) answers: its last `take`, None without one."""
    takes = _TAKE.findall(text(name))
    return int(takes[-1]) if takes else None


def names() -> list[str]:
    """Every question's name (the shared `_common` is not one)."""
    return sorted(p.stem for p in FOLDER.glob("*.kql") if not p.stem.startswith("_"))


def render(name: str, values: Mapping[str, Any]) -> str:
    """Prelude + shared views + the question: the full text sent to an engine."""
    return prelude(values) + text("_common") + text(name)


@functools.cache
def forms() -> tuple[str, ...]:
    """Every question, and every by-tenant form there is: what `text` and `render` take."""
    found = []
    for name in names():
        found.append(name)
        try:
            text(name + BY_TENANT)
            found.append(name + BY_TENANT)
        except KeyError:
            pass
    return tuple(found)


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
