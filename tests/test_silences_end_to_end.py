"""The demo's provider outage under a silence, all the way through.

An operator silences the outage's adapter through the API of a real app served by uvicorn;
the local evaluator runs the failure-rate rule over the demo's history and posts to that app's
relay, which holds the alert back (nothing reaches the loopback Slack and PagerDuty) and
records it. The operator ends the silence while the outage goes on: the alert goes out then,
and its resolve follows when the outage is over.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from integration_monitoring.admin import LocalBackend
from integration_monitoring.alerts import Evaluator, RelayPoster, SqliteOutbox, rule_by_id
from integration_monitoring.alerts._delivery import Deliverer
from integration_monitoring.app import create_app
from integration_monitoring.telemetry import use

from .helpers import http_get, http_post, serve_app, store_telemetry
from .loopback.capture import CaptureServer

NOW_NS = 1_790_000_000 * 10**9
END = dt.datetime.fromtimestamp(NOW_NS / 1e9, dt.UTC)
SECRET = "relay-secret-for-tests"
RULE = "high-sync-failure-rate"


@pytest.fixture(scope="module")
def world(tmp_path_factory, demo_store):
    folder = tmp_path_factory.mktemp("silenced")
    store = demo_store(hours=2, now=END, seed=7, tenants=8, integrations=48)
    telemetry, provider = store_telemetry(store)
    previous = use(telemetry)
    with CaptureServer() as slack, CaptureServer(202, {"status": "success"}) as pagerduty, \
            pytest.MonkeyPatch.context() as patch:
        patch.setenv("ALERT_RELAY_SECRET", SECRET)
        patch.delenv("ADMIN_API_TOKEN", raising=False)
        deliverer = Deliverer(slack_webhook_url=slack.url, pagerduty_routing_key="r" * 32,
                              pagerduty_events_url=pagerduty.url, backoff_base=0.01,
                              backoff_cap=0.05, max_attempts=2, budget=3.0,
                              outbox=SqliteOutbox(folder / "alert-outbox.sqlite3"))
        app = create_app(backend=LocalBackend(store), deliverer_factory=lambda: deliverer,
                         restatements=False)
        with serve_app(app) as url:
            yield {"store": store, "slack": slack, "pagerduty": pagerduty, "url": url,
                   "deliverer": deliverer}
        deliverer.close()
    use(previous)
    provider.shutdown()


def outage_adapter(store) -> str:
    """The adapter whose provider the demo takes down (its jobs fail for a while)."""
    rows = store.sql("""SELECT json_extract_string("Properties", '$.adapterType') AS a,
                               count(*) FROM "AppTraces" WHERE "Message" = 'sync.failed'
                        GROUP BY a ORDER BY 2 DESC LIMIT 1""")
    return rows[0][0]


def about(adapter: str, bodies: list) -> list:
    return [b for b in bodies if adapter in json.dumps(b)]


def alerts(world) -> list[dict]:
    until = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return http_get(world["url"] + "/api/admin/alerts", params={"until": until}).json()["alerts"]


def test_the_outage_under_a_silence_is_held_recorded_and_sent_when_it_ends(world):
    adapter = outage_adapter(world["store"])
    rule = rule_by_id(RULE)
    # given a silence of the adapter's alerts, made through the API
    made = http_post(world["url"] + "/api/admin/silences", json={
        "matchers": [{"label": "adapterType", "values": [adapter]},
                     {"label": "ruleId", "values": [RULE]}],
        "endsAt": (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).isoformat(),
        "comment": f"{adapter} announced maintenance", "createdBy": "oncall@example.com"})
    assert made.status_code == 201, made.text
    silence = made.json()
    # when the rule runs every 5 minutes into the outage, until it fires for the adapter
    evaluator = Evaluator(world["store"], rules=[rule],
                          post=RelayPoster(world["url"] + "/api/alerts/relay", SECRET))
    at, fired = END - dt.timedelta(minutes=45), None
    while at <= END and fired is None:
        for change in evaluator.evaluate(rule, at):
            if change.dimensions["adapterType"] == adapter and change.condition == "Fired":
                fired = at
        at += rule.frequency
    assert fired is not None, "the outage never fired the rule"
    # then nothing about it reached Slack or PagerDuty
    assert about(adapter, world["slack"].bodies) == []
    assert about(adapter, world["pagerduty"].bodies) == []
    # and the history shows it silenced by that silence, holding two notifications
    [row] = [a for a in alerts(world) if a["dimensions"].get("adapterType") == adapter]
    assert row["state"] == "active"
    assert row["silencedBy"] == silence["id"]
    assert row["route"] == "default"
    assert row["delivery"] == {"slack": "silenced", "pagerduty": "silenced"}
    listed = http_get(world["url"] + "/api/admin/silences").json()["silences"]
    assert [(s["id"], s["state"], s["holding"]) for s in listed] == [
        (silence["id"], "active", 2)]
    # when the silence is ended early while the outage goes on
    ended = http_post(world["url"] + f"/api/admin/silences/{silence['id']}/expire",
                      json={})
    assert ended.status_code == 200 and ended.json()["state"] == "expired"
    # then the alert goes out at once, on both channels
    [message] = about(adapter, world["slack"].bodies)
    assert "FIRING" in message["text"]
    [trigger] = about(adapter, world["pagerduty"].bodies)
    assert trigger["event_action"] == "trigger"
    [row] = [a for a in alerts(world) if a["dimensions"].get("adapterType") == adapter]
    assert row["delivery"] == {"slack": "delivered", "pagerduty": "delivered"}
    # and when the outage is over its resolve follows, as for any alert
    while at <= END + dt.timedelta(minutes=30):
        evaluator.evaluate(rule, at)
        at += rule.frequency
    same = [e for e in world["pagerduty"].bodies if e["dedup_key"] == trigger["dedup_key"]]
    assert [e["event_action"] for e in same] == ["trigger", "resolve"]
