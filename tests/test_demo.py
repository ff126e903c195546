"""The demo workload: every seed metric, all three levels, deterministic, resumable."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time

import jsonschema
import pytest

from integration_monitoring import METRICS
from integration_monitoring.demo import build_world, run_demo
from integration_monitoring.store import TelemetryStore

from .helpers import ROOT, project_env

NOW = 1_790_000_000 * 10**9  # a fixed "now" so runs can be compared


def test_one_hour_demo_fills_every_seed_metric_and_all_levels(tmp_path, log_schema):
    """`demo --hours 1 --seed 7` stores all 15 seed metrics and prints valid lines of 3 levels."""
    # when the demo runs as a newcomer would run it
    done = subprocess.run(
        [sys.executable, "-m", "integration_monitoring", "demo", "--hours", "1", "--seed", "7"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env=project_env(tmp_path))
    assert done.returncode == 0, done.stderr
    # then stdout is seed-format lines of every level
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    for line in lines[:: max(1, len(lines) // 200)]:
        jsonschema.validate(line, log_schema)
    assert {line["level"] for line in lines} == {"info", "warn", "error"}
    # and AppMetrics holds every seed metric name
    store = TelemetryStore(tmp_path / "telemetry.duckdb")
    names = {row[0] for row in store.kql("AppMetrics | distinct Name").rows}
    traces = store.kql("AppTraces | count").rows[0][0]
    store.close()
    assert {spec.name for spec in METRICS if spec.seed} <= names
    assert traces == len(lines)


def test_same_seed_same_story(tmp_path):
    """Two runs with one seed and one clock write the same events."""
    def run(name: str) -> list[tuple]:
        out = io.StringIO()
        store = TelemetryStore(tmp_path / f"{name}.duckdb")
        run_demo(hours=2, seed=11, store=store, stdout=out, progress=False, now_ns=NOW)
        store.close()
        return [(e["timestamp"], e["operation"], e["integrationId"], e["level"])
                for e in map(json.loads, out.getvalue().splitlines())]

    first, second = run("a"), run("b")
    assert first == second and len(first) > 500


def test_world_has_the_stories_the_panels_need():
    """Paused, stale, expiring, slow and rate-limited integrations exist, over several adapters."""
    world = build_world(7, tenants=8, integrations=24)
    assert len(world.tenants) == 8 and len(world.integrations) == 24
    assert {i.adapter_type for i in world.integrations} >= {"salesforce", "hubspot", "pipedrive"}
    assert any(i.paused for i in world.integrations)
    for quirk in ("stale", "expiring", "slow", "rate_limited", "paused_later"):
        assert world.with_quirk(quirk), quirk
    assert world.with_quirk("rate_limited")[0].adapter_type == "hubspot"


def test_demo_story_lands_in_the_store(tmp_path):
    """Expired credentials, dead letters, a backlog and sync types all show in the data."""
    store = TelemetryStore(tmp_path / "t.duckdb")
    result = run_demo(hours=3, seed=7, store=store, stdout=None, progress=False, now_ns=NOW)
    events = store.kql("""
        AppTraces
        | summarize n = count() by Message, status = tostring(Properties.status)
    """).dicts()
    depth = store.kql("""
        AppMetrics | where Name == "service_bus_queue_depth" | summarize peak = max(Max)
    """).rows[0][0]
    sync_types = {r[0] for r in store.kql(
        'AppTraces | where Message == "sync.started" | distinct tostring(Properties.syncType)'
    ).rows}
    store.close()
    seen = {(e["Message"], e["status"]) for e in events}
    assert ("connection.status_changed", "expired") in seen
    assert ("integration.status_changed", "error") in seen
    assert ("integration.status_changed", "paused") in seen
    assert ("message.dead_lettered", "") in seen
    assert depth > 100, "the webhook storm backs the queue up"
    assert sync_types == {"scheduled", "manual", "webhook"}
    assert result.counts.dead_lettered > 0 and result.counts.jobs_done > 100


def test_restart_continues_instead_of_backfilling_again(tmp_path):
    """A second run over the same store resumes from the last event: no second history."""
    store = TelemetryStore(tmp_path / "t.duckdb")
    first = run_demo(hours=2, seed=7, store=store, stdout=None, progress=False, now_ns=NOW)
    second = run_demo(hours=2, seed=7, store=store, stdout=None, progress=False,
                      now_ns=NOW + 5 * 60 * 10**9)
    created = store.kql(
        'AppTraces | where Message == "integration.status_changed" and '
        'tostring(Properties.reason) == "created" | count').rows[0][0]
    store.close()
    assert not first.resumed and second.resumed
    assert created == 24
    assert second.events < first.events / 5


@pytest.mark.parametrize("args", [["--hours", "0"], ["--hours", "lots"],
                                  ["--tenants", "0"], ["--integrations", "-3"],
                                  ["--tenants", "9", "--integrations", "3"]])
def test_demo_options_out_of_range_are_usage_errors(tmp_path, args):
    """Nonsense options stop with a usage error before anything runs."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "integration_monitoring", "demo", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env=project_env(tmp_path))
    assert done.returncode == 2
    assert "usage:" in done.stderr and "Traceback" not in done.stderr
    assert time.monotonic() - started < 30
