"""A failure burst in the demo, all the way to Slack and PagerDuty and back to the API.

The demo's provider outage makes one adapter's jobs fail; the local evaluator runs the rule
like Azure Monitor and posts the common alert schema to the relay of a real app served by
uvicorn; the relay delivers to loopback Slack and PagerDuty servers, queues in a SQLite outbox
what Slack could not take, and the redelivery timer sends it once Slack is back.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time

import jsonschema
import pytest
import uvicorn

from integration_monitoring.admin import LocalBackend
from integration_monitoring.alerts import (
    Evaluator,
    Redeliverer,
    RelayPoster,
    SqliteOutbox,
    rule_by_id,
)
from integration_monitoring.alerts._delivery import Deliverer
from integration_monitoring.app import create_app
from integration_monitoring.telemetry import use

from .helpers import free_port, http_get, http_post, store_telemetry
from .loopback.capture import CaptureServer

NOW_NS = 1_790_000_000 * 10**9
END = dt.datetime.fromtimestamp(NOW_NS / 1e9, dt.UTC)
SECRET = "relay-secret-for-tests"


@pytest.fixture(scope="module")
def world(tmp_path_factory, demo_store):
    """Two hours of demo history (a provider outage included), a relay app on uvicorn whose
    own events land in the same store, its outbox, and loopback Slack and PagerDuty."""
    folder = tmp_path_factory.mktemp("e2e")
    store = demo_store(hours=2, now=END, seed=7, tenants=8, integrations=48)
    telemetry, provider = store_telemetry(store)
    events: list[dict] = []
    telemetry.add_listener(events.append)
    previous = use(telemetry)
    with CaptureServer() as slack, CaptureServer(202, {"status": "success"}) as pagerduty:
        deliverer = Deliverer(slack_webhook_url=slack.url, pagerduty_routing_key="r" * 32,
                              pagerduty_events_url=pagerduty.url, backoff_base=0.01,
                              backoff_cap=0.05, max_attempts=3, budget=3.0,
                              outbox=SqliteOutbox(folder / "alert-outbox.sqlite3"))
        app = create_app(backend=LocalBackend(store), deliverer_factory=lambda: deliverer)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                               log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("ALERT_RELAY_SECRET", SECRET)
            thread.start()
            while not server.started:
                time.sleep(0.05)
            yield {"store": store, "slack": slack, "pagerduty": pagerduty, "events": events,
                   "url": f"http://127.0.0.1:{port}", "deliverer": deliverer}
            server.should_exit = True
            thread.join(10)
    use(previous)
    provider.shutdown()


@pytest.fixture(scope="module")
def story(world):
    """Evaluate the failure-rate rule every 5 minutes across the outage; Slack is down while
    the first alert fires."""
    rule = rule_by_id("high-sync-failure-rate")
    poster = RelayPoster(world["url"] + "/api/alerts/relay", SECRET)
    posted: list[dict] = []

    def post(payload: dict) -> None:
        posted.append(payload)
        poster(payload)

    evaluator = Evaluator(world["store"], rules=[rule], post=post)
    changes = []
    at = END - dt.timedelta(minutes=45)
    world["slack"].fail_next(50, 500)
    while at <= END:
        for change in evaluator.evaluate(rule, at):
            changes.append((at, change.condition, change.dimensions["adapterType"]))
        if changes:
            world["slack"].heal()  # Slack is back after the first alert
        at += rule.frequency
    return {"changes": changes, "posted": posted,
            "slack_before_redelivery": list(world["slack"].bodies)}


@pytest.fixture(scope="module")
def redelivered(world, story):
    """The redelivery timer's run once Slack is back, a minute and more later."""
    run = Redeliverer(world["deliverer"]).run(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    return {"run": run, "slack": list(world["slack"].bodies)}


def test_the_outage_fires_and_resolves(story):
    """The outage fires the rule for one adapter, and recovery resolves it."""
    conditions = [(condition, adapter) for _, condition, adapter in story["changes"]]
    assert ("Fired", "zendesk") in conditions and ("Resolved", "zendesk") in conditions
    assert conditions.index(("Fired", "zendesk")) < conditions.index(("Resolved", "zendesk"))


def test_pagerduty_gets_a_valid_trigger_then_resolve(world, story, pagerduty_request_schema):
    """Each Fired is a PagerDuty trigger and each Resolved a resolve with the same dedup key,
    all valid against PagerDuty's Events API v2 document."""
    events = world["pagerduty"].bodies
    for event in events:
        jsonschema.validate(event, pagerduty_request_schema)
    zendesk = [e for e in events if e["dedup_key"] == events[0]["dedup_key"]]
    assert [e["event_action"] for e in zendesk] == ["trigger", "resolve"]
    assert "zendesk" in str(zendesk[0]["payload"])
    assert zendesk[0]["dedup_key"] == zendesk[1]["dedup_key"]
    assert zendesk[0]["payload"]["severity"] == "critical"
    assert len(events) == len(story["posted"])


def test_slack_gets_readable_messages_and_its_outage_does_not_stop_pagerduty(world, story):
    """Slack was down for the first alert: PagerDuty still got it, and Slack's message was
    queued, with the alert's Resolved behind it; any other alert reached Slack at once."""
    first_alert = story["posted"][0]["data"]["essentials"]["alertId"]
    failed = [e for e in world["events"] if e["operation"] == "alert.delivery_failed"]
    assert [e["metadata"]["channel"] for e in failed] == ["slack"]
    assert failed[0]["metadata"]["alertId"] in first_alert
    assert failed[0]["metadata"]["queued"] is True
    first_id = failed[0]["metadata"]["alertId"]
    behind = [e for e in world["events"] if e["operation"] == "alert.delivery_queued"]
    first_notices = [p for p in story["posted"]
                     if p["data"]["essentials"]["alertId"].endswith(first_id)]
    assert len(behind) == len(first_notices) - 1  # its Resolved, when it resolved in the story
    messages = story["slack_before_redelivery"]
    assert len(messages) == len(story["posted"]) - len(first_notices)
    assert len(world["pagerduty"].bodies) == len(story["posted"])


def test_queued_slack_messages_are_redelivered_fired_before_resolved(world, story,
                                                                    redelivered):
    """Once Slack is back the timer delivers what was queued, each once, the first alert's
    FIRING message before its RESOLVED one, with the rule, adapter and runbook."""
    first_id = story["posted"][0]["data"]["essentials"]["alertId"].rsplit("/", 1)[-1]
    first_notices = [p for p in story["posted"]
                     if p["data"]["essentials"]["alertId"].endswith(first_id)]
    assert redelivered["run"].delivered == len(first_notices)
    messages = redelivered["slack"]
    assert len(messages) == len(story["posted"])
    late = messages[len(story["slack_before_redelivery"]):]
    assert [("FIRING" in m["text"], "RESOLVED" in m["text"]) for m in late] == [
        (True, False), (False, True)][: len(first_notices)]
    assert all(first_id in json.dumps(m) for m in late)
    assert world["deliverer"].outbox.entries() == []
    text = str(messages)
    assert "zendesk" in text and "High sync failure rate" in text
    assert "high-sync-failure-rate.md" in text and "resolved" in text.lower()


def test_a_duplicate_delivery_is_dropped(world, story):
    """Posting an alert's payload again notifies nobody a second time."""
    slack_before = len(world["slack"].bodies)
    pagerduty_before = len(world["pagerduty"].bodies)
    response = http_post(world["url"] + "/api/alerts/relay", json=story["posted"][-1],
                          headers={"x-relay-secret": SECRET})
    assert response.status_code == 202
    assert response.json()["duplicate"] is True
    assert len(world["slack"].bodies) == slack_before
    assert len(world["pagerduty"].bodies) == pagerduty_before


def test_alerts_api_lists_history_and_acknowledges(world, story, redelivered):
    """GET /api/admin/alerts shows the alerts from the relay's events, delivered on both
    channels in the end; ack is recorded."""
    until = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    url = world["url"] + "/api/admin/alerts"
    body = http_get(url, params={"until": until}).json()
    by_adapter = {a["dimensions"].get("adapterType"): a for a in body["alerts"]}
    zendesk = by_adapter["zendesk"]
    assert zendesk["state"] == "resolved" and zendesk["ruleId"] == "high-sync-failure-rate"
    assert {a["alertId"]: a["delivery"] for a in body["alerts"]} == {
        a["alertId"]: {"slack": "delivered", "pagerduty": "delivered"} for a in body["alerts"]}
    assert zendesk["runbookUrl"].endswith("docs/runbooks/high-sync-failure-rate.md")
    # when one is acknowledged
    ack = http_post(f"{url}/{zendesk['alertId']}/ack", json={"by": "ops@example.com",
                                                              "note": "provider outage"})
    assert ack.status_code == 200, ack.text
    # then the listing shows who acknowledged it
    after = http_get(url, params={"until": until}).json()
    acked = next(a for a in after["alerts"] if a["alertId"] == zendesk["alertId"])
    assert (acked["acknowledgedBy"], acked["ackNote"]) == ("ops@example.com", "provider outage")
    assert http_post(f"{url}/no-such-alert/ack", json={}).status_code == 404
    assert http_post(f"{url}/bad id!/ack", json={}).status_code in (400, 404)
    bad_body = http_post(f"{url}/{zendesk['alertId']}/ack", content=b"{nope",
                          headers={"Content-Type": "application/json"})
    assert bad_body.status_code == 400
    # and a form or plain-text POST, which another site could send unasked, is refused
    plain = http_post(f"{url}/{zendesk['alertId']}/ack", content=b'{"by": "x"}',
                       headers={"Content-Type": "text/plain"})
    assert plain.status_code == 415
    assert plain.json()["error"]["code"] == "unsupported_media_type"
