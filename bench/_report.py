"""Header facts about the run and plain-text tables."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (
    "opentelemetry-api",
    "opentelemetry-sdk",
    "azure-monitor-opentelemetry-exporter",
    "duckdb",
    "fastapi",
    "uvicorn",
    "httpx",
)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            text=True,
            capture_output=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "integration_monitoring"],
            cwd=ROOT,
            text=True,
            capture_output=True,
            timeout=5,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + (" (integration_monitoring modified)" if dirty.strip() else "")


def environment() -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "python_executable": sys.executable,
        "packages": {name: _version(name) for name in PACKAGES},
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "cpus_usable": usable,
        "load_1min": load,
        "git": _git(),
    }


def header(env: dict[str, Any], method: str) -> str:
    pkgs = env["packages"]
    return "\n".join(
        [
            f"integration_monitoring bench  {env['when']}  git {env['git']}",
            f"Python {env['python']} | OpenTelemetry api {pkgs['opentelemetry-api']} / sdk "
            f"{pkgs['opentelemetry-sdk']} | azure-monitor-opentelemetry-exporter "
            f"{pkgs['azure-monitor-opentelemetry-exporter']} | duckdb {pkgs['duckdb']}",
            f"Machine: {env['platform']} | {env['cpu']} | {env['cpus']} CPUs "
            f"({env['cpus_usable']} usable) | load {env['load_1min']:.2f}"
            if env["load_1min"] is not None
            else f"Machine: {env['platform']} | {env['cpu']}",
            f"Method: {method}",
        ]
    )


def us(ns: float) -> str:
    return f"{ns / 1000:.1f} µs" if ns < 10_000_000 else f"{ns / 1e6:.0f} ms"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], align: str | None = None) -> str:
    """A plain table; `align` is one character per column, `l` or `r`."""
    align = align or "l" + "r" * (len(headers) - 1)
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            str(c).ljust(w) if a == "l" else str(c).rjust(w)
            for c, w, a in zip(cells, widths, align, strict=True)
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def cpu_times() -> list[int] | None:
    """The aggregate `cpu` line of /proc/stat (user nice system idle iowait irq softirq steal)."""
    try:
        with open("/proc/stat") as stat:
            return [int(x) for x in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return None


def conditions(before: list[int] | None, after: list[int] | None) -> dict[str, Any]:
    """CPU busy and steal shares over the run, and the load average now (noise indicators)."""
    out: dict[str, Any] = {}
    try:
        out["load_1min_end"] = os.getloadavg()[0]
    except OSError:
        pass
    if before and after:
        delta = [b - a for a, b in zip(before, after, strict=True)]
        total = sum(delta) or 1
        out["cpu_busy_share"] = 1 - (delta[3] + delta[4]) / total
        out["cpu_steal_share"] = delta[7] / total
    return out
