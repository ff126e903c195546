"""Alert routing: the routes file, choosing a route, a group's one Slack message, alerts whose
rule is not ours, and what the dashboard is shown. Pure: no network, no clock. Grouping as the
relay does it, through its outbox and the redelivery timer, is tests/test_alert_grouping.py."""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from typing import Any

import pytest

from integration_monitoring.alerts._channels import Dashboard, SlackChannel
from integration_monitoring.alerts._payload import AlertNotice, build_log_alert, parse_alert
from integration_monitoring.alerts._routing import (
    ROUTES_FILE,
    UNKNOWN_RULE_RUNBOOK,
    Group,
    RoutingError,
    describe,
    generic_rule,
    group_message,
    load_routes,
    parse_routes,
    receiver_channels,
    select,
)
from integration_monitoring.alerts._rules import RUNBOOKS, AlertRule, load_rules, rule_by_id
from integration_monitoring.alerts._silences import labels_of
from integration_monitoring.alerts._slack import MAX_BLOCKS, TOTAL_TEXT_BUDGET, slack_len

from .helpers import ROOT

T0 = dt.datetime(2026, 3, 4, 10, 15, 30, tzinfo=dt.UTC)
SECRET_URL = "https://hooks.slack.example/services/T000/B000/secret-part"

#: A file with a team's Slack, a team's PagerDuty, a grouping route and the default.
ROUTES: dict[str, Any] = {
    "receivers": [
        {"name": "email", "type": "email"},
        {"name": "slack", "type": "slack", "webhookSetting": "SLACK_WEBHOOK_URL"},
        {"name": "pagerduty", "type": "pagerduty", "routingKeySetting": "PAGERDUTY_ROUTING_KEY"},
        {"name": "slack-payments", "type": "slack",
         "webhookSetting": "SLACK_WEBHOOK_URL_PAYMENTS"},
        {"name": "pd-team-b", "type": "pagerduty",
         "routingKeySetting": "PAGERDUTY_ROUTING_KEY_TEAM_B"},
    ],
    "routes": [
        {"name": "payments-critical",
         "matchers": [{"label": "tenantId", "operator": "Equals", "values": ["payments"]},
                      {"label": "severity", "operator": "Equals", "values": ["Sev0", "Sev1"]}],
         "receivers": ["slack-payments", "pd-team-b"]},
        {"name": "payments",
         "matchers": [{"label": "tenantId", "operator": "Equals", "values": ["payments"]}],
         "receivers": ["slack-payments"]},
        {"name": "noisy-adapters",
         "matchers": [{"label": "adapterType", "operator": "Contains", "values": ["legacy"]},
                      {"label": "severity", "operator": "NotEquals", "values": ["Sev0"]}],
         "receivers": ["slack"],
         "group": {"by": ["adapterType"], "waitSeconds": 120}},
        {"name": "default", "channels": "rule", "unknownRuleReceivers": ["email", "slack"]},
    ],
}


def table(data: dict[str, Any] | None = None):
    return parse_routes(copy.deepcopy(data or ROUTES), "test")


def notice(rule_id: str = "high-sync-failure-rate", condition: str = "Fired",
           alert_id: str = "6f1c2d3e-0000-4000-8000-00000000000a",
           **dimensions: str) -> AlertNotice:
    rule = rule_by_id(rule_id)
    assert rule is not None
    return parse_alert(build_log_alert(
        rule, condition=condition, dimensions=dimensions or {"adapterType": "hubspot"},
        value=3.0 if condition == "Resolved" else 42.0, window_start=T0 - rule.window,
        window_end=T0, fired_at=T0,
        resolved_at=T0 + dt.timedelta(minutes=10) if condition == "Resolved" else None,
        alert_id=alert_id))


def route_of(routes, n: AlertNotice):
    rule = rule_by_id(n.rule_id) or generic_rule(n, routes)
    return select(routes, labels_of(n), rule.channels)


def metric_alert_on_function_app() -> dict[str, Any]:
    """A minimal common-schema metric alert made in the portal: HTTP 5xx on a Function app."""
    site = ("/subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-intmon"
            "/providers/Microsoft.Web/sites/func-intmon")
    return {
        "schemaId": "azureMonitorCommonAlertSchema",
        "data": {
            "essentials": {
                "alertId": "/subscriptions/11111111-2222-3333-4444-555555555555/providers/"
                           "Microsoft.AlertsManagement/alerts/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
                "alertRule": "func-intmon-http-5xx", "severity": "Sev2",
                "signalType": "Metric", "monitorCondition": "Fired",
                "monitoringService": "Platform", "alertTargetIDs": [site],
                "firedDateTime": "2026-03-04T10:20:00.1234567Z",
                "description": "The Function app answered more than 10 HTTP 5xx in 5 minutes.",
                "essentialsVersion": "1.0", "alertContextVersion": "1.0",
            },
            "alertContext": {
                "conditionType": "SingleResourceMultipleMetricCriteria",
                "condition": {
                    "windowSize": "PT5M",
                    "allOf": [{"metricName": "Http5xx", "metricNamespace": "Microsoft.Web/sites",
                               "operator": "GreaterThan", "threshold": "10",
                               "timeAggregation": "Total", "dimensions": [],
                               "metricValue": 37}],
                    "windowStartTime": "2026-03-04T10:15:00Z",
                    "windowEndTime": "2026-03-04T10:20:00Z",
                },
            },
            "customProperties": None,
        },
    }


# -- the shipped file ------------------------------------------------------------------------


def test_the_shipped_file_sends_every_rule_to_its_own_channels():
    """What the relay did before routes: each rule's channels, with the same settings."""
    routes = load_routes(env={})
    assert routes.source == str(ROUTES_FILE)
    assert {r.name: (r.type, r.setting) for r in routes.receivers.values()} == {
        "email": ("email", None), "slack": ("slack", "SLACK_WEBHOOK_URL"),
        "pagerduty": ("pagerduty", "PAGERDUTY_ROUTING_KEY")}
    for rule in load_rules():
        for dims in ({}, {"adapterType": "salesforce", "tenantId": "t-1", "queue": "sync"}):
            chosen = select(routes, labels_of(notice(rule.id, **dims)), rule.channels)
            assert chosen.route == "default"
            assert tuple(r.name for r in chosen.receivers) == rule.channels, rule.id
            assert all(r.type == r.name for r in chosen.receivers)
            assert chosen.group_key is None and chosen.grouped == ()


def test_the_reference_pages_example_loads():
    page = (ROOT / "docs" / "alert-routing.md").read_text()
    example = json.loads(re.search(r"^```json\n(.*?)^```", page, re.M | re.S).group(1))
    routes = parse_routes(example)
    assert [r.name for r in routes.routes] == ["payments-critical", "legacy-adapters", "default"]


def test_alert_routes_file_setting_points_at_another_file(tmp_path):
    path = tmp_path / "routes.json"
    path.write_text(json.dumps(ROUTES))
    assert load_routes(env={"ALERT_ROUTES_FILE": str(path)}).routes[0].name == "payments-critical"
    with pytest.raises(RoutingError, match="cannot be read"):
        load_routes(env={"ALERT_ROUTES_FILE": str(tmp_path / "missing.json")})


# -- choosing a route ------------------------------------------------------------------------


def test_the_first_matching_route_wins():
    routes = table()
    # Sev1 for tenant payments matches both payments routes: the first one takes it.
    chosen = route_of(routes, notice(tenantId="payments", adapterType="legacy-sap"))
    assert chosen.route == "payments-critical"
    assert [r.name for r in chosen.receivers] == ["slack-payments", "pd-team-b"]
    assert route_of(routes, notice("slow-sync-processing", tenantId="payments")).route == \
        "payments"


def test_contains_and_not_equals_and_the_default():
    routes = table()
    grouped = route_of(routes, notice("slow-sync-processing", adapterType="Legacy-SAP"))
    assert grouped.route == "noisy-adapters"  # Contains ignores case; Sev2 is not Sev0
    assert grouped.group_key == (("adapterType", "Legacy-SAP"),)
    assert grouped.wait_seconds == 120 and [r.name for r in grouped.grouped] == ["slack"]
    # The rule is Sev1; made Sev0 the NotEquals fails and the default takes it.
    sev0 = rule_by_id("high-sync-failure-rate")
    body = build_log_alert(
        AlertRule(**{**sev0.__dict__, "severity": 0}), condition="Fired",
        dimensions={"adapterType": "legacy-sap"}, value=50.0, window_start=T0 - sev0.window,
        window_end=T0, fired_at=T0, alert_id="sev0")
    fallback = route_of(routes, parse_alert(body))
    assert fallback.route == "default"
    assert [r.name for r in fallback.receivers] == ["email", "slack", "pagerduty"]
    # A label the alert lacks is the empty text: NotEquals holds, Contains does not.
    assert route_of(routes, notice("service-bus-queue-backlog", queue="q")).route == "default"


def test_an_alert_whose_rule_is_not_ours_goes_through_the_table_to_the_default():
    routes = table()
    n = parse_alert(metric_alert_on_function_app())
    assert rule_by_id(n.rule_id) is None
    chosen = route_of(routes, n)
    assert chosen.route == "default"
    assert [r.name for r in chosen.receivers] == ["email", "slack"]
    # The same alert still meets the earlier routes: severity is a label it has.
    only_sev2 = copy.deepcopy(ROUTES)
    only_sev2["routes"].insert(0, {
        "name": "platform", "receivers": ["pd-team-b"],
        "matchers": [{"label": "ruleId", "operator": "Contains", "values": ["func-"]}]})
    assert route_of(table(only_sev2), n).route == "platform"


# -- alerts whose rule is not in rules.json --------------------------------------------------


def test_generic_rule_from_a_portal_metric_alert_on_a_function_app():
    routes = load_routes(env={})
    n = parse_alert(metric_alert_on_function_app())
    rule = generic_rule(n, routes)
    assert (rule.id, rule.title, rule.severity) == ("func-intmon-http-5xx",
                                                   "func-intmon-http-5xx", 2)
    assert rule.description.startswith("The Function app answered")
    assert rule.query == "" and rule.channels == ("email", "slack")
    assert rule.runbook == UNKNOWN_RULE_RUNBOOK
    assert rule.window == dt.timedelta(minutes=5)
    assert (RUNBOOKS / "unknown-rule.md").is_file()
    # The channels' builders format it like any of ours.
    body = SlackChannel("https://hooks.example/x").body(n, rule)
    shown = json.dumps(body)
    assert "func-intmon-http-5xx" in shown and "value = 37 (alerts when &gt; 10)" in shown
    assert "docs/runbooks/unknown-rule.md" in shown


def test_generic_rule_takes_the_default_routes_own_receivers():
    explicit = copy.deepcopy(ROUTES)
    explicit["routes"][-1] = {"name": "default", "receivers": ["slack", "pd-team-b"]}
    rule = generic_rule(parse_alert(metric_alert_on_function_app()), table(explicit))
    assert rule.channels == ("slack", "pd-team-b")


# -- grouping --------------------------------------------------------------------------------


def group_of(*notices: AlertNotice, routes=None) -> Group:
    """The group the relay's timer builds for `notices` of one route and group key."""
    routes = routes or table()
    chosen = route_of(routes, notices[0])
    assert chosen.group_key is not None, "the first notice's route does not group"
    group = Group(chosen.route, chosen.group_key, tuple(r.name for r in chosen.grouped),
                  chosen.wait_seconds, 0.0, 0.0)
    for n in notices:
        assert route_of(routes, n).group_key == chosen.group_key
        group.add(n)
    return group


def test_only_slack_receivers_of_a_grouping_route_are_grouped():
    """PagerDuty keeps one incident per alert and e-mail is the action group's."""
    both = copy.deepcopy(ROUTES)
    route(both, "noisy-adapters")["receivers"] = ["email", "slack", "pd-team-b"]
    chosen = route_of(table(both), notice("slow-sync-processing", adapterType="legacy-sap"))
    assert [r.name for r in chosen.receivers] == ["email", "slack", "pd-team-b"]
    assert [r.name for r in chosen.grouped] == ["slack"]
    not_grouping = route_of(table(), notice(tenantId="payments"))
    assert not_grouping.group_key is None and not_grouping.grouped == ()


def test_an_alert_shows_once_in_its_latest_state():
    fired = notice("slow-sync-processing", alert_id="a1", adapterType="legacy-sap")
    resolved = notice("slow-sync-processing", "Resolved", alert_id="a1", adapterType="legacy-sap")
    other = notice("high-rate-limit-hits", alert_id="a2", adapterType="legacy-sap")
    # Azure may retry the Fired after the Resolved: it changes nothing.
    group = group_of(fired, other, resolved, fired)
    assert {k: n.condition for k, n in group.notices.items()} == {"a1": "Resolved",
                                                                  "a2": "Fired"}
    body = group_message(group, lambda n: rule_by_id(n.rule_id))
    assert "2 alerts · 1 firing, 1 resolved" in body["blocks"][0]["text"]["text"]


def test_one_slack_message_for_a_group():
    group = group_of(
        notice("slow-sync-processing", alert_id="a1", adapterType="legacy-sap", tenantId="t-1"),
        notice("high-rate-limit-hits", alert_id="a2", adapterType="legacy-sap"),
        notice("high-rate-limit-hits", "Resolved", alert_id="a3", adapterType="legacy-sap"))
    assert group.route == "noisy-adapters" and group.key == (("adapterType", "legacy-sap"),)
    body = group_message(group, lambda n: rule_by_id(n.rule_id),
                         Dashboard("https://intmon.example"))
    header = body["blocks"][0]["text"]["text"]
    assert "3 alerts · 2 firing, 1 resolved · adapterType=legacy-sap" in header
    sections = [b["text"]["text"] for b in body["blocks"][1:]]
    assert len(sections) == 3
    assert sections[0].startswith("*FIRING · Sev2 (Warning) · Slow sync processing*")
    assert sections[2].startswith("*RESOLVED")
    assert "tenantId=`t-1`" in sections[0]
    assert "<https://intmon.example/dashboard?tenantId=t-1&amp;adapterType=legacy-sap|" \
        in sections[0]
    footer = json.dumps(body["attachments"])
    assert "noisy-adapters" in footer and "alerts within 120 s" in footer
    assert body["text"].startswith("3 alerts (2 firing, 1 resolved) adapterType=legacy-sap: ")


def test_a_large_group_stays_within_slacks_limits_and_counts_the_rest():
    group = group_of(*(notice("slow-sync-processing", alert_id=f"a{i}", adapterType="legacy-sap",
                              integrationId="int-" + "x" * 250 + str(i)) for i in range(120)))
    assert len(group.notices) == 120
    body = group_message(group, lambda n: rule_by_id(n.rule_id))
    texts = [b["text"]["text"] for b in body["blocks"]]
    assert len(body["blocks"]) <= MAX_BLOCKS
    assert sum(slack_len(t) for t in texts) <= TOTAL_TEXT_BUDGET
    shown = len(texts) - 2  # the header and the closing line
    assert shown > 0
    assert texts[-1].startswith(f"… and {120 - shown} more alerts")


def test_a_group_of_one_is_the_usual_message():
    n = notice("slow-sync-processing", adapterType="legacy-sap")
    rule = rule_by_id(n.rule_id)
    assert group_message(group_of(n), lambda _: rule) == SlackChannel(None).body(n, rule)
    # An alert's Fired and Resolved are a group of one too: the usual Resolved message.
    resolved = notice("slow-sync-processing", "Resolved", adapterType="legacy-sap")
    assert group_message(group_of(n, resolved), lambda _: rule) == \
        SlackChannel(None).body(resolved, rule)


# -- start-up errors -------------------------------------------------------------------------


def broken(change) -> dict[str, Any]:
    data = copy.deepcopy(ROUTES)
    change(data)
    return data


def route(data, name):
    return next(r for r in data["routes"] if r["name"] == name)


BAD_FILES = [
    ("a standard name for another channel",
     lambda d: d["receivers"][1].update(webhookSetting="SLACK_WEBHOOK_URL_OPS"),
     r"receiver 'slack': the name 'slack' is the standard slack channel"),
    ("a reserved name", lambda d: d["receivers"].append(
        {"name": "claims", "type": "slack", "webhookSetting": "SLACK_WEBHOOK_URL_X"}),
     r"receiver 'claims': the name is reserved"),
    ("unknown receiver", lambda d: route(d, "payments")["receivers"].append("slack-billing"),
     r"route 'payments': receivers names receiver 'slack-billing', which is not declared"),
    ("duplicate route", lambda d: d["routes"].insert(1, copy.deepcopy(d["routes"][1])),
     r"route 'payments' is declared twice"),
    ("duplicate receiver", lambda d: d["receivers"].append({"name": "slack", "type": "email"}),
     r"receiver 'slack' is declared twice"),
    ("bad matcher label", lambda d: route(d, "payments")["matchers"][0].update(label="tenant"),
     r"route 'payments': matchers\[0\]\.label: label must be one of"),
    ("bad matcher operator",
     lambda d: route(d, "payments")["matchers"][0].update(operator="Regex"),
     r"route 'payments': matchers\[0\]\.operator: operator must be one of"),
    ("bad severity", lambda d: route(d, "payments-critical")["matchers"][1].update(
        values=["critical"]), r"route 'payments-critical': matchers\[1\]\.values: severity"),
    ("no matchers", lambda d: route(d, "payments").pop("matchers"),
     r"route 'payments': matchers must be a non-empty list"),
    ("default missing", lambda d: d["routes"].pop(),
     r"the routes must end with a route named 'default'"),
    ("default not last", lambda d: d["routes"].insert(0, d["routes"].pop()),
     r"route 'payments-critical' comes after the default route"),
    ("default with matchers", lambda d: d["routes"][-1].update(
        matchers=[{"label": "severity", "values": ["Sev1"]}]),
     r"route 'default': the default route .* has no matchers"),
    ("malformed setting", lambda d: d["receivers"][3].update(webhookSetting="slack-url"),
     r"receiver 'slack-payments': webhookSetting must name the setting"),
    ("another secret's setting",
     lambda d: d["receivers"][4].update(routingKeySetting="AzureWebJobsStorage"),
     r"receiver 'pd-team-b': routingKeySetting must name the setting"),
    ("setting on e-mail", lambda d: d["receivers"][0].update(webhookSetting="SLACK_WEBHOOK_URL"),
     r"receiver 'email': unknown field 'webhookSetting'"),
    ("secret in the file", lambda d: d["receivers"][1].update(webhookUrl=SECRET_URL),
     r"receiver 'slack': unknown field 'webhookUrl'"),
    ("unknown route field", lambda d: route(d, "payments").update(continue_=True),
     r"route 'payments': unknown field 'continue_'"),
    ("unknown type", lambda d: d["receivers"][1].update(type="teams"),
     r"receiver 'slack': type must be one of"),
    ("unknown group label", lambda d: route(d, "noisy-adapters")["group"].update(by=["region"]),
     r"route 'noisy-adapters': group\.by must be a list of labels"),
    ("wait too long", lambda d: route(d, "noisy-adapters")["group"].update(waitSeconds=901),
     r"route 'noisy-adapters': group\.waitSeconds must be .* from 0 to 900"),
    ("negative wait", lambda d: route(d, "noisy-adapters")["group"].update(waitSeconds=-1),
     r"route 'noisy-adapters': group\.waitSeconds"),
    ("both receivers and rule channels", lambda d: route(d, "payments").update(channels="rule"),
     r"route 'payments': give either receivers or"),
    ("rule channels without unknown-rule receivers",
     lambda d: d["routes"][-1].pop("unknownRuleReceivers"),
     r"route 'default': .* unknownRuleReceivers"),
    ("rule channels without a pagerduty receiver", lambda d: d["receivers"].pop(2),
     r"route 'default' sends alerts to their rule's channels, so a receiver named 'pagerduty'"),
    ("bad route name", lambda d: route(d, "payments").update(name="pay|ments"),
     r"a route needs a name"),
]


@pytest.mark.parametrize(("change", "message"), [case[1:] for case in BAD_FILES],
                         ids=[case[0] for case in BAD_FILES])
def test_a_bad_routes_file_stops_the_start_naming_what_is_wrong(tmp_path, change, message):
    path = tmp_path / "routes.json"
    path.write_text(json.dumps(broken(change)))
    with pytest.raises(RoutingError, match=message) as caught:
        load_routes(path, env={})
    assert str(path) in str(caught.value)


def test_the_local_server_refuses_to_start_with_a_bad_routes_file(tmp_path, monkeypatch,
                                                                  capsys):
    """`serve` (make run) stops before serving, saying which route is wrong."""
    from integration_monitoring.__main__ import main

    path = tmp_path / "routes.json"
    path.write_text(json.dumps(broken(lambda d: route(d, "payments").update(receivers=["x"]))))
    monkeypatch.setenv("ALERT_ROUTES_FILE", str(path))
    assert main(["serve", "--no-demo", "--port", "1"]) == 2
    error = capsys.readouterr().err
    assert "route 'payments'" in error and str(path) in error


# -- what the dashboard is shown -------------------------------------------------------------


def test_describe_says_which_settings_are_unset_and_never_a_secret():
    env = {"SLACK_WEBHOOK_URL": SECRET_URL, "PAGERDUTY_ROUTING_KEY_TEAM_B": "R0UT1NGKEY",
           "SLACK_WEBHOOK_URL_PAYMENTS": "  "}
    shown = describe(table(), env)
    text = json.dumps(shown)
    assert SECRET_URL not in text and "R0UT1NGKEY" not in text
    assert shown["unsetSettings"] == ["PAGERDUTY_ROUTING_KEY", "SLACK_WEBHOOK_URL_PAYMENTS"]
    receivers = {r["name"]: r for r in shown["receivers"]}
    assert receivers["slack"] == {"name": "slack", "type": "slack",
                                  "setting": "SLACK_WEBHOOK_URL", "settingSet": True}
    assert receivers["email"]["settingSet"] is None
    assert [r["name"] for r in shown["routes"]] == ["payments-critical", "payments",
                                                    "noisy-adapters", "default"]
    assert shown["routes"][2]["group"] == {"by": ["adapterType"], "waitSeconds": 120}
    assert shown["routes"][0]["matchers"][0] == {"label": "tenantId", "operator": "Equals",
                                                 "values": ["payments"]}


def test_receiver_channels_read_their_secret_when_sending():
    env: dict[str, str] = {}
    channels = {c.name: c for c in receiver_channels(table(), env, Dashboard())}
    assert set(channels) == {"slack", "pagerduty", "slack-payments", "pd-team-b"}
    payments = channels["slack-payments"]
    assert payments.setting == "SLACK_WEBHOOK_URL_PAYMENTS" and not payments.ready()
    env["SLACK_WEBHOOK_URL_PAYMENTS"] = SECRET_URL
    assert payments.ready() and payments.address() == SECRET_URL
    team_b = channels["pd-team-b"]
    assert not team_b.ready()
    env["PAGERDUTY_ROUTING_KEY_TEAM_B"] = "key-b"
    body = team_b.body(notice(), rule_by_id("high-sync-failure-rate"))
    assert "routing_key" not in body and team_b.outgoing(body)["routing_key"] == "key-b"
