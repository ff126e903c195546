"""The channels the relay sends alerts to, behind one interface.

    channel.ready()                          # its settings are there now (else it is off)
    body = channel.body(notice, rule)        # what it is sent, without secrets (the outbox's copy)
    answer = channel.send(client, body, 4.0) # one request, its answer classified

A channel formats a notice into its request body, sends one request to where its settings
point at that moment (so a rotated webhook or routing key applies to what is already queued),
and says what the answer means: delivered, worth retrying (408, 429, 5xx, no connection; with
the wait the channel asked for) or refused for good (any other 4xx, or a redirect, which is not
followed). Retries, ordering, claims and the outbox are the `Deliverer`'s, the same for every
channel; adding a channel is writing one class (`HttpChannel` does the HTTP part) and passing
it to the `Deliverer`.

- **slack**: an incoming webhook (`SLACK_WEBHOOK_URL`) gets a Block Kit message (_slack.py:
  within Slack's documented limits, every value from telemetry escaped).
- **pagerduty**: the Events API v2 (`PAGERDUTY_ROUTING_KEY`, `PAGERDUTY_EVENTS_URL`) gets a
  `trigger` on Fired and a `resolve` on Resolved, under one `dedup_key` per rule and
  dimension values, so a Resolved closes the incident its Fired opened. The routing key is
  added when the event is sent, so what is queued never holds it.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode

import httpx

from .._time import retry_after_seconds
from ._payload import AlertNotice, dimensions_key, format_number
from ._rules import AlertRule
from ._slack import SlackAlert
from ._slack import render as render_slack

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
DEFAULT_DASHBOARD_URL = "http://127.0.0.1:7071"
#: Dimensions the dashboard filters on, in its query-string names.
DASHBOARD_FILTERS = ("integrationId", "tenantId", "adapterType")
RETRYABLE = frozenset({408, 429})
#: Azure's severity names, shown beside SevN.
SEVERITY_NAMES = ("Critical", "Error", "Warning", "Informational", "Verbose")
PAGERDUTY_SEVERITY = ("critical", "critical", "error", "warning", "info")
SUMMARY_LIMIT = 1024  # PagerDuty payload.summary
DEDUP_KEY_LIMIT = 255  # PagerDuty dedup_key
_OPERATOR_SYMBOLS = {"GreaterThan": ">", "GreaterThanOrEqual": "≥", "LessThan": "<",
                     "LessThanOrEqual": "≤", "Equal": "=", "GreaterOrLessThan": "≷"}


class Verdict(enum.Enum):
    """What one answer of a channel means for the request that got it."""

    DELIVERED = "delivered"
    RETRY = "retry"  # the same request may succeed later
    REFUSED = "refused"  # the same request would be refused again


@dataclass(frozen=True)
class Answer:
    """One request's result, as its channel classified it."""

    verdict: Verdict
    error: str | None = None
    #: Seconds the channel asked to wait (Retry-After), whatever the verdict.
    retry_after: float | None = None


class Channel(Protocol):
    """A destination of alert notices. Called from several threads at once, so it keeps no
    state of a delivery; the deliverer's client is passed in, so that every channel shares
    its connections and closing the deliverer closes them."""

    #: The name rules list it under; also the outbox's and the events' `channel`.
    name: str
    #: The setting that turns it on, named when it is off.
    setting: str

    def ready(self) -> bool:
        """Whether its settings are there now; a channel that is not is off (skipped)."""
        ...

    def body(self, notice: AlertNotice, rule: AlertRule) -> dict[str, Any]:
        """The body for `notice`, without secrets: the outbox keeps it as it is."""
        ...

    def send(self, client: httpx.Client, body: dict[str, Any], timeout: float) -> Answer:
        """One request of `body` (from `body()`, maybe read back from the outbox) to where
        the settings point now, its answer classified. A transport failure is an Answer;
        anything else raised is a bug, which the deliverer records as that channel's."""
        ...


def is_permanent(status: int) -> bool:
    """A 4xx other than 408/429 (or a redirect, which is not followed): the same request
    will be refused again, so it is not retried."""
    return status < 500 and status not in RETRYABLE


class HttpChannel:
    """A channel that POSTs its body as JSON. A subclass sets `name` and `setting` and
    writes `address` and `body`; `outgoing` adds what must not be queued (a secret)."""

    name: str
    setting: str

    def address(self) -> str | None:
        """The URL to POST to, from the settings now; None while the channel is off."""
        raise NotImplementedError

    def body(self, notice: AlertNotice, rule: AlertRule) -> dict[str, Any]:
        raise NotImplementedError

    def outgoing(self, body: dict[str, Any]) -> dict[str, Any]:
        """The body as it is sent."""
        return body

    def ready(self) -> bool:
        return self.address() is not None

    def send(self, client: httpx.Client, body: dict[str, Any], timeout: float) -> Answer:
        # Turned off since the deliverer looked: no URL is a transport error like any other.
        try:
            response = client.post(self.address() or "", json=self.outgoing(body),
                                   timeout=timeout)
        except httpx.TransportError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return Answer(Verdict.RETRY, error)
        return self.classify(response)

    def classify(self, response: httpx.Response) -> Answer:
        """2xx is delivered; 408, 429 and 5xx are worth retrying; the rest is refused."""
        if response.is_success:
            return Answer(Verdict.DELIVERED)
        status = response.status_code
        return Answer(Verdict.REFUSED if is_permanent(status) else Verdict.RETRY,
                      f"HTTP {status}: {response.text.strip()[:200]}",
                      retry_after_seconds(response.headers.get("Retry-After")))


@dataclass(frozen=True)
class Dashboard:
    """The dashboard the messages link to."""

    base_url: str = DEFAULT_DASHBOARD_URL

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url",
                           (self.base_url or DEFAULT_DASHBOARD_URL).rstrip("/"))

    @property
    def home(self) -> str:
        return f"{self.base_url}/dashboard"

    def url(self, dimensions: Mapping[str, str]) -> str:
        """The dashboard filtered to the affected integration, tenant and adapter type."""
        query = {k: dimensions[k] for k in DASHBOARD_FILTERS if dimensions.get(k)}
        return self.home + (f"?{urlencode(query)}" if query else "")


class SlackChannel(HttpChannel):
    """An incoming webhook; its URL is the secret, so the queued body needs nothing added."""

    name = "slack"
    setting = "SLACK_WEBHOOK_URL"

    def __init__(self, webhook_url: str | None = None,
                 dashboard: Dashboard | None = None) -> None:
        self.webhook_url = webhook_url or None
        self.dashboard = dashboard or Dashboard()

    def address(self) -> str | None:
        return self.webhook_url

    def body(self, notice: AlertNotice, rule: AlertRule) -> dict[str, Any]:
        """Block Kit blocks, a plain `text` fallback and a colour bar, within Slack's limits
        and with every value escaped (see _slack.py)."""
        dims = notice.dimensions
        return render_slack(SlackAlert(
            fired=notice.fired, severity=notice.severity, severity_name=notice.severity_name,
            severity_label=SEVERITY_NAMES[notice.severity], title=rule.title, rule_id=rule.id,
            description=rule.description, comparison=_comparison(notice, rule),
            when=(f"Fired {_human_time(notice.fired_at)}" if notice.fired else
                  f"Resolved {_human_time(notice.resolved_at or notice.fired_at)} "
                  f"(fired {_human_time(notice.fired_at)})"),
            runbook_url=rule.runbook_url(), dashboard_url=self.dashboard.url(dims),
            dashboard_home=self.dashboard.home,
            alert_id=notice.alert_id.rsplit("/", 1)[-1],
            source=notice.monitoring_service or notice.signal_type,
            window=_window_text(notice, rule), dimensions=dims,
            filters={k: dims[k] for k in DASHBOARD_FILTERS if dims.get(k)}))


class PagerDutyChannel(HttpChannel):
    """The Events API v2; on while a routing key is set."""

    name = "pagerduty"
    setting = "PAGERDUTY_ROUTING_KEY"

    def __init__(self, routing_key: str | None = None, events_url: str | None = None,
                 dashboard: Dashboard | None = None) -> None:
        self.routing_key = routing_key or None
        self.events_url = events_url or PAGERDUTY_EVENTS_URL
        self.dashboard = dashboard or Dashboard()

    def address(self) -> str | None:
        return self.events_url if self.routing_key else None

    def outgoing(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"routing_key": self.routing_key or "", **body}

    @staticmethod
    def dedup_key(notice: AlertNotice) -> str:
        """One key per rule and dimension values: a Resolved closes what its Fired opened."""
        return f"{notice.rule_id}:{dimensions_key(notice.rule_id, notice.dimensions)[:40]}"[
            :DEDUP_KEY_LIMIT]

    def body(self, notice: AlertNotice, rule: AlertRule) -> dict[str, Any]:
        """`trigger` with the full payload, or a bare `resolve`; the routing key is added by
        `outgoing`."""
        event: dict[str, Any] = {
            "event_action": "trigger" if notice.fired else "resolve",
            "dedup_key": self.dedup_key(notice),
        }
        if not notice.fired:
            return event  # PagerDuty needs only the key to resolve
        dims = notice.dimensions
        runbook = rule.runbook_url()
        dashboard = self.dashboard.url(dims)
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


def standard_channels(dashboard: Dashboard, *, slack_webhook_url: str | None = None,
                      pagerduty_routing_key: str | None = None,
                      pagerduty_events_url: str | None = None) -> list[Channel]:
    """Slack and PagerDuty with the given settings (off where a setting is unset)."""
    return [SlackChannel(slack_webhook_url, dashboard),
            PagerDutyChannel(pagerduty_routing_key, pagerduty_events_url, dashboard)]


def settings_from_env(env: Mapping[str, str]) -> dict[str, str]:
    """The standard channels' settings, as `standard_channels` (and `Deliverer`) take them."""
    return {"slack_webhook_url": env.get("SLACK_WEBHOOK_URL", "").strip(),
            "pagerduty_routing_key": env.get("PAGERDUTY_ROUTING_KEY", "").strip(),
            "pagerduty_events_url": env.get("PAGERDUTY_EVENTS_URL", "").strip()}


# -- text shared by the messages --------------------------------------------------------------


def _comparison(notice: AlertNotice, rule: AlertRule) -> str:
    """The value against the threshold, as `failureRate = 12.5 (alerts when > 10)`: the
    payload's operator and threshold, else the rule's."""
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
