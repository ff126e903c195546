"""Runs the alert rules on the local store the way Azure Monitor runs log search alerts.

Each rule runs at its evaluation frequency over its window (the tables limited to the
window, `now()` the evaluation time). Rows are split by the rule's dimensions; a dimension
combination is failing in a period when its measure, aggregated as the rule says, breaches
the threshold. It fires when at least `minFailingPeriodsToAlert` of the last
`numberOfEvaluationPeriods` periods failed, and resolves automatically when that no longer
holds. Every change of state is posted to the relay as a common alert schema payload.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .._time import naive_utc
from ..store import TelemetryStore
from ._payload import build_log_alert
from ._rules import AlertRule, load_rules

Dimensions = tuple[tuple[str, str], ...]
_NAMESPACE = uuid.UUID("6f1c2f7e-4a4e-4df0-9a53-9c1f0d6a1b11")


@dataclass
class Firing:
    alert_id: str
    fired_at: dt.datetime
    value: float | None


@dataclass
class StateChange:
    rule: AlertRule
    condition: str  # Fired | Resolved
    dimensions: dict[str, str]
    value: float | None
    payload: dict[str, Any]


@dataclass
class _RuleState:
    due: dt.datetime | None = None
    history: dict[Dimensions, deque[bool]] = field(default_factory=dict)
    active: dict[Dimensions, Firing] = field(default_factory=dict)


def aggregate(kind: str, values: list[float]) -> float | None:
    """Azure's timeAggregation over the rows of one dimension combination."""
    if kind == "Count":
        return float(len(values))
    numbers = [v for v in values if v is not None and not math.isnan(v)]
    if not numbers:
        return None
    return {"Maximum": max, "Minimum": min, "Total": sum,
            "Average": lambda xs: sum(xs) / len(xs)}[kind](numbers)


class Evaluator:
    """Evaluates rules on a store and hands state changes to `post` (the relay)."""

    def __init__(self, store: TelemetryStore, *, rules: Iterable[AlertRule] | None = None,
                 post: Callable[[dict[str, Any]], Any] | None = None,
                 workspace_id: str = "local") -> None:
        self.store = store
        self.rules = tuple(rules if rules is not None else load_rules())
        self.post = post
        self.workspace_id = workspace_id
        self._state = {rule.id: _RuleState() for rule in self.rules}

    def run_due(self, now: dt.datetime) -> list[StateChange]:
        """Evaluate every rule whose next evaluation is due by `now`."""
        changes = []
        for rule in self.rules:
            state = self._state[rule.id]
            if state.due is None or state.due <= now:
                changes.extend(self.evaluate(rule, now))
                state.due = now + rule.frequency
        return changes

    def run_once(self, now: dt.datetime) -> list[StateChange]:
        """Evaluate every rule now, whatever its schedule."""
        return [change for rule in self.rules for change in self.evaluate(rule, now)]

    def active(self) -> list[tuple[AlertRule, dict[str, str], Firing]]:
        return [(rule, dict(dims), firing) for rule in self.rules
                for dims, firing in self._state[rule.id].active.items()]

    def evaluate(self, rule: AlertRule, now: dt.datetime) -> list[StateChange]:
        since = now - rule.window
        measured = self.measure(rule, since, now)
        state = self._state[rule.id]
        changes = []
        for dims in set(measured) | set(state.history) | set(state.active):
            value = measured.get(dims)
            history = state.history.setdefault(dims, deque(maxlen=rule.failing_periods))
            history.append(rule.breached(value))
            alerting = sum(history) >= rule.min_failing_periods
            firing = state.active.get(dims)
            if alerting and firing is None:
                firing = Firing(_alert_id(rule, dims, now), now, value)
                state.active[dims] = firing
                changes.append(self._change(rule, "Fired", dims, value, firing, since, now))
            elif not alerting and firing is not None:
                del state.active[dims]
                changes.append(self._change(rule, "Resolved", dims, value, firing, since, now))
            if not any(history) and dims not in state.active:
                del state.history[dims]  # nothing to remember about a quiet combination
        for change in changes:
            if self.post is not None:
                self.post(change.payload)
        return changes

    def measure(self, rule: AlertRule, since: dt.datetime,
                until: dt.datetime) -> dict[Dimensions, float | None]:
        """The rule's measure per dimension combination over [since, until]."""
        result = self.store.kql(rule.query, timespan=(since, until), now=naive_utc(until))
        grouped: dict[Dimensions, list[float]] = {}
        for row in result.dicts():
            dims = tuple((name, "" if row.get(name) is None else str(row[name]))
                         for name in rule.dimensions)
            value = row.get(rule.measure)
            grouped.setdefault(dims, []).append(None if value is None else float(value))
        return {dims: aggregate(rule.time_aggregation, values)
                for dims, values in grouped.items()}

    def _change(self, rule: AlertRule, condition: str, dims: Dimensions, value: float | None,
                firing: Firing, since: dt.datetime, now: dt.datetime) -> StateChange:
        payload = build_log_alert(
            rule, condition=condition, dimensions=dict(dims), value=value,
            window_start=since, window_end=now, fired_at=firing.fired_at,
            resolved_at=now if condition == "Resolved" else None, alert_id=firing.alert_id,
            workspace_id=self.workspace_id)
        return StateChange(rule, condition, dict(dims), value, payload)


def _alert_id(rule: AlertRule, dims: Dimensions, fired_at: dt.datetime) -> str:
    """Stable per alert instance, as Azure's alert ids are."""
    return str(uuid.uuid5(_NAMESPACE, f"{rule.id}|{dims}|{fired_at.isoformat()}"))

