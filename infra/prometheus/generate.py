"""The seed's five alerts as Prometheus alerting rules, generated from the one rules list,
integration_monitoring/alerts/rules.json.

    python infra/prometheus/generate.py                 # writes the files below
    python infra/prometheus/generate.py --check         # exit 1 when a file is out of date
    python infra/prometheus/generate.py --runbook-base-url https://github.com/<org>/<repo>/blob/main

Writes, next to this script:
  alert-rules.yml          Prometheus rule groups (`promtool check rules`, `rule_files:`)
  azure-rule-groups.json   the same rules shaped for Microsoft.AlertsManagement/prometheusRuleGroups
                           (infra/modules/prometheus-rules.bicep loads it)

That list stays the one list: id, title, Azure severity, threshold, runbook and the seed's
PromQL (`seedCondition`) come from there. What only Prometheus needs lives in PROMETHEUS
below, one entry per rule, each with a sentence on why you would change it (the way the
monitoring mixins keep their config). An expression is the seed's text unless its entry says
otherwise and why.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))  # infra/, for the shared write-or-check loop

from _generated import write_or_check  # noqa: E402

RULES_JSON = ROOT / "integration_monitoring" / "alerts" / "rules.json"
RULES_YAML = HERE / "alert-rules.yml"
AZURE_JSON = HERE / "azure-rule-groups.json"

#: Azure Monitor severity -> the `severity` label Alertmanager routes on. The seed files its
#: first three alerts under "Critical Alerts" (Sev1 in the rules list) and the other two
#: under "Warning Alerts" (Sev2). Sev0 is critical as well; Sev3 and Sev4 are informational.
SEVERITY = {0: "critical", 1: "critical", 2: "warning", 3: "info", 4: "info"}

#: How often the groups are evaluated where the rule file does not say (Prometheus' global
#: evaluation_interval, and the Azure rule group's `interval`).
EVALUATION_INTERVAL = "1m"

#: Comparison operators of integration_monitoring/alerts/rules.json as PromQL writes them.
OPERATORS = {"GreaterThan": ">", "GreaterThanOrEqual": ">=", "LessThan": "<",
             "LessThanOrEqual": "<=", "Equal": "=="}


@dataclass(frozen=True)
class Prometheus:
    """What a rule needs in Prometheus beyond integration_monitoring/alerts/rules.json."""

    group: str
    alert: str  # the alertname: CamelCase, as Prometheus alerts are named
    for_: str  # how long the expression must hold before the alert fires
    why_for: str
    #: Go template; only `{{ $labels.<name> }}` and `{{ printf "%.<n>f" $value }}` are used, so
    #: the tests can render it too.
    description: str
    expr: str | None = None  # None: the seed's expression, verbatim
    why_expr: str = ""  # why expr is not the seed's, or what the seed's text means here


PROMETHEUS: dict[str, Prometheus] = {
    "high-sync-failure-rate": Prometheus(
        group="integration-sync",
        alert="HighSyncFailureRate",
        for_="5m",
        why_for="It pages (PagerDuty): the ratio is already a 5-minute rate, and 5 more minutes "
                "keep one bad batch of a quiet adapter from waking anyone, the job the Azure "
                "rule's minimums (5 finished, 3 failed) do there.",
        expr='sum by (adapter_type) (rate(sync_jobs_failed_total[5m])) / sum by (adapter_type) '
             '(rate(sync_jobs_total{status=~"completed|failed"}[5m])) * 100 > 10',
        why_expr="The seed's text is valid PromQL but not a failure rate on these series: both "
                 "sides carry `status`, so one-to-one matching pairs sync_jobs_failed_total"
                 '{status="failed"} with sync_jobs_total{status="failed"} and the ratio is 100 '
                 "for every series that failed once (alert-rules.test.yml proves it). Summing "
                 "by adapter_type (the Azure rule's dimension) and counting only finished "
                 'transitions (status "completed" or "failed") in the denominator makes it the '
                 "share of finished jobs that failed, as the Azure rule and the runbook define it.",
        description='{{ printf "%.1f" $value }} % of the sync jobs of adapter '
                    "{{ $labels.adapter_type }} that finished in the last 5 minutes failed "
                    "(more than 10 % for 5 minutes).",
    ),
    "slow-sync-processing": Prometheus(
        group="integration-sync",
        alert="SlowSyncProcessing",
        for_="5m",
        why_for="A warning: one slow full resync should not notify; 5 minutes of a p95 above "
                "5 minutes should.",
        why_expr="Verbatim. Without `sum by (le)` the quantile is computed per series: per "
                 "tenant, integration, entity and status, so the alert names the integration "
                 "(the Azure rule aggregates per adapter type). 300000 is a bucket boundary of "
                 "sync_latency_ms, so the estimate is exact at the threshold.",
        description="95th percentile sync duration of {{ $labels.integration_id }} "
                    "({{ $labels.adapter_type }} {{ $labels.entity }}, {{ $labels.status }} "
                    "jobs, tenant {{ $labels.tenant_id }}) over the last 5 minutes is "
                    '{{ printf "%.0f" $value }} ms, above 300000 ms.',
    ),
    "service-bus-queue-backlog": Prometheus(
        group="service-bus",
        alert="ServiceBusQueueBacklog",
        for_="5m",
        why_for="A webhook storm can push a queue past 100 for a minute or two and drain; "
                "5 minutes above 100 means the workers are not catching up.",
        why_expr="Verbatim: one series per queue.",
        description="Queue {{ $labels.queue }} has held more than 100 active messages for "
                    '5 minutes; the latest sample is {{ printf "%.0f" $value }}.',
    ),
    "dead-letter-queue-accumulation": Prometheus(
        group="service-bus",
        alert="DeadLetterQueueAccumulation",
        for_="1m",
        why_for="A dead-lettered message stays until someone acts, so there is little to wait "
                "for; two samples in a row (the sampler reads once a minute) rather than one.",
        why_expr="Verbatim: one series per queue.",
        description="The dead-letter subqueue of {{ $labels.queue }} holds "
                    '{{ printf "%.0f" $value }} messages.',
    ),
    "high-rate-limit-hits": Prometheus(
        group="adapters",
        alert="HighRateLimitHits",
        for_="5m",
        why_for="A warning: backoff should bring a burst down within minutes; 5 minutes above "
                "10 per second means it does not.",
        why_expr="Verbatim. rate() keeps every label, so the threshold applies per series "
                 "(tenant, integration, entity): one connection above 10/s fires, twenty at "
                 "1/s each do not (the Azure rule sums per adapter type).",
        description="{{ $labels.integration_id }} ({{ $labels.adapter_type }} "
                    "{{ $labels.entity }}, tenant {{ $labels.tenant_id }}) received "
                    '{{ printf "%.2f" $value }} rate-limit responses (HTTP 429) per second over '
                    "the last 5 minutes, above 10.",
    ),
}

GROUP_ORDER = ("integration-sync", "service-bus", "adapters")
_TEMPLATE = re.compile(r"\{\{.*?\}\}")
ALLOWED_TEMPLATES = re.compile(r'\{\{ \$labels\.[a-z_]+ \}\}|\{\{ printf "%\.\df" \$value \}\}')


def seed_rules() -> list[dict[str, Any]]:
    """The entries of integration_monitoring/alerts/rules.json that carry the seed's PromQL."""
    rules = json.loads(RULES_JSON.read_text())["rules"]
    return [rule for rule in rules if rule.get("seedCondition")]


def runbook_url(path: str, base: str) -> str:
    """Base + path, as AlertRule.runbook_url and the Azure rules build it."""
    return f"{base.rstrip('/')}/{path}" if base else path


def iso_duration(duration: str) -> str:
    """A Prometheus duration of one unit (`5m`, `1h`, `30s`) in ISO 8601 (`PT5M`)."""
    match = re.fullmatch(r"(\d+)([smh])", duration)
    if not match:
        raise ValueError(f"unsupported duration {duration!r}")
    return f"PT{match.group(1)}{match.group(2).upper()}"


def build(base: str = "") -> list[dict[str, Any]]:
    """The rule groups: a list of {name, rules: [...]}, every rule with its provenance."""
    rules = seed_rules()
    missing = {rule["id"] for rule in rules} ^ set(PROMETHEUS)
    if missing:
        raise SystemExit(f"PROMETHEUS and the seed rules of {RULES_JSON.name} differ: "
                         f"{sorted(missing)}")
    groups: dict[str, list[dict[str, Any]]] = {name: [] for name in GROUP_ORDER}
    for rule in rules:
        extra = PROMETHEUS[rule["id"]]
        bad = [t for t in _TEMPLATE.findall(extra.description) if not ALLOWED_TEMPLATES.match(t)]
        if bad:
            raise SystemExit(f"{rule['id']}: template {bad} is outside the tested forms")
        groups[extra.group].append({
            "id": rule["id"],
            "seed": rule["seedCondition"],
            "why_expr": extra.why_expr,
            "why_for": extra.why_for,
            "channels": rule["channels"],
            "azure_severity": rule["severity"],
            "runbook": rule["runbook"],
            "alert": extra.alert,
            "expr": extra.expr or rule["seedCondition"],
            "for": extra.for_,
            "labels": {"severity": SEVERITY[rule["severity"]], "rule_id": rule["id"]},
            "annotations": {
                "summary": rule["title"],
                "description": extra.description,
                "runbook_url": runbook_url(rule["runbook"], base),
            },
        })
    return [{"name": name, "rules": groups[name]} for name in GROUP_ORDER if groups[name]]


# -- YAML -------------------------------------------------------------------------------------

_PLAIN = re.compile(r"^[A-Za-z][A-Za-z0-9 _./-]*[A-Za-z0-9]$")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n"}


def scalar(value: str) -> str:
    """A YAML scalar for the string: plain when nothing in it is special, else single-quoted
    (no escapes but '' for '), else JSON's double quotes."""
    plain = _PLAIN.match(value) and value.lower() not in _YAML_WORDS
    if plain or re.fullmatch(r"\d+[smhd]", value):
        return value
    if not re.search(r"[\x00-\x1f\x7f]", value):
        return "'" + value.replace("'", "''") + "'"
    return json.dumps(value)


def _comment(text: str, indent: str, width: int = 98) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(indent) + 2 + len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(line)
    return [f"{indent}# {line}" for line in lines]


def render_yaml(groups: list[dict[str, Any]]) -> str:
    out = [
        "# Generated by infra/prometheus/generate.py from integration_monitoring/alerts/"
        "rules.json; edit those, not this file.",
        "# The seed's five alerts as Prometheus alerting rules. severity: Azure Sev0-1 critical, "
        "Sev2 warning,",
        "# Sev3-4 info. runbook_url: docs/runbooks/<id>.md under --runbook-base-url.",
        "groups:",
    ]
    for group in groups:
        out += [f"  - name: {scalar(group['name'])}", "    rules:"]
        for rule in group["rules"]:
            indent = "      "
            out.append(f"{indent}# {rule['id']}: Azure Sev{rule['azure_severity']}; channels "
                       f"{', '.join(rule['channels'])}")
            out += _comment(f"seed: {rule['seed']}", indent)
            out += _comment(("expr: " if rule["expr"] != rule["seed"] else "") + rule["why_expr"],
                            indent)
            out += _comment(f"for: {rule['why_for']}", indent)
            out += [
                f"{indent}- alert: {scalar(rule['alert'])}",
                f"{indent}  expr: {scalar(rule['expr'])}",
                f"{indent}  for: {scalar(rule['for'])}",
                f"{indent}  labels:",
                *(f"{indent}    {k}: {scalar(v)}" for k, v in rule["labels"].items()),
                f"{indent}  annotations:",
                *(f"{indent}    {k}: {scalar(v)}" for k, v in rule["annotations"].items()),
            ]
    return "\n".join(out) + "\n"


def render_azure(groups: list[dict[str, Any]]) -> str:
    """The rules as prometheusRuleGroups properties take them (2023-03-01): `expression`,
    ISO 8601 `for`, integer `severity`. The runbook URL is joined in Bicep from its own base."""
    document = {
        "$comment": "Generated by infra/prometheus/generate.py from "
                    "integration_monitoring/alerts/rules.json; loaded by "
                    "infra/modules/prometheus-rules.bicep. Edit those, not this file.",
        "interval": iso_duration(EVALUATION_INTERVAL),
        "groups": [{
            "name": group["name"],
            "rules": [{
                "ruleId": rule["id"],
                "alert": rule["alert"],
                "expression": rule["expr"],
                "for": iso_duration(rule["for"]),
                "severity": rule["azure_severity"],
                "channels": rule["channels"],
                "runbook": rule["runbook"],
                "labels": rule["labels"],
                "annotations": {k: v for k, v in rule["annotations"].items()
                                if k != "runbook_url"},
            } for rule in group["rules"]],
        } for group in groups],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def outputs(base: str = "") -> dict[Path, str]:
    groups = build(base)
    return {RULES_YAML: render_yaml(groups), AZURE_JSON: render_azure(groups)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when a file differs from what would be written")
    parser.add_argument("--runbook-base-url", default=os.environ.get("RUNBOOK_BASE_URL", ""),
                        help="prefix of docs/runbooks/<id>.md (default: RUNBOOK_BASE_URL, else "
                             "the repository path)")
    args = parser.parse_args(argv)
    return write_or_check(outputs(args.runbook_base_url), args.check, __file__)


if __name__ == "__main__":
    sys.exit(main())
