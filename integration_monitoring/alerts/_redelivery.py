"""The redelivery timer: sends what waits in the outbox again until delivered or given up.

    Redeliverer(deliverer).run()          # one timer invocation; returns counts
    run_alert_redelivery()                # the same on the process's relay deliverer, flushed

Each run takes the entries whose next attempt is due, oldest first (Fired notices before
Resolved ones), and sends each once to
where its channel points now. Delivered: the entry is removed and `alert.delivered` recorded
(`redelivered: true`, attempts counting the relay's). A transient failure (408, 429, 5xx,
no connection) schedules the next attempt after 1, 2, 4 … minutes (capped at 30, or later if
the channel said Retry-After) and records `alert.delivery_retry`; the other entries of that
channel wait for the next run rather than hammer a channel that is down. An entry is given up,
removed and recorded as `alert.delivery_abandoned` (error) when the channel refuses it for good
(a 4xx other than 408/429), when its channel has been turned off, or when its next attempt
would fall past the bound (ALERT_REDELIVERY_HOURS after it was queued). A Resolved entry waits
while the Fired one of the same alert is still queued for that channel.

An entry a silence holds back comes due when that silence's window ends. If a silence (that
one, or another) still holds it, it waits for that window's end; if none does, it is released
(`alert.silence_released`) and sent like any queued entry, its bound counted from then.

Entries waiting in a group (a route that groups Slack messages) go out together: when the
group comes due, one message built from all its notices, retried as one.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..telemetry import Telemetry, current, get_logger
from ._delivery import HOLD_RECHECK, ChannelOutcome, Deliverer
from ._outbox import CONDITION_ORDER, Outbox, PendingDelivery, RedeliveryPolicy
from ._payload import notice_from_record
from ._routing import generic_rule, group_from_text, group_message
from ._rules import rule_by_id
from ._silences import Silence, silencing

#: How long a run holds an entry it is sending; one request is far shorter (the claim is
#: released when it is done, and runs out by itself if the run dies).
LEASE = dt.timedelta(minutes=2)


@dataclass
class RedeliveryRun:
    """What one run did, by entry."""

    delivered: int = 0
    rescheduled: int = 0
    abandoned: int = 0
    waiting: int = 0  # behind an earlier notice, or their channel failed in this run
    errors: list[str] = field(default_factory=list)


class Redeliverer:
    """Works through the outbox of `deliverer` with its settings, client and events."""

    def __init__(self, deliverer: Deliverer, *, outbox: Outbox | None = None,
                 policy: RedeliveryPolicy | None = None, budget_s: float = 40.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.deliverer = deliverer
        self.outbox = outbox if outbox is not None else deliverer.outbox
        self.policy = policy or deliverer.redelivery
        self.budget_s = budget_s  # a run stops taking entries after this, well inside a minute
        self._clock = clock

    def run(self, now: dt.datetime | None = None) -> RedeliveryRun:
        """One pass over the due entries; never raises for an entry's failure."""
        result = RedeliveryRun()
        if self.outbox is not None:
            self._run(now or self.deliverer.now(), result)
        return result

    def _run(self, now: dt.datetime, result: RedeliveryRun) -> None:
        assert self.outbox is not None
        stop_at = self._clock() + self.budget_s
        down: set[str] = set()
        try:
            waiting = self.outbox.due(now)
        except Exception as exc:  # the outbox is unreachable: try again next run
            error = f"{type(exc).__name__}: {exc}"
            result.errors.append(f"outbox: {error}")
            get_logger("alert-relay").error("alert.outbox_failed", error=error,
                                            reason="could not list the due entries")
            return
        # Fired before Resolved, so that a Resolved waiting on its Fired goes in the same run.
        due = sorted(waiting, key=lambda e: (
            CONDITION_ORDER.get(e.condition, 0), e.next_attempt_at))
        silences: list[Silence] | None = None
        groups_sent: set[tuple[str, str]] = set()
        for entry in due:
            if self._clock() >= stop_at:
                break
            if entry.held_by and silences is None:
                try:
                    silences = self.outbox.silences()
                except Exception as exc:  # try again next run rather than guess
                    result.errors.append(f"silences: {type(exc).__name__}: {exc}")
                    break
            if entry.channel in down:
                result.waiting += 1
                continue
            members = [entry]
            if entry.group:
                if (entry.channel, entry.group) in groups_sent:
                    continue
                groups_sent.add((entry.channel, entry.group))
                members = [e for e in due if (e.channel, e.group) == (entry.channel,
                                                                      entry.group)]
            # Another run (another instance's timer, or an expired silence's release) may be
            # at the same entry: whoever claims it sends it, once.
            lease = f"sending|{entry.channel}|{entry.group or entry.key}"
            try:
                if not self.outbox.claim(lease, now, now + LEASE):
                    result.waiting += 1
                    continue
            except Exception as exc:
                result.errors.append(f"{entry.channel} {entry.alert_id}: "
                                     f"{type(exc).__name__}: {exc}")
                continue
            try:
                if entry.held_by and self._still_held(entry, silences or [], now, result):
                    continue
                if entry.group:
                    self._group(members, now, result, down)
                    continue
                self._one(entry, now, result, down)
            except Exception as exc:  # one entry's storage trouble must not stop the others
                error = f"{type(exc).__name__}: {exc}"
                result.errors.append(f"{entry.channel} {entry.alert_id}: {error}")
                self.deliverer.entry_event("error", "alert.outbox_failed", entry, error=error)
            finally:
                try:
                    self.outbox.release(lease)
                except Exception:  # it runs out by itself
                    pass
        try:  # the relay's claims that ran out (a day after their notice)
            self.outbox.purge(now)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            result.errors.append(f"outbox: {error}")
            get_logger("alert-relay").error("alert.outbox_failed", error=error,
                                            reason="could not forget expired claims")

    def _still_held(self, entry: PendingDelivery, silences: list[Silence], now: dt.datetime,
                    result: RedeliveryRun) -> bool:
        """Reschedule a held entry to the end of the window that holds it, or release it."""
        assert self.outbox is not None
        labels = {"ruleId": entry.rule_id, "severity": entry.severity,
                  "tenantId": entry.tenant_id or "", "integrationId": entry.integration_id or "",
                  **entry.dimensions}
        silence = silencing(silences, labels, now)
        if silence is not None:
            window = silence.window(now)
            entry.held_by = silence.id
            entry.next_attempt_at = min(window[1], now + HOLD_RECHECK) if window else now
            self.outbox.save(entry)
            result.waiting += 1
            return True
        released_from = entry.held_by
        entry.held_by = ""
        entry.queued_at = entry.next_attempt_at = now
        saved = self.outbox.save(entry)
        if saved is None:  # another run took it
            return True
        entry.etag = saved.etag
        self.deliverer.entry_event("info", "alert.silence_released", entry,
                                   silence_id=released_from)
        return False

    def _one(self, entry: PendingDelivery, now: dt.datetime, result: RedeliveryRun,
             down: set[str]) -> None:
        assert self.outbox is not None
        if self._past_bound(entry, now, result):
            return
        if self._behind(entry):
            result.waiting += 1
            return
        outcome = self.deliverer.send_once(entry.channel, entry.body)
        entry.attempts += outcome.attempts
        if outcome.status == "delivered":
            # Recorded before the removal: it was delivered even if the removal fails (then
            # it is sent again, which PagerDuty folds by its dedup_key).
            self.deliverer.entry_event("info", "alert.delivered", entry,
                                       attempts=entry.attempts, redelivered=True,
                                       queued_at=entry.queued_at)
            result.delivered += 1
            self.outbox.remove(entry)
            return
        entry.last_error = outcome.error or ""
        if outcome.permanent:
            # No attempt means the channel is off now: its setting was removed.
            self._abandon(entry, result, (outcome.error or "") if not outcome.attempts
                          else f"permanent failure: {outcome.error}")
            return
        down.add(entry.channel)
        self._retry_later(entry, outcome, now, result, entry.redeliveries + 1)

    def _past_bound(self, entry: PendingDelivery, now: dt.datetime,
                    result: RedeliveryRun) -> bool:
        """Give the entry up if it was queued longer than the bound ago."""
        if now < self.policy.deadline(entry):
            return False
        hours = f"{self.policy.bound.total_seconds() / 3600:g} h"
        self._abandon(entry, result, f"not delivered within {hours} of being queued"
                      + (f"; last error: {entry.last_error}" if entry.last_error else ""))
        return True

    def _retry_later(self, entry: PendingDelivery, outcome: ChannelOutcome, now: dt.datetime,
                     result: RedeliveryRun, rounds: int, **extra: Any) -> None:
        """Schedule redelivery number `rounds` + 1, or give the entry up when that would fall
        past its bound."""
        assert self.outbox is not None
        entry.redeliveries = rounds
        wait = max(self.policy.delay(rounds + 1), dt.timedelta(seconds=outcome.retry_after or 0))
        if now + wait > self.policy.deadline(entry):
            hours = f"{self.policy.bound.total_seconds() / 3600:g} h"
            self._abandon(entry, result, f"gave up after {entry.attempts} attempts in {hours}: "
                          f"{outcome.error}")
            return
        entry.last_error = outcome.error or ""
        entry.next_attempt_at = now + wait
        self.outbox.save(entry)
        self.deliverer.entry_event("warn", "alert.delivery_retry", entry,
                                   attempt=entry.attempts, redelivered=True, **extra,
                                   delay_seconds=wait.total_seconds(),
                                   next_attempt_at=entry.next_attempt_at, error=outcome.error)
        result.rescheduled += 1

    def _group(self, members: list[PendingDelivery], now: dt.datetime,
               result: RedeliveryRun, down: set[str]) -> None:
        """One message for every notice of a group that is due, retried as one."""
        assert self.outbox is not None
        members = [e for e in members if not self._past_bound(e, now, result)]
        if not members:
            return
        first = members[0]
        group = group_from_text(first.group, self.deliverer.routes, first.channel)
        for entry in sorted(members, key=lambda e: CONDITION_ORDER.get(e.condition, 0)):
            group.add(notice_from_record(entry.notice or {}))
        try:
            body = group_message(group, lambda n: rule_by_id(n.rule_id) or generic_rule(
                n, self.deliverer.routes), self.deliverer.dashboard)
        except Exception as exc:  # the same entries would fail the same way every run
            for entry in members:
                self._abandon(entry, result, f"its group's message could not be built: "
                              f"{type(exc).__name__}: {exc}")
            return
        outcome = self.deliverer.send_once(first.channel, body)
        if outcome.status == "delivered":
            for entry in members:
                self.deliverer.entry_event("info", "alert.delivered", entry,
                                           attempts=entry.attempts + 1, grouped=True,
                                           group=entry.group, group_size=len(group.notices),
                                           queued_at=entry.queued_at)
                self.outbox.remove(entry)
                result.delivered += 1
            return
        # One schedule for the group, so that a notice that joined it late stays in it.
        rounds = max(e.redeliveries for e in members) + 1
        for entry in members:  # each keeps its own bound and record
            entry.attempts += outcome.attempts
            if outcome.permanent:
                self._abandon(entry, result, f"permanent failure: {outcome.error}")
                continue
            self._retry_later(entry, outcome, now, result, rounds, grouped=True)
        down.add(first.channel)

    def _behind(self, entry: PendingDelivery) -> bool:
        """Whether an earlier notice of the same alert still waits for this channel."""
        order = CONDITION_ORDER.get(entry.condition, 0)
        if order == 0:
            return False
        assert self.outbox is not None
        return any(CONDITION_ORDER.get(other.condition, 0) < order
                   for other in self.outbox.pending(entry.alert_id, entry.channel))

    def _abandon(self, entry: PendingDelivery, result: RedeliveryRun, reason: str) -> None:
        assert self.outbox is not None
        self.outbox.remove(entry)
        self.deliverer.entry_event("error", "alert.delivery_abandoned", entry,
                                   attempts=entry.attempts, reason=reason,
                                   queued_at=entry.queued_at)
        result.abandoned += 1


def run_alert_redelivery(telemetry: Telemetry | None = None,
                         deliverer: Deliverer | None = None) -> RedeliveryRun:
    """One timer invocation on the relay's own deliverer (the same outbox and settings),
    flushed so that a short-lived worker does not lose the events."""
    from ._relay import default_deliverer

    result = Redeliverer(deliverer or default_deliverer()).run()
    (telemetry or current()).flush()
    return result
