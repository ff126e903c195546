"""Deliver an alert notice to its rule's channels: Slack, PagerDuty, and (by Azure) e-mail.

    deliverer = Deliverer.from_env()
    report = deliverer.deliver(parse_alert(body), rule_by_id(...))
    report.summary()  # {"alertId", "ruleId", "condition", "duplicate", "channels": {...}}

- **email** is sent by the Azure action group itself; the relay only records it.
- **slack**: an incoming webhook (`SLACK_WEBHOOK_URL`) gets a Block Kit message (_slack.py:
  within Slack's documented limits, every value from telemetry escaped).
- **pagerduty**: the Events API v2 (`PAGERDUTY_ROUTING_KEY`, `PAGERDUTY_EVENTS_URL`) gets a
  `trigger` on Fired and a `resolve` on Resolved, under one `dedup_key` per rule and
  dimension values, so a Resolved closes the incident its Fired opened.

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
`alert.duplicate_dropped` and `alert.channel_skipped`.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import datetime as dt
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx

from .._time import retry_after_seconds
from ..telemetry import get_logger
from ._outbox import (
    CONDITION_ORDER,
    Outbox,
    PendingDelivery,
    RedeliveryPolicy,
    outbox_from_env,
    utc_now,
)
from ._payload import AlertNotice, dimensions_key, format_number
from ._rules import AlertRule
from ._slack import SlackAlert
from ._slack import render as render_slack

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
DEFAULT_DASHBOARD_URL = "http://127.0.0.1:7071"
#: Dimensions the dashboard filters on, in its query-string names.
DASHBOARD_FILTERS = ("integrationId", "tenantId", "adapterType")
#: Dimensions copied into every event as flat metadata keys so KQL can filter on them
#: (integrationId and tenantId go to the event's top level, where the schema has them).
FLAT_DIMENSIONS = ("adapterType", "queue")
CHANNELS = ("email", "slack", "pagerduty")
#: The setting that turns each relayed channel on.
CHANNEL_SETTINGS = {"slack": "SLACK_WEBHOOK_URL", "pagerduty": "PAGERDUTY_ROUTING_KEY"}
RETRYABLE = frozenset({408, 429})
#: Azure's severity names, shown beside SevN.
SEVERITY_NAMES = ("Critical", "Error", "Warning", "Informational", "Verbose")
PAGERDUTY_SEVERITY = ("critical", "critical", "error", "warning", "info")
SUMMARY_LIMIT = 1024  # PagerDuty payload.summary
DEDUP_KEY_LIMIT = 255  # PagerDuty dedup_key
_OPERATOR_SYMBOLS = {"GreaterThan": ">", "GreaterThanOrEqual": "≥", "LessThan": "<",
                     "LessThanOrEqual": "≤", "Equal": "=", "GreaterOrLessThan": "≷"}

log = get_logger("alert-relay")


@dataclass
class ChannelOutcome:
    """What happened on one channel: delivered, queued (for redelivery), failed, skipped,
    duplicate, superseded (a Fired that arrived after its Resolved) or action_group."""

    channel: str
    status: str
    attempts: int = 0
    error: str | None = None
    #: A 4xx other than 408/429 (see is_permanent): the same body would be refused again.
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

    def summary(self) -> dict[str, Any]:
        """The relay's JSON answer."""
        return {
            "alertId": self.alert_id, "ruleId": self.rule_id, "condition": self.condition,
            "duplicate": self.duplicate,
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
    """Sends notices to Slack and PagerDuty; long-lived (it remembers what it delivered).

    `outbox` keeps what could not be delivered for the redelivery timer (None: a failure is
    final); `redelivery` says how long and how often; `now` is the wall clock of its times.
    """

    def __init__(self, *, slack_webhook_url: str | None = None,
                 pagerduty_routing_key: str | None = None,
                 pagerduty_events_url: str | None = None,
                 dashboard_base_url: str | None = None,
                 timeout: float = 4.0, max_attempts: int = 4, backoff_base: float = 0.5,
                 backoff_cap: float = 4.0, budget: float = 8.0, dedup_ttl: float = 86_400.0,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 outbox: Outbox | None = None, redelivery: RedeliveryPolicy | None = None,
                 now: Callable[[], dt.datetime] = utc_now) -> None:
        self.slack_webhook_url = slack_webhook_url or None
        self.pagerduty_routing_key = pagerduty_routing_key or None
        self.pagerduty_events_url = pagerduty_events_url or PAGERDUTY_EVENTS_URL
        self.dashboard_base_url = (dashboard_base_url or DEFAULT_DASHBOARD_URL).rstrip("/")
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
        self._client = httpx.Client(timeout=timeout, follow_redirects=False,
                                    headers={"User-Agent": "integration-monitoring-alert-relay"})

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **options: Any) -> Deliverer:
        """Settings from SLACK_WEBHOOK_URL, PAGERDUTY_ROUTING_KEY, PAGERDUTY_EVENTS_URL and
        DASHBOARD_BASE_URL, the outbox from ALERT_OUTBOX_TABLE_ENDPOINT (else SQLite beside
        the local store) and its bound from ALERT_REDELIVERY_HOURS; keyword options
        (timeouts, backoff, outbox) pass through."""
        env = os.environ if env is None else env
        options.setdefault("redelivery", RedeliveryPolicy.from_env(env))
        if "outbox" not in options:
            options["outbox"] = outbox_from_env(env)
        return cls(slack_webhook_url=env.get("SLACK_WEBHOOK_URL", "").strip(),
                   pagerduty_routing_key=env.get("PAGERDUTY_ROUTING_KEY", "").strip(),
                   pagerduty_events_url=env.get("PAGERDUTY_EVENTS_URL", "").strip(),
                   dashboard_base_url=env.get("DASHBOARD_BASE_URL", "").strip(), **options)

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

    def deliver(self, notice: AlertNotice, rule: AlertRule) -> DeliveryReport:
        """Send `notice` to each of `rule.channels` once; never raises for a channel's failure."""
        where = self._where(notice)
        first = self._claim(where, "notice", notice.alert_id, notice.condition)
        report = DeliveryReport(notice.alert_id, rule.id, notice.condition, duplicate=not first)
        # Azure Monitor retries webhooks, so a Fired may come after its Resolved: the alert
        # stays resolved (recorded, not delivered), whichever instance took the Resolved.
        late = notice.fired and self._claimed(where, "notice", notice.alert_id, "Resolved")
        if first:
            self._record_notice(notice, rule, where, late=late)
        sends: dict[str, Callable[[], ChannelOutcome]] = {}
        for channel in rule.channels:
            if late and channel != "email":
                report.outcomes[channel] = ChannelOutcome(channel, "superseded")
                self._event("info", "alert.channel_skipped", notice, where, channel=channel,
                            reason="resolved already: this Fired arrived after its Resolved")
                continue
            if channel == "email":
                report.outcomes[channel] = ChannelOutcome(channel, "action_group")
                self._event("info", "alert.channel_skipped", notice, where, channel=channel,
                            reason="handled by action group")
                continue
            target = self.target(channel)
            if target is None:
                setting = CHANNEL_SETTINGS.get(channel, channel)
                report.outcomes[channel] = ChannelOutcome(channel, "skipped")
                self._event("info", "alert.channel_skipped", notice, where, channel=channel,
                            reason=f"{setting} is not set")
                continue
            if not self._claim(where, "sent", notice.alert_id, notice.condition, channel):
                report.outcomes[channel] = ChannelOutcome(channel, "duplicate")
                self._event("info", "alert.duplicate_dropped", notice, where, channel=channel)
                continue
            queued = self._behind_queue(channel, notice, rule, where)
            if queued is not None:
                report.outcomes[channel] = queued
                continue
            sends[channel] = self._sender(channel, notice, rule)
        report.outcomes.update(self._run(sends, notice, where))
        report.outcomes = {c: report.outcomes[c] for c in rule.channels if c in report.outcomes}
        return report

    def target(self, channel: str) -> str | None:
        """Where `channel` is sent now, from the settings; None while it is off."""
        if channel == "slack":
            return self.slack_webhook_url
        if channel == "pagerduty":
            return self.pagerduty_events_url if self.pagerduty_routing_key else None
        return None

    def _sender(self, channel: str, notice: AlertNotice,
                rule: AlertRule) -> Callable[[], ChannelOutcome]:
        # The body is built inside the call, so a builder error is that channel's failure
        # (and releases its claim) instead of escaping the request.
        def send() -> ChannelOutcome:
            body = self._body(channel, notice, rule)
            outcome = self._post(channel, self.target(channel) or "", self.with_secret(
                channel, body), notice)
            outcome.body = body
            return outcome

        return send

    def _body(self, channel: str, notice: AlertNotice, rule: AlertRule) -> dict[str, Any]:
        """What `channel` is sent for `notice`, without secrets (it may be queued)."""
        if channel == "slack":
            return self.slack_message(notice, rule)
        return {k: v for k, v in self.pagerduty_event(notice, rule).items()
                if k != "routing_key"}

    def with_secret(self, channel: str, body: dict[str, Any]) -> dict[str, Any]:
        """The body as sent: PagerDuty's routing key is added from the settings here, so
        what is queued never holds it."""
        if channel == "pagerduty":
            return {"routing_key": self.pagerduty_routing_key or "", **body}
        return body

    def _behind_queue(self, channel: str, notice: AlertNotice, rule: AlertRule,
                      where: dict[str, Any]) -> ChannelOutcome | None:
        """Queue `notice` instead of sending it when this alert already waits in the outbox
        for `channel`: the same notice is not sent twice, and Resolved stays behind Fired."""
        if self.outbox is None:
            return None
        try:
            waiting = self.outbox.pending(notice.alert_id, channel)
        except Exception as exc:  # the outbox is down: sending beats not sending
            self._event("warn", "alert.outbox_failed", notice, where, channel=channel,
                        error=f"{type(exc).__name__}: {exc}")
            return None
        if any(e.condition == notice.condition for e in waiting):
            self._event("info", "alert.duplicate_dropped", notice, where, channel=channel,
                        reason="queued already for redelivery")
            return ChannelOutcome(channel, "queued", 0, "queued already for redelivery")
        order = CONDITION_ORDER.get(notice.condition, 0)
        earlier = [e for e in waiting if CONDITION_ORDER.get(e.condition, 0) < order]
        if not earlier:
            return None
        try:
            body = self._body(channel, notice, rule)
            now = self.now()
            self.outbox.add(self._pending(notice, channel, body, where, now, now, attempts=0))
        except Exception as exc:
            self._event("warn", "alert.outbox_failed", notice, where, channel=channel,
                        error=f"{type(exc).__name__}: {exc}")
            return None  # sending out of order beats not sending at all
        self._event("info", "alert.delivery_queued", notice, where, channel=channel,
                    reason=f"waiting for the {earlier[0].condition} notice of this alert")
        return ChannelOutcome(channel, "queued", 0,
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

    def _post(self, channel: str, url: str, body: dict[str, Any],
              notice: AlertNotice) -> ChannelOutcome:
        """POST with retries on 408/429/5xx and transport errors, within attempts and budget."""
        deadline = self._clock() + self.budget
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - self._clock()
            tried = self._attempt(channel, url, body, max(0.05, min(self.timeout, remaining)))
            if tried.status == "delivered" or tried.permanent:
                tried.attempts = attempt
                return tried
            error, retry_after = tried.error, tried.retry_after
            if attempt >= self.max_attempts:
                return ChannelOutcome(channel, "failed", attempt,
                                      f"{error} (gave up after {attempt} attempts)",
                                      retry_after=retry_after)
            delay = retry_after if retry_after is not None else min(
                self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
            if self._clock() + delay >= deadline:
                return ChannelOutcome(channel, "failed", attempt,
                                      f"{error} (gave up: retrying in {delay:g}s would pass the "
                                      f"{self.budget:g}s delivery budget)",
                                      retry_after=retry_after)
            self._event("warn", "alert.delivery_retry", notice, self._where(notice),
                        channel=channel, attempt=attempt, delay_seconds=round(delay, 3),
                        error=error)
            self._sleep(delay)

    def send_once(self, channel: str, body: dict[str, Any]) -> ChannelOutcome:
        """One POST of a queued body to where `channel` points now (the redelivery timer
        retries across runs, not within one)."""
        url = self.target(channel)
        if url is None:
            return ChannelOutcome(channel, "failed", 0,
                                  f"{CHANNEL_SETTINGS.get(channel, channel)} is not set",
                                  permanent=True)
        return self._attempt(channel, url, self.with_secret(channel, body), self.timeout)

    def _attempt(self, channel: str, url: str, body: dict[str, Any],
                 timeout: float) -> ChannelOutcome:
        """One POST, its answer classified: delivered, or failed (permanent or not, with the
        wait the channel asked for)."""
        try:
            response = self._client.post(url, json=body, timeout=timeout)
        except httpx.TransportError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return ChannelOutcome(channel, "failed", 1, error)
        if response.is_success:
            return ChannelOutcome(channel, "delivered", 1)
        return ChannelOutcome(
            channel, "failed", 1, f"HTTP {response.status_code}: {response.text.strip()[:200]}",
            permanent=is_permanent(response.status_code),
            retry_after=retry_after_seconds(response.headers.get("Retry-After")))

    # -- messages ---------------------------------------------------------------------------

    def dashboard_url(self, dimensions: Mapping[str, str]) -> str:
        """The dashboard filtered to the affected integration, tenant and adapter type."""
        query = {k: dimensions[k] for k in DASHBOARD_FILTERS if dimensions.get(k)}
        return f"{self.dashboard_base_url}/dashboard" + (f"?{urlencode(query)}" if query else "")

    def slack_message(self, notice: AlertNotice, rule: AlertRule) -> dict[str, Any]:
        """An incoming-webhook body: Block Kit blocks, a plain `text` fallback and a colour bar,
        within Slack's limits and with every value escaped (see _slack.py)."""
        dims = notice.dimensions
        return render_slack(SlackAlert(
            fired=notice.fired, severity=notice.severity, severity_name=notice.severity_name,
            severity_label=SEVERITY_NAMES[notice.severity], title=rule.title, rule_id=rule.id,
            description=rule.description, comparison=_comparison(notice, rule),
            when=(f"Fired {_human_time(notice.fired_at)}" if notice.fired else
                  f"Resolved {_human_time(notice.resolved_at or notice.fired_at)} "
                  f"(fired {_human_time(notice.fired_at)})"),
            runbook_url=rule.runbook_url(), dashboard_url=self.dashboard_url(dims),
            dashboard_home=f"{self.dashboard_base_url}/dashboard",
            alert_id=notice.alert_id.rsplit("/", 1)[-1],
            source=notice.monitoring_service or notice.signal_type,
            window=_window_text(notice, rule), dimensions=dims,
            filters={k: dims[k] for k in DASHBOARD_FILTERS if dims.get(k)}))

    def dedup_key(self, notice: AlertNotice) -> str:
        """One key per rule and dimension values: a Resolved closes what its Fired opened."""
        return f"{notice.rule_id}:{dimensions_key(notice.rule_id, notice.dimensions)[:40]}"[
            :DEDUP_KEY_LIMIT]

    def pagerduty_event(self, notice: AlertNotice, rule: AlertRule) -> dict[str, Any]:
        """An Events API v2 body: `trigger` with the full payload, or a bare `resolve`."""
        event: dict[str, Any] = {
            "routing_key": self.pagerduty_routing_key or "",
            "event_action": "trigger" if notice.fired else "resolve",
            "dedup_key": self.dedup_key(notice),
        }
        if not notice.fired:
            return event  # PagerDuty needs only the key to resolve
        dims = notice.dimensions
        runbook = rule.runbook_url()
        dashboard = self.dashboard_url(dims)
        plain_where = ", ".join(f"{k}={v}" for k, v in dims.items())
        summary = f"[{notice.severity_name}] {rule.title}: {_comparison(notice, rule)}" + (
            f" ({plain_where})" if plain_where else "")
        links = [{"href": dashboard, "text": "Dashboard" + _filter_text(dims)}]
        if _absolute(runbook):
            links.insert(0, {"href": runbook, "text": f"Runbook: {rule.title}"})
        event.update({
            "payload": {
                "summary": _clip(summary, SUMMARY_LIMIT),
                "source": plain_where or "integration-monitoring",
                "severity": PAGERDUTY_SEVERITY[notice.severity],
                "timestamp": notice.fired_at.astimezone(dt.UTC).isoformat(
                    timespec="milliseconds").replace("+00:00", "Z"),
                "component": dims.get("adapterType") or dims.get("queue")
                or dims.get("integrationId") or rule.measure,
                "group": dims.get("tenantId") or "integration-monitoring",
                "class": rule.id,
                "custom_details": {
                    "rule": rule.id, "description": rule.description,
                    "dimensions": dict(dims), "measure": rule.measure,
                    "value": notice.value, "threshold": notice.threshold,
                    "operator": notice.operator, "runbook": runbook, "dashboard": dashboard,
                    "alertId": notice.alert_id,
                },
            },
            "client": "integration-monitoring alert relay",
            "client_url": dashboard,
            "links": links,
        })
        return event

    # -- telemetry --------------------------------------------------------------------------

    @staticmethod
    def _where(notice: AlertNotice) -> dict[str, Any]:
        dims = notice.dimensions
        flat = {k: dims[k] for k in FLAT_DIMENSIONS if dims.get(k)}
        return {"tenant_id": dims.get("tenantId") or None,
                "integration_id": dims.get("integrationId") or None, **flat}

    def _record_notice(self, notice: AlertNotice, rule: AlertRule,
                       where: dict[str, Any], late: bool = False) -> None:
        operation = "alert.fired" if notice.fired else "alert.resolved"
        extra = {"late": True} if late else {}
        self._event("warn" if notice.fired and not late else "info", operation, notice, where,
                    **extra,
                    rule_name=notice.rule_name, title=rule.title,
                    dimensions=dict(notice.dimensions), value=notice.value,
                    threshold=notice.threshold, operator=notice.operator,
                    runbook_url=rule.runbook_url(),
                    dashboard_url=self.dashboard_url(notice.dimensions),
                    fired_at=notice.fired_at, resolved_at=notice.resolved_at,
                    channels=list(rule.channels))

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


def is_permanent(status: int) -> bool:
    """A 4xx other than 408/429 (or a redirect, which is not followed): the same request
    will be refused again, so it is not retried."""
    return status < 500 and status not in RETRYABLE



def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part.title() for part in rest)


def _comparison(notice: AlertNotice, rule: AlertRule) -> str:
    operator = notice.operator or rule.operator
    threshold = notice.threshold if notice.threshold is not None else rule.threshold
    symbol = _OPERATOR_SYMBOLS.get(operator, operator)
    return (f"{rule.measure} = {format_number(notice.value)} "
            f"(alerts when {symbol} {format_number(threshold)})")


def _window_text(notice: AlertNotice, rule: AlertRule) -> str:
    if notice.window_start and notice.window_end:
        return f"{_human_time(notice.window_start)} – {_human_time(notice.window_end)}"
    return f"{int(rule.window.total_seconds() // 60)} min"


def _human_time(moment: dt.datetime | None) -> str:
    if moment is None:
        return "—"
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _filter_text(dimensions: Mapping[str, str]) -> str:
    shown = [f"{k}={dimensions[k]}" for k in DASHBOARD_FILTERS if dimensions.get(k)]
    return f" ({', '.join(shown)})" if shown else ""


def _absolute(url: str) -> bool:
    return url.startswith(("https://", "http://"))


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
