"""Every alert rule on synthetic telemetry, as `promtool test rules` would check it:
just below the threshold stays quiet, just above fires with the right dimensions, and
recovery resolves. Plus the evaluator's failing periods, and every rule's runbook."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json

import pytest

from integration_monitoring.alerts import RUNBOOKS, Evaluator, load_rules, rule_by_id
from integration_monitoring.store import TelemetryStore

T0 = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
_ops = itertools.count(1)


def naive(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def trace(at, message, level=1, **properties):
    """An AppTraces row as the exporter writes it: property values are strings."""
    props = {k: v if isinstance(v, str) else json.dumps(v) for k, v in properties.items()}
    return {"TimeGenerated": naive(at), "Message": message, "SeverityLevel": level,
            "Properties": json.dumps(props), "OperationId": f"{next(_ops):032x}",
            "ItemCount": 1, "Type": "AppTraces"}


def metric(at, name, value, **labels):
    return {"TimeGenerated": naive(at), "Name": name, "Sum": float(value), "Min": float(value),
            "Max": float(value), "ItemCount": 1, "Properties": json.dumps(labels),
            "Type": "AppMetrics"}


def jobs(at, adapter, completed, failed, duration=1000.0, integration="i-1", **extra):
    rows = []
    for n in range(completed + failed):
        message = "sync.completed" if n < completed else "sync.failed"
        rows.append(trace(at - dt.timedelta(seconds=n + 1), message, 1 if n < completed else 3,
                          tenantId="t-1", integrationId=integration, adapterType=adapter,
                          entity="contact", duration=duration, recordCount=extra.get(
                              "records", 5), syncType=extra.get("sync_type", "scheduled")))
    return rows


@pytest.fixture
def store(tmp_path):
    store = TelemetryStore(tmp_path / "alerts.duckdb")
    yield store
    store.close()


def run(store, rule_id, periods):
    """Evaluate one rule at T0, T0+freq, ... with each period's rows added just before it."""
    rule = rule_by_id(rule_id)
    evaluator = Evaluator(store, rules=[rule])
    changes = []
    for index, rows in enumerate(periods):
        at = T0 + index * rule.frequency
        traces = [r for r in rows(at) if r["Type"] == "AppTraces"]
        metrics = [r for r in rows(at) if r["Type"] == "AppMetrics"]
        store.append("AppTraces", traces)
        store.append("AppMetrics", metrics)
        changes.append([(c.condition, c.dimensions, c.value) for c in evaluator.evaluate(rule, at)])
    return changes


@pytest.mark.parametrize(("rule_id", "below", "above", "recovered", "dimensions", "value"), [
    ("high-sync-failure-rate",
     lambda at: jobs(at, "zendesk", 27, 3),
     lambda at: jobs(at, "zendesk", 24, 6),
     lambda at: jobs(at, "zendesk", 10, 0),
     {"adapterType": "zendesk"}, 20.0),
    ("high-sync-failure-rate",
     lambda at: jobs(at, "pipedrive", 4, 2),
     lambda at: jobs(at, "pipedrive", 12, 3),
     lambda at: jobs(at, "pipedrive", 3, 2),
     {"adapterType": "pipedrive"}, 20.0),
    ("service-bus-queue-backlog",
     lambda at: [metric(at - dt.timedelta(minutes=1), "service_bus_queue_depth", 100,
                        queue="sync-jobs")],
     lambda at: [metric(at - dt.timedelta(minutes=1), "service_bus_queue_depth", 101,
                        queue="sync-jobs")],
     lambda at: [metric(at - dt.timedelta(minutes=1), "service_bus_queue_depth", 40,
                        queue="sync-jobs")],
     {"queue": "sync-jobs"}, 101.0),
    ("dead-letter-queue-accumulation",
     lambda at: [metric(at - dt.timedelta(minutes=1), "service_bus_dlq_depth", 0,
                        queue="sync-jobs")],
     lambda at: [metric(at - dt.timedelta(minutes=1), "service_bus_dlq_depth", 1,
                        queue="sync-jobs")],
     lambda at: [metric(at - dt.timedelta(minutes=1), "service_bus_dlq_depth", 0,
                        queue="sync-jobs")],
     {"queue": "sync-jobs"}, 1.0),
    ("slow-sync-processing",
     lambda at: jobs(at, "salesforce", 20, 0, duration=300_000.0),
     lambda at: jobs(at, "salesforce", 20, 0, duration=301_000.0),
     lambda at: jobs(at, "salesforce", 20, 0, duration=5_000.0),
     {"adapterType": "salesforce"}, 301_000.0),
    ("high-rate-limit-hits",
     lambda at: [metric(at - dt.timedelta(minutes=1), "adapter_rate_limit_hits_total", 3000,
                        adapter_type="hubspot", tenant_id="t-1")],
     lambda at: [metric(at - dt.timedelta(minutes=1), "adapter_rate_limit_hits_total", 3003,
                        adapter_type="hubspot", tenant_id="t-1")],
     lambda at: [],
     {"adapterType": "hubspot"}, 10.01),
])
def test_rule_fires_above_and_resolves(store, rule_id, below, above, recovered, dimensions,
                                       value):
    """Just below: quiet. Just above: fires with the dimensions. Recovered: resolves."""
    changes = run(store, rule_id, [below, above, recovered])
    assert changes[0] == []
    assert changes[1] == [("Fired", dimensions, value)]
    assert [(c, d) for c, d, _ in changes[2]] == [("Resolved", dimensions)]


def test_integration_stale_fires_after_three_quiet_hours(store):
    """An integration silent for 2.9 h is fine, for 3.1 h fires, and a success resolves."""
    rule = rule_by_id("integration-stale")
    evaluator = Evaluator(store, rules=[rule])
    last = T0 - dt.timedelta(hours=5)
    store.append("AppTraces", [
        trace(last - dt.timedelta(hours=1), "integration.status_changed", status="active",
              integrationId="hubspot-7", tenantId="t-2", syncIntervalMinutes=15),
        trace(last, "sync.completed", integrationId="hubspot-7", tenantId="t-2",
              recordCount=3, duration=100.0)])
    assert evaluator.evaluate(rule, last + dt.timedelta(hours=2.9)) == []
    fired = evaluator.evaluate(rule, last + dt.timedelta(hours=3.1))
    assert [(c.condition, c.dimensions) for c in fired] == [
        ("Fired", {"integrationId": "hubspot-7", "tenantId": "t-2"})]
    store.append("AppTraces", [trace(last + dt.timedelta(hours=3.2), "sync.completed",
                                     integrationId="hubspot-7", tenantId="t-2")])
    resolved = evaluator.evaluate(rule, last + dt.timedelta(hours=3.3))
    assert [c.condition for c in resolved] == ["Resolved"]


def test_integration_stale_ignores_paused_integrations(store):
    """A pause after the last success keeps the rule quiet."""
    rule = rule_by_id("integration-stale")
    last = T0 - dt.timedelta(hours=5)
    store.append("AppTraces", [
        trace(last, "sync.completed", integrationId="pd-1", tenantId="t-3"),
        trace(last + dt.timedelta(minutes=5), "integration.status_changed", status="paused",
              integrationId="pd-1", tenantId="t-3")])
    assert Evaluator(store, rules=[rule]).evaluate(rule, T0) == []


def test_empty_sync_runs_fire_when_normal_records_dry_up(store):
    """Three empty scheduled syncs after a day of records fire; one with records does not."""
    rule = rule_by_id("empty-sync-runs")

    def history(integration: str, recent_records: list[int]) -> list[dict]:
        rows = [trace(T0 - dt.timedelta(hours=10 + n), "sync.completed",
                      integrationId=integration, tenantId="t-4", recordCount=20,
                      syncType="scheduled") for n in range(4)]
        rows += [trace(T0 - dt.timedelta(minutes=20 * (n + 1)), "sync.completed",
                       integrationId=integration, tenantId="t-4", recordCount=count,
                       syncType="scheduled") for n, count in enumerate(recent_records)]
        return rows

    store.append("AppTraces", history("dry-1", [0, 0, 0]) + history("ok-1", [0, 3, 0]))
    fired = Evaluator(store, rules=[rule]).evaluate(rule, T0)
    assert [(c.condition, c.dimensions["integrationId"], c.value) for c in fired] == [
        ("Fired", "dry-1", 100.0)]


def test_failing_periods_need_enough_bad_periods(store):
    """With 2 of 3 failing periods required, one spike does not fire and two do."""
    rule = dataclasses.replace(rule_by_id("service-bus-queue-backlog"), failing_periods=3,
                               min_failing_periods=2)
    evaluator = Evaluator(store, rules=[rule])
    depths = [150, 20, 20, 150, 150, 20, 20, 20]
    conditions = []
    for index, depth in enumerate(depths):
        at = T0 + index * rule.frequency
        store.append("AppMetrics", [metric(at - dt.timedelta(minutes=1),
                                           "service_bus_queue_depth", depth, queue="q")])
        conditions.append([c.condition for c in evaluator.evaluate(rule, at)])
    assert conditions == [[], [], [], [], ["Fired"], [], ["Resolved"], []]


def test_run_due_follows_each_rules_frequency(store):
    """run_due evaluates a rule only when its frequency has passed."""
    evaluator = Evaluator(store)
    evaluator.run_due(T0)
    states = {rule.id: evaluator._state[rule.id].due for rule in evaluator.rules}
    evaluator.run_due(T0 + dt.timedelta(minutes=1))
    assert {rule.id: evaluator._state[rule.id].due for rule in evaluator.rules} == states


def test_every_rule_runs_on_the_local_store(store):
    """Each rule's KQL runs on the local engine over its window."""
    evaluator = Evaluator(store)
    for rule in evaluator.rules:
        assert evaluator.measure(rule, T0 - rule.window, T0) == {}


def test_every_rule_has_a_runbook_that_names_it():
    """runbooks/<id>.md exists beside the rules for every rule, describes that rule, and is
    what the app serves at the rule's runbook path, docs/runbooks/<id>.md."""
    for rule in load_rules():
        assert rule.runbook == f"docs/runbooks/{rule.id}.md"
        text = (RUNBOOKS / f"{rule.id}.md").read_text()
        assert f"`{rule.id}`" in text
        for heading in ("## What it means", "## Investigate", "## Likely causes", "## Steps",
                        "## Escalation"):
            assert heading in text, (rule.id, heading)
        if rule.seed_condition:
            assert "translated" in text and rule.seed_condition in text, rule.id


def test_the_seed_rules_keep_their_thresholds_and_channels():
    """The five seed rules keep the seed's thresholds and notification channels."""
    expected = {
        "high-sync-failure-rate": (10, {"email", "slack", "pagerduty"}),
        "service-bus-queue-backlog": (100, {"slack"}),
        "dead-letter-queue-accumulation": (0, {"slack"}),
        "slow-sync-processing": (300_000, {"slack"}),
        "high-rate-limit-hits": (10, {"slack"}),
    }
    for rule_id, (threshold, channels) in expected.items():
        rule = rule_by_id(rule_id)
        assert (rule.threshold, set(rule.channels)) == (threshold, channels)
        assert rule.operator == "GreaterThan"


@pytest.mark.parametrize(("environment", "expected"), [
    ({}, "docs/runbooks/integration-stale.md"),
    ({"WEBSITE_HOSTNAME": "intmon.azurewebsites.net"},
     "https://intmon.azurewebsites.net/docs/runbooks/integration-stale.md"),
    ({"WEBSITE_HOSTNAME": "intmon.azurewebsites.net", "RUNBOOK_BASE_URL": "https://wiki.example/"},
     "https://wiki.example/docs/runbooks/integration-stale.md"),
])
def test_a_runbook_link_points_where_the_runbooks_are_served(monkeypatch, environment,
                                                             expected):
    """In Azure the app links to the runbooks it serves itself, unless told another place;
    locally the path is relative to the local app."""
    for name in ("WEBSITE_HOSTNAME", "RUNBOOK_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert rule_by_id("integration-stale").runbook_url() == expected
