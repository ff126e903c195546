"""Deliver an alert notice to its rule's channels: Slack, PagerDuty, and (by Azure) e-mail.

    deliverer = Deliverer.from_env()
    report = deliverer.deliver(parse_alert(body), rule_by_id(...))
    report.summary()  # {"alertId", "ruleId", "condition", "duplicate", "channels": {...}}

- **email** is sent by the Azure action group itself; the relay only records it.
- The relayed channels (_channels.py: Slack's webhook and PagerDuty's Events API v2, or any
  other `Channel` given to the deliverer) each format the notice, send it and classify the
  answer; what follows is the same for all of them.

A channel whose setting is unset is off: recorded as skipped, not as an error. Each channel is
retried on 408/429/5xx and connection errors with exponential backoff (honouring Retry-After),
within a bounded number of attempts and a time budget, on its own thread, so one failing
channel neither stops nor delays the others beyond the budget. The default budget (8 s) keeps a
synchronous relay under the 10 s an action group waits for its first webhook call.

With an outbox (`Deliverer.from_env` always has one), a channel still failing after the budget
is queued there with its body, and the redelivery timer (`Redeliverer`) keeps trying for up to
ALERT_REDELIVERY_HOURS. A 4xx other than 408/429 is permanent and is given up at once. While a
notice of an alert is queued for a channel, a later notice of the same alert on that channel
is queued behind it, so a channel never sees Resolved before Fired.

Every step is a telemetry event of the `alert-relay` service; together they are the alert
history: `alert.fired` / `alert.resolved` (once per notice), `alert.delivered`,
`alert.delivery_retry`, `alert.delivery_failed` (`queued: true` when the outbox took it),
`alert.delivery_queued` (behind an earlier notice), `alert.delivery_abandoned` (given up),
`alert.duplicate_dropped`, `alert.channel_skipped` and `alert.delivery_silenced`.

Silences (kept in the outbox's store, see `_silences`): a Fired notice a silence holds is
recorded (`silencedBy` on `alert.fired`) and, for each relayed channel, kept in the outbox
as held (`held_by`) until the silence ends, when the redelivery timer sends it if the alert
still fires. A Resolved notice whose Fired is still held on a channel removes it and is not
sent either: that channel never heard of the alert. A Resolved whose Fired was sent is sent,
silence or not, so that no PagerDuty incident is left open.

Routes (`_routing`) choose the receivers. A route that groups sends its Slack receivers one
message for the alerts of the same group values within its wait: each notice waits in the
outbox in its group (`alert.delivery_grouped`), and the redelivery timer sends the group's
message when the first one's wait is over (`alert.delivered` with `grouped: true` for each).
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import datetime as dt
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from ..telemetry import get_logger
from ._channels import (
    Channel,
    Dashboard,
    Verdict,
    settings_from_env,
    standard_channels,
)
from ._outbox import (
    CONDITION_ORDER,
    Outbox,
    PendingDelivery,
    RedeliveryPolicy,
    outbox_from_env,
    utc_now,
)
from ._payload import AlertNotice, notice_record
from ._routing import (
    RouteTable,
    Selection,
    group_text,
    load_routes,
    receiver_channels,
    select,
)
from ._rules import AlertRule
from ._silences import Silence, labels_of, silencing

#: Dimensions copied into every event as flat metadata keys so KQL can filter on them
#: (integrationId and tenantId go to the event's top level, where the schema has them).
FLAT_DIMENSIONS = ("adapterType", "queue")
#: Receiver types the Azure action group sends itself: the relay records them, sends nothing.
ACTION_GROUP_TYPES = frozenset({"email"})
#: A held notice is looked at again at least this often, so that a silence expired while it
#: was being held (by another instance, between its read and its write) lets it go soon.
HOLD_RECHECK = dt.timedelta(minutes=5)

log = get_logger("alert-relay")


@dataclass
class ChannelOutcome:
    """What happened on one channel: delivered, queued (for redelivery), failed, skipped,
    duplicate, superseded (a Fired that arrived after its Resolved), silenced, grouped (waits
    for its group's message) or action_group."""

    channel: str
    status: str
    attempts: int = 0
    error: str | None = None
    #: The channel refused it for good (a 4xx other than 408/429, see
    #: _channels.is_permanent): the same body would be refused again.
    permanent: bool = False
    #: The body that was sent (kept for the outbox), once it was built.
    body: dict[str, Any] | None = field(default=None, repr=False)
    #: Seconds the channel asked to wait (Retry-After) on its last answer.
    retry_after: float | None = None


@dataclass
class DeliveryReport:
    """The outcome of delivering one notice to every channel of its rule."""

    alert_id: str
    rule_id: str
    condition: str
    duplicate: bool
    outcomes: dict[str, ChannelOutcome] = field(default_factory=dict)
    #: The silence that held this notice back, if one did.
    silenced_by: str | None = None
    #: The route that chose its receivers.
    route: str | None = None

    def summary(self) -> dict[str, Any]:
        """The relay's JSON answer."""
        return {
            "alertId": self.alert_id, "ruleId": self.rule_id, "condition": self.condition,
            "duplicate": self.duplicate, "silencedBy": self.silenced_by, "route": self.route,
            "channels": {name: o.status for name, o in self.outcomes.items()},
            "errors": {name: o.error for name, o in self.outcomes.items()
                       if o.status in ("failed", "queued") and o.error},
        }


class SeenKeys:
    """Keys remembered for a while: an in-memory TTL set, bounded in size.

    It lives in one process: the relay's claims are kept where the outbox lives, which every
    instance shares, and only a relay without an outbox, or one whose outbox cannot be
    reached, falls back to this.
    """

    def __init__(self, ttl: float, max_entries: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._expiry: OrderedDict[tuple[str, ...], float] = OrderedDict()
        self._lock = threading.Lock()

    def claim(self, key: tuple[str, ...]) -> bool:
        """True the first time `key` is claimed within the TTL, False afterwards."""
        with self._lock:
            now = self._clock()
            while self._expiry and next(iter(self._expiry.values())) <= now:
                self._expiry.popitem(last=False)
            if key in self._expiry:
                return False
            self._expiry[key] = now + self.ttl
            while len(self._expiry) > self.max_entries:
                self._expiry.popitem(last=False)
            return True

    def release(self, key: tuple[str, ...]) -> None:
        """Forget `key`, so that the next claim succeeds (a failed delivery may be retried)."""
        with self._lock:
            self._expiry.pop(key, None)

    def holds(self, key: tuple[str, ...]) -> bool:
        with self._lock:
            expiry = self._expiry.get(key)
            return expiry is not None and expiry > self._clock()


class Deliverer:
    """Sends notices to its channels; long-lived (it remembers what it delivered).

    The channels are Slack and PagerDuty from their settings (each off while unset), then
    the other receivers of `routes` (default: the routes file), then `channels` (one named like
    another replaces it). `routes` says which of them each alert goes to. `outbox` keeps what
    could not be delivered for the redelivery timer (None: a failure is final); `redelivery`
    says how long and how often; `now` is the wall clock of its times.
    """

    def __init__(self, *, slack_webhook_url: str | None = None,
                 pagerduty_routing_key: str | None = None,
                 pagerduty_events_url: str | None = None,
                 dashboard_base_url: str | None = None,
                 channels: Iterable[Channel] = (),
                 timeout: float = 4.0, max_attempts: int = 4, backoff_base: float = 0.5,
                 backoff_cap: float = 4.0, budget: float = 8.0, dedup_ttl: float = 86_400.0,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 outbox: Outbox | None = None, redelivery: RedeliveryPolicy | None = None,
                 now: Callable[[], dt.datetime] = utc_now,
                 routes: RouteTable | None = None) -> None:
        self.dashboard = Dashboard(dashboard_base_url or "")
        self.routes = routes if routes is not None else load_routes()
        standard = standard_channels(self.dashboard, slack_webhook_url=slack_webhook_url,
                                     pagerduty_routing_key=pagerduty_routing_key,
                                     pagerduty_events_url=pagerduty_events_url)
        named = {c.name: c for c in standard}
        for receiver in receiver_channels(self.routes, os.environ, self.dashboard,
                                          pagerduty_events_url):
            named.setdefault(receiver.name, receiver)  # the standard two keep their settings
        self.channels: dict[str, Channel] = {**named, **{c.name: c for c in channels}}
        self.timeout = timeout
        self.max_attempts = max(1, max_attempts)
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.budget = budget
        self._sleep = sleep
        self._clock = clock
        self.outbox = outbox
        self.redelivery = redelivery or RedeliveryPolicy()
        self.now = now
        self.dedup_ttl = dedup_ttl
        self._seen = SeenKeys(dedup_ttl, clock=clock)  # when there is no outbox to share
        # One client for every channel: they share its connections, and close() closes them.
        self._client = httpx.Client(timeout=timeout, follow_redirects=False,
                                    headers={"User-Agent": "integration-monitoring-alert-relay"})

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **options: Any) -> Deliverer:
        """Settings from SLACK_WEBHOOK_URL, PAGERDUTY_ROUTING_KEY, PAGERDUTY_EVENTS_URL and
        DASHBOARD_BASE_URL, the outbox from ALERT_OUTBOX_TABLE_ENDPOINT (else SQLite beside
        the local store) and its bound from ALERT_REDELIVERY_HOURS; keyword options
        (timeouts, backoff, outbox, channels) pass through."""
        env = os.environ if env is None else env
        options.setdefault("redelivery", RedeliveryPolicy.from_env(env))
        options.setdefault("routes", load_routes(env=env))  # a bad file stops the start
        if "outbox" not in options:
            options["outbox"] = outbox_from_env(env)
        return cls(**settings_from_env(env),
                   dashboard_base_url=env.get("DASHBOARD_BASE_URL", "").strip(), **options)

    @property
    def dashboard_base_url(self) -> str:
        return self.dashboard.base_url

    # The standard channels' settings, read where they live: on the channel, which reads them
    # again each time it sends.
    @property
    def slack_webhook_url(self) -> str | None:
        return getattr(self.channels.get("slack"), "webhook_url", None)

    @property
    def pagerduty_routing_key(self) -> str | None:
        return getattr(self.channels.get("pagerduty"), "routing_key", None)

    @property
    def pagerduty_events_url(self) -> str | None:
        return getattr(self.channels.get("pagerduty"), "events_url", None)

    def close(self) -> None:
        self._client.close()
        if self.outbox is not None:
            self.outbox.close()

    # -- delivery ---------------------------------------------------------------------------

    def _claim(self, where: dict[str, Any], *parts: str) -> bool:
        """True the first time, on any instance, within dedup_ttl (the outbox's store holds
        the claims; this process's memory when there is none or it cannot be reached)."""
        if self.outbox is not None:
            try:
                now = self.now()
                return self.outbox.claim("|".join(parts), now,
                                         now + dt.timedelta(seconds=self.dedup_ttl))
            except Exception as exc:
                self._store_trouble(where, exc)
        return self._seen.claim(parts)

    def _claimed(self, where: dict[str, Any], *parts: str) -> bool:
        if self.outbox is not None:
            try:
                return self.outbox.claimed("|".join(parts), self.now())
            except Exception as exc:
                self._store_trouble(where, exc)
        return self._seen.holds(parts)

    def _release(self, where: dict[str, Any], *parts: str) -> None:
        self._seen.release(parts)
        if self.outbox is not None:
            try:
                self.outbox.release("|".join(parts))
            except Exception as exc:
                self._store_trouble(where, exc)

    def _store_trouble(self, where: dict[str, Any], exc: Exception) -> None:
        get_logger("alert-relay").warn(
            "alert.outbox_failed", tenant_id=where.get("tenant_id"),
            integration_id=where.get("integration_id"), error=f"{type(exc).__name__}: {exc}",
            reason="the relay's claims are kept in memory meanwhile")

    def silences(self) -> list[Silence]:
        """Every silence kept (none without an outbox); raises when the store cannot say."""
        return [] if self.outbox is None else self.outbox.silences()

    def _silence_for(self, notice: AlertNotice, where: dict[str, Any],
                     at: dt.datetime | None = None) -> Silence | None:
        """The silence holding this notice at `at` (default now)."""
        if self.outbox is None:
            return None
        try:
            return silencing(self.outbox.silences(), labels_of(notice), at or self.now())
        except Exception as exc:  # unknown silences: notifying beats staying quiet
            self._event("warn", "alert.outbox_failed", notice, where,
                        error=f"{type(exc).__name__}: {exc}",
                        reason="could not read the silences; the notice is delivered")
            return None

    def deliver(self, notice: AlertNotice, rule: AlertRule) -> DeliveryReport:
        """Send `notice` to each of `rule.channels` once; never raises for a channel's failure."""
        where = self._where(notice)
        first = self._claim(where, "notice", notice.alert_id, notice.condition)
        report = DeliveryReport(notice.alert_id, rule.id, notice.condition, duplicate=not first)
        # Azure Monitor retries webhooks, so a Fired may come after its Resolved: the alert
        # stays resolved (recorded, not delivered), whichever instance took the Resolved.
        late = notice.fired and self._claimed(where, "notice", notice.alert_id, "Resolved")
        silence = None if late or not notice.fired else self._silence_for(notice, where)
        # A Resolved whose Fired never reached the relay, fired while a silence held it: the
        # silence's processing rule stopped that Fired in Azure, so no one heard of the alert.
        unheard = None if notice.fired or self._claimed(
            where, "notice", notice.alert_id, "Fired") else self._silence_for(
                notice, where, notice.fired_at)
        report.silenced_by = silence.id if silence else unheard.id if unheard else None
        chosen = select(self.routes, labels_of(notice), rule.channels)
        report.route = chosen.route
        names = [receiver.name for receiver in chosen.receivers]
        by_agroup = {r.name for r in chosen.receivers if r.type in ACTION_GROUP_TYPES}
        grouped = {r.name for r in chosen.grouped}
        if first:
            self._record_notice(notice, rule, where, late=late, silence=silence,
                                route=chosen.route, receivers=names)
        sends: dict[str, Callable[[], ChannelOutcome]] = {}
        for name in names:
            if late and name not in by_agroup:
                report.outcomes[name] = ChannelOutcome(name, "superseded")
                self._event("info", "alert.channel_skipped", notice, where, channel=name,
                            reason="resolved already: this Fired arrived after its Resolved")
                continue
            if name in by_agroup:
                report.outcomes[name] = ChannelOutcome(name, "action_group")
                self._event("info", "alert.channel_skipped", notice, where, channel=name,
                            reason="handled by action group")
                continue
            channel = self.channels.get(name)
            if channel is None or not channel.ready():
                report.outcomes[name] = ChannelOutcome(name, "skipped")
                self._event("info", "alert.channel_skipped", notice, where, channel=name,
                            reason=f"{_setting(name, channel)} is not set")
                continue
            if not self._claim(where, "sent", notice.alert_id, notice.condition, name):
                report.outcomes[name] = ChannelOutcome(name, "duplicate")
                self._event("info", "alert.duplicate_dropped", notice, where, channel=name)
                continue
            held = self._hold(channel, notice, rule, where, silence, unheard)
            if held is not None:
                report.outcomes[name] = held
                continue
            if name in grouped:
                joined = self._join_group(channel, notice, rule, where, chosen)
                if joined is not None:
                    report.outcomes[name] = joined
                    continue
            queued = self._behind_queue(channel, notice, rule, where)
            if queued is not None:
                report.outcomes[name] = queued
                continue
            sends[name] = self._sender(channel, notice, rule)
        report.outcomes.update(self._run(sends, notice, where))
        report.outcomes = {c: report.outcomes[c] for c in names if c in report.outcomes}
        return report

    def _sender(self, channel: Channel, notice: AlertNotice,
                rule: AlertRule) -> Callable[[], ChannelOutcome]:
        # The body is built inside the call, so a builder error is that channel's failure
        # (and releases its claim) instead of escaping the request.
        def send() -> ChannelOutcome:
            body = channel.body(notice, rule)
            outcome = self._post(channel, body, notice)
            outcome.body = body
            return outcome

        return send

    def _hold(self, channel: Channel, notice: AlertNotice, rule: AlertRule,
              where: dict[str, Any], silence: Silence | None,
              unheard: Silence | None) -> ChannelOutcome | None:
        """Keep a silenced Fired in the outbox until its silence ends; drop a Resolved whose
        Fired is held there, or never came. None: send as usual."""
        name = channel.name
        if unheard is not None:
            self._event("info", "alert.delivery_silenced", notice, where, channel=name,
                        silence_id=unheard.id,
                        reason="its Fired was held back by the silence and never sent")
            return ChannelOutcome(name, "silenced")
        if silence is not None:
            try:
                now = self.now()
                window = silence.window(now)
                due = min(window[1], now + HOLD_RECHECK) if window else now
                self.outbox.add(replace(  # type: ignore[union-attr]
                    self._pending(notice, name, channel.body(notice, rule), where, now, due,
                                  attempts=0),
                    held_by=silence.id))
            except Exception as exc:  # cannot hold it: sending beats losing it
                self._event("warn", "alert.outbox_failed", notice, where, channel=name,
                            error=f"{type(exc).__name__}: {exc}",
                            reason="could not hold the silenced notice; it is sent")
                return None
            self._event("info", "alert.delivery_silenced", notice, where, channel=name,
                        silence_id=silence.id, reason="held until the silence ends")
            return ChannelOutcome(name, "silenced")
        if notice.fired or self.outbox is None:
            return None
        try:
            held = [e for e in self.outbox.pending(notice.alert_id, name)
                    if e.held_by and e.condition == "Fired"]
            removed = all([self.outbox.remove(entry) for entry in held])
        except Exception as exc:
            self._event("warn", "alert.outbox_failed", notice, where, channel=name,
                        error=f"{type(exc).__name__}: {exc}")
            return None
        if not held or not removed:  # released meanwhile: this Resolved follows its Fired
            return None
        self._event("info", "alert.delivery_silenced", notice, where, channel=name,
                    silence_id=held[0].held_by,
                    reason="resolved while its Fired was held back: neither is sent")
        return ChannelOutcome(name, "silenced")

    def _join_group(self, channel: Channel, notice: AlertNotice, rule: AlertRule,
                    where: dict[str, Any], chosen: Selection) -> ChannelOutcome | None:
        """Wait in the outbox with the open group of this route and group values on this
        channel (opening one, due after the route's wait). None: send it on its own (no
        outbox, or this alert already waits there for another reason)."""
        if self.outbox is None:
            return None
        name = channel.name
        group = group_text(chosen)
        try:
            waiting = [e for e in self.outbox.entries() if e.channel == name]
            if any(e.alert_id == notice.alert_id and e.group != group for e in waiting):
                return None  # behind a failed or held notice of its own: keep the order
            now = self.now()
            due = min((e.next_attempt_at for e in waiting if e.group == group),
                      default=now + dt.timedelta(seconds=chosen.wait_seconds))
            entry = replace(self._pending(notice, name, channel.body(notice, rule), where, now,
                                          due, attempts=0),
                            group=group, notice=notice_record(notice))
            self.outbox.add(entry)
        except Exception as exc:  # cannot wait: sending alone beats not sending
            self._event("warn", "alert.outbox_failed", notice, where, channel=name,
                        error=f"{type(exc).__name__}: {exc}",
                        reason="could not group the notice; it is sent on its own")
            return None
        self._event("info", "alert.delivery_grouped", notice, where, channel=name,
                    group=group, due_at=due)
        return ChannelOutcome(name, "grouped")

    def _behind_queue(self, channel: Channel, notice: AlertNotice, rule: AlertRule,
                      where: dict[str, Any]) -> ChannelOutcome | None:
        """Queue `notice` instead of sending it when this alert already waits in the outbox
        for `channel`: the same notice is not sent twice, and Resolved stays behind Fired."""
        if self.outbox is None:
            return None
        name = channel.name
        try:
            waiting = self.outbox.pending(notice.alert_id, name)
        except Exception as exc:  # the outbox is down: sending beats not sending
            self._event("warn", "alert.outbox_failed", notice, where, channel=name,
                        error=f"{type(exc).__name__}: {exc}")
            return None
        if any(e.condition == notice.condition for e in waiting):
            self._event("info", "alert.duplicate_dropped", notice, where, channel=name,
                        reason="queued already for redelivery")
            return ChannelOutcome(name, "queued", 0, "queued already for redelivery")
        order = CONDITION_ORDER.get(notice.condition, 0)
        earlier = [e for e in waiting if CONDITION_ORDER.get(e.condition, 0) < order]
        if not earlier:
            return None
        try:
            body = channel.body(notice, rule)
            now = self.now()
            self.outbox.add(self._pending(notice, name, body, where, now, now, attempts=0))
        except Exception as exc:
            self._event("warn", "alert.outbox_failed", notice, where, channel=name,
                        error=f"{type(exc).__name__}: {exc}")
            return None  # sending out of order beats not sending at all
        self._event("info", "alert.delivery_queued", notice, where, channel=name,
                    reason=f"waiting for the {earlier[0].condition} notice of this alert")
        return ChannelOutcome(name, "queued", 0,
                              f"waiting for the {earlier[0].condition} notice of this alert")

    def _pending(self, notice: AlertNotice, channel: str, body: dict[str, Any],
                 where: dict[str, Any], queued_at: dt.datetime, next_attempt_at: dt.datetime,
                 attempts: int, error: str = "") -> PendingDelivery:
        return PendingDelivery(
            alert_id=notice.alert_id, condition=notice.condition, channel=channel,
            rule_id=notice.rule_id, severity=notice.severity_name, body=body,
            queued_at=queued_at, next_attempt_at=next_attempt_at,
            tenant_id=where["tenant_id"], integration_id=where["integration_id"],
            dimensions={k: v for k, v in where.items()
                        if k not in ("tenant_id", "integration_id")},
            attempts=attempts, last_error=error or "")

    def _queue(self, outbox: Outbox, outcome: ChannelOutcome, notice: AlertNotice,
               where: dict[str, Any]) -> ChannelOutcome:
        """Put a failed channel in the outbox; the outcome says whether that worked."""
        now = self.now()
        first = now + self.redelivery.delay(1)
        try:
            if outcome.body is None:
                raise ValueError("the body was never built")
            outbox.add(self._pending(
                notice, outcome.channel, outcome.body, where, now,
                max(first, now + dt.timedelta(seconds=outcome.retry_after or 0)),
                outcome.attempts, outcome.error or ""))
        except Exception as exc:
            outcome.error = f"{outcome.error} (could not queue it: {type(exc).__name__}: {exc})"
            return outcome
        outcome.status = "queued"
        return outcome

    def _run(self, sends: dict[str, Callable[[], ChannelOutcome]], notice: AlertNotice,
             where: dict[str, Any]) -> dict[str, ChannelOutcome]:
        """Each channel on its own thread; an exception in one is that channel's failure."""
        outcomes: dict[str, ChannelOutcome] = {}
        if not sends:
            return outcomes
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(sends),
                                                   thread_name_prefix="alert-relay") as pool:
            futures = {channel: pool.submit(contextvars.copy_context().run, send)
                       for channel, send in sends.items()}
            for channel, future in futures.items():
                try:
                    outcome = future.result()
                except Exception as exc:  # a bug in a builder must not sink the other channel
                    outcome = ChannelOutcome(channel, "failed", 0, f"{type(exc).__name__}: {exc}")
                outcomes[channel] = outcome
                if outcome.status == "delivered":
                    self._event("info", "alert.delivered", notice, where, channel=channel,
                                attempts=outcome.attempts)
                    continue
                if self.outbox is not None and not outcome.permanent:
                    outcome = outcomes[channel] = self._queue(self.outbox, outcome, notice,
                                                              where)
                if outcome.status == "queued":
                    # The claim stays: the outbox delivers it, a repeat of it is a duplicate.
                    self._event("warn", "alert.delivery_failed", notice, where,
                                channel=channel, attempts=outcome.attempts, error=outcome.error,
                                queued=True)
                    continue
                self._release(where, "sent", notice.alert_id, notice.condition, channel)
                self._event("error", "alert.delivery_failed", notice, where,
                            channel=channel, attempts=outcome.attempts, error=outcome.error,
                            queued=False)
                if outcome.permanent:
                    self._event("error", "alert.delivery_abandoned", notice, where,
                                channel=channel, attempts=outcome.attempts,
                                reason=f"permanent failure: {outcome.error}")
        return outcomes

    def _post(self, channel: Channel, body: dict[str, Any],
              notice: AlertNotice) -> ChannelOutcome:
        """Send with retries while the channel says it is worth it, within attempts and
        budget."""
        name = channel.name
        deadline = self._clock() + self.budget
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - self._clock()
            tried = self._attempt(channel, body, max(0.05, min(self.timeout, remaining)))
            if tried.status == "delivered" or tried.permanent:
                tried.attempts = attempt
                return tried
            error, retry_after = tried.error, tried.retry_after
            if attempt >= self.max_attempts:
                return ChannelOutcome(name, "failed", attempt,
                                      f"{error} (gave up after {attempt} attempts)",
                                      retry_after=retry_after)
            delay = retry_after if retry_after is not None else min(
                self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
            if self._clock() + delay >= deadline:
                return ChannelOutcome(name, "failed", attempt,
                                      f"{error} (gave up: retrying in {delay:g}s would pass the "
                                      f"{self.budget:g}s delivery budget)",
                                      retry_after=retry_after)
            self._event("warn", "alert.delivery_retry", notice, self._where(notice),
                        channel=name, attempt=attempt, delay_seconds=round(delay, 3),
                        error=error)
            self._sleep(delay)

    def send_once(self, channel: str, body: dict[str, Any]) -> ChannelOutcome:
        """One request of a queued body through the channel object named `channel`, to where
        it points now (the redelivery timer retries across runs, not within one)."""
        found = self.channels.get(channel)
        if found is None or not found.ready():
            return ChannelOutcome(channel, "failed", 0, f"{_setting(channel, found)} is not set",
                                  permanent=True)
        return self._attempt(found, body, self.timeout)

    def _attempt(self, channel: Channel, body: dict[str, Any],
                 timeout: float) -> ChannelOutcome:
        """One request, as the channel classified its answer."""
        answer = channel.send(self._client, body, timeout)
        if answer.verdict is Verdict.DELIVERED:
            return ChannelOutcome(channel.name, "delivered", 1)
        return ChannelOutcome(channel.name, "failed", 1, answer.error,
                              permanent=answer.verdict is Verdict.REFUSED,
                              retry_after=answer.retry_after)

    def dashboard_url(self, dimensions: Mapping[str, str]) -> str:
        """The dashboard filtered to the affected integration, tenant and adapter type."""
        return self.dashboard.url(dimensions)

    # -- telemetry --------------------------------------------------------------------------

    @staticmethod
    def _where(notice: AlertNotice) -> dict[str, Any]:
        dims = notice.dimensions
        flat = {k: dims[k] for k in FLAT_DIMENSIONS if dims.get(k)}
        return {"tenant_id": dims.get("tenantId") or None,
                "integration_id": dims.get("integrationId") or None, **flat}

    def _record_notice(self, notice: AlertNotice, rule: AlertRule,
                       where: dict[str, Any], *, late: bool, silence: Silence | None,
                       route: str, receivers: list[str]) -> None:
        operation = "alert.fired" if notice.fired else "alert.resolved"
        extra: dict[str, Any] = {"late": True} if late else {}
        if silence is not None:
            extra["silenced_by"] = silence.id
        self._event("warn" if notice.fired and not late else "info", operation, notice, where,
                    **extra,
                    rule_name=notice.rule_name, title=rule.title,
                    dimensions=dict(notice.dimensions), value=notice.value,
                    threshold=notice.threshold, operator=notice.operator,
                    runbook_url=rule.runbook_url(),
                    dashboard_url=self.dashboard_url(notice.dimensions),
                    fired_at=notice.fired_at, resolved_at=notice.resolved_at,
                    channels=receivers, route=route)

    @staticmethod
    def _event(level: str, operation: str, notice: AlertNotice, where: dict[str, Any],
               **metadata: Any) -> None:
        log.log(level, operation, where["tenant_id"], where["integration_id"], {
            "ruleId": notice.rule_id, "alertId": notice.alert_id,
            "severity": notice.severity_name, "condition": notice.condition,
            **{k: v for k, v in where.items() if k not in ("tenant_id", "integration_id")},
            **{_camel(k): v for k, v in metadata.items()},
        })

    @staticmethod
    def entry_event(level: str, operation: str, entry: PendingDelivery,
                    **metadata: Any) -> None:
        """An event about a queued delivery, with the same keys as the relay's own."""
        log.log(level, operation, entry.tenant_id, entry.integration_id, {
            "ruleId": entry.rule_id, "alertId": entry.alert_id, "severity": entry.severity,
            "condition": entry.condition, **entry.dimensions, "channel": entry.channel,
            **{_camel(k): v for k, v in metadata.items()},
        })


def _setting(name: str, channel: Channel | None) -> str:
    """The setting that turns a channel on; a channel this deliverer lacks is named."""
    return channel.setting if channel is not None else name


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part.title() for part in rest)

