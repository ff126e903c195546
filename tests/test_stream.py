"""The live stream: a snapshot at once, another when telemetry arrives, then a clean end."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
from fastapi.testclient import TestClient

from integration_monitoring.admin import LocalBackend
from integration_monitoring.app import create_app
from integration_monitoring.store import TelemetryStore


def _event(message: str) -> dict:
    # a little in the past: `until` defaults to now rounded down to 5 s
    at = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=10)
    return {"TimeGenerated": at, "Message": message,
            "SeverityLevel": 1, "ItemCount": 1,
            "Properties": json.dumps({"tenantId": "t-1", "integrationId": "i-1",
                                      "adapterType": "hubspot"})}


def _read(lines, until: str) -> list[str]:
    seen = []
    for line in lines:
        seen.append(line)
        if line.startswith(until):
            break
    return seen


class SlowFirstFingerprint(LocalBackend):
    """The first fingerprint's answer comes just after `until` moves on, as on a busy host."""

    def ask(self, name, values):
        answer = super().ask(name, values)
        if name == "stream_fingerprint" and not getattr(self, "slowed", False):
            self.slowed = True
            time.sleep(5 - time.time() % 5 + 0.05)
        return answer


@pytest.mark.parametrize("backend", [LocalBackend, SlowFirstFingerprint])
def test_stream_sends_snapshots_on_change_and_ends_with_a_retry_hint(tmp_path, backend):
    """Retry hint first, a snapshot, a new snapshot after new data, then `bye`.

    The new data is written once the first snapshot has arrived, however long that took, and
    answers are shared while `until` (now rounded down to 5 s) stays the same, so the stream
    stays open long enough to cross two such boundaries."""
    store = TelemetryStore(tmp_path / "s.duckdb")
    store.append("AppTraces", [_event("sync.completed")])
    app = create_app(backend=backend(store),
                     stream_options={"poll_s": 0.2, "stream_s": 11, "retry_ms": 1500})
    client = TestClient(app)
    lines = []
    started = time.monotonic()
    with client.stream("GET", "/api/admin/integrations/stream?adapterType=hubspot") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            lines.append(line)
            if line.startswith('data: {"f') and sum(x.startswith('data: {"f')
                                                    for x in lines) == 1:
                # when new telemetry arrives while the stream is open
                store.append("AppTraces", [_event("sync.failed")])
    store.close()
    # then the stream carried a retry hint, two snapshots and a goodbye, within its bound
    assert lines[0] == "retry: 1500"
    snapshots = [json.loads(line[len("data: "):]) for line in lines
                 if line.startswith('data: {"f')]
    assert len(snapshots) == 2
    assert snapshots[0]["fingerprint"] != snapshots[1]["fingerprint"]
    assert snapshots[0]["stats"]["syncJobs"]["byStatus"]["failed"] == 0
    assert snapshots[1]["stats"]["syncJobs"]["byStatus"]["failed"] == 1
    assert "event: bye" in lines
    assert time.monotonic() - started < 60


def test_stream_refuses_bad_filters_before_streaming(tmp_path):
    """A bad parameter is a 400 JSON error, not a broken stream."""
    store = TelemetryStore(tmp_path / "s.duckdb")
    client = TestClient(create_app(backend=LocalBackend(store)))
    response = client.get("/api/admin/integrations/stream?window=forever")
    assert response.status_code == 400
    assert response.json()["error"]["parameter"] == "window"
    store.close()


def test_dashboard_page_and_assets_are_served_with_a_strict_policy(tmp_path):
    """/ redirects to /dashboard; the page, its assets and runbooks are served; others 404."""
    store = TelemetryStore(tmp_path / "s.duckdb")
    client = TestClient(create_app(backend=LocalBackend(store)))
    assert client.get("/", follow_redirects=False).headers["location"] == "/dashboard"
    page = client.get("/dashboard")
    assert page.status_code == 200 and "<script>" not in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert client.get("/dashboard/static/dashboard.js").status_code == 200
    assert client.get("/dashboard/static/package.json").status_code == 404
    assert client.get("/dashboard/static/../pyproject.toml").status_code == 404
    runbook = client.get("/docs/runbooks/high-sync-failure-rate.md")
    assert runbook.status_code == 200 and "# High sync failure rate" in runbook.text
    assert client.get("/docs/runbooks/secrets.md").status_code == 404
    store.close()
