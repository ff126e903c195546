"""Silences become Azure Monitor alert processing rules, through the real Azure SDK client
(azure-mgmt-alertprocessingrules) against a loopback ARM endpoint that validates every PUT body
against the published 2021-08-08 request schema and the service's further rules
(tests/loopback/arm_processing_rules.py)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest
from azure.mgmt.alertprocessingrules import AlertProcessingRulesMgmtClient

from integration_monitoring.alerts._processing_rules import (
    NotRepresentable,
    ProcessingRules,
    rule_body,
    windows_zone,
)
from integration_monitoring.alerts._silences import Silence

from .helpers import ROOT
from .loopback.arm_processing_rules import SCHEMA_PATH, ArmProcessingRules
from .loopback.servicebus import StaticTokenCredential

NOW = dt.datetime(2025, 3, 20, 9, 30, tzinfo=dt.UTC)
PREFIX = "intmon-prod"
#: Every rule holds Fired notifications only: a Resolved reaches the relay, which knows
#: whether its Fired was sent.
FIRED_ONLY = {"field": "MonitorCondition", "operator": "Equals", "values": ["Fired"]}


def silence(body: dict[str, Any], now: dt.datetime = NOW) -> Silence:
    return Silence.parse({"comment": "adapter maintenance", **body},
                         created_by="ops@example.com", now=now)


ONE_OFF = {"matchers": [{"label": "ruleId", "value": "service-bus-queue-backlog"},
                        {"label": "tenantId", "values": ["contoso"]},
                        {"label": "severity", "operator": "NotEquals", "value": "Sev0"}],
           "startsAt": "2025-03-20T10:00:00Z", "endsAt": "2025-03-20T14:30:00Z"}
# Saturdays 02:00-04:00 in Berlin, from before the clocks go forward (30 March) to after they
# go back (26 October): the local hours hold all along.
WEEKLY = {"matchers": [{"label": "adapterType", "value": "sap"},
                       {"label": "queue", "operator": "DoesNotContain", "value": "-dlq"}],
          "startsAt": "2025-03-21T00:00:00Z", "endsAt": "2025-11-29T00:00:00Z",
          "timeZone": "Europe/Berlin",
          "weekly": {"days": ["Saturday"], "startTime": "02:00", "endTime": "04:00"}}


@pytest.fixture(scope="module")
def server() -> Iterator[ArmProcessingRules]:
    with ArmProcessingRules() as arm:
        yield arm


@pytest.fixture
def arm(server: ArmProcessingRules) -> ArmProcessingRules:
    with server._lock:
        server.rules.clear()
        server.requests.clear()
        server._failures.clear()
    return server


@pytest.fixture
def rules(arm: ArmProcessingRules) -> Iterator[ProcessingRules]:
    processing = ProcessingRules(arm.subscription_id, arm.resource_group, [arm.group_id], PREFIX,
                                 arm.credential, base_url=arm.url, connection_verify=arm.ca_path,
                                 retry_total=0)
    yield processing
    processing.close()


@pytest.fixture(scope="module")
def published_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


# -- silences become rules --------------------------------------------------------------------


def test_a_one_off_silence_becomes_a_rule_that_removes_the_action_groups(arm, rules,
                                                                          published_schema):
    quiet = silence(ONE_OFF)
    assert rules.put(quiet) == f"silence-{quiet.id}"

    [put] = arm.requests
    assert (put.method, put.status) == ("PUT", 201)
    assert put.path == (f"{arm.group_id}/providers/Microsoft.AlertsManagement/actionRules/"
                        f"silence-{quiet.id}")
    assert put.query == {"api-version": ["2021-08-08"]}
    assert put.headers["authorization"] == f"Bearer {arm.credential.token}"
    assert arm.credential.scopes[-1] == ("https://management.azure.com/.default",)
    jsonschema.Draft202012Validator(published_schema).validate(put.body)
    assert put.body == {
        "location": "Global",
        "properties": {
            "scopes": [arm.group_id],
            "conditions": [
                FIRED_ONLY,
                {"field": "AlertRuleName", "operator": "Equals",
                 "values": ["intmon-prod-service-bus-queue-backlog"]},
                {"field": "AlertContext", "operator": "Contains", "values": ["contoso"]},
                {"field": "Severity", "operator": "NotEquals", "values": ["Sev0"]},
            ],
            "schedule": {"effectiveFrom": "2025-03-20T10:00:00",
                         "effectiveUntil": "2025-03-20T14:30:00", "timeZone": "UTC"},
            "actions": [{"actionType": "RemoveAllActionGroups"}],
            "description": f"Silence {quiet.id} by ops@example.com: adapter maintenance",
            "enabled": True,
        },
    }
    assert arm.rules[f"silence-{quiet.id}"]["type"] == "Microsoft.AlertsManagement/actionRules"


def test_a_weekly_silence_keeps_berlin_hours_with_a_windows_time_zone(arm, rules,
                                                                     published_schema):
    quiet = silence(WEEKLY)
    rules.put(quiet)

    [put] = arm.requests
    jsonschema.Draft202012Validator(published_schema).validate(put.body)
    props = put.body["properties"]
    assert props["schedule"] == {
        # 00:00 UTC is 01:00 in Berlin in March (CET) and November (CET) alike
        "effectiveFrom": "2025-03-21T01:00:00", "effectiveUntil": "2025-11-29T01:00:00",
        # Europe/Berlin is the CLDR "001" zone of W. Europe Standard Time
        "timeZone": "W. Europe Standard Time",
        "recurrences": [{"recurrenceType": "Weekly", "daysOfWeek": ["Saturday"],
                         "startTime": "02:00:00", "endTime": "04:00:00"}],
    }
    assert props["conditions"] == [
        FIRED_ONLY,
        {"field": "AlertContext", "operator": "Contains", "values": ["sap"]},
        {"field": "AlertContext", "operator": "DoesNotContain", "values": ["-dlq"]},
    ]


def test_putting_a_silence_again_replaces_its_rule(arm, rules):
    quiet = silence(ONE_OFF)
    rules.put(quiet)
    rules.put(quiet.expire(dt.datetime(2025, 3, 20, 12, 0, tzinfo=dt.UTC)))
    assert [r.status for r in arm.requests] == [201, 200]
    [rule] = arm.rules.values()
    assert rule["properties"]["schedule"]["effectiveUntil"] == "2025-03-20T12:00:00"


def test_expiring_a_silence_deletes_its_rule_and_a_second_delete_finds_none(arm, rules):
    quiet = silence(ONE_OFF)
    rules.put(quiet)
    assert rules.delete(quiet.id) is True
    assert arm.rules == {}
    assert rules.delete(quiet.id) is False  # ARM answers 204: nothing to delete
    assert [(r.method, r.status) for r in arm.requests] == [
        ("PUT", 201), ("DELETE", 200), ("DELETE", 204)]


def test_a_404_on_delete_means_already_gone(arm, rules):
    arm.fail_next(1, 404)
    assert rules.delete("no-such-silence") is False
    assert arm.requests[-1].status == 404


@pytest.mark.parametrize("status", [500, 503, 403])
def test_a_server_error_surfaces_as_an_exception_with_arms_error(arm, rules, status):
    arm.fail_next(1, status)
    with pytest.raises(HttpResponseError) as raised:
        rules.put(silence(ONE_OFF))
    assert raised.value.status_code == status
    assert raised.value.error.code and "Injected" in str(raised.value)  # loggable as is
    assert arm.rules == {}


# -- what Azure cannot express --------------------------------------------------------------


def test_severity_contains_becomes_the_severities_that_contain_the_text():
    quiet = silence({"matchers": [{"label": "severity", "operator": "Contains", "value": "1"}],
                     "endsAt": "2025-03-21T00:00:00Z"})
    [fired, condition] = rule_body(quiet, ["/s"], PREFIX)["properties"]["conditions"]
    assert fired == FIRED_ONLY
    assert condition == {"field": "Severity", "operator": "Equals", "values": ["Sev1"]}


@pytest.mark.parametrize("matchers", [
    [{"label": "tenantId", "values": ["t1", "t2", "t3", "t4", "t5", "t6"]}],
    [{"label": "severity", "operator": "Contains", "value": "critical"}],
])
def test_what_azure_cannot_express_is_refused_before_any_request(arm, rules, matchers):
    with pytest.raises(NotRepresentable):
        rules.put(silence({"matchers": matchers, "endsAt": "2025-03-21T00:00:00Z"}))
    assert arm.requests == []


def test_a_silence_expired_before_it_began_is_not_put(arm, rules):
    quiet = silence(ONE_OFF).expire(NOW)  # NOW is before its start
    with pytest.raises(NotRepresentable):
        rules.put(quiet)
    assert arm.requests == []


def test_a_zone_without_its_own_windows_name_gets_one_with_the_same_offsets():
    start, end = dt.datetime(2025, 1, 1, tzinfo=dt.UTC), dt.datetime(2025, 12, 31, tzinfo=dt.UTC)
    assert windows_zone("Europe/Vienna", start, end) == ("W. Europe Standard Time",
                                                         "Europe/Berlin")
    assert windows_zone("America/Toronto", start, end)[0] == "Eastern Standard Time"
    assert windows_zone("Etc/UTC", start, end)[0] == "UTC"


def test_rule_names_in_conditions_are_the_bicep_alert_rule_names():
    """ruleId Equals becomes the alert rule's resource name, which the Bicep module derives;
    a rule that is not ours (made in the portal) keeps its own name."""
    bicep = (ROOT / "infra" / "modules" / "alert-rules.bicep").read_text()
    assert re.search(r"name: '\$\{namePrefix\}-\$\{rule\.id\}'", bicep)
    both = silence({"matchers": [{"label": "ruleId",
                                  "values": ["integration-stale", "Made in the portal"]}],
                    "endsAt": "2025-03-21T00:00:00Z"})
    [_, names] = rule_body(both, ["/s"], PREFIX)["properties"]["conditions"]
    assert names["values"] == ["intmon-prod-integration-stale", "Made in the portal"]


# -- settings ---------------------------------------------------------------------------------


def test_from_env_is_none_unless_the_resource_group_is_set():
    assert ProcessingRules.from_env({}) is None
    with pytest.raises(ValueError, match="ALERT_RULE_NAME_PREFIX"):
        ProcessingRules.from_env({"ALERT_PROCESSING_RESOURCE_GROUP": "rg",
                                  "ALERT_PROCESSING_SUBSCRIPTION_ID": "sub"})
    with pytest.raises(ValueError, match="outside subscription"):
        ProcessingRules.from_env({"ALERT_PROCESSING_RESOURCE_GROUP": "rg",
                                  "ALERT_PROCESSING_SUBSCRIPTION_ID": "sub",
                                  "ALERT_RULE_NAME_PREFIX": "p",
                                  "ALERT_PROCESSING_SCOPES": "/subscriptions/other/rg"},
                                 StaticTokenCredential())


def test_from_env_builds_a_working_client(arm):
    rules = ProcessingRules.from_env(
        {"ALERT_PROCESSING_RESOURCE_GROUP": arm.resource_group,
         "ALERT_PROCESSING_SUBSCRIPTION_ID": arm.subscription_id,
         "ALERT_RULE_NAME_PREFIX": PREFIX},
        arm.credential, base_url=arm.url, connection_verify=arm.ca_path)
    assert rules is not None and rules.scopes == [arm.group_id]  # the group by default
    rules.put(silence(ONE_OFF))
    assert len(arm.rules) == 1


# -- the loopback is at least as strict as ARM -------------------------------------------------


def raw_client(arm: ArmProcessingRules, credential: Any = None) -> AlertProcessingRulesMgmtClient:
    return AlertProcessingRulesMgmtClient(credential or arm.credential, arm.subscription_id,
                                          base_url=arm.url, connection_verify=arm.ca_path,
                                          retry_total=0)


def valid_body(arm: ArmProcessingRules) -> dict[str, Any]:
    return rule_body(silence(WEEKLY), [arm.group_id], PREFIX)


def refused(arm: ArmProcessingRules, body: dict[str, Any], name: str = "r1") -> str:
    with raw_client(arm) as client, pytest.raises(HttpResponseError) as raised:
        client.alert_processing_rules.create_or_update(arm.resource_group, name, body)
    assert raised.value.status_code == 400, raised.value
    assert arm.requests[-1].status == 400 and arm.rules == {}
    return raised.value.error.code + ": " + raised.value.error.message


def test_the_loopback_accepts_the_valid_body(arm):
    with raw_client(arm) as client:
        client.alert_processing_rules.create_or_update(arm.resource_group, "r1", valid_body(arm))
    assert list(arm.rules) == ["r1"]


def test_a_body_without_actions_is_refused(arm):
    body = valid_body(arm)
    del body["properties"]["actions"]
    assert "'actions' is a required property" in refused(arm, body)


def test_a_wrong_recurrence_type_is_refused(arm):
    body = valid_body(arm)
    body["properties"]["schedule"]["recurrences"][0]["recurrenceType"] = "Fortnightly"
    assert "'Fortnightly' is not one of" in refused(arm, body)


def test_a_weekly_recurrence_without_days_is_refused(arm):
    body = valid_body(arm)
    del body["properties"]["schedule"]["recurrences"][0]["daysOfWeek"]
    assert "'daysOfWeek' is a required property" in refused(arm, body)


@pytest.mark.parametrize(("change", "expected"), [
    (lambda p: p["schedule"].update(effectiveFrom="2025-03-21T01:00:00.5"),
     "Wrong DateTime format"),  # the published pattern allows it; the service does not
    (lambda p: p["schedule"].update(effectiveFrom="2025-03-21T01:00:00Z"), "does not match"),
    (lambda p: p["schedule"].update(timeZone="Europe/Berlin"), "not a Windows time zone"),
    (lambda p: p["conditions"][0].update(values=list("abcdef")), "at most 5 values"),
    (lambda p: p.update(scopes=["/subscriptions/someone-else"]), "outside subscription"),
    (lambda p: p.update(condition=p.pop("conditions")), "unknown property"),
    (lambda p: p["conditions"].append({"field": "Severity", "operator": "Contains",
                                       "values": ["Sev1"]}), "takes Equals or NotEquals"),
])
def test_what_the_service_refuses_beyond_the_schema_is_refused(arm, change, expected):
    body = valid_body(arm)
    change(body["properties"])
    assert expected in refused(arm, body)


def test_requests_without_a_token_or_api_version_are_refused(arm):
    with raw_client(arm, StaticTokenCredential("someone-elses-token")) as client, \
            pytest.raises(HttpResponseError) as raised:
        client.alert_processing_rules.get_by_name(arm.resource_group, "r1")
    assert raised.value.status_code == 401
    with raw_client(arm) as client:
        path = f"{arm.group_id}/providers/Microsoft.AlertsManagement/actionRules/r1"
        response = client.send_request(HttpRequest("GET", arm.url + path))
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "MissingApiVersionParameter"
        with pytest.raises(HttpResponseError) as raised:
            client.alert_processing_rules.get_by_name(arm.resource_group, "r1")
        assert raised.value.status_code == 404


# -- through the admin API --------------------------------------------------------------------


def test_the_api_mirrors_a_silence_in_azure_and_removes_it_when_expired(arm, rules, tmp_path,
                                                                        monkeypatch):
    """Making a silence through the API puts its rule; expiring it deletes the rule; Azure
    refusing leaves the relay's silence in place and says so in the answer."""
    from fastapi.testclient import TestClient

    from integration_monitoring.admin import Access, LocalBackend
    from integration_monitoring.alerts import SqliteOutbox
    from integration_monitoring.alerts._delivery import Deliverer
    from integration_monitoring.app import create_app
    from integration_monitoring.store import TelemetryStore

    monkeypatch.delenv("ADMIN_API_TOKEN", raising=False)
    deliverer = Deliverer(outbox=SqliteOutbox(tmp_path / "outbox.sqlite3"))
    store = TelemetryStore(tmp_path / "telemetry.duckdb")
    app = create_app(backend=LocalBackend(store), deliverer_factory=lambda: deliverer,
                     restatements=False)
    monkeypatch.setattr("integration_monitoring.app.ProcessingRules.from_env",
                        staticmethod(lambda env=None: rules))
    body = {"matchers": [{"label": "adapterType", "values": ["zendesk"]}],
            "endsAt": (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).isoformat(),
            "comment": "provider maintenance"}
    with TestClient(app) as client:
        made = client.post("/api/admin/silences", json=body)
        assert made.status_code == 201, made.text
        name = made.json()["processingRule"]
        assert name in arm.rules
        assert arm.rules[name]["properties"]["actions"] == [
            {"actionType": "RemoveAllActionGroups"}]
        client.post(f"/api/admin/silences/{made.json()['id']}/expire", json={})
        assert name not in arm.rules
        arm.fail_next(1, 500)
        refused = client.post("/api/admin/silences", json=body)
        assert refused.status_code == 201 and "processingRuleError" in refused.json()
        assert sorted(s["state"] for s in client.get("/api/admin/silences").json()[
            "silences"]) == ["active", "expired"]
    # a reader's silence is the relay's alone: Azure would match its tenant as any text
    reader = create_app(backend=LocalBackend(store), deliverer_factory=lambda: deliverer,
                        access=Access("entra"), restatements=False)
    claims = [{"typ": "roles", "val": "Monitoring.Reader"}, {"typ": "tenants", "val": "t1"}]
    header = base64.b64encode(json.dumps({"claims": claims}).encode()).decode()
    before = dict(arm.rules)
    with TestClient(reader) as client:
        mine = {**body, "matchers": [{"label": "tenantId", "values": ["t1"]}]}
        made = client.post("/api/admin/silences", json=mine,
                           headers={"x-ms-client-principal": header})
        assert made.status_code == 201, made.text
        assert "processingRule" not in made.json()
    assert arm.rules == before
    store.close()
    deliverer.close()
