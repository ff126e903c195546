"""`make bench` keeps working: its quick mode runs and writes its results."""

from __future__ import annotations

import json
import subprocess
import sys

from .helpers import ROOT, project_env


def test_quick_bench_runs_and_reports_ratios(tmp_path):
    """A quick bench run finishes and reports the event/stdlib ratio and the ingest rate."""
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=project_env(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(out.read_text())
    assert "ratio" in json.dumps(results["part1"])
    assert results["ingest"]["events_per_s"] > 0
