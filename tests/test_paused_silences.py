"""A paused integration's alerts are silenced without anyone asking: the job keeps one
silence per paused integration, read from the same status question /health answers, on a
real DuckDB store, and ends it when the integration is resumed."""

from __future__ import annotations

import datetime as dt

import pytest

from integration_monitoring import integration_status_changed
from integration_monitoring.admin import (
    AdminService,
    Answer,
    LocalBackend,
    PausedUnknown,
    SharedQueries,
    silence_paused,
)
from integration_monitoring.alerts import Silencer, SqliteOutbox
from integration_monitoring.alerts._delivery import Deliverer
from integration_monitoring.alerts._payload import build_log_alert, parse_alert
from integration_monitoring.alerts._rules import rule_by_id
from integration_monitoring.store import TelemetryStore

from .helpers import store_telemetry


@pytest.fixture
def world(tmp_path, slack, pagerduty, captured):
    store = TelemetryStore(tmp_path / "telemetry.duckdb")
    platform, provider = store_telemetry(store)
    deliverer = Deliverer(slack_webhook_url=slack.url, pagerduty_routing_key="r" * 32,
                          pagerduty_events_url=pagerduty.url, backoff_base=0.01,
                          max_attempts=1, outbox=SqliteOutbox(tmp_path / "outbox.sqlite3"))
    # no shared answers: each run must see the statuses written just before it
    service = AdminService(LocalBackend(store), SharedQueries(ttl_s=0), restatements=False)

    def status(tenant: str, integration: str, to: str) -> None:
        integration_status_changed(tenant_id=tenant, integration_id=integration, status=to,
                                   adapter_type="zendesk", reason="paused by the tenant",
                                   telemetry=platform)

    yield {"status": status, "service": service, "silencer": Silencer(deliverer),
           "deliverer": deliverer, "slack": slack, "events": captured}
    deliverer.close()
    provider.shutdown()
    store.close()


def soon() -> dt.datetime:
    """A window ending just after the events (a window ending now ends on a whole step)."""
    return dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)


def paused_silences(world) -> dict[tuple[str, ...], dict]:
    now = dt.datetime.now(dt.UTC)
    return {tuple(v for m in s.matchers for v in m.values): s.describe(now)
            for s in world["deliverer"].silences() if s.source == "paused-integration"}


def test_a_paused_integration_is_silenced_until_it_is_resumed(world):
    world["status"]("tenant-a", "int-1", "paused")
    world["status"]("tenant-b", "int-3", "paused")
    world["status"]("tenant-a", "int-2", "active")
    run = silence_paused(world["service"], world["silencer"], soon())
    assert (run.paused, run.made, run.ended) == (2, 2, 0)
    silences = paused_silences(world)
    assert set(silences) == {("tenant-a", "int-1"), ("tenant-b", "int-3")}
    assert {s["state"] for s in silences.values()} == {"active"}
    assert "paused by the tenant" in silences[("tenant-a", "int-1")]["comment"]
    assert world["events"].find("alert.silence_created", by="integration-monitoring")
    # the next run changes nothing
    assert silence_paused(world["service"], world["silencer"], soon()).made == 0
    # a stale alert of the paused integration notifies no one
    rule = rule_by_id("integration-stale")
    now = dt.datetime.now(dt.UTC)
    notice = parse_alert(build_log_alert(
        rule, condition="Fired", dimensions={"integrationId": "int-3", "tenantId": "tenant-b"},
        value=240.0, window_start=now - rule.window, window_end=now, fired_at=now,
        alert_id="stale-int-3"))
    report = world["deliverer"].deliver(notice, rule)
    assert report.summary()["channels"]["slack"] == "silenced"
    assert world["slack"].bodies == []
    # resumed: its silence ends and what it held goes out
    world["status"]("tenant-b", "int-3", "active")
    run = silence_paused(world["service"], world["silencer"], soon())
    assert (run.paused, run.made, run.ended) == (1, 0, 1)
    assert paused_silences(world)[("tenant-b", "int-3")]["state"] == "expired"
    assert len(world["slack"].bodies) == 1


def test_a_partial_answer_changes_no_silence(world):
    world["status"]("tenant-a", "int-1", "paused")
    silence_paused(world["service"], world["silencer"], soon())
    world["status"]("tenant-a", "int-1", "active")

    class Partial(LocalBackend):
        def ask(self, name, values):
            answer = super().ask(name, values)
            return Answer(answer.columns, [], ["the workspace timed out"])

    service = AdminService(Partial(world["service"].backend.store), SharedQueries(ttl_s=0),
                           restatements=False)
    with pytest.raises(PausedUnknown, match="timed out"):
        silence_paused(service, world["silencer"], soon())
    assert paused_silences(world)[("tenant-a", "int-1")]["state"] == "active"
