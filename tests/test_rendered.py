"""Identical requests within one `until` step get the answer as it was sent, built once."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient

from integration_monitoring.admin import LocalBackend
from integration_monitoring.admin._rendered import RenderedAnswers
from integration_monitoring.app import create_app

NOW = dt.datetime(2026, 3, 4, 12, 0, tzinfo=dt.UTC)


def test_a_second_identical_request_gets_the_same_bytes(demo_store):
    store = demo_store(2, now=NOW, tenants=3, integrations=6, seed=2)
    app = create_app(backend=LocalBackend(store))
    with TestClient(app) as client:
        params = {"until": "2026-03-04T12:00:00Z", "window": "2h"}
        first = client.get("/api/admin/integrations/stats", params=params)
        second = client.get("/api/admin/integrations/stats", params=params)
        other = client.get("/api/admin/integrations/stats", params={**params, "window": "1h"})
    assert first.status_code == second.status_code == other.status_code == 200
    assert first.content == second.content != other.content
    assert first.json()["integrations"]["total"] > 0
    assert first.headers["content-type"] == "application/json"
    assert "no-store" in first.headers.get("cache-control", "")


def test_an_incomplete_answer_is_built_again_and_old_ones_expire():
    now = [0.0]
    rendered = RenderedAnswers(ttl_s=5, clock=lambda: now[0])
    assert rendered.get("k", lambda: (b"partial", False)) == b"partial"
    assert rendered.get("k", lambda: (b"whole", True)) == b"whole"
    assert rendered.get("k", lambda: (b"other", True)) == b"whole"
    now[0] = 5.0
    assert rendered.get("k", lambda: (b"later", True)) == b"later"
    assert rendered.builds == 3
