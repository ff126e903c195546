"""Silences: matching, windows (weekly ones across daylight-saving changes), notifications
held by the relay and released when the silence ends, and the admin API with its tenant
limits and audit events.

The relay's store is a real SQLite outbox, Slack and PagerDuty loopback capture servers, the
API a real FastAPI app with Entra-style principals; the clock is the test's.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from integration_monitoring.admin import Access, LocalBackend
from integration_monitoring.alerts import Redeliverer, Silence, SilenceError, SqliteOutbox
from integration_monitoring.alerts._delivery import Deliverer
from integration_monitoring.alerts._payload import build_log_alert
from integration_monitoring.alerts._rules import rule_by_id
from integration_monitoring.alerts._silences import Matcher, silencing
from integration_monitoring.app import create_app

from .helpers import principal

SECRET = "relay-secret-for-tests"
ROUTING_KEY = "0123456789abcdef0123456789abcdef"
T0 = dt.datetime(2026, 3, 27, 10, 0, tzinfo=dt.UTC)  # the Friday before Europe's spring change
HOUR = dt.timedelta(hours=1)


def silence(now: dt.datetime = T0, **body: Any) -> Silence:
    body = {"matchers": [{"label": "adapterType", "values": ["zendesk"]}],
            "endsAt": (now + 2 * HOUR).isoformat(), "comment": "provider maintenance", **body}
    return Silence.parse(body, created_by="ops@example.com", now=now)


# -- matching ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("operator", "values", "label", "expected"), [
    ("Equals", ["zendesk"], "zendesk", True),
    ("Equals", ["zendesk"], "Zendesk", False),  # equality is exact
    ("Equals", ["hubspot", "zendesk"], "zendesk", True),  # any of the values
    ("NotEquals", ["zendesk"], "hubspot", True),
    ("NotEquals", ["zendesk"], "zendesk", False),
    ("Contains", ["DESK"], "zendesk", True),  # substrings ignore case
    ("Contains", ["sales"], "zendesk", False),
    ("DoesNotContain", ["desk"], "zendesk", False),
    ("DoesNotContain", ["sales"], "zendesk", True),
    ("Equals", ["zendesk"], None, False),  # a label the alert lacks is the empty text
    ("NotEquals", ["zendesk"], None, True),
])
def test_a_matcher_holds_as_its_operator_says(operator, values, label, expected):
    labels = {} if label is None else {"adapterType": label}
    assert Matcher("adapterType", operator, tuple(values)).holds(labels) is expected


def test_every_matcher_must_hold():
    both = silence(matchers=[{"label": "adapterType", "values": ["zendesk"]},
                             {"label": "tenantId", "values": ["tenant-a"]}])
    assert both.matches({"adapterType": "zendesk", "tenantId": "tenant-a"})
    assert not both.matches({"adapterType": "zendesk", "tenantId": "tenant-b"})


def test_of_several_silences_the_one_ending_last_is_named():
    short = silence()
    long = silence(endsAt=(T0 + 5 * HOUR).isoformat())
    labels = {"adapterType": "zendesk"}
    assert silencing([short, long], labels, T0 + HOUR).id == long.id
    assert silencing([short, long], {"adapterType": "hubspot"}, T0 + HOUR) is None


# -- windows ----------------------------------------------------------------------------------


def test_a_one_off_silence_is_pending_then_active_then_expired():
    later = silence(startsAt=(T0 + HOUR).isoformat(), endsAt=(T0 + 3 * HOUR).isoformat())
    assert later.state(T0) == "pending"
    assert later.state(T0 + HOUR) == "active"
    assert later.state(T0 + 3 * HOUR) == "expired"
    assert later.window(T0) == (T0 + HOUR, T0 + 3 * HOUR)
    assert later.expire(T0 + 2 * HOUR).state(T0 + 2 * HOUR) == "expired"


def weekly(zone: str, start: str, end: str, days=("Sunday",), *, begin=T0,
           weeks: int = 3) -> Silence:
    return silence(begin, endsAt=(begin + dt.timedelta(weeks=weeks)).isoformat(),
                   timeZone=zone, weekly={"days": list(days), "startTime": start,
                                          "endTime": end})


def windows(s: Silence, begin: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    out, at = [], begin
    while (window := s.window(at)) is not None:
        out.append(window)
        at = window[1]
    return out


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def test_a_weekly_window_keeps_its_local_hours_across_spring_forward():
    """Sundays 04:00-06:00 in Berlin: 03:00-05:00 UTC in winter, 02:00-04:00 UTC from the
    last Sunday of March (the change itself falls at 02:00 local that very day)."""
    s = weekly("Europe/Berlin", "04:00", "06:00")
    assert windows(s, T0) == [
        (utc("2026-03-29T02:00"), utc("2026-03-29T04:00")),  # CEST already
        (utc("2026-04-05T02:00"), utc("2026-04-05T04:00")),
        (utc("2026-04-12T02:00"), utc("2026-04-12T04:00")),
    ]
    assert s.state(utc("2026-03-29T01:59")) == "pending"
    assert s.state(utc("2026-03-29T02:00")) == "active"
    assert s.state(utc("2026-03-29T04:00")) == "pending"  # until next Sunday


def test_a_weekly_window_across_fall_back_and_midnight():
    """Saturdays 23:00 to 01:00 in New York; the clocks go back on Sunday 1 November 2026 at
    02:00, after the window that began the evening before has ended."""
    begin = utc("2026-10-24T12:00")
    s = weekly("America/New_York", "23:00", "01:00", days=("Saturday",), begin=begin, weeks=2)
    assert windows(s, begin) == [
        (utc("2026-10-25T03:00"), utc("2026-10-25T05:00")),  # EDT, UTC-4
        (utc("2026-11-01T03:00"), utc("2026-11-01T05:00")),  # 01:00 EDT ends it, before 02:00
    ]
    later = weekly("America/New_York", "23:00", "01:00", days=("Saturday",),
                   begin=utc("2026-11-02T12:00"), weeks=1)
    assert windows(later, utc("2026-11-02T12:00")) == [
        (utc("2026-11-08T04:00"), utc("2026-11-08T06:00"))]  # EST, UTC-5


def test_a_weekly_window_inside_the_silence_only():
    """The first window is cut at the silence's start, the last at its end."""
    start = utc("2026-03-29T02:30")
    s = silence(T0, startsAt=start.isoformat(), endsAt=utc("2026-04-05T03:00").isoformat(),
                timeZone="Europe/Berlin",
                weekly={"days": ["Sunday"], "startTime": "04:00", "endTime": "06:00"})
    assert windows(s, T0) == [(start, utc("2026-03-29T04:00")),
                              (utc("2026-04-05T02:00"), utc("2026-04-05T03:00"))]


@pytest.mark.parametrize(("body", "field"), [
    ({"matchers": []}, "matchers"),
    ({"matchers": [{"label": "colour", "values": ["red"]}]}, "matchers[0].label"),
    ({"matchers": [{"label": "tenantId", "operator": "Like", "values": ["a"]}]},
     "matchers[0].operator"),
    ({"matchers": [{"label": "tenantId", "values": []}]}, "matchers[0].values"),
    ({"matchers": [{"label": "tenantId", "values": ["a\nb"]}]}, "matchers[0].values"),
    ({"matchers": [{"label": "severity", "values": ["critical"]}]}, "matchers[0].values"),
    ({"endsAt": "tomorrow"}, "endsAt"),
    ({"endsAt": "2026-03-27T12:00:00"}, "endsAt"),  # no offset
    ({"endsAt": "2026-03-27T09:00:00Z"}, "endsAt"),  # past
    ({"startsAt": "2026-03-27T13:00:00Z", "endsAt": "2026-03-27T12:00:00Z"}, "endsAt"),
    ({"endsAt": "2028-03-27T12:00:00Z"}, "endsAt"),  # over a year
    ({"comment": " "}, "comment"),
    ({"timeZone": "Mars/Olympus"}, "timeZone"),
    ({"weekly": {"days": ["Funday"], "startTime": "02:00", "endTime": "04:00"}}, "weekly.days"),
    ({"weekly": {"days": ["Monday"], "startTime": "2:00", "endTime": "04:00"}},
     "weekly.startTime"),
    ({"weekly": {"days": ["Monday"], "startTime": "02:00", "endTime": "02:00"}},
     "weekly.endTime"),
    ({"weekly": {"days": ["Sunday"], "startTime": "02:00", "endTime": "04:00"},
      "endsAt": "2026-03-27T12:00:00Z"}, "weekly"),  # no Sunday before it ends
    ({"owner": "me"}, "owner"),
    ({"endsAt": "9999-12-31T23:00:00-05:00"}, "endsAt"),
    ({"startsAt": "0001-01-01T00:00:00+01:00"}, "startsAt"),
])
def test_a_bad_silence_is_refused_naming_the_field(body, field):
    with pytest.raises(SilenceError) as refused:
        silence(**body)
    assert refused.value.field == field


def test_a_silence_survives_the_store(tmp_path):
    outbox = SqliteOutbox(tmp_path / "outbox.sqlite3")
    made = weekly("Europe/Berlin", "04:00", "06:00")
    saved = outbox.save_silence(made)
    assert saved is not None and outbox.save_silence(made) is None  # one id, once
    [read] = outbox.silences()
    assert read == made and read.etag == saved.etag
    ended = outbox.save_silence(read.expire(T0 + HOUR))
    assert ended is not None and outbox.save_silence(read.expire(T0)) is None  # stale etag
    assert outbox.silences()[0].state(T0 + HOUR) == "expired"


# -- the relay holds and releases ------------------------------------------------------------


class Clock:
    def __init__(self, at: dt.datetime = T0) -> None:
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at


@pytest.fixture
def relay_world(tmp_path, slack, pagerduty, captured):
    clock = Clock()
    outbox = SqliteOutbox(tmp_path / "alert-outbox.sqlite3")
    deliverer = Deliverer(slack_webhook_url=slack.url, pagerduty_routing_key=ROUTING_KEY,
                          pagerduty_events_url=pagerduty.url, outbox=outbox, now=clock,
                          backoff_base=0.01, backoff_cap=0.02, budget=2.0, max_attempts=2)
    yield {"clock": clock, "outbox": outbox, "deliverer": deliverer, "slack": slack,
           "pagerduty": pagerduty, "events": captured}
    deliverer.close()


def notice(condition: str = "Fired", adapter: str = "zendesk", alert_id: str | None = None):
    from integration_monitoring.alerts._payload import parse_alert

    rule = rule_by_id("high-sync-failure-rate")
    return parse_alert(build_log_alert(
        rule, condition=condition, dimensions={"adapterType": adapter},
        value=40.0, window_start=T0 - rule.window, window_end=T0, fired_at=T0,
        resolved_at=T0 + HOUR if condition == "Resolved" else None,
        alert_id=alert_id or f"alert-{adapter}")), rule


def operations(captured, name: str) -> list[dict]:
    return captured.find(name)


def test_a_silenced_alert_is_recorded_held_and_sent_when_the_silence_ends(relay_world):
    w = relay_world
    held = w["outbox"].save_silence(silence())
    report = w["deliverer"].deliver(*notice())
    assert report.silenced_by == held.id
    assert report.summary()["channels"] == {"email": "action_group", "slack": "silenced",
                                            "pagerduty": "silenced"}
    assert w["slack"].bodies == [] and w["pagerduty"].bodies == []
    [fired] = operations(w["events"], "alert.fired")
    assert fired["metadata"]["silencedBy"] == held.id
    assert {e["metadata"]["channel"] for e in operations(w["events"],
                                                         "alert.delivery_silenced")} == {
        "slack", "pagerduty"}
    # a notice for another adapter is not held
    w["deliverer"].deliver(*notice(adapter="hubspot"))
    assert len(w["slack"].bodies) == 1 and len(w["pagerduty"].bodies) == 1
    # while the silence holds, the timer sends nothing
    w["clock"].at = T0 + HOUR
    assert Redeliverer(w["deliverer"]).run(w["clock"].at).delivered == 0
    assert len(w["slack"].bodies) == 1
    # when it ends with the alert still firing, both channels get it
    w["clock"].at = T0 + 2 * HOUR
    run = Redeliverer(w["deliverer"]).run(w["clock"].at)
    assert run.delivered == 2
    assert "zendesk" in json.dumps(w["slack"].bodies[-1])
    assert w["pagerduty"].bodies[-1]["event_action"] == "trigger"
    assert len(operations(w["events"], "alert.silence_released")) == 2
    assert w["outbox"].entries() == []
    # and its Resolved then goes out as usual
    w["deliverer"].deliver(*notice("Resolved"))
    assert w["pagerduty"].bodies[-1]["event_action"] == "resolve"


def test_a_resolve_of_a_held_alert_is_not_sent(relay_world):
    w = relay_world
    w["outbox"].save_silence(silence())
    w["deliverer"].deliver(*notice())
    w["clock"].at = T0 + HOUR
    report = w["deliverer"].deliver(*notice("Resolved"))
    assert report.summary()["channels"] == {"email": "action_group", "slack": "silenced",
                                            "pagerduty": "silenced"}
    assert w["outbox"].entries() == []
    w["clock"].at = T0 + 3 * HOUR
    assert Redeliverer(w["deliverer"]).run(w["clock"].at).delivered == 0
    assert w["slack"].bodies == [] and w["pagerduty"].bodies == []


def test_a_resolve_of_an_alert_sent_before_the_silence_is_sent(relay_world):
    """No PagerDuty incident is left open by a silence made after it was opened."""
    w = relay_world
    w["deliverer"].deliver(*notice())
    w["outbox"].save_silence(silence())
    w["deliverer"].deliver(*notice("Resolved"))
    assert [e["event_action"] for e in w["pagerduty"].bodies] == ["trigger", "resolve"]


def test_a_weekly_silence_holds_only_in_its_window(relay_world):
    w = relay_world
    w["outbox"].save_silence(weekly("Europe/Berlin", "04:00", "06:00"))
    w["deliverer"].deliver(*notice(alert_id="friday"))  # Friday: not in the window
    assert len(w["pagerduty"].bodies) == 1
    w["clock"].at = utc("2026-03-29T03:00")  # Sunday 05:00 CEST
    assert w["deliverer"].deliver(*notice(alert_id="sunday")).silenced_by is not None
    [entry, _] = w["outbox"].entries()
    # looked at again within five minutes (an expiry elsewhere lets it go), at the latest
    # when the window closes
    assert entry.next_attempt_at == utc("2026-03-29T03:05")
    w["clock"].at = utc("2026-03-29T03:05")
    assert Redeliverer(w["deliverer"]).run(w["clock"].at).delivered == 0
    assert w["outbox"].entries()[0].next_attempt_at == utc("2026-03-29T03:10")
    w["clock"].at = utc("2026-03-29T03:58")
    Redeliverer(w["deliverer"]).run(w["clock"].at)
    assert w["outbox"].entries()[0].next_attempt_at == utc("2026-03-29T04:00")


def test_a_notice_under_a_silence_whose_store_fails_is_delivered(relay_world, monkeypatch):
    """Not knowing the silences must not lose an alert."""
    w = relay_world

    def broken() -> list:
        raise OSError("disk gone")

    monkeypatch.setattr(w["outbox"], "silences", broken)
    w["deliverer"].deliver(*notice())
    assert len(w["pagerduty"].bodies) == 1
    assert operations(w["events"], "alert.outbox_failed")


# -- the API ----------------------------------------------------------------------------------


ADMIN = {"x-ms-client-principal": principal("Monitoring.Admin")}
READER_A = {"x-ms-client-principal": principal("Monitoring.Reader", tenants="tenant-a",
                                               name="reader@a.example")}


@pytest.fixture
def api(relay_world, tmp_path):
    from integration_monitoring.store import TelemetryStore

    store = TelemetryStore(tmp_path / "telemetry.duckdb")
    app = create_app(backend=LocalBackend(store), access=Access("entra"),
                     deliverer_factory=lambda: relay_world["deliverer"], restatements=False)
    with TestClient(app) as client:
        yield client
    store.close()


def body(**extra: Any) -> dict[str, Any]:
    return {"matchers": [{"label": "adapterType", "values": ["zendesk"]}],
            "endsAt": (T0 + 2 * HOUR).isoformat().replace("+00:00", "Z"),
            "comment": "Zendesk maintenance", **extra}


def test_an_admin_makes_lists_and_expires_a_silence(api, relay_world):
    w = relay_world
    made = api.post("/api/admin/silences", json=body(), headers=ADMIN)
    assert made.status_code == 201, made.text
    s = made.json()
    assert s["state"] == "active" and s["createdBy"] == "ops@example.com"
    assert s["matchers"] == [{"label": "adapterType", "operator": "Equals",
                              "values": ["zendesk"]}]
    w["deliverer"].deliver(*notice())
    listed = api.get("/api/admin/silences", headers=ADMIN).json()["silences"]
    assert [(x["id"], x["holding"]) for x in listed] == [(s["id"], 2)]
    assert api.get("/api/admin/silences?state=expired", headers=ADMIN).json() == {
        "silences": []}
    # expiring it sends what it held at once
    w["clock"].at = T0 + HOUR
    ended = api.post(f"/api/admin/silences/{s['id']}/expire", json={}, headers=ADMIN)
    assert ended.status_code == 200 and ended.json()["state"] == "expired"
    assert len(w["slack"].bodies) == 1 and len(w["pagerduty"].bodies) == 1
    created, expired = (operations(w["events"], f"alert.silence_{x}")
                        for x in ("created", "expired"))
    assert created[0]["metadata"]["silenceId"] == s["id"]
    assert created[0]["metadata"]["comment"] == "Zendesk maintenance"
    assert expired[0]["metadata"]["by"] == "ops@example.com"
    again = api.post(f"/api/admin/silences/{s['id']}/expire", json={}, headers=ADMIN)
    assert again.status_code == 200 and len(operations(w["events"],
                                                       "alert.silence_expired")) == 1


def test_a_reader_silences_only_within_their_tenants(api):
    mine = body(matchers=[{"label": "tenantId", "values": ["tenant-a"]},
                          {"label": "adapterType", "values": ["zendesk"]}])
    made = api.post("/api/admin/silences", json=mine, headers=READER_A)
    assert made.status_code == 201 and made.json()["createdBy"] == "reader@a.example"
    for refused in (body(),  # no tenant: every tenant
                    body(matchers=[{"label": "tenantId", "values": ["tenant-a", "tenant-b"]}]),
                    body(matchers=[{"label": "tenantId", "operator": "NotEquals",
                                    "values": ["tenant-b"]}])):
        answer = api.post("/api/admin/silences", json=refused, headers=READER_A)
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"]["code"] == "outside_tenants"
    theirs = api.post("/api/admin/silences", json=body(), headers=ADMIN).json()
    seen = [s["id"] for s in api.get("/api/admin/silences", headers=READER_A).json()["silences"]]
    assert seen == [made.json()["id"]]
    gone = api.post(f"/api/admin/silences/{theirs['id']}/expire", json={}, headers=READER_A)
    assert gone.status_code == 404
    # Equals matchers no one tenant satisfies name no tenant: not a reader's to make or see
    nobody = body(matchers=[{"label": "tenantId", "values": ["tenant-a"]},
                            {"label": "tenantId", "values": ["tenant-b"]}])
    assert api.post("/api/admin/silences", json=nobody, headers=READER_A).status_code == 403
    api.post("/api/admin/silences", json=nobody, headers=ADMIN)
    seen = [s["id"] for s in api.get("/api/admin/silences", headers=READER_A).json()["silences"]]
    assert seen == [made.json()["id"]]


@pytest.mark.parametrize(("payload", "status", "parameter"), [
    (b"", 400, "body"),
    (b"[1]", 400, "body"),
    (b"{", 400, "body"),
    (json.dumps(body(endsAt="soon")).encode(), 400, "endsAt"),
    (json.dumps(body(matchers=[{"label": "x", "values": ["y"]}])).encode(), 400,
     "matchers[0].label"),
    (json.dumps(body(createdBy=7)).encode(), 201, None),  # an Entra caller is named anyway
])
def test_bad_requests_get_a_4xx_naming_the_field(api, payload, status, parameter):
    answer = api.post("/api/admin/silences", content=payload,
                      headers={**ADMIN, "content-type": "application/json"})
    assert answer.status_code == status, answer.text
    if parameter:
        assert answer.json()["error"]["parameter"] == parameter


def test_other_bad_requests(api):
    assert api.post("/api/admin/silences", content=json.dumps(body()),
                    headers={**ADMIN, "content-type": "text/plain"}).status_code == 415
    assert api.get("/api/admin/silences?state=asleep", headers=ADMIN).status_code == 400
    assert api.get("/api/admin/silences?colour=red", headers=ADMIN).status_code == 400
    assert api.post("/api/admin/silences/not-an-id/expire", json={},
                    headers=ADMIN).status_code == 400
    assert api.post("/api/admin/silences/00000000-0000-4000-8000-000000000000/expire",
                    json={}, headers=ADMIN).status_code == 404
    # a form another site posts cannot end a silence
    assert api.post("/api/admin/silences/00000000-0000-4000-8000-000000000000/expire",
                    data={"x": "1"}, headers=ADMIN).status_code == 415
    assert api.get("/api/admin/silences").status_code == 401


def test_a_store_that_cannot_answer_is_a_503(api, relay_world, monkeypatch):
    def broken() -> list:
        raise OSError("disk gone")

    monkeypatch.setattr(relay_world["outbox"], "silences", broken)
    answer = api.get("/api/admin/silences", headers=ADMIN)
    assert answer.status_code == 503 and answer.json()["error"]["code"] == \
        "silences_unavailable"


def test_the_routes_are_shown_to_admins_without_secrets(api, relay_world):
    answer = api.get("/api/admin/routes", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    routing = answer.json()
    assert [r["name"] for r in routing["routes"]][-1] == "default"
    assert {r["name"] for r in routing["receivers"]} >= {"email", "slack", "pagerduty"}
    assert relay_world["slack"].url not in answer.text
    assert api.get("/api/admin/routes", headers=READER_A).status_code == 403


def test_a_silence_expired_elsewhere_lets_a_held_notice_go_within_minutes(relay_world):
    """Another instance held a notice just after this one expired its silence: the held
    entry is looked at again within five minutes, not at the silence's old end."""
    w = relay_world
    week = w["outbox"].save_silence(silence(endsAt=(T0 + dt.timedelta(days=7)).isoformat()))
    w["deliverer"].deliver(*notice())  # held
    w["outbox"].save_silence(week.expire(T0))  # ended by another instance, no release here
    w["clock"].at = T0 + dt.timedelta(minutes=5)
    assert Redeliverer(w["deliverer"]).run(w["clock"].at).delivered == 2


def test_a_resolve_racing_the_release_of_its_fired_follows_it(relay_world, monkeypatch):
    """The timer sent the held Fired between the Resolved's read and its removal: the
    Resolved is then sent after it, not dropped."""
    w = relay_world
    w["outbox"].save_silence(silence())
    w["deliverer"].deliver(*notice())
    remove = w["outbox"].remove
    monkeypatch.setattr(w["outbox"], "remove", lambda entry: False)  # its version changed
    report = w["deliverer"].deliver(*notice("Resolved"))
    monkeypatch.setattr(w["outbox"], "remove", remove)
    assert report.summary()["channels"]["pagerduty"] in ("queued", "delivered")


def test_a_resolve_whose_fired_azure_held_back_is_not_sent(relay_world):
    """In Azure the silence's processing rule stops the Fired before the relay hears of it;
    its Resolved, which fired while the silence held, reaches no one either."""
    w = relay_world
    w["outbox"].save_silence(silence(startsAt=(T0 - HOUR).isoformat()))
    w["clock"].at = T0 + 3 * HOUR  # the silence has ended by now
    report = w["deliverer"].deliver(*notice("Resolved"))
    assert report.silenced_by is not None
    assert w["slack"].bodies == [] and w["pagerduty"].bodies == []
    # a Resolved of an alert that fired outside any silence is sent as ever
    w["deliverer"].deliver(*notice("Resolved", adapter="hubspot"))
    assert len(w["pagerduty"].bodies) == 1


def test_two_runs_at_once_send_a_queued_entry_once(relay_world):
    """The timer and an expiry's release may run together: the claim on each entry lets
    one of them send it."""
    import threading

    w = relay_world
    w["slack"].fail_next(10, 503)
    w["deliverer"].deliver(*notice(adapter="hubspot"))  # Slack queued
    w["slack"].heal()
    w["clock"].at = T0 + HOUR
    runs = [threading.Thread(target=Redeliverer(w["deliverer"]).run, args=(w["clock"].at,))
            for _ in range(4)]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    assert len(w["slack"].bodies) == 1
