"""Every performance goal of the project in one table at the end of `make bench`: what was
measured in this run, the goal, and whether it was met. A part that was skipped, or a goal no
part measures, says so instead of passing."""

from __future__ import annotations

from typing import Any

from ._load import API, REFRESH

NOT_MEASURED = "not measured"


def goals(results: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """(goal, goal value, measured, met) rows; met is None when nothing measured it."""
    rows: list[tuple[str, str, str, bool | None]] = []

    def add(goal: str, wanted: str, measured: float | None, unit: str, met: bool | None,
            fmt: str = "{:.0f}") -> None:
        shown = NOT_MEASURED if measured is None else fmt.format(measured) + unit
        rows.append((goal, wanted, shown, None if measured is None else met))

    admin = results.get("admin", {}).get("latency")
    worst = ratio = None
    rows_in = results.get("admin", {}).get("store", {}).get("apptraces_rows")
    size = f"{rows_in:,} rows" if rows_in else "~1M events/day"
    if admin:
        worst = max(row["p95_ms"] for row in admin["rows"])
        count = admin["baselines"]["count_24h"]["p95_ms"]
        ratio = max(row["p95_ms"] for row in admin["rows"]) / count
    add(f"endpoints on the ingest store ({size}), uncached: slowest p95", "<= 250 ms", worst,
        " ms",
        worst is not None and worst <= 250)
    add("  ... against a plain SQL count of the day (p95 / p95)", "<= 3x", ratio, "x",
        ratio is not None and ratio <= 3, "{:.1f}")
    history = results.get("history")
    longer = max(history["p95_vs_one_day"].values()) if history else None
    days = history["days"] if history else 30
    add(f"  ... with {days} days of history, against one day (slowest p95 ratio)", "<= 1.25x",
        longer, "x", longer is not None and longer <= 1.25, "{:.2f}")
    default = results.get("default_store")
    slowest = max((row["p95_ms"] for row in default["latency"]["rows"]),
                  default=None) if default else None
    add("endpoints on the default demo store, uncached: slowest p95", "<= 50 ms", slowest,
        " ms", slowest is not None and slowest <= 50)
    load = results.get("load", {}).get("load")
    panel = refresh = errors = None
    viewers = load["clients"] if load else 200
    if load:
        panel = load["kinds"].get(API, {}).get("p95_ms")
        refresh = load["kinds"].get(REFRESH, {}).get("p95_ms")
        errors = load["errors"]
    add(f"{viewers} viewers on the local host: panel fetch p95", "<= 300 ms", panel, " ms",
        panel is not None and panel <= 300)
    add("  ... full refresh p95", "<= 1000 ms", refresh, " ms",
        refresh is not None and refresh <= 1000)
    add("  ... errors", "0", errors, "", errors == 0)
    budget = results.get("budget")
    most = misses = None
    who = (f"{budget['viewers']} viewers of {budget['tenants']} tenants for "
           f"{budget['seconds']:g} s" if budget else "200 viewers of 50 tenants")
    if budget:
        most, misses = budget["most_per_30s"], budget["misses"]
    add(f"Log Analytics, {who}: most queries in any 30 s", "< 150", most, "",
        most is not None and most < 150)
    add("  ... 429s and 503s reaching a viewer", "0", misses, "", misses == 0)
    backfill = default["backfill_s"] if default and default["hours"] == 24 else None
    add("demo backfill of the default 24 h", "<= 10 s", backfill, " s",
        backfill is not None and backfill <= 10, "{:.1f}")
    ingest = results.get("ingest", {}).get("events_per_s")
    add("demo ingest of ~1M events", ">= 20,000 events/s", ingest, " events/s",
        ingest is not None and ingest >= 20_000, "{:,.0f}")
    return rows


def print_goals(results: dict[str, Any]) -> None:
    from ._report import table

    rows = goals(results)
    print("\nGoals (this run)")
    print(table(["goal", "wanted", "measured", "verdict"], [
        [goal, wanted, measured, "-" if met is None else "met" if met else "MISSED"]
        for goal, wanted, measured, met in rows]))
