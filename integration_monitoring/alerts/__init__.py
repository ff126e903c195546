"""Alerts: the rule list, a local evaluator that runs it like Azure Monitor, the relay that
delivers Azure Monitor's alerts to Slack and PagerDuty, and the outbox that redelivers what
the relay could not."""

from ._delivery import Deliverer
from ._evaluator import Evaluator, StateChange
from ._outbox import (
    Outbox,
    PendingDelivery,
    RedeliveryPolicy,
    SqliteOutbox,
    TableOutbox,
    outbox_from_env,
)
from ._post import RelayPoster
from ._processing_rules import NotRepresentable, ProcessingRules
from ._redelivery import Redeliverer, RedeliveryRun, run_alert_redelivery
from ._relay import default_deliverer, relay_router
from ._routing import UNKNOWN_RULE_RUNBOOK, RouteTable, RoutingError, load_routes
from ._routing import describe as describe_routes
from ._rules import RULES_FILE, RUNBOOKS, AlertRule, iso_duration, load_rules, rule_by_id
from ._silencer import NotYours, Silencer
from ._silences import DAYS as SILENCE_DAYS
from ._silences import LABELS as SILENCE_LABELS
from ._silences import OPERATORS as SILENCE_OPERATORS
from ._silences import STATES as SILENCE_STATES
from ._silences import Silence, SilenceError

__all__ = [
    "RULES_FILE",
    "RUNBOOKS",
    "SILENCE_DAYS",
    "SILENCE_LABELS",
    "SILENCE_OPERATORS",
    "SILENCE_STATES",
    "UNKNOWN_RULE_RUNBOOK",
    "AlertRule",
    "Deliverer",
    "Evaluator",
    "NotRepresentable",
    "NotYours",
    "Outbox",
    "PendingDelivery",
    "ProcessingRules",
    "Redeliverer",
    "RedeliveryPolicy",
    "RedeliveryRun",
    "RelayPoster",
    "RouteTable",
    "RoutingError",
    "Silence",
    "SilenceError",
    "Silencer",
    "SqliteOutbox",
    "StateChange",
    "TableOutbox",
    "default_deliverer",
    "describe_routes",
    "iso_duration",
    "load_routes",
    "load_rules",
    "outbox_from_env",
    "relay_router",
    "rule_by_id",
    "run_alert_redelivery",
]
