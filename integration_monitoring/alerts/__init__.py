"""Alerts: the rule list, a local evaluator that runs it like Azure Monitor, and the relay
that delivers Azure Monitor's alerts to Slack and PagerDuty."""

from ._evaluator import Evaluator, StateChange
from ._post import RelayPoster
from ._rules import AlertRule, iso_duration, load_rules, rule_by_id

__all__ = [
    "AlertRule",
    "Evaluator",
    "RelayPoster",
    "StateChange",
    "iso_duration",
    "load_rules",
    "rule_by_id",
]
