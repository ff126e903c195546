"""Silences in Azure: each one an alert processing rule that removes the action groups.

    rules = ProcessingRules.from_env()      # None when the settings below are unset
    name = rules.put(silence)               # "silence-<id>", created or replaced
    rules.delete(silence.id)                # once it is expired; False if already gone
    # both raise azure.core.exceptions.HttpResponseError when Azure refuses or fails

The relay holds back what a silence matches, but Azure Monitor sends its emails itself; an
alert processing rule (Microsoft.AlertsManagement/actionRules, API 2021-08-08) whose action is
RemoveAllActionGroups stops them too, for the same alerts and the same hours.
https://learn.microsoft.com/azure/azure-monitor/alerts/alerts-processing-rules

Settings (the Function app's, infra/modules/function-app.bicep):
    ALERT_PROCESSING_RESOURCE_GROUP    where the rules are created; unset: silences stay local
    ALERT_PROCESSING_SUBSCRIPTION_ID   its subscription (required with the group)
    ALERT_PROCESSING_SCOPES            comma-separated resource ids the rules apply to, in that
                                       subscription; default: the resource group itself
    ALERT_RULE_NAME_PREFIX             the alert rules' name prefix: a rule is named
                                       "<prefix>-<ruleId>" (infra/modules/alert-rules.bicep)
The identity needs write access to actionRules in the group (Monitoring Contributor there).

From matchers to conditions (every condition must hold; the values of one are alternatives):
    ruleId       -> AlertRuleName. Equals/NotEquals compare "<prefix>-<ruleId>" exactly;
                    Contains/DoesNotContain look for the text in the whole name, prefix included.
    severity     -> Severity, which takes Equals/NotEquals only: Contains "1" becomes Equals
                    the severities Sev0..Sev4 that contain it.
    tenantId, integrationId, adapterType, queue -> AlertContext. These are dimensions of a log
                    search alert, and Azure can only look for a text anywhere in the alert's
                    context, not in one dimension: Equals and Contains become Contains (broader:
                    the value may match another dimension, a longer value or the query text, and
                    Azure then drops the action groups of an alert the silence does not cover,
                    so the relay never hears of it); NotEquals and DoesNotContain become
                    DoesNotContain (narrower: Azure may send emails the silence holds back).
A silence Azure cannot express raises NotRepresentable, before anything is sent: more than
five values in one matcher (Azure's limit per filter), a severity matcher no severity
satisfies, or a weekly window in a zone no Windows time zone follows.

Schedule: a one-off silence runs from its start to its end in UTC. A weekly one keeps local
hours across daylight saving, so Azure gets a Windows time zone with the same offsets as the
silence's IANA zone for the silence's whole life, and its days and times as a Weekly recurrence.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from ._rules import rule_by_id
from ._silences import DAYS, Matcher, Silence

API_VERSION = "2021-08-08"
NAME_PREFIX = "silence-"
#: Values per filter: "Each filter can include up to five values" (alerts-processing-rules).
MAX_VALUES = 5
SEVERITIES = ("Sev0", "Sev1", "Sev2", "Sev3", "Sev4")
_DIMENSIONS = ("tenantId", "integrationId", "adapterType", "queue")
# The service takes 'yyyy-MM-ddTHH:mm:ss' only, no fraction and no offset, although the
# published pattern allows a fraction: https://github.com/Azure/azure-rest-api-specs/issues/19141
_MOMENT = "%Y-%m-%dT%H:%M:%S"
_CLOCK = "%H:%M:%S"

# Windows time zones, the names Azure's schedules take (the spec's examples: "Pacific Standard
# Time", "India Standard Time"; terraform-provider-azurerm checks the names against .NET's
# TimeZoneInfo.GetSystemTimeZones(): https://github.com/hashicorp/terraform-provider-azurerm/
# blob/main/internal/services/monitor/validate/alert_processing_rule_schedule_time.go), each
# with the IANA zone that follows it in CLDR's "001" column: https://github.com/unicode-org/
# cldr/blob/main/common/supplemental/windowsZones.xml
_WINDOWS = """
Dateline Standard Time=Etc/GMT+12|UTC-11=Etc/GMT+11|Aleutian Standard Time=America/Adak
Hawaiian Standard Time=Pacific/Honolulu|Marquesas Standard Time=Pacific/Marquesas
Alaskan Standard Time=America/Anchorage|UTC-09=Etc/GMT+9
Pacific Standard Time (Mexico)=America/Tijuana|UTC-08=Etc/GMT+8
Pacific Standard Time=America/Los_Angeles|US Mountain Standard Time=America/Phoenix
Mountain Standard Time (Mexico)=America/Mazatlan|Mountain Standard Time=America/Denver
Yukon Standard Time=America/Whitehorse|Central America Standard Time=America/Guatemala
Central Standard Time=America/Chicago|Easter Island Standard Time=Pacific/Easter
Central Standard Time (Mexico)=America/Mexico_City|Canada Central Standard Time=America/Regina
SA Pacific Standard Time=America/Bogota|Eastern Standard Time (Mexico)=America/Cancun
Eastern Standard Time=America/New_York|Haiti Standard Time=America/Port-au-Prince
Cuba Standard Time=America/Havana|US Eastern Standard Time=America/Indianapolis
Turks And Caicos Standard Time=America/Grand_Turk|Paraguay Standard Time=America/Asuncion
Atlantic Standard Time=America/Halifax|Venezuela Standard Time=America/Caracas
Central Brazilian Standard Time=America/Cuiaba|SA Western Standard Time=America/La_Paz
Pacific SA Standard Time=America/Santiago|Newfoundland Standard Time=America/St_Johns
Tocantins Standard Time=America/Araguaina|E. South America Standard Time=America/Sao_Paulo
SA Eastern Standard Time=America/Cayenne|Argentina Standard Time=America/Buenos_Aires
Greenland Standard Time=America/Godthab|Montevideo Standard Time=America/Montevideo
Magallanes Standard Time=America/Punta_Arenas|Saint Pierre Standard Time=America/Miquelon
Bahia Standard Time=America/Bahia|UTC-02=Etc/GMT+2|Azores Standard Time=Atlantic/Azores
Cape Verde Standard Time=Atlantic/Cape_Verde|UTC=Etc/UTC|GMT Standard Time=Europe/London
Greenwich Standard Time=Atlantic/Reykjavik|Sao Tome Standard Time=Africa/Sao_Tome
Morocco Standard Time=Africa/Casablanca|W. Europe Standard Time=Europe/Berlin
Central Europe Standard Time=Europe/Budapest|Romance Standard Time=Europe/Paris
Central European Standard Time=Europe/Warsaw|W. Central Africa Standard Time=Africa/Lagos
Jordan Standard Time=Asia/Amman|GTB Standard Time=Europe/Bucharest
Middle East Standard Time=Asia/Beirut|Egypt Standard Time=Africa/Cairo
E. Europe Standard Time=Europe/Chisinau|Syria Standard Time=Asia/Damascus
West Bank Standard Time=Asia/Hebron|South Africa Standard Time=Africa/Johannesburg
FLE Standard Time=Europe/Kiev|Israel Standard Time=Asia/Jerusalem
South Sudan Standard Time=Africa/Juba|Kaliningrad Standard Time=Europe/Kaliningrad
Sudan Standard Time=Africa/Khartoum|Libya Standard Time=Africa/Tripoli
Namibia Standard Time=Africa/Windhoek|Arabic Standard Time=Asia/Baghdad
Turkey Standard Time=Europe/Istanbul|Arab Standard Time=Asia/Riyadh
Belarus Standard Time=Europe/Minsk|Russian Standard Time=Europe/Moscow
E. Africa Standard Time=Africa/Nairobi|Iran Standard Time=Asia/Tehran
Arabian Standard Time=Asia/Dubai|Astrakhan Standard Time=Europe/Astrakhan
Azerbaijan Standard Time=Asia/Baku|Russia Time Zone 3=Europe/Samara
Mauritius Standard Time=Indian/Mauritius|Saratov Standard Time=Europe/Saratov
Georgian Standard Time=Asia/Tbilisi|Volgograd Standard Time=Europe/Volgograd
Caucasus Standard Time=Asia/Yerevan|Afghanistan Standard Time=Asia/Kabul
West Asia Standard Time=Asia/Tashkent|Ekaterinburg Standard Time=Asia/Yekaterinburg
Pakistan Standard Time=Asia/Karachi|Qyzylorda Standard Time=Asia/Qyzylorda
India Standard Time=Asia/Calcutta|Sri Lanka Standard Time=Asia/Colombo
Nepal Standard Time=Asia/Katmandu|Central Asia Standard Time=Asia/Bishkek
Bangladesh Standard Time=Asia/Dhaka|Omsk Standard Time=Asia/Omsk
Myanmar Standard Time=Asia/Rangoon|SE Asia Standard Time=Asia/Bangkok
Altai Standard Time=Asia/Barnaul|W. Mongolia Standard Time=Asia/Hovd
North Asia Standard Time=Asia/Krasnoyarsk|N. Central Asia Standard Time=Asia/Novosibirsk
Tomsk Standard Time=Asia/Tomsk|China Standard Time=Asia/Shanghai
North Asia East Standard Time=Asia/Irkutsk|Singapore Standard Time=Asia/Singapore
W. Australia Standard Time=Australia/Perth|Taipei Standard Time=Asia/Taipei
Ulaanbaatar Standard Time=Asia/Ulaanbaatar|Aus Central W. Standard Time=Australia/Eucla
Transbaikal Standard Time=Asia/Chita|Tokyo Standard Time=Asia/Tokyo
North Korea Standard Time=Asia/Pyongyang|Korea Standard Time=Asia/Seoul
Yakutsk Standard Time=Asia/Yakutsk|Cen. Australia Standard Time=Australia/Adelaide
AUS Central Standard Time=Australia/Darwin|E. Australia Standard Time=Australia/Brisbane
AUS Eastern Standard Time=Australia/Sydney|West Pacific Standard Time=Pacific/Port_Moresby
Tasmania Standard Time=Australia/Hobart|Vladivostok Standard Time=Asia/Vladivostok
Lord Howe Standard Time=Australia/Lord_Howe|Bougainville Standard Time=Pacific/Bougainville
Russia Time Zone 10=Asia/Srednekolymsk|Magadan Standard Time=Asia/Magadan
Norfolk Standard Time=Pacific/Norfolk|Sakhalin Standard Time=Asia/Sakhalin
Central Pacific Standard Time=Pacific/Guadalcanal|Russia Time Zone 11=Asia/Kamchatka
New Zealand Standard Time=Pacific/Auckland|UTC+12=Etc/GMT-12|Fiji Standard Time=Pacific/Fiji
Chatham Islands Standard Time=Pacific/Chatham|UTC+13=Etc/GMT-13
Tonga Standard Time=Pacific/Tongatapu|Samoa Standard Time=Pacific/Apia
Line Islands Standard Time=Pacific/Kiritimati
"""
#: Windows time zone -> an IANA zone that follows it.
WINDOWS_ZONES: dict[str, str] = dict(
    entry.split("=") for entry in _WINDOWS.strip().replace("\n", "|").split("|"))


class NotRepresentable(ValueError):
    """A silence that no alert processing rule expresses (the relay still holds it)."""


def rule_name(silence_id: str) -> str:
    return f"{NAME_PREFIX}{silence_id}"


class ProcessingRules:
    """Alert processing rules in one resource group, through the Azure SDK
    (azure-mgmt-alertprocessingrules); `base_url` and `client_options` (connection_verify,
    retry_total, ...) reach its client, so tests can point it at a loopback."""

    def __init__(self, subscription_id: str, resource_group: str, scopes: list[str],
                 rule_prefix: str, credential: Any = None, *, base_url: str | None = None,
                 **client_options: Any) -> None:
        from azure.mgmt.alertprocessingrules import AlertProcessingRulesMgmtClient

        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()  # the app's managed identity in Azure
        self.resource_group = resource_group
        self.scopes = list(scopes)
        self.rule_prefix = rule_prefix
        self._client = AlertProcessingRulesMgmtClient(credential, subscription_id,
                                                      base_url=base_url, **client_options)
        self._rules = self._client.alert_processing_rules

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, credential: Any = None,
                 **options: Any) -> ProcessingRules | None:
        import os

        env = os.environ if env is None else env
        group = (env.get("ALERT_PROCESSING_RESOURCE_GROUP") or "").strip()
        if not group:
            return None
        subscription = (env.get("ALERT_PROCESSING_SUBSCRIPTION_ID") or "").strip()
        prefix = (env.get("ALERT_RULE_NAME_PREFIX") or "").strip()
        scopes = [s.strip() for s in (env.get("ALERT_PROCESSING_SCOPES") or "").split(",")
                  if s.strip()]
        if not subscription or not prefix:
            raise ValueError("ALERT_PROCESSING_RESOURCE_GROUP is set: set "
                             "ALERT_PROCESSING_SUBSCRIPTION_ID and ALERT_RULE_NAME_PREFIX too")
        scopes = scopes or [f"/subscriptions/{subscription}/resourceGroups/{group}"]
        # "You can't create an alert processing rule on a resource from a different
        # subscription" (alerts-processing-rules): say so at start, not at the first silence.
        foreign = [s for s in scopes
                   if not s.lower().startswith(f"/subscriptions/{subscription.lower()}")]
        if foreign:
            raise ValueError(f"ALERT_PROCESSING_SCOPES outside subscription {subscription}: "
                             f"{foreign[0]}")
        return cls(subscription, group, scopes, prefix, credential, **options)

    def body(self, silence: Silence) -> dict[str, Any]:
        return rule_body(silence, self.scopes, self.rule_prefix)

    def put(self, silence: Silence) -> str:
        """Create or replace the silence's rule; its name. NotRepresentable before any call;
        azure.core.exceptions.HttpResponseError when Azure refuses or fails."""
        name = rule_name(silence.id)
        self._rules.create_or_update(self.resource_group, name, self.body(silence))
        return name

    def delete(self, silence_id: str) -> bool:
        """Delete the silence's rule; False when there was none (204, or 404)."""
        from azure.core.exceptions import ResourceNotFoundError

        def status(response: Any, *_: Any) -> int:  # delete() answers None otherwise
            return response.http_response.status_code

        try:
            return self._rules.delete(self.resource_group, rule_name(silence_id),
                                      cls=status) == 200
        except ResourceNotFoundError:
            return False

    def close(self) -> None:
        self._client.close()


# -- the request body ---------------------------------------------------------------------------
# Shape: AlertProcessingRule in the published spec (tests/schemas/alert-processing-rules-
# 2021-08-08.json is its request schema): https://github.com/Azure/azure-rest-api-specs/blob/
# 2eb69bb6c26de27c7ec272fb089b7088967a7003/specification/alertsmanagement/resource-manager/
# Microsoft.AlertsManagement/AlertProcessingRules/stable/2021-08-08/AlertProcessingRules.json
# Filters, their AND/OR and the five values: https://learn.microsoft.com/azure/azure-monitor/
# alerts/alerts-processing-rules#scope-and-filters-for-alert-processing-rules ("Alert context
# (payload)": any of the strings within the alert context section of the common alert schema,
# https://learn.microsoft.com/azure/azure-monitor/alerts/alerts-common-schema).


def rule_body(silence: Silence, scopes: list[str], rule_prefix: str) -> dict[str, Any]:
    """The PUT body of the silence's rule."""
    if silence.ended_at <= silence.starts_at:  # expired before it began: delete, not put
        raise NotRepresentable(f"silence {silence.id} ends before it starts")
    return {
        "location": "Global",  # as every example in the spec: the rules are not regional
        "properties": {
            "scopes": list(scopes),
            # Fired only: a Resolved still reaches the relay, which sends it where its Fired
            # was sent (before the silence) and drops it where the Fired was held back.
            "conditions": [{"field": "MonitorCondition", "operator": "Equals",
                            "values": ["Fired"]},
                           *(c for m in silence.matchers for c in _conditions(m, rule_prefix))],
            "schedule": _schedule(silence),
            "actions": [{"actionType": "RemoveAllActionGroups"}],
            "description": f"Silence {silence.id} by {silence.created_by or 'unknown'}: "
                           f"{silence.comment}",
            "enabled": True,
        },
    }


def _conditions(matcher: Matcher, rule_prefix: str) -> list[dict[str, Any]]:
    values, operator = list(matcher.values), matcher.operator
    if matcher.label == "ruleId":
        field = "AlertRuleName"
        if operator in ("Equals", "NotEquals"):
            # our rules are named "<prefix>-<id>" in Azure; a portal or platform rule is
            # known to the relay by its own name
            values = [f"{rule_prefix}-{v}" if rule_by_id(v) else v for v in values]
    elif matcher.label == "severity":
        field = "Severity"
        if operator in ("Contains", "DoesNotContain"):
            values = [s for s in SEVERITIES if any(v.casefold() in s.casefold() for v in values)]
            operator = "Equals" if operator == "Contains" else "NotEquals"
        if not values and operator == "NotEquals":
            return []  # no severity contains the text: every alert passes
        if not values:  # none does: the silence holds nothing, and no filter says "nothing"
            raise NotRepresentable(f"no severity satisfies {matcher.record()}")
    elif matcher.label in _DIMENSIONS:
        field = "AlertContext"
        operator = "Contains" if operator in ("Equals", "Contains") else "DoesNotContain"
    else:
        raise NotRepresentable(f"no alert field for label {matcher.label!r}")
    if len(values) > MAX_VALUES:
        raise NotRepresentable(f"{matcher.label}: Azure takes at most {MAX_VALUES} values in "
                               f"one filter, the silence has {len(values)}")
    return [{"field": field, "operator": operator, "values": values}]


def _schedule(silence: Silence) -> dict[str, Any]:
    start, end = silence.starts_at, silence.ended_at
    if silence.weekly is None:  # exact in UTC: no zone needed
        return {"effectiveFrom": _local(start, "Etc/UTC"), "effectiveUntil": _local(end, "Etc/UTC"),
                "timeZone": "UTC"}
    windows, zone = windows_zone(silence.time_zone, start, end)
    weekly = silence.weekly
    return {
        "effectiveFrom": _local(start, zone), "effectiveUntil": _local(end, zone),
        "timeZone": windows,
        # A window ending at or before its start runs past midnight, in Azure as here
        # ("22:00:00" to "04:00:00" on Saturday and Sunday in the spec's example).
        "recurrences": [{"recurrenceType": "Weekly",
                         "daysOfWeek": [d for d in DAYS if d in weekly.days],
                         "startTime": weekly.start.strftime(_CLOCK),
                         "endTime": weekly.end.strftime(_CLOCK)}],
    }


def windows_zone(iana: str, start: dt.datetime, end: dt.datetime) -> tuple[str, str]:
    """(Windows zone, the IANA zone that follows it) with the same UTC offset as `iana` at
    every hour from `start` to `end`; NotRepresentable when there is none."""
    direct = {zone: name for name, zone in WINDOWS_ZONES.items()}
    if iana in direct:
        return direct[iana], iana
    if iana in ("UTC", "Etc/UTC", "Etc/GMT", "GMT"):
        return "UTC", "Etc/UTC"
    target = ZoneInfo(iana)
    hours = [start + dt.timedelta(hours=h)
             for h in range(int((end - start).total_seconds() // 3600) + 1)] + [end]
    wanted = [t.astimezone(target).utcoffset() for t in hours]
    for name, zone in WINDOWS_ZONES.items():
        candidate = ZoneInfo(zone)
        if all(t.astimezone(candidate).utcoffset() == w for t, w in zip(hours, wanted,
                                                                         strict=True)):
            return name, zone
    raise NotRepresentable(f"no Windows time zone follows {iana} from {start} to {end}")


def _local(moment: dt.datetime, zone: str) -> str:
    return moment.astimezone(ZoneInfo(zone)).strftime(_MOMENT)
