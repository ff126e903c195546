"""`make run`'s local host: admin app, demo backfill then live, timers, clean stop, restart;
the loopback names it binds and answers without a token (127.x, localhost, ::1)."""

from __future__ import annotations

import re
import select
import signal
import socket
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from integration_monitoring import METRICS
from integration_monitoring.app import create_app
from integration_monitoring.localhost import (
    LoopbackHostsOnly,
    ServerLimits,
    bind_host,
    is_loopback,
    url_host,
)
from integration_monitoring.store import TelemetryStore

from .helpers import ROOT, Server, http_get, ipv6_loopback, project_env


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


# -- loopback names: 127.x, localhost and ::1 ---------------------------------------------------


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.3.4.5", True), ("localhost", True), ("LOCALHOST", True),
    ("::1", True), ("[::1]", True), (" ::1 ", True),
    ("0.0.0.0", False), ("::", False), ("[::]", False), ("192.168.1.10", False),
    ("localhost.attacker.example", False), ("127.0.0.1.nip.io", False), ("[127.0.0.1", False),
    ("::ffff:8.8.8.8", False), ("", False),
])
def test_loopback_names_are_what_the_kernel_keeps_local(host, loopback):
    """serve binds without a token only where nobody else can connect."""
    assert is_loopback(host) is loopback


def test_urls_and_binds_write_ipv6_as_they_must():
    assert [url_host(h) for h in ("::1", "[::1]", "127.0.0.1", "localhost")] == [
        "[::1]", "[::1]", "127.0.0.1", "localhost"]
    assert [bind_host(h) for h in ("[::1]", "::1", "127.0.0.2")] == ["::1", "::1", "127.0.0.2"]


def test_the_open_server_answers_every_loopback_name_and_no_other():
    """Without a token the app answers Host names that are loopback (a browser may say
    localhost, 127.0.0.1 or [::1], a client any 127.x) and refuses any other: a page whose
    own name resolves to 127.0.0.1 (DNS rebinding) is refused, in the app's error shape."""
    with TestClient(LoopbackHostsOnly(create_app())) as client:
        for name in ("localhost:7071", "localhost", "LocalHost:80", "127.0.0.1:7071",
                     "127.0.0.1", "127.3.4.5:7071", "[::1]:7071", "[::1]", "::1"):
            assert client.get("/api/health", headers={"host": name}).status_code == 200, name
        for name in ("attacker.example:7071", "localhost.attacker.example", "127.0.0.1.nip.io",
                     "[::2]:7071", "[::1]:x", "127.0.0.1:7071:1", "[::1", "::1:7071", "",
                     "0.0.0.0:7071", " localhost"):
            refused = client.get("/api/health", headers={"host": name})
            assert refused.status_code == 400, name
            assert refused.json()["error"]["code"] == "invalid_host"
            assert refused.headers["x-content-type-options"] == "nosniff"
            assert refused.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("host", ["::", "[::]"])
def test_serve_refuses_every_ipv6_interface_without_a_token(tmp_path, host):
    done = subprocess.run([sys.executable, "-m", "integration_monitoring", "serve", "--host",
                           host, "--no-demo"], cwd=ROOT, env=project_env(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "ADMIN_API_TOKEN" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_serve_on_the_ipv6_loopback_answers_with_its_limits(tmp_path):
    """`serve --host ::1` starts without a token (::1 is loopback), answers on [::1] with
    the loopback Host check, prints URLs with brackets, and runs the limited server: past
    its connection bound the connection idle the longest is closed."""
    server = Server(tmp_path, "--host", "::1", "--no-demo")
    server.url = f"http://[::1]:{server.port}"
    with server:
        assert server.get("/api/health").json()["status"] == "ok"
        rebound = http_get(server.url + "/api/health", headers={"Host": "attacker.example"})
        assert rebound.status_code == 400
        flood = [socket.create_connection(("::1", server.port), timeout=10)
                 for _ in range(ServerLimits().max_connections + 5)]
        try:
            ready, _, _ = select.select([flood[0]], [], [], 5)
            assert ready and flood[0].recv(16) == b""  # closed: the oldest idle one
            ready, _, _ = select.select([flood[-1]], [], [], 0.2)
            assert not ready  # the newest is still open
            assert server.get("/api/health").status_code == 200  # and a request gets in
        finally:
            for sock in flood:
                sock.close()
        server.stop()
    assert f"http://[::1]:{server.port}/dashboard" in server.stderr
    assert "Traceback" not in server.stderr
