"""Notices that arrive out of order or twice, on any instance: Azure Monitor retries webhooks,
so a Fired may reach the relay after its Resolved, and a retry may reach another instance.
The alert stays resolved and each notice is delivered once, because the relay's claims live
where the outbox lives (SQLite locally, Table Storage in Azure, here Azurite)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from integration_monitoring.alerts import SqliteOutbox, TableOutbox

from .loopback.capture import CaptureServer
from .test_alert_outbox import ROUTING_KEY, SECRET, Clock, alert, deliverer, post, relay

pytestmark = pytest.mark.xdist_group("azurite")


@pytest.fixture(autouse=True)
def relay_secret(monkeypatch):
    monkeypatch.setenv("ALERT_RELAY_SECRET", SECRET)


@pytest.fixture(params=["sqlite", "table"])
def shared_store(request, tmp_path, azurite) -> Iterator[Any]:
    """Makes the outbox of one more instance; all of them share one store."""
    opened: list[Any] = []
    table = f"order{uuid.uuid4().hex[:16]}"

    def instance_outbox():
        if request.param == "sqlite":
            outbox = SqliteOutbox(tmp_path / "alert-outbox.sqlite3")
        else:
            outbox = TableOutbox(azurite.endpoint, azurite.token_credential(),
                                 table_name=table, **azurite.client_options)
        opened.append(outbox)
        return outbox

    yield instance_outbox
    for outbox in opened:
        outbox.close()


@pytest.fixture
def instances(shared_store, slack: CaptureServer, pagerduty: CaptureServer):
    """Two relay instances (two Function app workers) on the same store and channels."""
    clock = Clock()
    made = [deliverer(shared_store(), clock, slack.url, pagerduty.url) for _ in range(2)]
    yield [relay(instance) for instance in made]
    for instance in made:
        instance.close()


def pagerduty_actions(pagerduty: CaptureServer) -> list[tuple[str, str]]:
    return [(body["event_action"], body["dedup_key"]) for body in pagerduty.bodies]


def slack_states(slack: CaptureServer) -> list[str]:
    """Each Slack message's header: it says Fired or Resolved."""
    return [body["blocks"][0]["text"]["text"] for body in slack.bodies]


def test_a_fired_after_its_resolved_is_recorded_not_delivered(instances, slack, pagerduty,
                                                              captured):
    """Resolved reaches instance B first and is delivered; the Fired that Azure Monitor
    retried reaches instance A later: recorded as late, sent nowhere."""
    a, b = instances
    resolved = post(b, alert("Resolved"))
    fired = post(a, alert("Fired"))
    assert set(resolved["channels"].values()) <= {"delivered", "action_group"}
    assert {c: s for c, s in fired["channels"].items() if c != "email"} == {
        "slack": "superseded", "pagerduty": "superseded"}
    # Slack's last (only) message says resolved; PagerDuty's last event for the key resolves
    assert len(slack.bodies) == 1 and "RESOLVED" in slack_states(slack)[-1]
    assert [action for action, _ in pagerduty_actions(pagerduty)] == ["resolve"]
    captured.assert_event("alert.fired", late=True)
    captured.assert_event("alert.channel_skipped", channel="pagerduty")


def test_in_order_notices_still_open_and_close_the_incident(instances, slack, pagerduty):
    """The ordinary case across instances: Fired on A, Resolved on B."""
    a, b = instances
    post(a, alert("Fired"))
    post(b, alert("Resolved"))
    actions = pagerduty_actions(pagerduty)
    assert [action for action, _ in actions] == ["trigger", "resolve"]
    assert actions[0][1] == actions[1][1]  # one dedup_key: the resolve closes that incident
    assert ["RESOLVED" in header for header in slack_states(slack)] == [False, True]


def test_a_notice_retried_on_another_instance_is_delivered_once(instances, slack, pagerduty):
    """The same Fired on A, then (Azure Monitor's retry) on B, then on A again."""
    a, b = instances
    first = post(a, alert("Fired"))
    again = [post(b, alert("Fired")), post(a, alert("Fired"))]
    assert first["duplicate"] is False and all(r["duplicate"] for r in again), again
    assert len(slack.bodies) == 1 and len(pagerduty.bodies) == 1


def test_a_late_fired_of_one_alert_does_not_silence_another(instances, slack, pagerduty):
    """Only that alert instance stays resolved: a new alert of the same rule pages."""
    a, b = instances
    post(b, alert("Resolved", alert_id="alert-one"))
    post(a, alert("Fired", alert_id="alert-one"))
    fresh = post(a, alert("Fired", alert_id="alert-two"))
    assert fresh["channels"]["pagerduty"] == "delivered"
    assert [action for action, _ in pagerduty_actions(pagerduty)] == ["resolve", "trigger"]
    assert all(body["routing_key"] == ROUTING_KEY for body in pagerduty.bodies)
