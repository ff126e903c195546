"""A delivery channel is one class: a chat webhook that exists only in this test, given to a
Deliverer, goes through the same claims, retries, outbox ordering and redelivery as Slack and
PagerDuty, with nothing else changed.

The chat service is a loopback capture server; the outbox a SQLite file; the outbox's clock is
moved by the test.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3
from typing import Any

from integration_monitoring.alerts import Redeliverer, SqliteOutbox
from integration_monitoring.alerts._channels import HttpChannel
from integration_monitoring.alerts._delivery import Deliverer
from integration_monitoring.alerts._payload import AlertNotice, parse_alert
from integration_monitoring.alerts._rules import AlertRule, rule_by_id

from .loopback.capture import CaptureServer
from .test_alert_outbox import MINUTE, T0, Clock, alert

TOKEN = "chat-token-0123456789"


class ChatChannel(HttpChannel):
    """An invented chat service: a JSON post to a URL, with a token that must not be queued."""

    name = "chat"
    setting = "CHAT_WEBHOOK_URL"

    def __init__(self, url: str | None, token: str) -> None:
        self.url = url
        self.token = token

    def address(self) -> str | None:
        return self.url

    def body(self, notice: AlertNotice, rule: AlertRule) -> dict[str, Any]:
        return {"title": rule.title, "state": notice.condition, "alert": notice.alert_id}

    def outgoing(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"token": self.token, **body}


def chat_rule() -> AlertRule:
    rule = rule_by_id("high-sync-failure-rate")
    assert rule is not None
    return dataclasses.replace(rule, channels=("email", "chat"))


def test_a_third_channel_is_queued_in_order_and_redelivered(tmp_path, captured):
    """The chat service down while an alert fires and resolves: both notices are queued,
    without the token, the Resolved behind the Fired; a repeat is a duplicate; the timer
    sends both, in order, through the same channel object, with the token it holds then."""
    clock = Clock()
    outbox = SqliteOutbox(tmp_path / "alert-outbox.sqlite3")
    with CaptureServer(200, {"ok": True}) as chat:
        channel = ChatChannel(f"{chat.url}/hook", TOKEN)
        deliverer = Deliverer(channels=[channel], outbox=outbox, now=clock, max_attempts=2,
                              backoff_base=0.01, backoff_cap=0.02, budget=2.0, timeout=1.0)
        rule = chat_rule()
        try:
            # given the chat service failing, with a wait it asks for
            chat.fail_next(2, status=503, retry_after="0")
            # when the alert fires
            fired = deliverer.deliver(parse_alert(alert()), rule).summary()
            # then it was retried, then queued, and e-mail is left to the action group
            assert fired["channels"] == {"email": "action_group", "chat": "queued"}
            assert "HTTP 503" in fired["errors"]["chat"]
            assert chat.attempts == 2 and chat.bodies == []
            captured.assert_event("alert.delivery_retry", channel="chat", attempt=1)
            captured.assert_event("alert.delivery_failed", channel="chat", queued=True,
                                  attempts=2)
            # when the Fired arrives again, and the alert resolves while the Fired waits
            again = deliverer.deliver(parse_alert(alert()), rule).summary()
            clock.advance(dt.timedelta(seconds=10))
            resolved = deliverer.deliver(parse_alert(alert("Resolved")), rule).summary()
            # then the repeat is a duplicate, the Resolved waits behind the Fired, and nothing
            # more reached the service
            assert again["duplicate"] is True and again["channels"]["chat"] == "duplicate"
            assert resolved["channels"]["chat"] == "queued"
            assert "waiting for the Fired notice" in resolved["errors"]["chat"]
            assert chat.attempts == 2
            stored = sorted(outbox.entries(), key=lambda e: e.condition)
            assert [(e.channel, e.condition) for e in stored] == [("chat", "Fired"),
                                                                  ("chat", "Resolved")]
            assert stored[0].body == {"title": rule.title, "state": "Fired",
                                      "alert": stored[0].alert_id}
            with sqlite3.connect(outbox.path) as db:
                assert TOKEN not in "\n".join(db.iterdump())
            # when the token is rotated on the channel and the timer runs once the Fired is due
            channel.token = "rotated-token"
            run = Redeliverer(deliverer).run(T0 + MINUTE)
            # then both went, Fired first, each with the token the channel holds now
            assert run.delivered == 2
            assert [(b["state"], b["token"]) for b in chat.bodies] == [
                ("Fired", "rotated-token"), ("Resolved", "rotated-token")]
            assert all(r.path == "/hook" for r in chat.requests)
            assert outbox.entries() == []
            delivered = captured.find("alert.delivered", channel="chat", redelivered=True)
            assert [e["metadata"]["condition"] for e in delivered] == ["Fired", "Resolved"]
        finally:
            deliverer.close()


def test_a_third_channel_off_or_refused_is_handled_as_any_other(tmp_path, captured):
    """Without its setting the channel is skipped naming it; a 4xx is given up at once."""
    off = Deliverer(channels=[ChatChannel(None, TOKEN)])
    try:
        summary = off.deliver(parse_alert(alert()), chat_rule()).summary()
        assert summary["channels"]["chat"] == "skipped"
        captured.assert_event("alert.channel_skipped", channel="chat",
                              reason="CHAT_WEBHOOK_URL is not set")
    finally:
        off.close()
    outbox = SqliteOutbox(tmp_path / "alert-outbox.sqlite3")
    with CaptureServer(200, {"ok": True}) as chat:
        refused = Deliverer(channels=[ChatChannel(chat.url, TOKEN)], outbox=outbox,
                            now=Clock(), budget=2.0, timeout=1.0)
        try:
            chat.fail_next(1, status=400)
            summary = refused.deliver(parse_alert(alert()), chat_rule()).summary()
            assert summary["channels"]["chat"] == "failed" and chat.attempts == 1
            abandoned = captured.assert_event("alert.delivery_abandoned", channel="chat")
            assert abandoned["metadata"]["reason"].startswith("permanent failure: HTTP 400")
            assert outbox.entries() == []
        finally:
            refused.close()
