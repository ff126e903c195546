"""The alert relay: common-schema payloads in, Slack and PagerDuty notifications out.

Slack and PagerDuty are loopback capture servers on 127.0.0.1; the relay runs in a FastAPI app
through the TestClient; backoff is tiny, so the module runs in a few seconds.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from integration_monitoring.admin import install_error_handlers
from integration_monitoring.alerts._delivery import Deliverer
from integration_monitoring.alerts._payload import (
    PayloadError,
    build_log_alert,
    parse_alert,
)
from integration_monitoring.alerts._relay import relay_router
from integration_monitoring.alerts._rules import rule_by_id

from .loopback.capture import CaptureServer, unused_url

SECRET = "relay-secret-for-tests"
RUNBOOK_BASE = "https://github.example/acme/integration-monitoring/blob/main"
ROUTING_KEY = "0123456789abcdef0123456789abcdef"
T0 = dt.datetime(2025, 3, 4, 10, 15, 30, 123456, tzinfo=dt.UTC)


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The relay secret and an absolute runbook base; no channel settings leak in."""
    monkeypatch.setenv("ALERT_RELAY_SECRET", SECRET)
    monkeypatch.setenv("RUNBOOK_BASE_URL", RUNBOOK_BASE)
    for name in ("SLACK_WEBHOOK_URL", "PAGERDUTY_ROUTING_KEY", "PAGERDUTY_EVENTS_URL",
                 "DASHBOARD_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def _deliverer(slack_url: str | None, pagerduty_url: str | None, **options: Any) -> Deliverer:
    options = {"backoff_base": 0.01, "backoff_cap": 0.05, "budget": 3.0, "timeout": 1.0,
               **options}
    return Deliverer(slack_webhook_url=slack_url,
                     pagerduty_routing_key=ROUTING_KEY if pagerduty_url else None,
                     pagerduty_events_url=pagerduty_url,
                     dashboard_base_url="http://127.0.0.1:7071", **options)


@pytest.fixture
def deliverer(slack: CaptureServer, pagerduty: CaptureServer) -> Iterator[Deliverer]:
    """Both channels configured, pointing at the capture servers."""
    instance = _deliverer(f"{slack.url}/services/T000/B000/XXXX", f"{pagerduty.url}/v2/enqueue")
    yield instance
    instance.close()


def _client(deliverer: Deliverer) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(relay_router(lambda: deliverer))
    return TestClient(app)


@pytest.fixture
def client(deliverer: Deliverer) -> TestClient:
    """The relay in an app with the admin error handlers, as app.py will compose it."""
    return _client(deliverer)


def alert(rule_id: str = "high-sync-failure-rate", condition: str = "Fired",
          dimensions: dict[str, str] | None = None, value: float | None = 12.5,
          alert_id: str = "6f1c2d3e-0000-4000-8000-000000000001") -> dict[str, Any]:
    """A Log Alerts V2 notification for one of our rules, as Azure would POST it."""
    rule = rule_by_id(rule_id)
    assert rule is not None
    return build_log_alert(
        rule, condition=condition,
        dimensions={"adapterType": "salesforce"} if dimensions is None else dimensions,
        value=value, window_start=T0 - rule.window, window_end=T0, fired_at=T0,
        resolved_at=T0 + dt.timedelta(minutes=10) if condition == "Resolved" else None,
        alert_id=alert_id, workspace_id="ws-1")


def post(client: TestClient, body: Any, secret: str | None = SECRET,
         via: str = "query") -> Any:
    params = {"secret": secret} if secret is not None and via == "query" else {}
    headers = {"x-relay-secret": secret} if secret is not None and via == "header" else {}
    if isinstance(body, (bytes, str)):
        return client.post("/api/alerts/relay", content=body, params=params,
                           headers={**headers, "content-type": "application/json"})
    return client.post("/api/alerts/relay", json=body, params=params, headers=headers)


def _texts(value: Any) -> list[str]:
    """Every `text` string inside a Block Kit structure."""
    if isinstance(value, dict):
        found = [value["text"]] if isinstance(value.get("text"), str) else []
        return found + [t for v in value.values() for t in _texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    return []


# -- payloads -------------------------------------------------------------------------------


LOG_ALERTS_V2_SAMPLE = {
    "schemaId": "azureMonitorCommonAlertSchema",
    "data": {
        "essentials": {
            "alertId": "/subscriptions/11111111-2222-3333-4444-555555555555/providers/"
                       "Microsoft.AlertsManagement/alerts/0d5e4c3b-1a2b-4c5d-8e9f-aa11bb22cc33",
            "alertRule": "im-prod-high-sync-failure-rate",
            "severity": "Sev1",
            "signalType": "Log",
            "monitorCondition": "Fired",
            "monitoringService": "Log Alerts V2",
            "alertTargetIDs": ["/subscriptions/11111111-2222-3333-4444-555555555555/"
                               "resourcegroups/rg-im-prod/providers/"
                               "microsoft.operationalinsights/workspaces/log-im-prod"],
            "configurationItems": ["log-im-prod"],
            "originAlertId": "aa11bb22-cc33-dd44-ee55-ff6677889900",
            "firedDateTime": "2025-03-04T10:15:31.52217Z",
            "description": "More than 10 % of the sync jobs that finished in the last 5 minutes "
                           "failed.",
            "essentialsVersion": "1.0",
            "alertContextVersion": "1.0",
        },
        "alertContext": {
            "properties": {"ruleId": "high-sync-failure-rate"},
            "conditionType": "LogQueryCriteria",
            "condition": {
                "windowSize": "PT5M",
                "allOf": [{
                    "searchQuery": "AppTraces | where Message in (\"sync.completed\", ...)",
                    "metricMeasureColumn": "failureRate",
                    "targetResourceTypes": "['Microsoft.OperationalInsights/workspaces']",
                    "operator": "LowerThan",
                    "threshold": "10",
                    "timeAggregation": "Maximum",
                    "dimensions": [{"name": "adapterType", "value": "hubspot"}],
                    "metricValue": 37.5,
                    "failingPeriods": {"numberOfEvaluationPeriods": 1,
                                       "minFailingPeriodsToAlert": 1},
                    "linkToSearchResultsUI": "https://portal.azure.com#@tenant/blade/...",
                    "linkToFilteredSearchResultsUI": "https://portal.azure.com#@tenant/blade/...",
                    "linkToSearchResultsAPI": "https://api.loganalytics.io/v1/workspaces/...",
                    "linkToFilteredSearchResultsAPI": "https://api.loganalytics.io/v1/...",
                }],
                "windowStartTime": "2025-03-04T10:10:31Z",
                "windowEndTime": "2025-03-04T10:15:31Z",
            },
        },
        "customProperties": {"ruleId": "high-sync-failure-rate",
                             "runbookUrl": "docs/runbooks/high-sync-failure-rate.md"},
    },
}

METRIC_SAMPLE = {
    "schemaId": "azureMonitorCommonAlertSchema",
    "data": {
        "essentials": {
            "alertId": "/subscriptions/11111111-2222-3333-4444-555555555555/providers/"
                       "Microsoft.AlertsManagement/alerts/9a8b7c6d-0000-4000-8000-0000000000aa",
            "alertRule": "sb-active-messages",
            "severity": "Sev2",
            "signalType": "Metric",
            "monitorCondition": "Resolved",
            "monitoringService": "Platform",
            "alertTargetIDs": ["/subscriptions/11111111-2222-3333-4444-555555555555/"
                               "resourcegroups/rg-im-prod/providers/microsoft.servicebus/"
                               "namespaces/sb-im-prod"],
            "configurationItems": ["sb-im-prod"],
            "originAlertId": "11111111-2222-3333-4444-555555555555_rg-im-prod_"
                             "microsoft.insights_metricAlerts_sb-active-messages_-1234567",
            "firedDateTime": "2025-03-04T09:58:24.3713213Z",
            "resolvedDateTime": "2025-03-04T10:03:16.2246313Z",
            "description": "",
            "essentialsVersion": "1.0",
            "alertContextVersion": "1.0",
        },
        "alertContext": {
            "properties": None,
            "conditionType": "SingleResourceMultipleMetricCriteria",
            "condition": {
                "windowSize": "PT5M",
                "allOf": [{
                    "metricName": "ActiveMessages",
                    "metricNamespace": "Microsoft.ServiceBus/namespaces",
                    "operator": "GreaterThan",
                    "threshold": "100",
                    "timeAggregation": "Maximum",
                    "dimensions": [{"name": "EntityName", "value": "sync-jobs"}],
                    "metricValue": 42,
                }],
                "windowStartTime": "2025-03-04T09:58:03.064Z",
                "windowEndTime": "2025-03-04T10:03:03.064Z",
            },
        },
        "customProperties": None,
    },
}


def test_log_alerts_v2_sample_is_read():
    """A Log Alerts V2 notification in Azure's published shape becomes an AlertNotice."""
    # given a Fired log alert whose Azure rule name differs from our rule id
    # when it is parsed
    notice = parse_alert(LOG_ALERTS_V2_SAMPLE)
    # then the rule id comes from the custom properties, and the rest from the criterion
    assert notice.rule_id == "high-sync-failure-rate"
    assert notice.rule_name == "im-prod-high-sync-failure-rate"
    assert (notice.severity, notice.condition, notice.signal_type) == (1, "Fired", "Log")
    assert notice.dimensions == {"adapterType": "hubspot"}
    assert (notice.value, notice.threshold) == (37.5, 10.0)
    assert notice.operator == "LessThan"  # Azure's sample spells it LowerThan
    assert notice.fired_at == dt.datetime(2025, 3, 4, 10, 15, 31, 522170, tzinfo=dt.UTC)
    assert notice.resolved_at is None
    assert notice.window_end == dt.datetime(2025, 3, 4, 10, 15, 31, tzinfo=dt.UTC)


def test_metric_alert_sample_is_read():
    """A metric alert's dimensions, value and threshold are read from its allOf criterion."""
    # given a Resolved metric alert with null custom properties
    # when it is parsed
    notice = parse_alert(METRIC_SAMPLE)
    # then the rule id falls back to the rule name, and the resolved time is kept
    assert notice.rule_id == "sb-active-messages"
    assert (notice.severity, notice.condition, notice.signal_type) == (2, "Resolved", "Metric")
    assert notice.dimensions == {"EntityName": "sync-jobs"}
    assert (notice.value, notice.threshold, notice.operator) == (42.0, 100.0, "GreaterThan")
    assert notice.resolved_at == dt.datetime(2025, 3, 4, 10, 3, 16, 224631, tzinfo=dt.UTC)


def test_built_log_alert_has_azure_shape_and_reads_back():
    """build_log_alert writes the common schema's Log Alerts V2 fields, and parse_alert reads
    them back unchanged."""
    # given a rule with two dimensions
    # when its Fired notification is built
    body = alert("integration-stale", dimensions={"integrationId": "sf-1", "tenantId": "t-9"},
                 value=4.25)
    # then the essentials and the criterion carry what Azure sends
    essentials = body["data"]["essentials"]
    assert body["schemaId"] == "azureMonitorCommonAlertSchema"
    assert {"alertId", "alertRule", "severity", "signalType", "monitorCondition",
            "monitoringService", "alertTargetIDs", "configurationItems", "originAlertId",
            "firedDateTime", "description", "essentialsVersion",
            "alertContextVersion"} <= set(essentials)
    assert essentials["alertId"].startswith("/subscriptions/")
    assert (essentials["severity"], essentials["signalType"], essentials["monitoringService"]) \
        == ("Sev2", "Log", "Log Alerts V2")
    assert essentials["firedDateTime"] == "2025-03-04T10:15:30.123456Z"
    assert "resolvedDateTime" not in essentials
    context = body["data"]["alertContext"]
    assert context["conditionType"] == "LogQueryCriteria"
    assert context["condition"]["windowSize"] == "P1D"
    criterion = context["condition"]["allOf"][0]
    assert criterion["threshold"] == "3" and isinstance(criterion["threshold"], str)
    assert criterion["dimensions"] == [{"name": "integrationId", "value": "sf-1"},
                                       {"name": "tenantId", "value": "t-9"}]
    assert criterion["failingPeriods"] == {"numberOfEvaluationPeriods": 1,
                                           "minFailingPeriodsToAlert": 1}
    assert body["data"]["customProperties"] == {
        "ruleId": "integration-stale",
        "runbookUrl": f"{RUNBOOK_BASE}/docs/runbooks/integration-stale.md"}
    # and reading it back gives the same facts
    notice = parse_alert(json.loads(json.dumps(body)))
    assert (notice.rule_id, notice.condition, notice.value, notice.threshold) == \
        ("integration-stale", "Fired", 4.25, 3.0)
    assert notice.dimensions == {"integrationId": "sf-1", "tenantId": "t-9"}
    assert notice.fired_at == T0


def test_parse_alert_names_the_missing_field():
    """PayloadError says which field is missing and carries its path."""
    # given a notification without a monitor condition
    body = alert()
    del body["data"]["essentials"]["monitorCondition"]
    # when it is parsed, then the error names the field
    with pytest.raises(PayloadError, match="monitorCondition") as raised:
        parse_alert(body)
    assert raised.value.field == "data.essentials.monitorCondition"


def test_times_at_the_edge_of_the_calendar_are_refused():
    """A fired time that cannot be converted to UTC is a PayloadError, not a crash later."""
    body = alert()
    body["data"]["essentials"]["firedDateTime"] = "0001-01-01T00:00:00+01:00"
    with pytest.raises(PayloadError, match="firedDateTime"):
        parse_alert(body)


# -- the endpoint: input ----------------------------------------------------------------------


def _without(path: str) -> dict[str, Any]:
    body = alert()
    *parents, last = path.split(".")
    node = body
    for key in parents:
        node = node[key]
    del node[last]
    return body


def _with(path: str, value: Any) -> dict[str, Any]:
    body = alert()
    *parents, last = path.split(".")
    node = body
    for key in parents:
        node = node[key] if not key.isdigit() else node[int(key)]
    node[last] = value
    return body


@pytest.mark.parametrize(("body", "code", "named"), [
    (b"", "invalid_body", "empty"),
    (b"{not json", "invalid_body", "not JSON"),
    ([1, 2], "invalid_alert", "JSON object"),
    (_with("schemaId", "Microsoft.Insights/LogAlert"), "invalid_alert", "schemaId"),
    (_without("data.essentials"), "invalid_alert", "data.essentials is missing"),
    (_with("data.essentials.monitorCondition", "Active"), "invalid_alert", "monitorCondition"),
    (_with("data.essentials.severity", "High"), "invalid_alert", "severity"),
    (_with("data.essentials.firedDateTime", "yesterday"), "invalid_alert", "firedDateTime"),
    (_with("data.alertContext.conditionType", "ActivityLog"), "invalid_alert",
     "conditionType"),
    (_with("data.alertContext.condition.allOf", []), "invalid_alert", "allOf"),
    (_with("data.alertContext.condition.allOf.0.threshold", "ten"), "invalid_alert",
     "threshold"),
    (_with("data.alertContext.condition.allOf.0.dimensions", [{"value": "x"}]),
     "invalid_alert", "dimensions"),
])
def test_malformed_bodies_are_400_naming_the_problem(client, slack, body, code, named):
    """A body that is not a common-schema alert is refused with 400 and a message naming
    what is wrong; nothing is delivered."""
    # given a malformed body
    # when it is posted with the right secret
    response = post(client, body)
    # then the answer is the app's JSON error naming the problem
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert named in error["message"]
    assert slack.attempts == 0


def test_an_alert_of_a_rule_not_in_the_list_reaches_the_default_route(client, slack,
                                                                      captured):
    """An alert of a rule made in the portal, or an Azure platform alert sharing the action
    group, is not refused: it goes to the default route with a generic message, and the
    history records it."""
    # given an alert whose custom properties name an unknown rule
    body = alert()
    body["data"]["customProperties"]["ruleId"] = "no-such-rule"
    body["data"]["alertContext"]["properties"]["ruleId"] = "no-such-rule"
    body["data"]["essentials"]["alertRule"] = "Made in the portal"
    # when it is posted
    response = post(client, body)
    # then the default route's receivers for such alerts get it
    assert response.status_code == 202, response.text
    assert response.json()["route"] == "default"
    assert response.json()["channels"] == {"email": "action_group", "slack": "delivered"}
    [message] = slack.bodies
    assert "Made in the portal" in json.dumps(message)
    assert "unknown-rule.md" in json.dumps(message)
    fired = captured.assert_event("alert.fired", ruleId="no-such-rule")
    assert fired["metadata"]["route"] == "default"
    assert fired["metadata"]["channels"] == ["email", "slack"]


@pytest.mark.parametrize(("secret", "via", "status", "code"), [
    (None, "query", 401, "missing_secret"),
    ("wrong", "query", 401, "wrong_secret"),
    ("wrong", "header", 401, "wrong_secret"),
    (SECRET, "query", 202, None),
    (SECRET, "header", 202, None),
])
def test_the_relay_secret_is_required(client, slack, secret, via, status, code):
    """Only the shared secret, as the x-relay-secret header or the secret query parameter,
    gets an alert through; anything else is 401 JSON."""
    # given a valid alert
    # when it is posted with the given secret
    response = post(client, alert(), secret=secret, via=via)
    # then only the right secret is accepted
    assert response.status_code == status, response.text
    if code:
        assert response.json()["error"]["code"] == code
        assert slack.attempts == 0
    else:
        assert len(slack.bodies) == 1


def test_unset_secret_refuses_with_503(client, slack, monkeypatch):
    """Without ALERT_RELAY_SECRET the relay refuses everything with 503 relay_not_configured."""
    # given no relay secret configured
    monkeypatch.delenv("ALERT_RELAY_SECRET")
    # when an alert is posted (with any secret), then it is refused
    response = post(client, alert(), secret="anything")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "relay_not_configured"
    assert slack.attempts == 0


# -- the endpoint: delivery -------------------------------------------------------------------


def test_fired_alert_reaches_slack_and_pagerduty(client, slack, pagerduty, captured,
                                                 pagerduty_request_schema):
    """A Fired alert becomes a Slack Block Kit message and a PagerDuty trigger that
    validates against the Events API v2 request schema."""
    # given a Fired high-sync-failure-rate alert for salesforce
    # when Azure posts it
    response = post(client, alert())
    # then both channels were delivered and e-mail is left to the action group
    assert response.status_code == 202, response.text
    summary = response.json()
    assert summary["channels"] == {"email": "action_group", "slack": "delivered",
                                   "pagerduty": "delivered"}
    assert (summary["ruleId"], summary["condition"], summary["duplicate"]) == \
        ("high-sync-failure-rate", "Fired", False)
    # and the Slack message carries severity, rule, where, value vs threshold and both links
    [message] = slack.bodies
    assert slack.requests[0].path == "/services/T000/B000/XXXX"
    assert "FIRING" in message["text"] and "Sev1" in message["text"]
    header = message["blocks"][0]
    assert header["type"] == "header" and "FIRING" in header["text"]["text"]
    assert ":rotating_light:" in header["text"]["text"]
    text = "\n".join(_texts(message["blocks"]))
    assert "Sev1 (Error)" in text
    assert "High sync failure rate" in text and "high-sync-failure-rate" in text
    assert "adapterType: `salesforce`" in text
    assert "failureRate = 12.5 (alerts when &gt; 10)" in text
    assert f"<{RUNBOOK_BASE}/docs/runbooks/high-sync-failure-rate.md|" in text
    assert "<http://127.0.0.1:7071/dashboard?adapterType=salesforce|" in text
    assert message["attachments"][0]["color"] == "#E01E5A"
    # and PagerDuty got a trigger that the OpenAPI request schema accepts
    [event] = pagerduty.bodies
    assert pagerduty.requests[0].path == "/v2/enqueue"
    jsonschema.Draft7Validator(pagerduty_request_schema).validate(event)
    assert event["event_action"] == "trigger" and event["routing_key"] == ROUTING_KEY
    assert len(event["dedup_key"]) <= 255
    payload = event["payload"]
    assert payload["severity"] == "critical"
    assert payload["summary"].startswith("[Sev1] High sync failure rate: failureRate = 12.5")
    assert len(payload["summary"]) <= 1024
    assert payload["timestamp"] == "2025-03-04T10:15:30.123Z"
    assert (payload["source"], payload["component"], payload["class"]) == \
        ("adapterType=salesforce", "salesforce", "high-sync-failure-rate")
    assert payload["custom_details"]["dimensions"] == {"adapterType": "salesforce"}
    assert (payload["custom_details"]["value"], payload["custom_details"]["threshold"]) == \
        (12.5, 10.0)
    assert [link["href"] for link in event["links"]] == [
        f"{RUNBOOK_BASE}/docs/runbooks/high-sync-failure-rate.md",
        "http://127.0.0.1:7071/dashboard?adapterType=salesforce"]
    # and the history has the fired alert and one delivery per channel
    fired = captured.assert_event("alert.fired", ruleId="high-sync-failure-rate",
                                  adapterType="salesforce", severity="Sev1")
    assert fired["service"] == "alert-relay"
    assert fired["metadata"]["value"] == 12.5 and fired["metadata"]["threshold"] == 10.0
    assert fired["metadata"]["dimensions"] == {"adapterType": "salesforce"}
    assert fired["metadata"]["runbookUrl"].endswith("high-sync-failure-rate.md")
    captured.assert_event("alert.delivered", channel="slack", attempts=1)
    captured.assert_event("alert.delivered", channel="pagerduty", attempts=1)
    captured.assert_event("alert.channel_skipped", channel="email",
                          reason="handled by action group")


def test_the_schema_fixture_rejects_a_wrong_event(pagerduty_request_schema):
    """The resolved request schema really checks bodies (a wrong severity fails it)."""
    # given a trigger with a severity PagerDuty does not know
    event = {"routing_key": ROUTING_KEY, "event_action": "trigger",
             "payload": {"summary": "x", "source": "y", "severity": "fatal"}}
    # when it is validated, then it is rejected through the $ref'd Payload schema
    with pytest.raises(jsonschema.ValidationError, match="fatal"):
        jsonschema.Draft7Validator(pagerduty_request_schema).validate(event)


def test_dashboard_link_and_events_carry_integration_and_tenant(client, slack, captured):
    """An integration's alert links the dashboard filtered to it, and its events carry
    integrationId and tenantId where KQL filters on them."""
    # given an integration-stale alert (Slack only) for one integration of one tenant
    body = alert("integration-stale", dimensions={"integrationId": "sf conn/1",
                                                  "tenantId": "tenant-9"}, value=5.5)
    # when it is relayed
    response = post(client, body)
    # then the dashboard link filters on both, URL-encoded
    assert response.json()["channels"] == {"slack": "delivered"}
    text = "\n".join(_texts(slack.bodies[0]["blocks"])).replace("&amp;", "&")
    link = text.split("<http://127.0.0.1:7071/dashboard?", 1)[1].split("|", 1)[0]
    assert parse_qs(link) == {"integrationId": ["sf conn/1"], "tenantId": ["tenant-9"]}
    # and the history events are filterable by integration and tenant
    for operation in ("alert.fired", "alert.delivered"):
        event = captured.assert_event(operation, integrationId="sf conn/1", tenantId="tenant-9")
        assert event["metadata"]["ruleId"] == "integration-stale"


def test_resolved_alert_resolves_the_same_incident(client, slack, pagerduty, captured,
                                                   pagerduty_request_schema):
    """A Resolved alert sends PagerDuty a resolve with the trigger's dedup_key, and Slack a
    resolved message."""
    # given an alert that fired and was relayed
    post(client, alert())
    # when the same alert resolves
    response = post(client, alert(condition="Resolved", value=3.0))
    # then PagerDuty got a resolve for the same incident
    assert response.json()["channels"]["pagerduty"] == "delivered"
    trigger, resolve = pagerduty.bodies
    jsonschema.Draft7Validator(pagerduty_request_schema).validate(resolve)
    assert resolve["event_action"] == "resolve"
    assert resolve["dedup_key"] == trigger["dedup_key"]
    # and Slack says it is resolved, in green
    resolved = slack.bodies[1]
    header = resolved["blocks"][0]["text"]["text"]
    assert "RESOLVED" in header and ":white_check_mark:" in header
    assert resolved["attachments"][0]["color"] == "#2EB67D"
    assert "RESOLVED" in resolved["text"]
    captured.assert_event("alert.resolved", ruleId="high-sync-failure-rate", level="info")


def test_duplicate_delivery_is_dropped(client, slack, pagerduty, captured):
    """The same alert id and condition posted twice notifies each channel once."""
    # given an alert that was relayed
    first = post(client, alert()).json()
    # when Azure posts it again (an action group retry)
    second = post(client, alert()).json()
    # then nothing new was sent, and the answer says so
    assert len(slack.bodies) == 1 and len(pagerduty.bodies) == 1
    assert first["duplicate"] is False and second["duplicate"] is True
    assert second["channels"] == {"email": "action_group", "slack": "duplicate",
                                  "pagerduty": "duplicate"}
    captured.assert_event("alert.duplicate_dropped", channel="slack", level="info")
    assert captured.operations.count("alert.fired") == 1


def test_slack_errors_are_retried_until_delivered(client, slack, captured):
    """Slack answering 500 twice and then 200 is delivered on the third attempt."""
    # given Slack failing its next two requests
    slack.fail_next(2, status=500)
    # when an alert is relayed
    response = post(client, alert())
    # then the third attempt delivered it, once
    assert response.json()["channels"]["slack"] == "delivered"
    assert slack.attempts == 3 and len(slack.bodies) == 1
    captured.assert_event("alert.delivered", channel="slack", attempts=3)
    assert len(captured.find("alert.delivery_retry", channel="slack")) == 2


def test_slack_down_does_not_stop_pagerduty(pagerduty, captured):
    """With Slack unreachable, PagerDuty is still delivered and Slack's failure is recorded."""
    # given a Slack URL nobody listens on
    deliverer = _deliverer(unused_url(), f"{pagerduty.url}/v2/enqueue", max_attempts=3)
    # when an alert is relayed
    response = post(_client(deliverer), alert())
    # then PagerDuty got it and Slack failed after its attempts
    summary = response.json()
    assert response.status_code == 202
    assert summary["channels"]["pagerduty"] == "delivered"
    assert summary["channels"]["slack"] == "failed"
    assert "ConnectError" in summary["errors"]["slack"]
    assert len(pagerduty.bodies) == 1
    failed = captured.assert_event("alert.delivery_failed", level="error", channel="slack",
                                   attempts=3)
    assert "ConnectError" in failed["metadata"]["error"]
    deliverer.close()


def test_a_failed_channel_is_tried_again_on_redelivery(slack, pagerduty):
    """A channel that failed is not remembered as sent: the action group's retry delivers it."""
    # given Slack failing every attempt of the first delivery
    deliverer = _deliverer(f"{slack.url}/hook", f"{pagerduty.url}/v2/enqueue", max_attempts=2)
    slack.fail_next(2, status=503)
    client = _client(deliverer)
    assert post(client, alert()).json()["channels"]["slack"] == "failed"
    # when the same alert arrives again
    second = post(client, alert()).json()
    # then Slack is delivered now and PagerDuty is not sent twice
    assert second["channels"] == {"email": "action_group", "slack": "delivered",
                                  "pagerduty": "duplicate"}
    assert len(slack.bodies) == 1 and len(pagerduty.bodies) == 1
    deliverer.close()


def test_unset_channels_are_skipped(slack, captured):
    """A channel without its setting is off: skipped, not failed."""
    # given Slack configured and PagerDuty not
    deliverer = _deliverer(f"{slack.url}/hook", None)
    # when an alert for a rule with both channels is relayed
    summary = post(_client(deliverer), alert()).json()
    # then PagerDuty is skipped and says why
    assert summary["channels"] == {"email": "action_group", "slack": "delivered",
                                   "pagerduty": "skipped"}
    assert summary["errors"] == {}
    captured.assert_event("alert.channel_skipped", channel="pagerduty",
                          reason="PAGERDUTY_ROUTING_KEY is not set")
    assert not captured.find("alert.delivery_failed")
    deliverer.close()


# -- the deliverer's retry rules --------------------------------------------------------------


def test_retry_after_is_honoured(slack):
    """A 429's Retry-After sets the wait before the next attempt."""
    # given Slack rate-limiting the first request for 2 seconds, and a recorded sleep
    slept: list[float] = []
    deliverer = _deliverer(f"{slack.url}/hook", None, sleep=slept.append)
    slack.fail_next(1, status=429, retry_after="2")
    # when an alert is delivered
    report = deliverer.deliver(parse_alert(alert()), rule_by_id("high-sync-failure-rate"))
    # then the relay waited what Slack asked, then delivered
    assert slept == [2.0]
    assert report.outcomes["slack"].status == "delivered"
    assert report.outcomes["slack"].attempts == 2
    deliverer.close()


def test_retry_after_beyond_the_budget_gives_up(slack):
    """A Retry-After longer than the delivery budget fails the channel at once, without
    waiting."""
    # given Slack asking for a minute's pause, and a 3 s budget
    slept: list[float] = []
    deliverer = _deliverer(f"{slack.url}/hook", None, sleep=slept.append)
    slack.fail_next(1, status=429, retry_after="60")
    # when an alert is delivered, then it fails naming the budget, having slept not at all
    report = deliverer.deliver(parse_alert(alert()), rule_by_id("high-sync-failure-rate"))
    outcome = report.outcomes["slack"]
    assert (outcome.status, outcome.attempts, slept) == ("failed", 1, [])
    assert "budget" in (outcome.error or "")
    deliverer.close()


def test_client_errors_are_not_retried(pagerduty):
    """A 400 from PagerDuty (an invalid event) fails at once: retrying cannot fix it."""
    # given PagerDuty rejecting the next request as invalid
    deliverer = _deliverer(None, f"{pagerduty.url}/v2/enqueue")
    pagerduty.fail_next(1, status=400)
    # when an alert is delivered, then one attempt was made
    report = deliverer.deliver(parse_alert(alert()), rule_by_id("high-sync-failure-rate"))
    assert (report.outcomes["pagerduty"].status, pagerduty.attempts) == ("failed", 1)
    assert "HTTP 400" in (report.outcomes["pagerduty"].error or "")
    deliverer.close()


def test_from_env_reads_the_channel_settings(monkeypatch):
    """Deliverer.from_env takes the channel settings and defaults PagerDuty's public URL."""
    # given Slack and PagerDuty settings, without PAGERDUTY_EVENTS_URL
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/X")
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEY", ROUTING_KEY)
    # when a deliverer is built from the environment
    deliverer = Deliverer.from_env()
    # then the settings are used and the events URL is PagerDuty's enqueue endpoint
    assert deliverer.slack_webhook_url == "https://hooks.slack.com/services/T/B/X"
    assert deliverer.pagerduty_routing_key == ROUTING_KEY
    assert deliverer.pagerduty_events_url == "https://events.pagerduty.com/v2/enqueue"
    assert urlsplit(deliverer.dashboard_url({})).netloc == "127.0.0.1:7071"
    deliverer.close()


def test_our_restated_pagerduty_rules_agree_with_the_published_document():
    """Where PagerDuty's document is at hand, our restatement has its required fields and
    enums, so validation means the same wherever the tests run."""
    from .conftest import PAGERDUTY_RESTATED, published_pagerduty_schema

    published = published_pagerduty_schema()
    if published is None:
        pytest.skip("PagerDuty's OpenAPI document is not beside the repository")
    ours = json.loads(PAGERDUTY_RESTATED.read_text())
    payload = published["components"]["schemas"]["Payload"]
    assert set(ours["required"]) == set(published["required"])
    assert ours["properties"]["event_action"]["enum"] == published["properties"][
        "event_action"]["enum"]
    assert set(ours["properties"]["payload"]["required"]) == set(payload["required"])
    assert ours["properties"]["payload"]["properties"]["severity"]["enum"] == payload[
        "properties"]["severity"]["enum"]
    assert set(ours["properties"]) >= set(published["properties"])
