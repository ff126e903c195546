"""Timer functions, declared once: the Function app registers them, the local host runs them."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from croniter import croniter

from .queues import SettingError


@dataclass(frozen=True)
class TimerSpec:
    """A timer function: its name, the app setting holding its NCRONTAB, what it runs, and
    what checks the other settings it reads (so a bad one fails at start-up, named)."""

    name: str
    setting: str
    default: str
    run: Callable[[], Any]
    check: Callable[[Mapping[str, str]], Any] | None = None

    @property
    def schedule(self) -> str:
        """The binding expression; the Functions host resolves it from the app setting."""
        return f"%{self.setting}%"

    def resolve(self, env: Mapping[str, str] | None = None) -> str:
        """The NCRONTAB in effect (setting or default), validated."""
        env = os.environ if env is None else env
        expression = (env.get(self.setting) or "").strip() or self.default
        if len(expression.split()) != 6 or not croniter.is_valid(
                expression, second_at_beginning=True):
            raise SettingError(self.setting, f"{expression!r} is not a six-field NCRONTAB "
                               "expression ({second} {minute} {hour} {day} {month} {weekday})")
        if self.check is not None:
            self.check(env)
        return expression


def next_fire(expression: str, after: dt.datetime) -> dt.datetime:
    """When an NCRONTAB expression next fires after `after` (UTC)."""
    return croniter(expression, after, second_at_beginning=True).get_next(dt.datetime)


def _sample_queues() -> Any:
    from .queues.jobs import run_queue_sampler

    return run_queue_sampler()


def _redeliver_alerts() -> Any:
    from .alerts import run_alert_redelivery

    return run_alert_redelivery()


def _redelivery_settings(env: Mapping[str, str]) -> Any:
    from .alerts import RedeliveryPolicy

    return RedeliveryPolicy.from_env(env)


def _restate_integrations() -> Any:
    from .admin import run_restatement

    return run_restatement()


def _silence_paused() -> Any:
    from .admin import run_paused_silences

    return run_paused_silences()


QUEUE_SAMPLER = TimerSpec(
    name="sample_queue_depths",
    setting="QUEUE_SAMPLE_SCHEDULE",
    default="0 * * * * *",  # every minute, on the minute
    run=_sample_queues,
)

ALERT_REDELIVERY = TimerSpec(
    name="redeliver_alerts",
    setting="ALERT_REDELIVERY_SCHEDULE",
    # Every minute, half a minute after the sampler: the outbox's shortest wait is a minute.
    default="30 * * * * *",
    run=_redeliver_alerts,
    check=_redelivery_settings,
)

INTEGRATION_RESTATEMENT = TimerSpec(
    name="restate_integrations",
    setting="INTEGRATION_RESTATEMENT_SCHEDULE",
    default="0 15 0 * * *",  # daily, a quarter past midnight UTC
    run=_restate_integrations,
)

PAUSED_SILENCES = TimerSpec(
    name="silence_paused_integrations",
    setting="PAUSED_SILENCE_SCHEDULE",
    default="0 */5 * * * *",  # every five minutes: one status question each time
    run=_silence_paused,
)

TIMERS: tuple[TimerSpec, ...] = (QUEUE_SAMPLER, ALERT_REDELIVERY, INTEGRATION_RESTATEMENT,
                                 PAUSED_SILENCES)
