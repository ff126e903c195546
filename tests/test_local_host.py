"""`make run`'s local host: admin app, demo backfill then live, timers, clean stop, restart."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

from integration_monitoring import METRICS
from integration_monitoring.store import TelemetryStore

from .helpers import ROOT, Server, project_env


def _created(tmp_path) -> int:
    store = TelemetryStore(tmp_path / "telemetry.duckdb")
    try:
        return store.kql('AppTraces | where Message == "integration.status_changed" and '
                         'tostring(Properties.reason) == "created" | count').rows[0][0]
    finally:
        store.close()


def test_local_host_backfills_goes_live_runs_timers_and_stops_cleanly(tmp_path):
    """The host backfills, goes live, samples queues on its schedule, and stops on Ctrl-C."""
    # given the local host with a short history and a fast sampling schedule
    with Server(tmp_path, "--hours", "0.5", QUEUE_SAMPLE_SCHEDULE="*/1 * * * * *") as server:
        # when it has been up a little while
        def live_and_sampled(s):
            host = s.get("/api/health").json()["host"]
            ready = host["demo"] == "live" and host["timer_runs"]["sample_queue_depths"] >= 2
            return host if ready else None

        host = server.wait_for(live_and_sampled)
        scrape = server.get("/metrics").text
        # then Ctrl-C stops it without a traceback
        code = server.stop(signal.SIGINT)
    assert host["demo"] == "live"
    assert 'service_bus_queue_depth{queue="sync-jobs"}' in scrape
    # every seed metric is named on /metrics (declared before its first measurement)
    declared = set(re.findall(r"^# TYPE (\S+) ", scrape, re.MULTILINE))
    assert {spec.name for spec in METRICS if spec.seed} <= declared
    assert code in (0, -signal.SIGINT, 130), server.stderr
    assert "Traceback" not in server.stderr
    assert _created(tmp_path) == 24


def test_restart_keeps_the_data_and_does_not_backfill_again(tmp_path):
    """Stopping and starting again continues the same history."""
    for _ in range(2):
        with Server(tmp_path, "--hours", "0.5") as server:
            server.wait_for(lambda s: s.get("/api/health").json()["host"]["demo"] == "live")
            server.stop()
    assert _created(tmp_path) == 24


def test_bad_settings_stop_the_host_at_start_with_the_setting_named(tmp_path):
    """A malformed schedule or queue list is reported at start-up, not deep in a run."""
    for env, setting in (({"QUEUE_SAMPLE_SCHEDULE": "every minute"}, "QUEUE_SAMPLE_SCHEDULE"),
                         ({"SERVICEBUS_QUEUES": "bad queue!"}, "SERVICEBUS_QUEUES")):
        done = subprocess.run([sys.executable, "-m", "integration_monitoring", "serve",
                               "--port", "0"], cwd=ROOT, capture_output=True, text=True,
                              timeout=60, env=project_env(tmp_path, **env))
        assert done.returncode == 2
        assert done.stderr.startswith(f"error: {setting}")
