"""Acknowledging an alert: visible in the list at once, and recorded once however often it is
clicked (the list's `until` is rounded down and Log Analytics shows new events only after its
ingestion delay, so the store alone would hide it for a while)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from integration_monitoring.admin import LocalBackend
from integration_monitoring.app import create_app
from integration_monitoring.store import TelemetryStore

ALERTS = "/api/admin/alerts"


@pytest.fixture
def client(tmp_path) -> Iterator[TestClient]:
    """The admin app on a store where two alerts fired ten minutes ago (by the wall clock)."""
    store = TelemetryStore(tmp_path / "alerts.duckdb")
    fired = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=10)
    store.append("AppTraces", [
        {"TimeGenerated": fired, "Message": "alert.fired", "SeverityLevel": 2, "ItemCount": 1,
         "Properties": json.dumps({"alertId": alert_id, "ruleId": "integration-stale",
                                   "title": "Integration stale", "severity": "Sev2",
                                   "tenantId": "tenant-1", "integrationId": "int-1",
                                   "dimensions": "{}"})}
        for alert_id in ("alert-1", "alert-2")])
    yield TestClient(create_app(backend=LocalBackend(store)))
    store.close()


def listed(client: TestClient) -> dict[str, dict]:
    return {a["alertId"]: a for a in client.get(ALERTS).json()["alerts"]}


def ack(client: TestClient, alert_id: str, by: str = "ops@example.com", note: str = "mine"):
    return client.post(f"{ALERTS}/{alert_id}/ack", json={"by": by, "note": note})


def test_an_acknowledgement_shows_in_the_very_next_list(client, captured):
    """The user who refreshes right after acknowledging sees it acknowledged, not a button
    asking again."""
    # given a list that was already read (and cached) before the acknowledgement
    assert listed(client)["alert-1"]["acknowledgedAt"] is None
    # when alert-1 is acknowledged and the list read again at once
    done = ack(client, "alert-1", note="looking")
    after = listed(client)
    # then it shows who acknowledged it and why; the other alert is untouched
    assert done.status_code == 200 and done.json()["alreadyAcknowledged"] is False
    assert (after["alert-1"]["acknowledgedBy"], after["alert-1"]["ackNote"]) == (
        "ops@example.com", "looking")
    assert after["alert-1"]["acknowledgedAt"] == done.json()["acknowledgedAt"]
    assert after["alert-2"]["acknowledgedAt"] is None


def test_acknowledging_twice_records_one_acknowledgement(client, captured):
    """A double click, or a second admin a moment later, does not acknowledge again: the
    answer names the first acknowledgement."""
    first = ack(client, "alert-1", by="first@example.com").json()
    again = ack(client, "alert-1", by="second@example.com")
    assert again.status_code == 200
    assert again.json() == {**first, "alreadyAcknowledged": True}
    assert captured.operations.count("alert.acknowledged") == 1


def test_simultaneous_acknowledgements_record_one(client, captured):
    """Eight clicks at the same moment: one event, and every answer names the same one."""
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: ack(client, "alert-2", by=f"u{i}@x.io").json(),
                                range(8)))
    assert captured.operations.count("alert.acknowledged") == 1
    assert len({(a["acknowledgedBy"], a["acknowledgedAt"]) for a in answers}) == 1
    assert sorted(a["alreadyAcknowledged"] for a in answers) == [False] + [True] * 7
