"""Azure Monitor's common alert schema: build the Log Alerts V2 notification the action group
POSTs for one of our rules, and read any such notification (log or metric) back.

The shape follows Microsoft's published samples ("Sample alert payloads" and "Webhook actions
for log search alerts", common schema, scheduledQueryRules API 2021-08-01 and later):

    {"schemaId": "azureMonitorCommonAlertSchema",
     "data": {"essentials": {"alertId", "alertRule", "severity": "Sev1", "signalType": "Log",
                             "monitorCondition": "Fired", "monitoringService": "Log Alerts V2",
                             "alertTargetIDs", "configurationItems", "originAlertId",
                             "firedDateTime", "description", "essentialsVersion": "1.0",
                             "alertContextVersion": "1.0"},
              "alertContext": {"properties", "conditionType": "LogQueryCriteria",
                               "condition": {"windowSize": "PT5M",
                                             "allOf": [{"searchQuery", "metricMeasureColumn",
                                                        "targetResourceTypes", "operator",
                                                        "threshold": "10", "timeAggregation",
                                                        "dimensions": [{"name", "value"}],
                                                        "metricValue", "failingPeriods",
                                                        "linkTo...": ...}],
                                             "windowStartTime", "windowEndTime"}},
              "customProperties": {"ruleId", "runbookUrl"}}}

Facts worth knowing when reading one: `threshold` is a *string*, `metricValue` a number;
`resolvedDateTime` appears only on Resolved notifications; custom properties arrive in
`data.customProperties` and, for log alerts, also in `alertContext.properties`; Microsoft's
own log sample spells the operator `LowerThan` where the rule API says `LessThan`, so both
are read. Metric alerts put their dimensions, `metricValue` and `threshold` in the same
`condition.allOf` entries (with `metricName` instead of `searchQuery`).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import math
import re
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from ..queries import kql_string
from ._rules import AlertRule

SCHEMA_ID = "azureMonitorCommonAlertSchema"
LOG_CONDITION = "LogQueryCriteria"
#: Metric alert condition types whose `allOf` entries carry dimensions, metricValue and
#: threshold (static and dynamic thresholds, single and multiple resources, web tests).
METRIC_CONDITIONS = (
    "SingleResourceMultipleMetricCriteria",
    "MultipleResourceMultipleMetricCriteria",
    "DynamicThresholdCriteria",
    "WebtestLocationAvailabilityCriteria",
)
CONDITIONS = ("Fired", "Resolved")
#: Placeholders for the Azure ids a local evaluation has no real value for.
LOCAL_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
LOCAL_RESOURCE_GROUP = "integration-monitoring"
#: Operator spellings seen in payloads, mapped to the scheduledQueryRules API names.
_OPERATORS = {
    "GreaterThan": "GreaterThan", "GreaterThanOrEqual": "GreaterThanOrEqual",
    "LessThan": "LessThan", "LessThanOrEqual": "LessThanOrEqual", "Equal": "Equal",
    "LowerThan": "LessThan", "LowerThanOrEqual": "LessThanOrEqual",
    "GreaterOrLessThan": "GreaterOrLessThan",  # dynamic thresholds
}
#: `configurationItems` come from these dimensions, in this priority (Azure's documented rule).
_CONFIGURATION_ITEM_DIMENSIONS = ("Computer", "_ResourceId", "ResourceId", "Resource")


class PayloadError(ValueError):
    """The body is not an alert notification this relay understands; says what is wrong."""

    def __init__(self, message: str, where: str | None = None) -> None:
        super().__init__(message)
        #: The offending field's path in the body, e.g. `data.essentials.monitorCondition`.
        self.field = where


@dataclass(frozen=True)
class AlertNotice:
    """One alert notification, reduced to what delivery needs."""

    alert_id: str
    rule_id: str
    rule_name: str
    severity: int  # 0 (critical) .. 4 (verbose)
    condition: str  # "Fired" | "Resolved"
    fired_at: dt.datetime
    resolved_at: dt.datetime | None
    dimensions: dict[str, str]
    value: float | None
    threshold: float | None
    operator: str | None
    description: str
    signal_type: str
    monitoring_service: str = ""
    condition_type: str = ""
    window_start: dt.datetime | None = None
    window_end: dt.datetime | None = None
    custom_properties: dict[str, Any] = field(default_factory=dict)

    @property
    def severity_name(self) -> str:
        return f"Sev{self.severity}"

    @property
    def fired(self) -> bool:
        return self.condition == "Fired"


_NOTICE_TIMES = ("fired_at", "resolved_at", "window_start", "window_end")


def notice_record(notice: AlertNotice) -> dict[str, Any]:
    """A notice as JSON-ready values, for the outbox to keep (times as ISO text)."""
    record = dataclasses.asdict(notice)
    for name in _NOTICE_TIMES:
        if record[name] is not None:
            record[name] = record[name].isoformat()
    return record


def notice_from_record(record: dict[str, Any]) -> AlertNotice:
    values = dict(record)
    for name in _NOTICE_TIMES:
        if values.get(name) is not None:
            values[name] = dt.datetime.fromisoformat(values[name])
    return AlertNotice(**values)


# -- building ---------------------------------------------------------------------------------


#: What an alert id may be in our events and URLs (the acknowledge route accepts the same).
_ALERT_ID = re.compile(r"[A-Za-z0-9._:-]{1,200}")


def build_log_alert(rule: AlertRule, *, condition: str, dimensions: dict[str, str],
                    value: float | None, window_start: dt.datetime, window_end: dt.datetime,
                    fired_at: dt.datetime, resolved_at: dt.datetime | None = None,
                    alert_id: str, workspace_id: str = "local") -> dict[str, Any]:
    """The common-schema body Azure's action group POSTs when `rule` fires or resolves.

    `alert_id` is either a full `/subscriptions/.../alerts/<guid>` id or just its last
    segment (then the local placeholder subscription is used). Azure keeps one alert id for
    an alert's Fired and Resolved notifications, so pass the same one for both.
    """
    if condition not in CONDITIONS:
        raise ValueError(f"condition must be one of {CONDITIONS}, not {condition!r}")
    if condition == "Resolved" and resolved_at is None:
        raise ValueError("a Resolved notification needs resolved_at")
    full_id = alert_id if alert_id.startswith("/subscriptions/") else (
        f"/subscriptions/{LOCAL_SUBSCRIPTION}/providers/Microsoft.AlertsManagement/alerts/"
        f"{alert_id}")
    workspace = (f"/subscriptions/{LOCAL_SUBSCRIPTION}/resourcegroups/{LOCAL_RESOURCE_GROUP}"
                 f"/providers/microsoft.operationalinsights/workspaces/{workspace_id.lower()}")
    ordered = [(name, str(dimensions[name])) for name in rule.dimensions if name in dimensions]
    ordered += [(k, str(v)) for k, v in dimensions.items() if k not in rule.dimensions]
    items = [v for name in _CONFIGURATION_ITEM_DIMENSIONS for k, v in ordered if k == name]
    custom = {"ruleId": rule.id, "runbookUrl": rule.runbook_url()}
    essentials: dict[str, Any] = {
        "alertId": full_id,
        "alertRule": rule.id,
        "severity": rule.severity_name,
        "signalType": "Log",
        "monitorCondition": condition,
        "monitoringService": "Log Alerts V2",
        "alertTargetIDs": [workspace],
        "configurationItems": items or [workspace_id],
        "originAlertId": str(uuid.uuid5(uuid.NAMESPACE_URL, full_id)),
        "firedDateTime": azure_time(fired_at),
        "description": rule.description,
        "essentialsVersion": "1.0",
        "alertContextVersion": "1.0",
    }
    if resolved_at is not None:
        essentials["resolvedDateTime"] = azure_time(resolved_at)
    timespan = f"{azure_time(window_start)}/{azure_time(window_end)}"
    filtered = rule.query + "".join(
        f"\n| where {name} == {_literal(v)}" for name, v in ordered)
    criterion = {
        "searchQuery": rule.query,
        "metricMeasureColumn": rule.measure,
        "targetResourceTypes": "['Microsoft.OperationalInsights/workspaces']",
        "operator": rule.operator,
        "threshold": format_number(rule.threshold),
        "timeAggregation": rule.time_aggregation,
        "dimensions": [{"name": name, "value": v} for name, v in ordered],
        "metricValue": value,
        "failingPeriods": {"numberOfEvaluationPeriods": rule.failing_periods,
                           "minFailingPeriodsToAlert": rule.min_failing_periods},
        "linkToSearchResultsUI": _portal_link(workspace, rule.query, timespan),
        "linkToFilteredSearchResultsUI": _portal_link(workspace, filtered, timespan),
        "linkToSearchResultsAPI": _api_link(workspace_id, rule.query, timespan),
        "linkToFilteredSearchResultsAPI": _api_link(workspace_id, filtered, timespan),
    }
    return {
        "schemaId": SCHEMA_ID,
        "data": {
            "essentials": essentials,
            "alertContext": {
                "properties": dict(custom),
                "conditionType": LOG_CONDITION,
                "condition": {
                    "windowSize": iso_duration_text(rule.window),
                    "allOf": [criterion],
                    "windowStartTime": azure_time(window_start),
                    "windowEndTime": azure_time(window_end),
                },
            },
            "customProperties": custom,
        },
    }


def azure_time(moment: dt.datetime) -> str:
    """UTC with a Z and at most 7 fractional digits, trailing zeros dropped, as Azure writes."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    moment = moment.astimezone(dt.UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += "." + f"{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def iso_duration_text(span: dt.timedelta) -> str:
    """`PT5M`, `PT1H`, `P1D`: the rule's window as the payload's windowSize."""
    minutes = int(span.total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    text = "P" + (f"{days}D" if days else "")
    if hours or minutes:
        text += "T" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    return text if text != "P" else "PT0M"


def format_number(value: float | None) -> str:
    """`10`, `12.5`, `300000`: integral floats without `.0`, others with at most 4 decimals."""
    if value is None:
        return "n/a"
    if not math.isfinite(value):
        return str(value)
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4f}".rstrip("0").rstrip(".")


def _literal(text: str) -> str:
    """A dimension value as a KQL string literal (control characters dropped: a link only)."""
    return kql_string("".join(ch for ch in text
                              if (" " <= ch != "\x7f") or ch in "\t\n\r"))


def _portal_link(workspace: str, query: str, timespan: str) -> str:
    """A Logs blade link as Azure writes it: the scope as JSON, the query zlib-compressed and
    base64-encoded (the `q/eJ...` segment)."""
    scope = quote(json.dumps({"resources": [{"resourceId": workspace}]},
                             separators=(",", ":")), safe="")
    packed = quote(base64.b64encode(zlib.compress(query.encode())).decode(), safe="")
    return ("https://portal.azure.com#@/blade/Microsoft_Azure_Monitoring_Logs/LogsBlade/source/"
            f"Alerts.EmailLinks/scope/{scope}/q/{packed}/prettify/1/timespan/"
            f"{quote(timespan, safe='')}")


def _api_link(workspace_id: str, query: str, timespan: str) -> str:
    return (f"https://api.loganalytics.io/v1/workspaces/{quote(workspace_id, safe='')}/query"
            f"?query={quote(query, safe='')}&timespan={quote(timespan, safe='')}")


# -- parsing ----------------------------------------------------------------------------------


def parse_alert(body: Any) -> AlertNotice:
    """Read a common-schema log (Log Alerts V2) or metric alert; PayloadError names the flaw."""
    if not isinstance(body, dict):
        raise PayloadError(f"the body must be a JSON object, not {_kind(body)}")
    schema = body.get("schemaId")
    if schema != SCHEMA_ID:
        raise PayloadError(
            f"schemaId must be {SCHEMA_ID!r} (enable the common alert schema on the action "
            f"group's webhook); got {schema!r}", "schemaId")
    data = _object(body, "data", "data")
    essentials = _object(data, "essentials", "data.essentials")
    context = _object(data, "alertContext", "data.alertContext")

    # Azure's ids are resource paths; the last segment (a GUID) identifies the alert in our
    # events and URLs.
    alert_id = _text(essentials, "alertId", "data.essentials").rstrip("/").rsplit("/", 1)[-1]
    if not _ALERT_ID.fullmatch(alert_id):
        raise PayloadError("data.essentials.alertId must end in an id of letters, digits and "
                           ". _ : - (at most 200)", "data.essentials.alertId")
    alert_rule = _text(essentials, "alertRule", "data.essentials")
    severity = _severity(essentials.get("severity"))
    condition = essentials.get("monitorCondition")
    if condition not in CONDITIONS:
        raise PayloadError(
            f"data.essentials.monitorCondition must be 'Fired' or 'Resolved', got {condition!r}",
            "data.essentials.monitorCondition")
    signal_type = _text(essentials, "signalType", "data.essentials")
    fired_at = _time(essentials.get("firedDateTime"), "data.essentials.firedDateTime",
                     required=True)
    resolved_at = _time(essentials.get("resolvedDateTime"), "data.essentials.resolvedDateTime")

    condition_type = context.get("conditionType")
    if condition_type != LOG_CONDITION and condition_type not in METRIC_CONDITIONS:
        raise PayloadError(
            "data.alertContext.conditionType must be 'LogQueryCriteria' (Log Alerts V2) or a "
            f"metric condition ({', '.join(METRIC_CONDITIONS)}); got {condition_type!r}",
            "data.alertContext.conditionType")
    criteria = _object(context, "condition", "data.alertContext.condition")
    all_of = criteria.get("allOf")
    if not isinstance(all_of, list) or not all_of:
        raise PayloadError("data.alertContext.condition.allOf must be a non-empty list of "
                           f"criteria, got {_kind(all_of)}", "data.alertContext.condition.allOf")
    dimensions: dict[str, str] = {}
    for index, criterion in enumerate(all_of):
        where = f"data.alertContext.condition.allOf[{index}]"
        if not isinstance(criterion, dict):
            raise PayloadError(f"{where} must be an object, not {_kind(criterion)}", where)
        dimensions.update(_dimensions(criterion.get("dimensions"), f"{where}.dimensions"))
    first = all_of[0]
    where = "data.alertContext.condition.allOf[0]"
    value = _number(first.get("metricValue"), f"{where}.metricValue")
    threshold = _number(first.get("threshold"), f"{where}.threshold")
    operator = first.get("operator")
    if operator is not None and not isinstance(operator, str):
        raise PayloadError(f"{where}.operator must be a string, not {_kind(operator)}",
                           f"{where}.operator")

    custom: dict[str, Any] = {}
    for source, path in ((context.get("properties"), "data.alertContext.properties"),
                         (data.get("customProperties"), "data.customProperties")):
        if source is None:
            continue
        if not isinstance(source, dict):
            raise PayloadError(f"{path} must be an object or null, not {_kind(source)}", path)
        custom.update(source)
    rule_id = custom.get("ruleId") or alert_rule
    if not isinstance(rule_id, str):
        raise PayloadError("data.customProperties.ruleId must be a string",
                           "data.customProperties.ruleId")
    description = essentials.get("description") or ""
    return AlertNotice(
        alert_id=alert_id, rule_id=rule_id, rule_name=alert_rule, severity=severity,
        condition=condition, fired_at=fired_at, resolved_at=resolved_at,
        dimensions=dimensions, value=value, threshold=threshold,
        operator=_OPERATORS.get(operator, operator) if operator else None,
        description=str(description), signal_type=signal_type,
        monitoring_service=str(essentials.get("monitoringService") or ""),
        condition_type=condition_type,
        window_start=_time(criteria.get("windowStartTime"),
                           "data.alertContext.condition.windowStartTime"),
        window_end=_time(criteria.get("windowEndTime"),
                         "data.alertContext.condition.windowEndTime"),
        custom_properties=custom,
    )


def dimensions_key(rule_id: str, dimensions: dict[str, str]) -> str:
    """A stable digest of a rule and its sorted dimensions (the same series, the same key)."""
    text = rule_id + "\n" + "\n".join(f"{k}={v}" for k, v in sorted(dimensions.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def _object(parent: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    value = parent.get(key)
    if value is None:
        raise PayloadError(f"{path} is missing", path)
    if not isinstance(value, dict):
        raise PayloadError(f"{path} must be an object, not {_kind(value)}", path)
    return value


def _text(parent: dict[str, Any], key: str, path: str) -> str:
    value = parent.get(key)
    if value is None or value == "":
        raise PayloadError(f"{path}.{key} is missing", f"{path}.{key}")
    if not isinstance(value, str):
        raise PayloadError(f"{path}.{key} must be a string, not {_kind(value)}", f"{path}.{key}")
    return value


def _severity(value: Any) -> int:
    path = "data.essentials.severity"
    if value is None:
        raise PayloadError(f"{path} is missing", path)
    if isinstance(value, str) and len(value) == 4 and value[:3] == "Sev" and value[3] in "01234":
        return int(value[3])
    raise PayloadError(f"{path} must be one of Sev0..Sev4, got {value!r}", path)


def _time(value: Any, path: str, required: bool = False) -> dt.datetime | None:
    if value is None or value == "":
        if required:
            raise PayloadError(f"{path} is missing", path)
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{path} must be an ISO 8601 string, not {_kind(value)}", path)
    try:
        moment = dt.datetime.fromisoformat(value)
        moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
        moment.astimezone(dt.UTC)  # years at the edge of the calendar overflow here
    except (ValueError, OverflowError):
        raise PayloadError(f"{path} is not an ISO 8601 date and time: {value!r}", path) from None
    if not 2000 <= moment.year <= 2999:
        raise PayloadError(f"{path} is out of range: {value!r}", path)
    return moment


def _number(value: Any, path: str) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise PayloadError(f"{path} must be a number, not a boolean", path)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise PayloadError(f"{path} must be a number (or a numeric string), got {value!r}", path)


def _dimensions(value: Any, path: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, list):
        raise PayloadError(f"{path} must be a list of {{name, value}} objects, not {_kind(value)}",
                           path)
    found: dict[str, str] = {}
    for index, entry in enumerate(value):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) \
                or not entry["name"]:
            raise PayloadError(f"{path}[{index}] must be an object with a string name",
                               f"{path}[{index}]")
        raw = entry.get("value")
        found[entry["name"]] = "" if raw is None else str(raw)
    return found
