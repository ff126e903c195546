"""Azure Resource Manager's alert processing rules API on 127.0.0.1, for tests.

    with ArmProcessingRules() as arm:
        client = AlertProcessingRulesMgmtClient(arm.credential, arm.subscription_id,
                                                base_url=arm.url, connection_verify=arm.ca_path)
        arm.rules                      # name -> the stored resource
        arm.requests                   # every request, answered or refused, with its status

`PUT|GET|DELETE /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.AlertsManagement/
actionRules/{name}?api-version=2021-08-08`, HTTPS with a throwaway CA (`trustme`: the SDK sends
bearer tokens over HTTPS only). What it refuses, with ARM's error body
`{"error": {"code", "message"}}`:

- no `Authorization: Bearer <the credential's token>`: 401; no or another api-version: 400;
  another subscription or resource group: 404, as ARM answers;
- a PUT body that is not JSON, or that the published request schema
  (tests/schemas/alert-processing-rules-2021-08-08.json) refuses: 400;
- and what the service refuses beyond that schema, each with its source:
  effectiveFrom/effectiveUntil other than 'yyyy-MM-ddTHH:mm:ss', recurrence times other than
  'HH:mm:ss' (azure-rest-api-specs issue #19141, the service's own message); more than five
  values in a condition ("Each filter can include up to five values", Microsoft Learn
  "Alert processing rules"); a scope outside the rule's subscription (same page); severities
  other than Sev0..Sev4, and Equals/NotEquals only on the enumerated fields, a rule name other
  than letters, digits, '-' and '_' (terraform-provider-azurerm's validation of this API);
  a time zone that is not a Windows time zone (the spec's examples, and that validation's list
  from .NET's TimeZoneInfo.GetSystemTimeZones()).
- Stricter than ARM, on purpose: no properties object, an unknown key inside it (ARM would
  ignore a misspelled "condition" and silence every alert in scope), no conditions' field,
  operator or values, and an effectiveUntil before effectiveFrom are refused too.

Answers: PUT 201 (new) or 200 (replaced) with the resource; GET 200 or 404; DELETE 200, or 204
when there was no such rule (ARM's contract; `fail_next(1, 404)` plays a provider that says 404).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import jsonschema

from integration_monitoring.alerts._processing_rules import WINDOWS_ZONES

from ._server import LoopbackHandler, LoopbackServer
from .servicebus import StaticTokenCredential

API_VERSION = "2021-08-08"
SCHEMA_PATH = Path(__file__).parents[1] / "schemas" / "alert-processing-rules-2021-08-08.json"
_PATH = re.compile(r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/"
                   r"Microsoft\.AlertsManagement/actionRules/([^/]+)$", re.IGNORECASE)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_MOMENT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d:[0-5]\d$")
_PROPERTIES = {"scopes", "conditions", "schedule", "actions", "description", "enabled"}
_ENUMERATED = {"Severity", "MonitorService", "MonitorCondition", "SignalType"}
_ERRORS = {429: "TooManyRequests", 500: "InternalServerError", 503: "ServiceUnavailable",
           404: "ResourceNotFound", 409: "Conflict", 403: "AuthorizationFailed"}


@dataclass
class Seen:
    method: str
    path: str  # without the query string
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    body: Any  # parsed JSON, or the text when it is not JSON, or None
    status: int


class ArmProcessingRules(LoopbackServer):
    name = "arm-processing-rules"

    def __init__(self, subscription_id: str = "11111111-2222-3333-4444-555555555555",
                 resource_group: str = "rg-intmon", token: str = "loopback-arm-token") -> None:
        super().__init__()
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        self.credential = StaticTokenCredential(token)
        self.schema = json.loads(SCHEMA_PATH.read_text())
        self.rules: dict[str, dict[str, Any]] = {}
        self.requests: list[Seen] = []
        self._failures: list[int] = []

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    @property
    def group_id(self) -> str:
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"

    def fail_next(self, times: int, status: int = 500) -> None:
        """Answer the next `times` requests with `status` and ARM's error body."""
        with self._lock:
            self._failures.extend([status] * times)

    def check(self, body: Any, name: str = "rule") -> list[str]:
        """Why the service would refuse this PUT body (empty: it would accept it)."""
        problems = [f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}"
                    for e in jsonschema.Draft202012Validator(self.schema).iter_errors(body)]
        if problems:
            return problems
        return _service_rules(body, name, self.subscription_id)

    # -- answering ---------------------------------------------------------------------------

    def _answer(self, method: str, target: str, headers: dict[str, str],
                raw: bytes) -> tuple[int, dict[str, Any] | None]:
        parts = urlsplit(target)
        query = parse_qs(parts.query)
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        status, answer = self._decide(method, parts.path, query, headers, body)
        with self._lock:
            self.requests.append(Seen(method, parts.path, query, headers, body, status))
        return status, answer

    def _decide(self, method: str, path: str, query: dict[str, list[str]],
                headers: dict[str, str], body: Any) -> tuple[int, dict[str, Any] | None]:
        authorization = headers.get("authorization", "")
        if not authorization:
            return _error(401, "AuthenticationFailed",
                          "Authentication failed. The 'Authorization' header is missing.")
        if authorization != f"Bearer {self.credential.token}":
            return _error(401, "InvalidAuthenticationToken", "The access token is invalid.")
        versions = query.get("api-version", [])
        if not versions:
            return _error(400, "MissingApiVersionParameter", "The api-version query parameter "
                          "(?api-version=) is required for all requests.")
        if versions != [API_VERSION]:
            return _error(400, "NoRegisteredProviderFound", "No registered resource provider "
                          f"found for API version '{versions[0]}' and type 'actionRules'. The "
                          "supported api-versions are '2019-05-05-preview, 2021-08-08'.")
        match = _PATH.match(unquote(path))
        if match is None:
            return _error(404, "InvalidResourceType", f"The resource type could not be found "
                          f"for path '{path}'.")
        subscription, group, name = match.groups()
        if subscription.lower() != self.subscription_id.lower():
            return _error(404, "SubscriptionNotFound",
                          f"The subscription '{subscription}' could not be found.")
        if group.lower() != self.resource_group.lower():
            return _error(404, "ResourceGroupNotFound",
                          f"Resource group '{group}' could not be found.")
        with self._lock:
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            return _error(failure, _ERRORS.get(failure, "Failed"), f"Injected {failure}.")
        key = name.lower()  # ARM resource names are case-insensitive
        if method == "GET":
            with self._lock:
                rule = self.rules.get(key)
            if rule is None:
                return _error(404, "ResourceNotFound", f"Alert processing rule '{name}' was "
                              "not found.")
            return 200, rule
        if method == "DELETE":
            with self._lock:
                existed = self.rules.pop(key, None) is not None
            return (200 if existed else 204), None
        if method != "PUT":
            return _error(405, "MethodNotAllowed", f"{method} is not supported.")
        if not headers.get("content-type", "").startswith("application/json"):
            return _error(415, "UnsupportedMediaType", "The content media type is not "
                          "supported. Content-Type must be 'application/json'.")
        if not isinstance(body, dict):
            return _error(400, "InvalidRequestContent",
                          "The request content was invalid and could not be deserialized.")
        problems = self.check(body, name)
        if problems:
            return _error(400, "BadRequest", "Invalid input parameters: " + "; ".join(problems))
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        with self._lock:
            created = key not in self.rules
            previous = self.rules.get(key, {}).get("systemData", {})
            self.rules[key] = {
                **{k: v for k, v in body.items() if k not in ("id", "name", "type", "systemData")},
                "id": f"{self.group_id}/providers/Microsoft.AlertsManagement/actionRules/{name}",
                "name": name, "type": "Microsoft.AlertsManagement/actionRules",
                "systemData": {"createdBy": previous.get("createdBy", "loopback-identity"),
                               "createdByType": "Application",
                               "createdAt": previous.get("createdAt", now),
                               "lastModifiedBy": "loopback-identity",
                               "lastModifiedByType": "Application", "lastModifiedAt": now},
            }
            return (201 if created else 200), self.rules[key]


def _service_rules(body: dict[str, Any], name: str, subscription: str) -> list[str]:
    problems = []
    if not _NAME.match(name):
        problems.append(f"name: '{name}' may hold letters, digits, '-' and '_' only")
    if str(body["location"]).lower() != "global":
        problems.append(f"location: '{body['location']}' is not 'Global'")
    props = body.get("properties")
    if not isinstance(props, dict):
        return [*problems, "properties: required"]
    problems += [f"properties.{k}: unknown property" for k in sorted(set(props) - _PROPERTIES)]
    if not props["scopes"]:
        problems.append("properties.scopes: at least one scope")
    problems += [f"properties.scopes: '{s}' is outside subscription {subscription}"
                 for s in props["scopes"]
                 if not s.lower().startswith(f"/subscriptions/{subscription.lower()}")]
    if not props["actions"]:
        problems.append("properties.actions: at least one action")
    for i, condition in enumerate(props.get("conditions") or []):
        where = f"properties.conditions[{i}]"
        missing = [k for k in ("field", "operator", "values") if not condition.get(k)]
        if missing:
            problems.append(f"{where}: {', '.join(missing)} required")
            continue
        if len(condition["values"]) > 5:
            problems.append(f"{where}.values: at most 5 values")
        if condition["field"] in _ENUMERATED and condition["operator"] not in ("Equals",
                                                                                "NotEquals"):
            problems.append(f"{where}.operator: {condition['field']} takes Equals or NotEquals")
        if condition["field"] == "Severity":
            problems += [f"{where}.values: '{v}' is not Sev0..Sev4" for v in condition["values"]
                         if v not in ("Sev0", "Sev1", "Sev2", "Sev3", "Sev4")]
    schedule = props.get("schedule") or {}
    for key in ("effectiveFrom", "effectiveUntil"):
        if key in schedule and not _MOMENT.match(schedule[key]):
            problems.append(f"Wrong DateTime format of the parameter: '{key}', with value: "
                            f"'{schedule[key]}'. Expected date time format is "
                            "'yyyy'-'MM'-'dd'T'HH':'mm':'ss'.")
    if "effectiveFrom" in schedule and "effectiveUntil" in schedule \
            and schedule["effectiveUntil"] <= schedule["effectiveFrom"]:
        problems.append("properties.schedule: effectiveUntil must be after effectiveFrom")
    if schedule.get("timeZone", "UTC") not in WINDOWS_ZONES:
        problems.append(f"properties.schedule.timeZone: '{schedule['timeZone']}' is not a "
                        "Windows time zone")
    for i, recurrence in enumerate(schedule.get("recurrences") or []):
        for key in ("startTime", "endTime"):
            if key in recurrence and not _CLOCK.match(recurrence[key]):
                problems.append(f"properties.schedule.recurrences[{i}].{key}: "
                                f"'{recurrence[key]}' is not 'HH':'mm':'ss'")
    return problems


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"code": code, "message": message}}


def _handler_for(arm: ArmProcessingRules) -> type[BaseHTTPRequestHandler]:
    class Handler(LoopbackHandler):
        def _any(self) -> None:
            status, answer = arm._answer(self.command, self.path, self.lower_headers(),
                                         self.read_body())
            headers = {"x-ms-request-id": str(uuid.uuid4())}
            if answer is None:
                self.respond(status, headers, b"")
                return
            headers["Content-Type"] = "application/json; charset=utf-8"
            if status == 429:
                headers["Retry-After"] = "0"
            self.respond(status, headers, json.dumps(answer).encode())

        def do_GET(self) -> None:
            self._any()

        def do_PUT(self) -> None:
            self._any()

        def do_DELETE(self) -> None:
            self._any()

    return Handler
