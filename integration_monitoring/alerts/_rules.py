"""The alert rules, read from rules.json beside this module: the one list that Bicep, the
generators, the local evaluator and the relay all use. runbooks/<id>.md explains each; the
app serves them at docs/runbooks/<id>.md."""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RULES_FILE = HERE / "rules.json"
RUNBOOKS = HERE / "runbooks"
OPERATORS = {
    "GreaterThan": lambda v, t: v > t, "GreaterThanOrEqual": lambda v, t: v >= t,
    "LessThan": lambda v, t: v < t, "LessThanOrEqual": lambda v, t: v <= t,
    "Equal": lambda v, t: v == t,
}
CHANNELS = ("email", "slack", "pagerduty")
_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?$")


def iso_duration(text: str) -> dt.timedelta:
    """`PT5M`, `PT1H`, `P1D` as a timedelta (the subset alert rules use)."""
    match = _DURATION.match(text)
    if not match or text in ("P", "PT"):
        raise ValueError(f"not an ISO 8601 duration of days, hours, minutes: {text!r}")
    days, hours, minutes = (int(g or 0) for g in match.groups())
    return dt.timedelta(days=days, hours=hours, minutes=minutes)


@dataclass(frozen=True)
class AlertRule:
    id: str
    title: str
    description: str
    severity: int  # Azure Sev0..Sev4
    query: str
    window: dt.timedelta
    frequency: dt.timedelta
    time_aggregation: str
    measure: str
    operator: str
    threshold: float
    dimensions: tuple[str, ...]
    failing_periods: int
    min_failing_periods: int
    channels: tuple[str, ...]
    runbook: str
    seed_condition: str | None = None

    @property
    def severity_name(self) -> str:
        return f"Sev{self.severity}"

    def breached(self, value: float | None) -> bool:
        return value is not None and OPERATORS[self.operator](value, self.threshold)

    def runbook_url(self, base: str | None = None) -> str:
        """The runbook's address: under RUNBOOK_BASE_URL when set, else under the Function
        app's own address (it serves the runbooks), else the bare path the local app serves."""
        if base is None:
            host = os.environ.get("WEBSITE_HOSTNAME", "")  # set by Azure in a Function app
            base = os.environ.get("RUNBOOK_BASE_URL", "") or (f"https://{host}" if host else "")
        return f"{base.rstrip('/')}/{self.runbook}" if base else self.runbook

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> AlertRule:
        periods = entry.get("failingPeriods") or {}
        rule = cls(
            id=entry["id"], title=entry["title"], description=entry["description"],
            severity=int(entry["severity"]), query="\n".join(entry["query"]),
            window=iso_duration(entry["windowSize"]),
            frequency=iso_duration(entry["evaluationFrequency"]),
            time_aggregation=entry["timeAggregation"], measure=entry["metricMeasureColumn"],
            operator=entry["operator"], threshold=float(entry["threshold"]),
            dimensions=tuple(entry.get("dimensions", ())),
            failing_periods=int(periods.get("numberOfEvaluationPeriods", 1)),
            min_failing_periods=int(periods.get("minFailingPeriodsToAlert", 1)),
            channels=tuple(entry["channels"]), runbook=entry["runbook"],
            seed_condition=entry.get("seedCondition"),
        )
        if rule.operator not in OPERATORS:
            raise ValueError(f"{rule.id}: unknown operator {rule.operator}")
        if not 0 <= rule.severity <= 4:
            raise ValueError(f"{rule.id}: severity must be 0..4")
        if not set(rule.channels) <= set(CHANNELS):
            raise ValueError(f"{rule.id}: channels must be among {CHANNELS}")
        if not 1 <= rule.min_failing_periods <= rule.failing_periods:
            raise ValueError(f"{rule.id}: failing periods out of range")
        return rule


@functools.cache
def load_rules(path: str | None = None) -> tuple[AlertRule, ...]:
    """Every rule in the file (cached; the file ships with the code)."""
    data = json.loads(Path(path or RULES_FILE).read_text())
    rules = tuple(AlertRule.from_json(entry) for entry in data["rules"])
    ids = [rule.id for rule in rules]
    if len(set(ids)) != len(ids):
        raise ValueError("alert rule ids must be unique")
    return rules


def rule_by_id(rule_id: str) -> AlertRule | None:
    return next((rule for rule in load_rules() if rule.id == rule_id), None)
