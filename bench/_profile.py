"""`--profile`: where one call's time goes, grouped by who owns the code (cProfile, main thread)."""

from __future__ import annotations

import cProfile
import pstats
from collections.abc import Callable
from typing import Any

GROUPS = (
    ("integration_monitoring/", "integration_monitoring"),
    ("/opentelemetry/sdk/", "opentelemetry-sdk"),
    ("/opentelemetry/", "opentelemetry-api"),
    ("/json/", "json (stdlib)"),
    ("/logging/", "logging (stdlib)"),
    ("/contextlib.py", "contextlib (stdlib)"),
    ("/copy.py", "copy (stdlib)"),
)


def _group(filename: str) -> str:
    if filename == "~":
        return "C builtins"
    for needle, name in GROUPS:
        if needle in filename:
            return name
    return "other Python"


def _where(func: tuple[str, int, str]) -> str:
    filename, line, name = func
    if filename == "~":
        return name
    marker = "integration_monitoring/"
    if marker in filename:
        filename = marker + filename.split(marker, 1)[1]
    elif "site-packages/" in filename:
        filename = filename.split("site-packages/", 1)[1]
    elif "/lib/python3" in filename:
        filename = filename.split("/lib/", 1)[1].split("/", 1)[1]
    return f"{filename}:{line}({name})"


def profile(call: Callable[[], object], iterations: int, top: int = 12) -> dict[str, Any]:
    """Profile `iterations` calls; tottime per call by group, and the costliest functions."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(iterations):
        call()
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in stats.values()) or 1e-12
    groups: dict[str, float] = {}
    functions = []
    for func, (_cc, ncalls, tottime, cumtime, _callers) in stats.items():
        group = _group(func[0])
        groups[group] = groups.get(group, 0.0) + tottime
        functions.append(
            {
                "function": _where(func),
                "group": group,
                "calls_per_iteration": ncalls / iterations,
                "tottime_share": tottime / total,
                "cumtime_share": cumtime / total,
            }
        )
    functions.sort(key=lambda f: f["tottime_share"], reverse=True)
    ours = [f for f in functions if f["group"] == "integration_monitoring"]
    ours.sort(key=lambda f: f["cumtime_share"], reverse=True)
    return {
        "iterations": iterations,
        "groups": dict(
            sorted(((k, v / total) for k, v in groups.items()), key=lambda kv: kv[1], reverse=True)
        ),
        "top_tottime": functions[:top],
        "integration_monitoring_by_cumtime": ours[:top],
    }


def render(title: str, result: dict[str, Any]) -> str:
    lines = [f"{title} (cProfile, {result['iterations']} calls; shares of profiled time)"]
    lines.append(
        "  by owner: "
        + ", ".join(f"{name} {share:.0%}" for name, share in result["groups"].items())
    )
    lines.append("  self time (tottime), top:")
    for f in result["top_tottime"]:
        lines.append(
            f"    {f['tottime_share']:6.1%}  x{f['calls_per_iteration']:<4.3g} {f['function']}"
        )
    lines.append("  integration_monitoring, inclusive (cumtime):")
    for f in result["integration_monitoring_by_cumtime"]:
        lines.append(
            f"    {f['cumtime_share']:6.1%}  x{f['calls_per_iteration']:<4.3g} {f['function']}"
        )
    return "\n".join(lines)
