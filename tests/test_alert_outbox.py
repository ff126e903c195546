"""The alert outbox: what the relay could not deliver is queued and the redelivery timer sends
it until it is delivered or given up, and the alert history shows which.

Slack and PagerDuty are loopback capture servers; the outbox is a real SQLite file, or Azure
Table Storage through the real azure-data-tables client against Azurite, Microsoft's Storage
emulator (tests/azurite.py; one per session). Throttling, which Azurite never does, comes from
a stand-in that only refuses (tests/loopback/tables.py). The outbox's times come from a clock
the tests move, so hours of retrying run in a moment.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import azure.functions as func
import pytest
from azure.core.exceptions import HttpResponseError
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor

from integration_monitoring.admin import LocalBackend, install_error_handlers
from integration_monitoring.admin._models import Alert
from integration_monitoring.alerts import (
    PendingDelivery,
    Redeliverer,
    RedeliveryPolicy,
    SqliteOutbox,
    TableOutbox,
    outbox_from_env,
    run_alert_redelivery,
)
from integration_monitoring.alerts._delivery import Deliverer
from integration_monitoring.alerts._outbox import CLAIMS_PARTITION, TABLE_NAME
from integration_monitoring.alerts._payload import build_log_alert
from integration_monitoring.alerts._relay import relay_router
from integration_monitoring.alerts._rules import rule_by_id
from integration_monitoring.app import create_app
from integration_monitoring.localhost import LocalHost
from integration_monitoring.queues import SettingError
from integration_monitoring.schedules import ALERT_REDELIVERY, TIMERS
from integration_monitoring.store import StoreLogExporter, TelemetryStore

from .azurite import Azurite
from .loopback.capture import unused_url
from .loopback.tables import TableLoopback

SECRET = "relay-secret-for-tests"
ROUTING_KEY = "0123456789abcdef0123456789abcdef"
HOOK_PATH = "/services/T000/B000/SECRETPART"
T0 = dt.datetime(2025, 3, 4, 10, 15, 30, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)


class Clock:
    """The outbox's wall clock, moved by the test."""

    def __init__(self, start: dt.datetime = T0) -> None:
        self.at = start

    def __call__(self) -> dt.datetime:
        return self.at

    def advance(self, delta: dt.timedelta) -> dt.datetime:
        self.at += delta
        return self.at


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERT_RELAY_SECRET", SECRET)
    for name in ("SLACK_WEBHOOK_URL", "PAGERDUTY_ROUTING_KEY", "PAGERDUTY_EVENTS_URL",
                 "DASHBOARD_BASE_URL", "RUNBOOK_BASE_URL", "ALERT_OUTBOX_TABLE_ENDPOINT",
                 "ALERT_REDELIVERY_HOURS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def outbox(tmp_path) -> SqliteOutbox:
    return SqliteOutbox(tmp_path / "data" / "alert-outbox.sqlite3")


def deliverer(outbox: Any, clock: Clock, slack_url: str | None, pagerduty_url: str | None,
              *, routing_key: str = ROUTING_KEY, **options: Any) -> Deliverer:
    """A relay deliverer with two quick in-request attempts per channel."""
    options = {"backoff_base": 0.01, "backoff_cap": 0.02, "budget": 2.0, "timeout": 1.0,
               "max_attempts": 2, **options}
    return Deliverer(slack_webhook_url=slack_url,
                     pagerduty_routing_key=routing_key if pagerduty_url else None,
                     pagerduty_events_url=pagerduty_url, outbox=outbox, now=clock, **options)


def relay(instance: Deliverer) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(relay_router(lambda: instance))
    return TestClient(app)


def alert(condition: str = "Fired", *, rule_id: str = "high-sync-failure-rate",
          alert_id: str = "6f1c2d3e-0000-4000-8000-00000000000a",
          dimensions: dict[str, str] | None = None) -> dict[str, Any]:
    rule = rule_by_id(rule_id)
    assert rule is not None
    return build_log_alert(
        rule, condition=condition,
        dimensions={"adapterType": "hubspot"} if dimensions is None else dimensions,
        value=3.0 if condition == "Resolved" else 42.0, window_start=T0 - rule.window,
        window_end=T0, fired_at=T0,
        resolved_at=T0 + dt.timedelta(minutes=10) if condition == "Resolved" else None,
        alert_id=alert_id)


def post(client: TestClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/api/alerts/relay", json=body, headers={"x-relay-secret": SECRET})
    assert response.status_code == 202, response.text
    return response.json()


def list_alerts(client: TestClient) -> dict[str, Any]:
    """GET /api/admin/alerts up to a minute from now (the range ends on a whole second, and
    the events were written within it)."""
    until = dt.datetime.now(dt.UTC) + MINUTE
    response = client.get("/api/admin/alerts",
                          params={"until": until.strftime("%Y-%m-%dT%H:%M:%SZ")})
    assert response.status_code == 200, response.text
    return response.json()


def run_at(instance: Deliverer, clock: Clock, at: dt.datetime, **options: Any) -> Any:
    clock.at = at
    return Redeliverer(instance, **options).run()


# -- the relay queues, the timer redelivers -------------------------------------------------


def test_slack_down_for_a_while_is_queued_then_redelivered_exactly_once(
        slack, pagerduty, outbox, clock, captured):
    """Slack answering 503 for minutes: the relay says `queued`, the timer keeps trying with
    a growing wait and delivers the same message once Slack is back, then stops."""
    # given Slack failing until told otherwise, and PagerDuty fine
    slack.fail_next(1000, status=503)
    relay_deliverer = deliverer(outbox, clock, slack.url + HOOK_PATH, pagerduty.url)
    # when the alert is relayed
    summary = post(relay(relay_deliverer), alert())
    # then Slack is queued for retry, PagerDuty delivered, and the answer says why
    assert summary["channels"] == {"email": "action_group", "slack": "queued",
                                   "pagerduty": "delivered"}
    assert "HTTP 503" in summary["errors"]["slack"]
    failed = captured.assert_event("alert.delivery_failed", channel="slack", queued=True,
                                   attempts=2)
    assert failed["level"] == "warn"
    [entry] = outbox.entries()
    assert (entry.channel, entry.condition, entry.attempts) == ("slack", "Fired", 2)
    assert entry.next_attempt_at == T0 + MINUTE
    attempts_in_relay = slack.attempts
    # when the timer runs before the entry is due, nothing is sent
    assert run_at(relay_deliverer, clock, T0 + 30 * dt.timedelta(seconds=1)).delivered == 0
    assert slack.attempts == attempts_in_relay
    # when it runs at the first minute with Slack still down
    first = run_at(relay_deliverer, clock, T0 + MINUTE)
    # then that attempt fails and the next one is two minutes later
    assert (first.rescheduled, first.delivered) == (1, 0)
    assert slack.attempts == attempts_in_relay + 1
    [entry] = outbox.entries()
    assert entry.next_attempt_at == T0 + 3 * MINUTE
    captured.assert_event("alert.delivery_retry", channel="slack", redelivered=True,
                          attempt=3, delaySeconds=120.0)
    # when Slack recovers and the timer runs when the entry is due
    slack.heal()
    assert run_at(relay_deliverer, clock, T0 + 2 * MINUTE).delivered == 0  # not due yet
    done = run_at(relay_deliverer, clock, T0 + 3 * MINUTE)
    # then the message reached Slack once, the very body that failed, and the entry is gone
    assert done.delivered == 1
    [message] = slack.bodies
    assert "FIRING" in message["text"] and "hubspot" in message["text"]
    assert [r.body for r in slack.requests] == [message] * slack.attempts
    assert all(r.path == HOOK_PATH for r in slack.requests)
    assert outbox.entries() == []
    delivered = captured.assert_event("alert.delivered", channel="slack", redelivered=True)
    assert delivered["metadata"]["attempts"] == 4
    assert delivered["metadata"]["adapterType"] == "hubspot"
    # and later runs send nothing more
    assert run_at(relay_deliverer, clock, T0 + 60 * MINUTE).delivered == 0
    assert len(slack.bodies) == 1 and len(pagerduty.bodies) == 1
    relay_deliverer.close()


def test_health_shows_what_waits_for_redelivery(slack, pagerduty, outbox, clock, tmp_path):
    """/api/health counts the outbox's entries by channel, with the oldest's time."""
    slack.fail_next(1000, status=503)
    instance = deliverer(outbox, clock, slack.url + HOOK_PATH, pagerduty.url)
    app = TestClient(create_app(backend=LocalBackend(TelemetryStore(tmp_path / "h.duckdb")),
                                deliverer_factory=lambda: instance))
    assert app.get("/api/health").json()["alertOutbox"] == {
        "pending": 0, "byChannel": {}, "oldestQueuedAt": None}
    post(app, alert())
    assert app.get("/api/health").json()["alertOutbox"] == {
        "pending": 1, "byChannel": {"slack": 1}, "oldestQueuedAt": T0.isoformat()}
    instance.close()


def test_what_is_queued_holds_no_webhook_url_or_routing_key(slack, pagerduty, outbox, clock):
    """The outbox keeps bodies, not secrets: neither the Slack webhook URL nor the PagerDuty
    routing key is in the SQLite file."""
    # given both channels failing
    slack.fail_next(10, status=500)
    pagerduty.fail_next(10, status=502)
    relay_deliverer = deliverer(outbox, clock, slack.url + HOOK_PATH, pagerduty.url)
    # when an alert is relayed
    summary = post(relay(relay_deliverer), alert())
    # then both are queued
    assert summary["channels"]["slack"] == summary["channels"]["pagerduty"] == "queued"
    stored = {e.channel: e for e in outbox.entries()}
    assert set(stored) == {"slack", "pagerduty"}
    assert "routing_key" not in stored["pagerduty"].body
    assert stored["pagerduty"].body["event_action"] == "trigger"
    # and neither secret is in the database, nor in any file beside it (journal included)
    with sqlite3.connect(outbox.path) as db:
        dumped = "\n".join(db.iterdump())
    assert "FIRING" in dumped and "dedup_key" in dumped  # the bodies are there
    assert "SECRETPART" not in dumped and ROUTING_KEY not in dumped
    for path in outbox.path.parent.iterdir():
        raw = path.read_bytes()
        assert b"SECRETPART" not in raw and ROUTING_KEY.encode() not in raw, path.name
    relay_deliverer.close()


def test_pagerduty_retries_keep_the_dedup_key_and_take_the_key_from_settings(
        pagerduty, outbox, clock):
    """A queued PagerDuty trigger is redelivered under the same dedup_key, with the routing
    key the settings hold at the time it is sent."""
    # given PagerDuty failing while the relay delivers
    pagerduty.fail_next(2, status=500)
    first = deliverer(outbox, clock, None, pagerduty.url)
    assert post(relay(first), alert())["channels"]["pagerduty"] == "queued"
    first.close()
    # when the timer runs with a rotated routing key
    rotated = "fedcba9876543210fedcba9876543210"
    later = deliverer(outbox, clock, None, pagerduty.url, routing_key=rotated)
    assert run_at(later, clock, T0 + MINUTE).delivered == 1
    # then every attempt carried one dedup_key, and the delivered one the new routing key
    keys = {r.body["dedup_key"] for r in pagerduty.requests}
    assert len(keys) == 1
    [delivered] = pagerduty.bodies
    assert (delivered["routing_key"], delivered["event_action"]) == (rotated, "trigger")
    assert [r.body["routing_key"] for r in pagerduty.requests[:2]] == [ROUTING_KEY] * 2
    later.close()


def test_a_restart_loses_nothing(slack, pagerduty, tmp_path, clock, captured):
    """Deliveries queued before a restart are delivered after it: a new outbox object on the
    same SQLite file, a new deliverer, the channels' current addresses."""
    # given both channels unreachable (connections refused) while two alerts are relayed
    path = tmp_path / "data" / "alert-outbox.sqlite3"
    before = deliverer(SqliteOutbox(path), clock, unused_url(), unused_url())
    client = relay(before)
    for alert_id in ("6f1c2d3e-0000-4000-8000-0000000000b1",
                     "6f1c2d3e-0000-4000-8000-0000000000b2"):
        summary = post(client, alert(alert_id=alert_id))
        assert summary["channels"]["slack"] == summary["channels"]["pagerduty"] == "queued"
        assert "ConnectError" in summary["errors"]["slack"]
    before.close()
    # when the process starts again, with the channels reachable at their new addresses
    after = deliverer(SqliteOutbox(path), clock, slack.url + HOOK_PATH, pagerduty.url)
    assert len(after.outbox.entries()) == 4
    run = run_at(after, clock, T0 + MINUTE)
    # then each of the four deliveries arrived once
    assert run.delivered == 4
    assert len(slack.bodies) == 2 and len(pagerduty.bodies) == 2
    assert {e["payload"]["custom_details"]["alertId"] for e in pagerduty.bodies} == {
        "6f1c2d3e-0000-4000-8000-0000000000b1", "6f1c2d3e-0000-4000-8000-0000000000b2"}
    assert after.outbox.entries() == []
    assert len(captured.find("alert.delivered", redelivered=True)) == 4
    after.close()


def test_a_repeat_of_a_queued_notice_on_another_instance_is_not_sent_again(
        slack, outbox, clock):
    """An action group retry that lands on another relay instance finds the notice claimed
    in the shared store (a duplicate) and leaves it to the timer."""
    # given an alert whose Slack message is queued
    slack.fail_next(2, status=503)
    one = deliverer(outbox, clock, slack.url, None)
    assert post(relay(one), alert())["channels"]["slack"] == "queued"
    attempts = slack.attempts
    # when the same notice arrives at a second instance sharing the outbox, Slack being back
    other = deliverer(outbox, clock, slack.url, None)
    summary = post(relay(other), alert())
    # then it is a duplicate and nothing is sent; the timer delivers it once
    assert summary["duplicate"] is True
    assert summary["channels"]["slack"] == "duplicate" and slack.attempts == attempts
    assert run_at(other, clock, T0 + MINUTE).delivered == 1
    assert len(slack.bodies) == 1
    one.close()
    other.close()


def test_resolved_is_not_delivered_before_its_fired(slack, pagerduty, outbox, clock, captured):
    """While the Fired message waits for Slack, the Resolved one waits behind it, even once it
    could be sent; PagerDuty, which got the trigger, gets the resolve at once."""
    # given a Fired alert whose Slack message is queued
    slack.fail_next(2, status=503)
    instance = deliverer(outbox, clock, slack.url, pagerduty.url)
    client = relay(instance)
    assert post(client, alert())["channels"]["slack"] == "queued"
    slack.heal()
    # when the alert resolves ten seconds later, Slack being reachable again
    clock.advance(dt.timedelta(seconds=10))
    summary = post(client, alert("Resolved"))
    # then Slack's Resolved is queued behind the Fired, and nothing reached Slack yet
    assert summary["channels"] == {"email": "action_group", "slack": "queued",
                                   "pagerduty": "delivered"}
    assert "waiting for the Fired notice" in summary["errors"]["slack"]
    assert slack.bodies == []
    captured.assert_event("alert.delivery_queued", channel="slack", condition="Resolved")
    assert [e["event_action"] for e in pagerduty.bodies] == ["trigger", "resolve"]
    # when the timer runs while only the Resolved is due
    waiting = run_at(instance, clock, T0 + dt.timedelta(seconds=30))
    # then it still waits
    assert (waiting.waiting, waiting.delivered, slack.bodies) == (1, 0, [])
    # when the Fired is due, both go, Fired first
    assert run_at(instance, clock, T0 + MINUTE).delivered == 2
    assert ["FIRING" in m["text"] for m in slack.bodies] == [True, False]
    assert "RESOLVED" in slack.bodies[1]["text"]
    assert outbox.entries() == []
    instance.close()


# -- giving up ------------------------------------------------------------------------------


def test_pagerduty_down_past_the_bound_is_abandoned_and_shown_in_the_alert_history(
        slack, pagerduty, tmp_path, clock, captured):
    """PagerDuty down for longer than ALERT_REDELIVERY_HOURS: retried at 1, 2, 4 … minutes,
    then given up with an error event, and GET /api/admin/alerts says so per channel."""
    # given the events stored where the admin API reads them, and a one-hour bound
    store = TelemetryStore(tmp_path / "telemetry.duckdb")
    captured.telemetry.logger_provider.add_log_record_processor(
        SimpleLogRecordProcessor(StoreLogExporter(store)))
    policy = RedeliveryPolicy.from_env({"ALERT_REDELIVERY_HOURS": "1"})
    pagerduty.fail_next(10_000, status=503)
    instance = deliverer(SqliteOutbox(tmp_path / "outbox.sqlite3"), clock, slack.url,
                         pagerduty.url, redelivery=policy)
    app = create_app(backend=LocalBackend(store), deliverer_factory=lambda: instance)
    client = TestClient(app)
    assert post(client, alert())["channels"]["pagerduty"] == "queued"
    other = alert(rule_id="integration-stale", alert_id="6f1c2d3e-0000-4000-8000-0000000000c1",
                  dimensions={"integrationId": "sf-9", "tenantId": "tenant-1"})
    # when the timer runs every minute for an hour and a bit, and 40 minutes in another alert
    # finds Slack down
    attempts_at = []
    for minute in range(1, 71):
        clock.at = T0 + minute * MINUTE
        if minute == 40:
            slack.fail_next(10_000, status=503)
            assert post(client, other)["channels"]["slack"] == "queued"
        before = pagerduty.attempts
        run_at(instance, clock, clock.at)
        if pagerduty.attempts > before:
            attempts_at.append(minute)
    # then PagerDuty was tried with a doubling wait, capped at 30 min, and then given up
    assert attempts_at == [1, 3, 7, 15, 31]
    abandoned = captured.assert_event("alert.delivery_abandoned", level="error",
                                      channel="pagerduty")
    assert abandoned["metadata"]["attempts"] == 2 + 5
    assert "gave up after 7 attempts in 1 h" in abandoned["metadata"]["reason"]
    assert "HTTP 503" in abandoned["metadata"]["reason"]
    assert {e.channel for e in instance.outbox.entries()} == {"slack"}
    # and the alert history shows each alert's delivery per channel
    captured.telemetry.flush()
    listed = list_alerts(client)
    by_rule = {a["ruleId"]: a for a in listed["alerts"]}
    assert by_rule["high-sync-failure-rate"]["delivery"] == {"slack": "delivered",
                                                             "pagerduty": "abandoned"}
    assert by_rule["integration-stale"]["delivery"] == {"slack": "retrying"}
    instance.close()
    store.close()


def test_alert_history_marks_retrying_and_lost_channels(slack, tmp_path, clock, captured):
    """A channel in the outbox is `retrying`, one that failed without an outbox `failed`,
    and an alert with no relayed channel has an empty delivery."""
    store = TelemetryStore(tmp_path / "telemetry.duckdb")
    captured.telemetry.logger_provider.add_log_record_processor(
        SimpleLogRecordProcessor(StoreLogExporter(store)))
    slack.fail_next(4, status=503)
    queued = deliverer(SqliteOutbox(tmp_path / "outbox.sqlite3"), clock, slack.url, None)
    lost = deliverer(None, clock, slack.url, None)
    post(relay(queued), alert(rule_id="integration-stale",
                              alert_id="6f1c2d3e-0000-4000-8000-0000000000d1",
                              dimensions={"integrationId": "a", "tenantId": "t"}))
    post(relay(lost), alert(rule_id="integration-stale",
                            alert_id="6f1c2d3e-0000-4000-8000-0000000000d2",
                            dimensions={"integrationId": "b", "tenantId": "t"}))
    post(relay(deliverer(None, clock, None, None)),
         alert(rule_id="integration-stale", alert_id="6f1c2d3e-0000-4000-8000-0000000000d3",
               dimensions={"integrationId": "c", "tenantId": "t"}))
    captured.telemetry.flush()
    client = TestClient(create_app(backend=LocalBackend(store),
                                   deliverer_factory=lambda: queued))
    rows = {a["integrationId"]: a for a in list_alerts(client)["alerts"]}
    assert rows["a"]["delivery"] == {"slack": "retrying"}
    assert rows["b"]["delivery"] == {"slack": "failed"}
    assert rows["c"]["delivery"] == {}
    queued.close()
    lost.close()
    store.close()


def test_a_permanent_refusal_in_the_relay_is_abandoned_at_once(pagerduty, outbox, clock,
                                                               captured):
    """A 400 from PagerDuty is not queued: retrying the same event cannot succeed."""
    # given PagerDuty refusing the next event as invalid
    pagerduty.fail_next(1, status=400)
    instance = deliverer(outbox, clock, None, pagerduty.url)
    # when the alert is relayed
    summary = post(relay(instance), alert())
    # then it failed after one attempt, was given up with the reason, and nothing is queued
    assert summary["channels"]["pagerduty"] == "failed" and pagerduty.attempts == 1
    assert "HTTP 400" in summary["errors"]["pagerduty"]
    captured.assert_event("alert.delivery_failed", level="error", channel="pagerduty",
                          queued=False)
    abandoned = captured.assert_event("alert.delivery_abandoned", level="error",
                                      channel="pagerduty")
    assert abandoned["metadata"]["reason"].startswith("permanent failure: HTTP 400")
    assert outbox.entries() == []
    instance.close()


def test_a_permanent_refusal_on_redelivery_is_abandoned_at_once(slack, outbox, clock,
                                                                captured):
    """A queued message that the channel then refuses with a 4xx (not 408/429) is given up on
    that attempt, with the reason; a 429 before it is only a reason to wait."""
    # given a queued Slack message
    slack.fail_next(2, status=503)
    instance = deliverer(outbox, clock, slack.url, None)
    post(relay(instance), alert())
    # when the first redelivery is rate-limited (Retry-After 300 s) and the next refused
    slack.fail_next(1, status=429, retry_after="300")
    assert run_at(instance, clock, T0 + MINUTE).rescheduled == 1
    [entry] = outbox.entries()
    assert entry.next_attempt_at == T0 + MINUTE + dt.timedelta(seconds=300)
    slack.fail_next(1, status=404)
    run = run_at(instance, clock, entry.next_attempt_at)
    # then it is abandoned at once, naming the refusal
    assert (run.abandoned, run.rescheduled) == (1, 0)
    abandoned = captured.assert_event("alert.delivery_abandoned", channel="slack")
    assert abandoned["metadata"]["reason"].startswith("permanent failure: HTTP 404")
    assert abandoned["metadata"]["attempts"] == 4
    assert outbox.entries() == [] and slack.bodies == []
    instance.close()


def test_an_entry_found_past_its_bound_is_abandoned_without_another_attempt(
        slack, outbox, clock, captured):
    """If no run came for a day (the app was stopped), what is older than the bound is given
    up, not sent late."""
    slack.fail_next(2, status=503)
    instance = deliverer(outbox, clock, slack.url, None)
    post(relay(instance), alert())
    attempts = slack.attempts
    run = run_at(instance, clock, T0 + dt.timedelta(hours=25))
    assert (run.abandoned, slack.attempts) == (1, attempts)
    abandoned = captured.assert_event("alert.delivery_abandoned", channel="slack")
    assert abandoned["metadata"]["reason"].startswith(
        "not delivered within 24 h of being queued; last error: HTTP 503")
    assert outbox.entries() == []
    instance.close()


def test_a_channel_turned_off_while_queued_is_abandoned(slack, outbox, clock, captured):
    """Removing a channel's setting gives up what waits for it, saying which setting."""
    slack.fail_next(2, status=503)
    post(relay(deliverer(outbox, clock, slack.url, None)), alert())
    run = run_at(deliverer(outbox, clock, None, None), clock, T0 + MINUTE)
    assert run.abandoned == 1
    captured.assert_event("alert.delivery_abandoned", channel="slack",
                          reason="SLACK_WEBHOOK_URL is not set")


def test_a_down_channel_is_probed_once_per_run(slack, outbox, clock):
    """When one Slack message fails again, the other due Slack messages wait for the next run
    instead of hitting a channel that is down."""
    slack.fail_next(1000, status=503)
    instance = deliverer(outbox, clock, slack.url, None)
    client = relay(instance)
    for n in range(3):
        post(client, alert(alert_id=f"6f1c2d3e-0000-4000-8000-0000000000e{n}"))
    in_relay = slack.attempts
    run = run_at(instance, clock, T0 + MINUTE)
    assert (run.rescheduled, run.waiting, slack.attempts - in_relay) == (1, 2, 1)
    instance.close()


@pytest.mark.parametrize("status", [503, 429])
def test_an_unavailable_outbox_makes_the_failure_final_and_says_so(slack, clock, captured,
                                                                   status):
    """Table Storage throttling (the stand-in: Azurite never throttles): the relay reports the
    channel failed, not queued, and why."""
    with TableLoopback(status) as tables:
        outbox = TableOutbox(tables.endpoint, tables.credential, connection_verify=tables.ca_path)
        slack.fail_next(2, status=503)
        instance = deliverer(outbox, clock, slack.url, None)
        summary = post(relay(instance), alert())
        assert summary["channels"]["slack"] == "failed"
        assert "could not queue it: HttpResponseError" in summary["errors"]["slack"]
        captured.assert_event("alert.delivery_failed", channel="slack", queued=False)
        # every request was the table's creation: each outbox call tries it again while it fails
        assert {(r.method, r.path) for r in tables.requests} == {("POST", "/Tables")}
        instance.close()


@pytest.mark.parametrize("status", [503, 429])
def test_an_unreachable_outbox_ends_the_timer_run_with_an_event(slack, clock, captured, status):
    """Table Storage throttling (the stand-in: Azurite never throttles) while the timer lists
    what is due: the run ends without raising and says why."""
    with TableLoopback(status) as tables:
        outbox = TableOutbox(tables.endpoint, tables.credential, connection_verify=tables.ca_path)
        instance = deliverer(outbox, clock, slack.url, None)
        run = run_at(instance, clock, T0 + MINUTE)
        assert (run.delivered, run.rescheduled, run.abandoned) == (0, 0, 0)
        assert run.errors and run.errors[0].startswith("outbox: HttpResponseError")
        captured.assert_event("alert.outbox_failed", reason="could not list the due entries")
        instance.close()


# -- the two stores -------------------------------------------------------------------------


@pytest.fixture
def table_name(azurite) -> Iterator[str]:
    """A table of the test's own on Azurite, dropped afterwards if it was made."""
    name = f"outbox{uuid.uuid4().hex[:16]}"
    yield name
    with azurite.service() as service:
        service.delete_table(name)


#: The tests on Azurite, so that `--dist loadgroup` gives them all to one worker and one Azurite.
#: (pytest 9.2 with pytest-xdist 3.8 ignores the groups, pytest-xdist#1386: then each worker that
#: gets one starts its own.)
on_azurite = pytest.mark.xdist_group("azurite")
STORAGE_SCOPE = ("https://storage.azure.com/.default",)


def azure_outbox(azurite: Azurite, table: str, credential: Any = None,
                 **options: Any) -> TableOutbox:
    """A TableOutbox on Azurite as the app builds one (its retry and timeouts), with a bearer
    token for Storage unless another credential is given."""
    return TableOutbox(azurite.endpoint, credential or azurite.token_credential(),
                       table_name=table, **azurite.client_options, **options)


def calls(responses: list[Any]) -> list[tuple[str, str, int]]:
    """(method, resource, status) of each request a client made: the path after the account,
    without an entity's keys."""
    found = []
    for response in responses:
        path = urlsplit(response.http_request.url).path.split("/", 2)[2]
        found.append((response.http_request.method, unquote(path).split("(")[0],
                      response.http_response.status_code))
    return found


@pytest.fixture(params=["sqlite", "table"])
def any_outbox(request, tmp_path) -> Iterator[Any]:
    """Each implementation of the outbox: a SQLite file, and Azure Table Storage through the
    real TableClient on Azurite."""
    if request.param == "sqlite":
        yield SqliteOutbox(tmp_path / "outbox.sqlite3")
        return
    outbox = azure_outbox(request.getfixturevalue("azurite"),
                          request.getfixturevalue("table_name"))
    yield outbox
    outbox.close()


def entry(alert_id: str = "/subscriptions/s/providers/Microsoft.AlertsManagement/alerts/x'1",
          condition: str = "Fired", channel: str = "slack",
          next_attempt_at: dt.datetime = T0 + MINUTE,
          body: dict[str, Any] | None = None) -> PendingDelivery:
    return PendingDelivery(alert_id=alert_id, condition=condition, channel=channel,
                           rule_id="high-sync-failure-rate", severity="Sev1",
                           body={"text": "ünïcode ok", "blocks": [{"type": "header"}]}
                           if body is None else body,
                           queued_at=T0, next_attempt_at=next_attempt_at, tenant_id="t-1",
                           integration_id=None, dimensions={"adapterType": "hubspot"},
                           attempts=2, last_error="HTTP 503")


@on_azurite
def test_both_outboxes_keep_the_same_contract(any_outbox):
    """Add once per notice, due by time, pending by alert and channel, and update or remove
    only the version that was read."""
    # given two entries for one alert on Slack and one on PagerDuty
    fired, resolved = entry(), entry(condition="Resolved", next_attempt_at=T0)
    paged = entry(channel="pagerduty", next_attempt_at=T0 + 2 * MINUTE)
    assert all(any_outbox.add(e) for e in (fired, resolved, paged))
    # then the same notice cannot be added twice
    assert any_outbox.add(entry()) is False
    # and due entries come by time, oldest first, with what was stored
    assert [e.condition for e in any_outbox.due(T0)] == ["Resolved"]
    assert [(e.channel, e.condition) for e in any_outbox.due(T0 + MINUTE)] == [
        ("slack", "Resolved"), ("slack", "Fired")]
    assert len(any_outbox.due(T0 + 2 * MINUTE)) == 3
    [got] = [e for e in any_outbox.pending(fired.alert_id, "slack") if e.condition == "Fired"]
    assert (got.body, got.queued_at, got.next_attempt_at, got.dimensions, got.attempts,
            got.last_error, got.tenant_id) == (fired.body, T0, T0 + MINUTE,
                                              {"adapterType": "hubspot"}, 2, "HTTP 503", "t-1")
    assert [e.channel for e in any_outbox.pending(fired.alert_id, "pagerduty")] == ["pagerduty"]
    assert any_outbox.pending("another", "slack") == []
    # when one is updated, an older copy can no longer be saved or removed
    got.attempts, got.next_attempt_at = 3, T0 + 5 * MINUTE
    saved = any_outbox.save(got)
    assert saved is not None and saved.etag != got.etag
    assert any_outbox.save(got) is None
    assert any_outbox.remove(got) is False
    assert [e.attempts for e in any_outbox.pending(fired.alert_id, "slack")
            if e.condition == "Fired"] == [3]
    # and the current copy is removed; saving it afterwards finds nothing to update
    assert any_outbox.remove(saved) is True
    assert any_outbox.save(saved) is None
    assert {(e.channel, e.condition) for e in any_outbox.entries()} == {
        ("slack", "Resolved"), ("pagerduty", "Fired")}


@on_azurite
def test_the_table_outbox_on_azurite_queues_and_redelivers(azurite, table_name, slack, clock):
    """Through the real TableClient on Azurite with a Storage bearer token: the relay creates
    the table and inserts one entity keyed by channel and a hash, without the webhook URL; the
    timer finds it with $filter and deletes it with the etag it read."""
    seen: list[Any] = []
    credential = azurite.token_credential()
    outbox = azure_outbox(azurite, table_name, credential, raw_response_hook=seen.append)
    # given Slack down while an alert is relayed
    slack.fail_next(2, status=503)
    instance = deliverer(outbox, clock, slack.url + HOOK_PATH, None)
    assert post(relay(instance), alert())["channels"]["slack"] == "queued"
    # then the table holds one entity keyed by channel and a hash, without the URL
    with azurite.service() as service:
        [stored] = deliveries(service.get_table_client(table_name))
        claims = claimed(service.get_table_client(table_name))
    assert stored["PartitionKey"] == "slack"
    # beside it the relay's claims: the notice, and its sending on Slack
    assert len(claims) == 2
    assert len(stored["RowKey"]) == 64 and "/" not in stored["RowKey"]
    assert (stored["QueuedAt"], stored["NextAttemptAt"]) == (T0, T0 + MINUTE)  # Edm.DateTime
    assert stored["AlertId"] == "6f1c2d3e-0000-4000-8000-00000000000a"
    assert "SECRETPART" not in json.dumps(dict(stored), default=str)
    # when the timer delivers it
    assert run_at(instance, clock, T0 + MINUTE).delivered == 1
    # then the entity is gone, deleted with the etag it was read with
    with azurite.service() as service:
        assert deliveries(service.get_table_client(table_name)) == []
    made = calls(seen)
    assert made[0] == ("POST", "Tables", 201)
    assert ("POST", table_name, 201) in made and ("DELETE", table_name, 204) in made
    # (the other deletes release the timer's claim on the entry while it sent it)
    [delete] = [r.http_request for r in seen if r.http_request.method == "DELETE"
                and stored["RowKey"] in r.http_request.url]
    assert delete.headers["If-Match"] == stored.metadata["etag"]
    queries = [parse_qs(urlsplit(r.http_request.url).query)["$filter"][0] for r in seen
               if r.http_request.method == "GET" and "filter" in r.http_request.url]
    # a Fired notice first asks which silences there are, then what waits for its channel
    assert queries[:2] == ["PartitionKey eq 'silences'", (
        "PartitionKey eq 'slack' and AlertId eq '6f1c2d3e-0000-4000-8000-00000000000a'")]
    assert "NextAttemptAt le datetime'2025-03-04T10:16:30.000000Z'" in queries
    assert all(r.http_request.headers["Authorization"].startswith("Bearer ") for r in seen)
    assert set(credential.scopes) == {STORAGE_SCOPE}
    assert len(slack.bodies) == 1
    instance.close()


def deliveries(table: Any) -> list[Any]:
    """The entities that are queued deliveries (the relay's claims share the table)."""
    return [e for e in table.list_entities() if e["PartitionKey"] != CLAIMS_PARTITION]


def claimed(table: Any) -> list[Any]:
    return [e for e in table.list_entities() if e["PartitionKey"] == CLAIMS_PARTITION]


def at_once(work: list[Callable[[], Any]]) -> list[Any]:
    """Each call on a thread of its own, all released at the same moment."""
    gate = threading.Barrier(len(work))

    def run(call: Callable[[], Any]) -> Any:
        gate.wait(5)
        return call()

    with ThreadPoolExecutor(len(work)) as pool:
        return list(pool.map(run, work))


@on_azurite
def test_racing_instances_store_a_notice_once_and_update_it_once(azurite, table_name):
    """Eight instances starting at once on a new table: one creates it and the others' 409 is
    no error; adding the same notice together stores it once; two saving the copy both read
    update it once (the etag decides), and the loser's copy can no longer remove it."""
    seen: list[Any] = []
    outboxes = [azure_outbox(azurite, table_name, raw_response_hook=seen.append)
                for _ in range(8)]
    added = at_once([partial(outbox.add, entry()) for outbox in outboxes])
    assert sorted(added) == [False] * 7 + [True]
    creates = sorted(status for method, path, status in calls(seen) if path == "Tables")
    assert creates == [201] + [409] * 7
    [a], [b] = outboxes[1].due(T0 + MINUTE), outboxes[2].due(T0 + MINUTE)
    assert a.etag == b.etag
    a.attempts, b.attempts = 10, 20
    saved = at_once([partial(outboxes[1].save, a), partial(outboxes[2].save, b)])
    [winner] = [s for s in saved if s is not None]
    loser = b if winner.attempts == a.attempts else a
    assert [e.attempts for e in outboxes[0].entries()] == [winner.attempts]
    assert outboxes[3].remove(loser) is False and outboxes[3].remove(winner) is True
    assert outboxes[0].entries() == []
    for outbox in outboxes:
        outbox.close()


@on_azurite
def test_an_app_that_may_not_create_tables_queues_in_the_deployed_one(
        azurite, table_name, slack, clock):
    """Access to the one table only (here a SAS for it; in Azure a role scoped to it): Azurite
    refuses create-table with 403, the outbox takes the table to exist and queues in it; if it
    does not exist, queuing fails and the relay says so."""
    # given the table the deployment made, and a credential for that table alone
    with azurite.service() as service:
        service.create_table(table_name)
    seen: list[Any] = []
    outbox = azure_outbox(azurite, table_name, azurite.sas_credential(table_name),
                          raw_response_hook=seen.append)
    slack.fail_next(2, status=503)
    instance = deliverer(outbox, clock, slack.url, None)
    # when Slack fails, the notice is queued all the same
    assert post(relay(instance), alert())["channels"]["slack"] == "queued"
    assert calls(seen)[0] == ("POST", "Tables", 403)
    assert [e.channel for e in outbox.entries()] == ["slack"]
    instance.close()
    # when the deployment did not make the table, the refusal hides that until the insert
    missing = f"{table_name}x"
    orphan = deliverer(azure_outbox(azurite, missing, azurite.sas_credential(missing)), clock,
                       slack.url, None)
    slack.fail_next(2, status=503)
    summary = post(relay(orphan), alert(alert_id="6f1c2d3e-0000-4000-8000-0000000000f1"))
    assert summary["channels"]["slack"] == "failed"
    assert "could not queue it: ResourceNotFoundError" in summary["errors"]["slack"]
    assert "TableNotFound" in summary["errors"]["slack"]
    orphan.close()


@on_azurite
def test_a_notice_too_big_for_a_table_property_is_reported_failed_not_queued(
        azurite, table_name, pagerduty, clock, captured, tmp_path):
    """Azurite refuses a string property over 32 K UTF-16 characters (the service's "64KB"
    limit) with 400 PropertyValueTooLarge; the outbox passes the refusal on and the relay
    reports the channel failed, where the SQLite outbox queues the same notice."""
    outbox = azure_outbox(azurite, table_name)
    # the Body property is the body's JSON text: 32,768 characters fit, one more does not
    assert outbox.add(entry(alert_id="fits", body={"text": "x" * (32_768 - 12)}))
    with pytest.raises(HttpResponseError,
                       match=r"exceeds the maximum allowed size \(64KB\)") as refused:
        outbox.add(entry(alert_id="one more", body={"text": "x" * (32_769 - 12)}))
    assert refused.value.status_code == 400 and "PropertyValueTooLarge" in str(refused.value)
    # and non-ASCII text is stored as it is, one UTF-16 unit a character, not as \u00e9
    assert outbox.add(entry(alert_id="accents", body={"text": "é" * 30_000}))
    # when PagerDuty is down for an alert whose event is that big (a long dimension value:
    # PagerDuty's event carries it whole, where Slack's message is cut to Slack's limits)
    big = alert(dimensions={"adapterType": "hubspot-" + "x" * 40_000})
    pagerduty.fail_next(2, status=503)
    instance = deliverer(outbox, clock, None, pagerduty.url)
    summary = post(relay(instance), big)
    # then the channel failed for good, with the service's reason, and nothing was queued
    assert summary["channels"]["pagerduty"] == "failed"
    assert "could not queue it: HttpResponseError" in summary["errors"]["pagerduty"]
    assert "PropertyValueTooLarge" in summary["errors"]["pagerduty"]
    captured.assert_event("alert.delivery_failed", channel="pagerduty", queued=False)
    assert sorted(e.alert_id for e in outbox.entries()) == ["accents", "fits"]
    instance.close()
    # while the SQLite outbox keeps the same notice for redelivery
    pagerduty.fail_next(2, status=503)
    local = deliverer(SqliteOutbox(tmp_path / "outbox.sqlite3"), clock, None, pagerduty.url)
    assert post(relay(local), big)["channels"]["pagerduty"] == "queued"
    local.close()


@on_azurite
def test_the_settings_alone_put_the_outbox_on_table_storage(azurite, slack, clock, monkeypatch):
    """Deliverer.from_env with ALERT_OUTBOX_TABLE_ENDPOINT builds the outbox as the Function
    app does (DefaultAzureCredential, the `alertoutbox` table, its retry and timeouts) and it
    works on Azurite; only the credential's class and the trusted CA are the test's."""
    credential = azurite.token_credential()
    monkeypatch.setattr("azure.identity.DefaultAzureCredential", lambda: credential)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", azurite.ca_path)  # azure-core's requests reads it
    slack.fail_next(2, status=503)
    instance = Deliverer.from_env(
        {"ALERT_OUTBOX_TABLE_ENDPOINT": azurite.endpoint, "SLACK_WEBHOOK_URL": slack.url},
        now=clock, backoff_base=0.01, backoff_cap=0.02, budget=2.0, timeout=1.0,
        max_attempts=2)
    try:
        assert isinstance(instance.outbox, TableOutbox)
        assert post(relay(instance), alert())["channels"]["slack"] == "queued"
        with azurite.service() as service:
            [stored] = deliveries(service.get_table_client(TABLE_NAME))
        assert stored["PartitionKey"] == "slack"
        assert run_at(instance, clock, T0 + MINUTE).delivered == 1
        assert set(credential.scopes) == {STORAGE_SCOPE}
    finally:
        instance.close()
        with azurite.service() as service:
            service.delete_table(TABLE_NAME)


def test_settings_choose_the_outbox_and_the_bound(tmp_path, monkeypatch):
    """ALERT_OUTBOX_TABLE_ENDPOINT selects Table Storage; unset, SQLite lives beside the local
    store; ALERT_REDELIVERY_HOURS sets the bound and nonsense names the setting."""
    monkeypatch.setenv("TELEMETRY_DB", str(tmp_path / "here" / "telemetry.duckdb"))
    local = outbox_from_env({})
    assert isinstance(local, SqliteOutbox)
    assert local.path == tmp_path / "here" / "alert-outbox.sqlite3"
    assert not local.path.exists()  # created on first use only
    table = outbox_from_env({"ALERT_OUTBOX_TABLE_ENDPOINT":
                             "https://stexample.table.core.windows.net/"})
    assert isinstance(table, TableOutbox)
    table.close()
    assert RedeliveryPolicy.from_env({}).bound == dt.timedelta(hours=24)
    assert RedeliveryPolicy.from_env({"ALERT_REDELIVERY_HOURS": "0.5"}).bound == 30 * MINUTE
    for bad in ("0", "-1", "soon", "nan", "100000"):
        with pytest.raises(SettingError, match="ALERT_REDELIVERY_HOURS"):
            RedeliveryPolicy.from_env({"ALERT_REDELIVERY_HOURS": bad})
    policy = RedeliveryPolicy()
    assert [policy.delay(n) // MINUTE for n in range(1, 9)] == [1, 2, 4, 8, 16, 30, 30, 30]
    built = Deliverer.from_env({"ALERT_REDELIVERY_HOURS": "2"})
    assert isinstance(built.outbox, SqliteOutbox)
    assert built.redelivery.bound == dt.timedelta(hours=2)
    built.close()


# -- the timer ------------------------------------------------------------------------------


def test_the_redelivery_timer_is_declared_once_for_both_hosts(slack, outbox, clock, captured):
    """One TimerSpec: the Function app's blueprint registers it on its setting, the local host
    schedules it, and a run redelivers and flushes."""
    # the declaration
    assert ALERT_REDELIVERY in TIMERS
    assert ALERT_REDELIVERY.resolve({}) == "30 * * * * *"
    assert ALERT_REDELIVERY.schedule == "%ALERT_REDELIVERY_SCHEDULE%"
    # its settings are checked where both hosts resolve it at start-up
    with pytest.raises(SettingError, match="ALERT_REDELIVERY_HOURS"):
        ALERT_REDELIVERY.resolve({"ALERT_REDELIVERY_HOURS": "soon"})
    with pytest.raises(SettingError, match="ALERT_REDELIVERY_SCHEDULE"):
        ALERT_REDELIVERY.resolve({"ALERT_REDELIVERY_SCHEDULE": "every minute"})
    # the Function app's trigger
    from functions import alert_redelivery

    app = func.FunctionApp()
    app.register_functions(alert_redelivery.bp)
    [function] = app.get_functions()
    binding = json.loads(function.get_function_json())["bindings"][0]
    assert (function.get_function_name(), binding["type"], binding["schedule"]) == (
        "redeliver_alerts", "timerTrigger", "%ALERT_REDELIVERY_SCHEDULE%")
    # the local host's schedule
    host = LocalHost(None)
    assert host.schedules["redeliver_alerts"] == "30 * * * * *"
    # and a run on a deliverer with something due
    slack.fail_next(2, status=503)
    instance = deliverer(outbox, clock, slack.url, None)
    post(relay(instance), alert())
    clock.advance(MINUTE)
    assert run_alert_redelivery(captured.telemetry, instance).delivered == 1
    assert len(slack.bodies) == 1
    instance.close()


def test_the_alert_model_reads_delivery_text():
    """The alerts query answers delivery as JSON text; the API serves it as an object."""
    row = {"alertId": "a", "ruleId": "r", "title": None, "severity": None, "state": "active",
           "firedAt": "2025-01-01T00:00:00.000000Z", "resolvedAt": None,
           "acknowledgedAt": None, "acknowledgedBy": None, "ackNote": None, "tenantId": None,
           "integrationId": None, "adapterType": None, "dimensions": {}, "value": None,
           "threshold": None, "operator": None, "runbookUrl": None, "dashboardUrl": None}
    assert Alert.model_validate({**row, "delivery": '{"slack":"retrying"}'}).delivery == {
        "slack": "retrying"}
    assert Alert.model_validate({**row, "delivery": ""}).delivery == {}
    assert Alert.model_validate(row).delivery == {}
    with pytest.raises(ValueError):
        Alert.model_validate({**row, "delivery": '{"slack":"maybe"}'})
