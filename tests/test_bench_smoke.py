"""`make bench` keeps working: its quick mode runs and writes its results."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .helpers import ROOT, project_env


@pytest.mark.timeout(900)  # a minute or two alone; many more beside a busy machine's work
def test_quick_bench_runs_and_reports_ratios(tmp_path):
    """A quick bench run finishes and reports the event/stdlib ratio, the ingest rate and a
    tiny dashboard load (5 viewers for 2 s) without errors."""
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "-m", "bench", "--quick", "--load-clients", "5",
                           "--load-seconds", "2", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=840,
                          env=project_env(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(out.read_text())
    assert "ratio" in json.dumps(results["part1"])
    assert results["ingest"]["events_per_s"] > 0
    load = results["load"]
    assert load["settings"]["clients"] == 5
    assert load["load"]["errors"] == 0, load["load"]["errors_by_kind"]
    assert load["load"]["kinds"]["all 6 panels"]["n"] >= 5 * 6
    assert load["load"]["backend_queries"] >= 0  # counted; 0 when the cache answered all
    assert load["ratios"]["all 6 panels"]["p95"] > 0
    assert "Dashboard load" in done.stdout
    assert results["default_store"]["latency"]["rows"]
    assert results["budget"]["queries"] > 0
    # every goal is printed with what this run measured, or says it was not measured
    goals = done.stdout[done.stdout.index("Goals (this run)"):]
    assert "demo backfill of the default 24 h" in goals and "most queries in any 30 s" in goals
