"""Grouping as the relay does it: a route that groups by adapterType with a 120 s wait, a real
SQLite outbox the grouped notices wait in, the redelivery timer that sends each group's one
Slack message, and loopback Slack and PagerDuty endpoints. The clock is the test's: the relay
and the timer are called at the moments a test names.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from integration_monitoring.admin import install_error_handlers
from integration_monitoring.alerts import Redeliverer, Silence, SqliteOutbox
from integration_monitoring.alerts._channels import SlackChannel
from integration_monitoring.alerts._delivery import Deliverer
from integration_monitoring.alerts._payload import AlertNotice, build_log_alert, parse_alert
from integration_monitoring.alerts._relay import relay_router
from integration_monitoring.alerts._routing import parse_routes
from integration_monitoring.alerts._rules import AlertRule, rule_by_id

from .loopback.capture import CaptureServer

SECRET = "relay-secret-for-tests"
ROUTING_KEY = "0123456789abcdef0123456789abcdef"
DASHBOARD = "https://intmon.example"
T0 = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)
WAIT = dt.timedelta(seconds=120)
SECOND = dt.timedelta(seconds=1)
MINUTE = dt.timedelta(minutes=1)
GROUP = "integrations|adapterType=zendesk"

#: Integration alerts (an integrationId of ours) go to their rule's channels, their Slack
#: messages grouped by adapter type within two minutes; the rest as the shipped file does.
ROUTES: dict[str, Any] = {
    "receivers": [
        {"name": "email", "type": "email"},
        {"name": "slack", "type": "slack", "webhookSetting": "SLACK_WEBHOOK_URL"},
        {"name": "pagerduty", "type": "pagerduty", "routingKeySetting": "PAGERDUTY_ROUTING_KEY"},
    ],
    "routes": [
        {"name": "integrations",
         "matchers": [{"label": "integrationId", "operator": "Contains", "values": ["int-"]}],
         "channels": "rule",
         "group": {"by": ["adapterType"], "waitSeconds": 120}},
        {"name": "default", "channels": "rule", "unknownRuleReceivers": ["email", "slack"]},
    ],
}


class Clock:
    def __init__(self, at: dt.datetime = T0) -> None:
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at


class World:
    """The relay's deliverer over a SQLite outbox, its timer, Slack and PagerDuty."""

    def __init__(self, tmp_path, slack: CaptureServer, pagerduty: CaptureServer, captured,
                 routes: dict[str, Any] = ROUTES) -> None:
        self.clock = Clock()
        self.outbox = SqliteOutbox(tmp_path / "alert-outbox.sqlite3")
        self.deliverer = Deliverer(
            slack_webhook_url=slack.url, pagerduty_routing_key=ROUTING_KEY,
            pagerduty_events_url=pagerduty.url, dashboard_base_url=DASHBOARD,
            routes=parse_routes(copy.deepcopy(routes), "test"), now=self.clock,
            outbox=self.outbox, backoff_base=0.01, backoff_cap=0.02, budget=2.0,
            max_attempts=2)
        self.slack, self.pagerduty, self.events = slack, pagerduty, captured

    def at(self, moment: dt.timedelta) -> World:
        self.clock.at = T0 + moment
        return self

    def deliver(self, notice: tuple[AlertNotice, AlertRule]) -> dict[str, Any]:
        return self.deliverer.deliver(*notice).summary()

    def timer(self):
        return Redeliverer(self.deliverer).run(self.clock.at)

    def slack_texts(self) -> list[str]:
        return [json.dumps(body, ensure_ascii=False) for body in self.slack.bodies]


@pytest.fixture
def world(tmp_path, slack, pagerduty, captured) -> Iterator[World]:
    w = World(tmp_path, slack, pagerduty, captured)
    yield w
    w.deliverer.close()


def notice(integration: str, adapter: str = "zendesk", condition: str = "Fired",
           tenant: str = "tenant-a", alert_id: str | None = None,
           rule_id: str = "high-sync-failure-rate") -> tuple[AlertNotice, AlertRule]:
    """An integration-level notice of a rule whose channels are email, Slack and PagerDuty."""
    rule = rule_by_id(rule_id)
    assert rule is not None
    return parse_alert(build_log_alert(
        rule, condition=condition,
        dimensions={"tenantId": tenant, "integrationId": integration, "adapterType": adapter},
        value=3.0 if condition == "Resolved" else 40.0, window_start=T0 - rule.window,
        window_end=T0, fired_at=T0,
        resolved_at=T0 + MINUTE if condition == "Resolved" else None,
        alert_id=alert_id or f"alert-{integration}")), rule


GROUPED = {"email": "action_group", "slack": "grouped", "pagerduty": "delivered"}


def header(body: dict[str, Any]) -> str:
    return body["blocks"][0]["text"]["text"]


# -- one message per group -------------------------------------------------------------------


def test_alerts_of_one_adapter_within_the_wait_are_one_slack_message_after_it(world):
    w = world
    for i, moment in enumerate((0 * SECOND, 30 * SECOND, 60 * SECOND), start=1):
        answer = w.at(moment).deliver(notice(f"int-{i}"))
        assert answer["channels"] == GROUPED, answer
        assert answer["route"] == "integrations"
    # PagerDuty hears of each alert at once; Slack of none yet.
    assert w.slack.attempts == 0
    assert [b["event_action"] for b in w.pagerduty.bodies] == ["trigger"] * 3
    waiting = w.outbox.entries()
    assert [(e.channel, e.group, e.next_attempt_at) for e in waiting] == \
        [("slack", GROUP, T0 + WAIT)] * 3  # all due when the first one's wait ends
    assert all(e.notice is not None for e in waiting)

    # The timer before the wait ends sends nothing.
    run = w.at(WAIT - SECOND).timer()
    assert (run.delivered, run.rescheduled, run.abandoned) == (0, 0, 0)
    assert w.slack.attempts == 0 and len(w.outbox.entries()) == 3

    # After it: one message naming all three integrations.
    run = w.at(WAIT).timer()
    assert run.delivered == 3 and run.errors == []
    [body] = w.slack.bodies
    assert "3 alerts · 3 firing, 0 resolved · adapterType=zendesk" in header(body)
    shown = json.dumps(body)
    assert all(f"int-{i}" in shown for i in (1, 2, 3))
    assert w.outbox.entries() == []
    # Nothing is sent twice.
    assert w.at(WAIT + 5 * MINUTE).timer().delivered == 0
    assert len(w.slack.bodies) == 1 and len(w.pagerduty.bodies) == 3


def test_an_alert_of_another_adapter_is_another_group(world):
    w = world
    w.deliver(notice("int-1", "zendesk"))
    w.at(10 * SECOND).deliver(notice("int-2", "hubspot"))
    w.at(20 * SECOND).deliver(notice("int-3", "zendesk"))
    assert {e.group for e in w.outbox.entries()} == {GROUP, "integrations|adapterType=hubspot"}
    assert w.at(WAIT).timer().delivered == 2  # the hubspot group's wait is not over
    [zendesk] = w.slack.bodies
    assert "2 alerts" in header(zendesk) and "adapterType=zendesk" in header(zendesk)
    assert "int-2" not in json.dumps(zendesk)
    assert w.at(WAIT + 10 * SECOND).timer().delivered == 1
    [_, hubspot] = w.slack.bodies
    # A group of one is the usual single-alert message.
    n, rule = notice("int-2", "hubspot")
    assert hubspot == SlackChannel(None, w.deliverer.dashboard).body(n, rule)


def test_an_alert_after_the_group_was_sent_opens_a_new_one(world):
    w = world
    w.deliver(notice("int-1"))
    w.at(10 * SECOND).deliver(notice("int-2"))
    assert w.at(WAIT).timer().delivered == 2
    assert w.at(WAIT + 30 * SECOND).deliver(notice("int-3"))["channels"] == GROUPED
    [entry] = w.outbox.entries()
    assert entry.group == GROUP and entry.next_attempt_at == T0 + 2 * WAIT + 30 * SECOND
    assert w.at(2 * WAIT).timer().delivered == 0  # its own wait, not the old group's
    assert w.at(2 * WAIT + 30 * SECOND).timer().delivered == 1
    first, second = w.slack_texts()
    assert "int-1" in first and "int-2" in first and "int-3" not in first
    assert "int-3" in second and "int-1" not in second


def test_an_alert_after_the_wait_but_before_the_timer_sent_the_group_goes_with_it(world):
    """The group stays open until the timer (every minute) has sent it."""
    w = world
    w.deliver(notice("int-1"))
    assert w.at(WAIT + 20 * SECOND).deliver(notice("int-2"))["channels"] == GROUPED
    assert {e.next_attempt_at for e in w.outbox.entries()} == {T0 + WAIT}
    assert w.at(WAIT + MINUTE).timer().delivered == 2
    [body] = w.slack_texts()
    assert "int-1" in body and "int-2" in body


def test_a_fired_and_its_resolved_inside_the_wait_show_once_resolved(world):
    w = world
    w.deliver(notice("int-1"))
    w.at(10 * SECOND).deliver(notice("int-2"))
    answer = w.at(60 * SECOND).deliver(notice("int-1", condition="Resolved"))
    assert answer["channels"] == GROUPED
    # PagerDuty's incident is opened and closed at once; Slack waits for the group.
    assert [b["event_action"] for b in w.pagerduty.bodies] == ["trigger", "trigger", "resolve"]
    assert w.at(WAIT).timer().delivered == 3  # three entries, two alerts
    [body] = w.slack.bodies
    assert "2 alerts · 1 firing, 1 resolved" in header(body)
    sections = [b["text"]["text"] for b in body["blocks"][1:]]
    assert len(sections) == 2
    assert sections[0].startswith("*FIRING") and "int-2" in sections[0]
    assert sections[1].startswith("*RESOLVED") and "int-1" in sections[1]
    assert w.outbox.entries() == []


def test_a_fired_and_its_resolved_alone_in_a_group_are_the_usual_resolved_message(world):
    w = world
    w.deliver(notice("int-1"))
    w.at(30 * SECOND).deliver(notice("int-1", condition="Resolved"))
    assert w.at(WAIT).timer().delivered == 2
    [body] = w.slack.bodies
    n, rule = notice("int-1", condition="Resolved")
    assert body == SlackChannel(None, w.deliverer.dashboard).body(n, rule)


# -- failures --------------------------------------------------------------------------------


def test_slack_failing_retries_the_group_as_one_message(world):
    w = world
    for i in (1, 2, 3):
        w.at((i - 1) * SECOND).deliver(notice(f"int-{i}"))
    w.slack.fail_next(1, status=503)
    run = w.at(WAIT).timer()
    assert (run.delivered, run.rescheduled) == (0, 3)
    assert w.slack.attempts == 1 and w.slack.bodies == []
    retries = w.events.find("alert.delivery_retry", channel="slack")
    assert len(retries) == 3 and all(e["metadata"]["grouped"] is True for e in retries)
    waiting = w.outbox.entries()
    assert {e.next_attempt_at for e in waiting} == {T0 + WAIT + 2 * MINUTE}
    assert all(e.group == GROUP and e.attempts == 1 for e in waiting)

    assert w.at(WAIT + 2 * MINUTE - SECOND).timer().delivered == 0
    assert w.slack.attempts == 1
    run = w.at(WAIT + 2 * MINUTE).timer()
    assert run.delivered == 3
    assert w.slack.attempts == 2 and len(w.slack.bodies) == 1  # delivered once
    failed, sent = (r.body for r in w.slack.requests)
    assert failed == sent  # the same one message, retried
    assert all(f"int-{i}" in json.dumps(sent) for i in (1, 2, 3))
    delivered = w.events.find("alert.delivered", channel="slack")
    assert [e["metadata"]["attempts"] for e in delivered] == [2, 2, 2]
    assert w.outbox.entries() == []
    assert w.at(WAIT + 30 * MINUTE).timer().delivered == 0


def test_an_alert_joining_a_group_being_retried_stays_in_its_one_message(world):
    w = world
    w.deliver(notice("int-1"))
    w.at(SECOND).deliver(notice("int-2"))
    w.slack.fail_next(2, status=503)
    assert w.at(WAIT).timer().rescheduled == 2  # next attempt at WAIT + 2 min
    w.at(WAIT + 30 * SECOND).deliver(notice("int-3"))  # joins the group being retried
    assert {e.next_attempt_at for e in w.outbox.entries()} == {T0 + WAIT + 2 * MINUTE}
    assert w.at(WAIT + 2 * MINUTE).timer().rescheduled == 3  # fails again
    moment = WAIT + 2 * MINUTE
    while w.outbox.entries() and moment < 2 * dt.timedelta(hours=1):
        moment += MINUTE
        w.at(moment).timer()
    assert w.outbox.entries() == []
    # Sent: one message for the three, not int-3 alone and then int-1 and int-2.
    assert [header(b) for b in w.slack.bodies] == [
        ":rotating_light: 3 alerts · 3 firing, 0 resolved · adapterType=zendesk"]


# -- what is recorded and answered -----------------------------------------------------------


def test_grouping_is_recorded_in_the_alert_history(world):
    w = world
    w.deliver(notice("int-1"))
    w.at(20 * SECOND).deliver(notice("int-2"))
    grouped = w.events.find("alert.delivery_grouped")
    assert [(e["integrationId"], e["metadata"]["channel"], e["metadata"]["group"])
            for e in grouped] == [("int-1", "slack", GROUP), ("int-2", "slack", GROUP)]
    assert all(e["metadata"]["adapterType"] == "zendesk" for e in grouped)
    # Both are due when the first one's wait ends.
    assert {e["metadata"]["dueAt"] for e in grouped} == {"2026-03-04T10:02:00.000Z"}
    # PagerDuty's deliveries are recorded at once, not grouped.
    assert [e["metadata"].get("grouped") for e in
            w.events.find("alert.delivered", channel="pagerduty")] == [None, None]
    assert w.events.find("alert.delivered", channel="slack") == []

    w.at(WAIT).timer()
    delivered = w.events.find("alert.delivered", channel="slack")
    assert sorted(e["integrationId"] for e in delivered) == ["int-1", "int-2"]
    for e in delivered:
        meta = e["metadata"]
        assert meta["grouped"] is True and meta["group"] == GROUP and meta["groupSize"] == 2
        assert meta["attempts"] == 1 and meta["condition"] == "Fired"
    # Each notice was recorded once, naming its route.
    fired = w.events.find("alert.fired")
    assert [e["metadata"]["route"] for e in fired] == ["integrations", "integrations"]


def test_the_group_message_names_the_routes_wait(world):
    w = world
    w.deliver(notice("int-1"))
    w.at(SECOND).deliver(notice("int-2"))
    w.at(WAIT).timer()
    [body] = w.slack.bodies
    footer = json.dumps(body["attachments"])
    assert "integrations" in footer and "alerts within 120 s" in footer


def test_the_relays_answer_says_grouped_for_slack(world, monkeypatch):
    monkeypatch.setenv("ALERT_RELAY_SECRET", SECRET)
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(relay_router(lambda: world.deliverer))
    rule = rule_by_id("high-sync-failure-rate")
    body = build_log_alert(
        rule, condition="Fired",
        dimensions={"tenantId": "tenant-a", "integrationId": "int-9", "adapterType": "zendesk"},
        value=40.0, window_start=T0 - rule.window, window_end=T0, fired_at=T0,
        alert_id="alert-int-9")
    with TestClient(app) as client:
        answer = client.post("/api/alerts/relay", json=body, params={"secret": SECRET})
    assert answer.status_code == 202, answer.text
    shown = answer.json()
    assert shown["channels"] == GROUPED and shown["route"] == "integrations"
    assert shown["errors"] == {}
    assert world.slack.attempts == 0 and len(world.pagerduty.bodies) == 1


# -- silences --------------------------------------------------------------------------------


def test_a_silence_holds_a_grouped_alert_back_rather_than_grouping_it(world):
    w = world
    held_by = w.outbox.save_silence(Silence.parse(
        {"matchers": [{"label": "integrationId", "values": ["int-1"]}],
         "endsAt": (T0 + dt.timedelta(hours=1)).isoformat(), "comment": "maintenance"},
        created_by="ops@example.com", now=T0))
    assert held_by is not None
    answer = w.deliver(notice("int-1"))
    assert answer["silencedBy"] == held_by.id
    assert answer["channels"] == {"email": "action_group", "slack": "silenced",
                                  "pagerduty": "silenced"}
    assert w.at(10 * SECOND).deliver(notice("int-2"))["channels"] == GROUPED
    entries = {(e.integration_id, e.channel): e for e in w.outbox.entries()}
    assert entries[("int-1", "slack")].held_by == held_by.id
    assert entries[("int-1", "slack")].group == ""  # held, not in the group
    assert entries[("int-2", "slack")].group == GROUP
    assert [e["integrationId"] for e in w.events.find("alert.delivery_grouped")] == ["int-2"]

    # The group goes out without the silenced alert.
    assert w.at(10 * SECOND + WAIT).timer().delivered == 1
    [body] = w.slack_texts()
    assert "int-2" in body and "int-1" not in body
    # When the silence ends with the alert still firing, it is sent on its own.
    run = w.at(dt.timedelta(hours=1)).timer()
    assert run.delivered == 2
    assert "int-1" in w.slack_texts()[1]
    assert [b["event_action"] for b in w.pagerduty.bodies] == ["trigger", "trigger"]
    released = w.events.find("alert.delivered", channel="slack", integrationId="int-1")
    assert [e["metadata"].get("grouped") for e in released] == [None]
    assert w.outbox.entries() == []


# -- edges -----------------------------------------------------------------------------------


@pytest.mark.parametrize("adapter", ["legacy|sap", "legacy|sap=v2"])
def test_a_group_value_with_the_separator_in_it(world, adapter):
    """Label values come from the alert's dimensions, which may hold '|' or '='."""
    w = world
    w.deliver(notice("int-1", adapter))
    w.at(SECOND).deliver(notice("int-2", adapter))
    run = w.at(WAIT).timer()
    assert run.errors == [] and run.delivered == 2
    [body] = w.slack.bodies
    assert f"2 alerts · 2 firing, 0 resolved · adapterType={adapter}" in header(body)


def test_a_wait_of_zero_sends_at_once(tmp_path, slack, pagerduty, captured):
    routes = copy.deepcopy(ROUTES)
    routes["routes"][0]["group"]["waitSeconds"] = 0
    w = World(tmp_path, slack, pagerduty, captured, routes)
    try:
        answer = w.deliver(notice("int-1"))
        assert answer["channels"]["slack"] == "delivered"
        assert len(w.slack.bodies) == 1
    finally:
        w.deliverer.close()
