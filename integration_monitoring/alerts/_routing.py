"""Alert routing: which receivers (Slack webhooks, PagerDuty services, the action group's
e-mail) get an alert, read from routes.json beside this module (or ALERT_ROUTES_FILE).

    table = load_routes()                                    # RoutingError names what is wrong
    rule = rule_by_id(notice.rule_id) or generic_rule(notice, table)
    chosen = select(table, labels_of(notice), rule.channels)  # first matching route wins
    chosen.receivers                                         # who gets it
    chosen.grouped                                           # who gets it in a group message
    channels = receiver_channels(table, os.environ, dashboard) # one Channel per receiver

    group = Group(route, key, receivers, wait_seconds, opened_at, due_at)
    group.add(notice)                                        # an alert once, latest state
    body = group_message(group, rule_of, dashboard)          # one Slack message for all

Grouping itself is kept in the relay's outbox, not here: the Deliverer puts a grouped notice
there with its group (`_delivery`), and the redelivery timer builds the group's one message
with `Group` and `group_message` when its wait is over (`_redelivery`).

The file holds no secret: a receiver names the setting that holds its webhook URL or routing
key, read when a message is sent, so rotating a secret needs no change here. The shipped file
sends every alert to its rule's own channels, as the relay did before routes existed.
docs/alert-routing.md is the file's reference.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from ._channels import (
    SEVERITY_NAMES,
    Channel,
    Dashboard,
    PagerDutyChannel,
    SlackChannel,
    _comparison,
    _human_time,
)
from ._payload import AlertNotice
from ._rules import CHANNELS, HERE, AlertRule
from ._silences import LABELS, Matcher, SilenceError, _matchers
from ._slack import (
    _FIRED_COLOURS,
    _RESOLVED_COLOUR,
    _URL_MAX,
    FALLBACK_TEXT_MAX,
    HEADER_TEXT_MAX,
    MAX_BLOCKS,
    SECTION_TEXT_MAX,
    TEXT_OBJECT_MAX,
    TOTAL_TEXT_BUDGET,
    _address,
    _fit_lines,
    _link,
    _mrkdwn,
    clip,
    code,
    plain,
    slack_len,
    text,
    url,
)

ROUTES_FILE = HERE / "routes.json"
#: The setting that points the relay at another routes file.
ROUTES_SETTING = "ALERT_ROUTES_FILE"
DEFAULT_ROUTE = "default"
#: Rules say "email", "slack", "pagerduty"; a route with `"channels": "rule"` sends to the
#: receivers of those names.
RULE_CHANNELS = "rule"
UNKNOWN_RULE_RUNBOOK = "docs/runbooks/unknown-rule.md"
MAX_WAIT_SECONDS = 900
#: The setting each receiver type names, and the names it may have: a receiver can only point
#: at a setting meant for that channel, so a routes file cannot make the relay send another
#: secret (a storage connection string, say) to Slack or PagerDuty.
SETTING_FIELDS = {"slack": ("webhookSetting", "SLACK_WEBHOOK_URL"),
                  "pagerduty": ("routingKeySetting", "PAGERDUTY_ROUTING_KEY"),
                  "email": None}
#: Receiver and route names end up in outbox keys and events, which join parts with "|".
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SUFFIX = r"(?:_[A-Z0-9]+)*"
_COMMENT = "$comment"


class RoutingError(ValueError):
    """A routes file the relay must not start with; the message names the route or receiver
    and what is wrong."""


@dataclass(frozen=True)
class Receiver:
    name: str
    type: str  # slack | pagerduty | email
    #: The setting holding the webhook URL or routing key; None for e-mail (Azure sends it).
    setting: str | None = None

    def secret(self, env: Mapping[str, str]) -> str | None:
        if self.setting is None:
            return None
        return (env.get(self.setting) or "").strip() or None

    def record(self, env: Mapping[str, str]) -> dict[str, Any]:
        """For the dashboard: whether the setting is set, never its value."""
        return {"name": self.name, "type": self.type, "setting": self.setting,
                "settingSet": None if self.setting is None else self.secret(env) is not None}


@dataclass(frozen=True)
class Grouping:
    by: tuple[str, ...]
    wait_seconds: int


@dataclass(frozen=True)
class Route:
    name: str
    matchers: tuple[Matcher, ...]
    #: Receiver names; empty when the route uses the rule's channels.
    receivers: tuple[str, ...]
    rule_channels: bool = False
    #: The default route's receivers for an alert whose rule is not in rules.json (only
    #: when it sends to the rule's channels: such an alert has none).
    unknown_rule_receivers: tuple[str, ...] = ()
    group: Grouping | None = None

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_ROUTE

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "default": self.is_default,
                "matchers": [m.record() for m in self.matchers],
                "receivers": list(self.receivers),
                "channels": RULE_CHANNELS if self.rule_channels else None,
                "unknownRuleReceivers": list(self.unknown_rule_receivers),
                "group": {"by": list(self.group.by), "waitSeconds": self.group.wait_seconds}
                if self.group else None}


@dataclass(frozen=True)
class RouteTable:
    """A loaded routes file: receivers by name, and the routes in order, default last."""

    receivers: Mapping[str, Receiver]
    routes: tuple[Route, ...]
    source: str = ""

    @property
    def default(self) -> Route:
        return self.routes[-1]


@dataclass(frozen=True)
class Selection:
    """Where one alert goes: the route that took it, its receivers, and its group (None when
    the route does not group)."""

    route: str
    receivers: tuple[Receiver, ...]
    group_key: tuple[tuple[str, str], ...] | None = None
    wait_seconds: int = 0

    @property
    def grouped(self) -> tuple[Receiver, ...]:
        """The receivers that get this alert inside its group's message: the Slack ones of a
        grouping route. PagerDuty keeps one incident per alert (a Resolved must close its
        own Fired), and e-mail is the action group's, so those are never held back."""
        if self.group_key is None or self.wait_seconds == 0:
            return ()
        return tuple(r for r in self.receivers if r.type == "slack")


# -- loading ----------------------------------------------------------------------------------


def load_routes(path: str | Path | None = None,
                env: Mapping[str, str] | None = None) -> RouteTable:
    """The routes file at `path`, else ALERT_ROUTES_FILE, else the shipped routes.json,
    checked whole: RoutingError on the first thing wrong. Unset secrets are not an error here
    (a receiver whose setting is empty is skipped when sending); `describe` lists them."""
    env = os.environ if env is None else env
    where = Path(path or env.get(ROUTES_SETTING, "").strip() or ROUTES_FILE)
    try:
        data = json.loads(where.read_text())
    except (OSError, ValueError) as exc:
        raise RoutingError(f"routes file {where}: cannot be read: {exc}") from None
    try:
        return parse_routes(data, str(where))
    except RoutingError as exc:
        raise RoutingError(f"routes file {where}: {exc}") from None


def parse_routes(data: Any, source: str = "") -> RouteTable:
    """A route table from the file's JSON (see docs/alert-routing.md)."""
    if not isinstance(data, dict):
        raise RoutingError("the file must hold a JSON object with receivers and routes")
    _no_unknown(data, {_COMMENT, "receivers", "routes"}, "the file")
    receivers: dict[str, Receiver] = {}
    for entry in _list(data.get("receivers"), "receivers"):
        receiver = _receiver(entry)
        if receiver.name in receivers:
            raise RoutingError(f"receiver {receiver.name!r} is declared twice")
        receivers[receiver.name] = receiver
    routes: list[Route] = []
    for entry in _list(data.get("routes"), "routes"):
        route = _route(entry, receivers)
        if routes and routes[-1].is_default:
            raise RoutingError(f"route {route.name!r} comes after the default route, which "
                               "takes every alert: it would never be used")
        if any(r.name == route.name for r in routes):
            raise RoutingError(f"route {route.name!r} is declared twice")
        routes.append(route)
    if not routes[-1].is_default:
        raise RoutingError(f"the routes must end with a route named {DEFAULT_ROUTE!r} without "
                           "matchers, for the alerts no other route takes")
    if any(r.rule_channels for r in routes):
        for name in CHANNELS:
            found = receivers.get(name)
            if found is None or found.type != name:
                user = next(r.name for r in routes if r.rule_channels)
                raise RoutingError(
                    f"route {user!r} sends alerts to their rule's channels, so a receiver "
                    f"named {name!r} of type {name!r} must be declared (rules name "
                    f"{', '.join(CHANNELS)})")
    return RouteTable(receivers, tuple(routes), source)


#: The channels the relay always has, by name: a receiver may carry one of these names only
#: as that very channel (the relay keeps the standard one under the name).
_STANDARD = {"slack": ("slack", "SLACK_WEBHOOK_URL"),
             "pagerduty": ("pagerduty", "PAGERDUTY_ROUTING_KEY")}
#: Table Storage partitions the outbox keeps for itself; entries are partitioned by receiver.
_RESERVED = ("claims", "silences")


def _receiver(entry: Any) -> Receiver:
    if not isinstance(entry, dict):
        raise RoutingError("each receiver must be an object with name and type")
    name = _name(entry, "receiver")
    what = f"receiver {name!r}"
    if name in _RESERVED:
        raise RoutingError(f"{what}: the name is reserved for the relay's own records")
    if name == "email" and entry.get("type") != "email":
        raise RoutingError(f"{what}: the name 'email' is the action group's e-mail; give "
                           "this receiver another name")
    kind = entry.get("type")
    if kind not in SETTING_FIELDS:
        raise RoutingError(f"{what}: type must be one of {', '.join(SETTING_FIELDS)}, "
                           f"not {kind!r}")
    spec = SETTING_FIELDS[kind]
    _no_unknown(entry, {_COMMENT, "name", "type"} | ({spec[0]} if spec else set()), what)
    if spec is None:
        return Receiver(name, kind)
    key, base = spec
    setting = entry.get(key)
    if not isinstance(setting, str) or not re.fullmatch(base + _SUFFIX, setting):
        raise RoutingError(f"{what}: {key} must name the setting that holds the secret, "
                           f"{base} or {base}_<NAME> (upper-case letters, digits, _), not "
                           f"{setting!r}")
    standard = _STANDARD.get(name)
    if standard is not None and standard != (kind, setting):
        raise RoutingError(f"{what}: the name {name!r} is the standard {standard[0]} channel "
                           f"with {standard[1]}; give this receiver another name")
    return Receiver(name, kind, setting)


def _route(entry: Any, receivers: Mapping[str, Receiver]) -> Route:
    if not isinstance(entry, dict):
        raise RoutingError("each route must be an object with name, matchers and receivers")
    name = _name(entry, "route")
    what = f"route {name!r}"
    default = name == DEFAULT_ROUTE
    _no_unknown(entry, {_COMMENT, "name", "matchers", "receivers", "channels", "group"}
                | ({"unknownRuleReceivers"} if default else set()), what)
    raw = entry.get("matchers")
    if default:
        if raw not in (None, []):
            raise RoutingError(f"{what}: the default route takes every alert the routes "
                               "before it do not, so it has no matchers")
        matchers: tuple[Matcher, ...] = ()
    elif not isinstance(raw, list) or not raw:
        raise RoutingError(f"{what}: matchers must be a non-empty list (a route without "
                           f"matchers takes every alert; only the last, {DEFAULT_ROUTE!r}, may)")
    else:
        try:
            matchers = _matchers(raw)  # the silences' shape, checked the same way
        except SilenceError as exc:
            raise RoutingError(f"{what}: {exc.field}: {exc}") from None
    channels = entry.get("channels")
    if channels not in (None, RULE_CHANNELS):
        raise RoutingError(f"{what}: channels can only be {RULE_CHANNELS!r} (the rule's own "
                           f"channels), not {channels!r}")
    rule_channels = channels == RULE_CHANNELS
    if rule_channels == ("receivers" in entry):
        raise RoutingError(f"{what}: give either receivers or \"channels\": "
                           f"{RULE_CHANNELS!r}, one of the two")
    named = () if rule_channels else _receiver_names(entry, "receivers", receivers, what)
    unknown_rule: tuple[str, ...] = ()
    if default and rule_channels:
        if "unknownRuleReceivers" not in entry:
            raise RoutingError(f"{what}: it sends alerts to their rule's channels, so say in "
                               "unknownRuleReceivers who gets an alert whose rule is not in "
                               "rules.json (an Azure platform or portal-made rule)")
        unknown_rule = _receiver_names(entry, "unknownRuleReceivers", receivers, what)
    elif "unknownRuleReceivers" in entry:
        raise RoutingError(f"{what}: unknownRuleReceivers only goes with \"channels\": "
                           f"{RULE_CHANNELS!r}; otherwise such an alert gets the receivers")
    return Route(name, matchers, named, rule_channels, unknown_rule,
                 _grouping(entry.get("group"), what))


def _grouping(raw: Any, what: str) -> Grouping | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise RoutingError(f"{what}: group must be an object with by and waitSeconds")
    _no_unknown(raw, {"by", "waitSeconds"}, f"{what}: group")
    by = raw.get("by")
    if not isinstance(by, list) or any(label not in LABELS for label in by):
        raise RoutingError(f"{what}: group.by must be a list of labels among "
                           f"{', '.join(LABELS)}, not {by!r}")
    if len(set(by)) != len(by):
        raise RoutingError(f"{what}: group.by names a label twice")
    wait = raw.get("waitSeconds")
    if isinstance(wait, bool) or not isinstance(wait, int) \
            or not 0 <= wait <= MAX_WAIT_SECONDS:
        raise RoutingError(f"{what}: group.waitSeconds must be a whole number of seconds "
                           f"from 0 to {MAX_WAIT_SECONDS}, not {wait!r}")
    return Grouping(tuple(by), wait)


def _receiver_names(entry: Mapping[str, Any], key: str, receivers: Mapping[str, Receiver],
                    what: str) -> tuple[str, ...]:
    names = entry.get(key)
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise RoutingError(f"{what}: {key} must be a non-empty list of receiver names (to "
                           "hold alerts back, use a silence)")
    for name in names:
        if name not in receivers:
            raise RoutingError(f"{what}: {key} names receiver {name!r}, which is not declared "
                               f"(declared: {', '.join(receivers) or 'none'})")
    if len(set(names)) != len(names):
        raise RoutingError(f"{what}: {key} names a receiver twice")
    return tuple(names)


def _name(entry: Mapping[str, Any], kind: str) -> str:
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise RoutingError(f"a {kind} needs a name of letters, digits and . _ - (at most 64, "
                           f"starting with a letter or digit), not {name!r}")
    return name


def _list(value: Any, key: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise RoutingError(f"{key} must be a non-empty list")
    return value


def _no_unknown(entry: Mapping[str, Any], known: set[str], what: str) -> None:
    unknown = sorted(set(entry) - known)
    if unknown:
        raise RoutingError(f"{what}: unknown field {unknown[0]!r} (known: "
                           f"{', '.join(sorted(known - {_COMMENT}))})")


# -- choosing ---------------------------------------------------------------------------------


def select(table: RouteTable, labels: Mapping[str, str],
           rule_channels: Sequence[str]) -> Selection:
    """The first route whose matchers all hold for `labels` (the default holds always), its
    receivers (the rule's channels where the route says so) and the alert's group key."""
    route = next(r for r in table.routes if all(m.holds(labels) for m in r.matchers))
    names = tuple(rule_channels) if route.rule_channels else route.receivers
    key = None if route.group is None else tuple(
        (label, labels.get(label) or "") for label in route.group.by)
    # A rule channel the file does not declare is one given to the Deliverer in code.
    return Selection(route.name, tuple(table.receivers.get(n) or Receiver(n, "channel", None)
                                       for n in names), key,
                     route.group.wait_seconds if route.group else 0)


def generic_rule(notice: AlertNotice, table: RouteTable) -> AlertRule:
    """A rule for a notice whose rule is not in rules.json (an Azure platform alert, a rule
    made in the portal), from what the common schema says, so the channels' message builders
    can format it. Its channels are what the default route gives such an alert."""
    default = table.default
    span = (notice.window_end - notice.window_start
            if notice.window_start and notice.window_end else dt.timedelta(0))
    return AlertRule(
        id=notice.rule_id, title=notice.rule_name,
        description=notice.description or f"{notice.monitoring_service or notice.signal_type}"
                                          f" alert {notice.rule_name!r}",
        severity=notice.severity, query="", window=span, frequency=span,
        time_aggregation="", measure="value", operator=notice.operator or "",
        # None, not a made-up number: the messages show a missing threshold as "n/a", and the
        # payload's own threshold is the one they use when there is one.
        threshold=notice.threshold,  # type: ignore[arg-type]
        dimensions=tuple(notice.dimensions), failing_periods=1, min_failing_periods=1,
        channels=default.unknown_rule_receivers if default.rule_channels else default.receivers,
        runbook=UNKNOWN_RULE_RUNBOOK)


def receiver_channels(table: RouteTable, env: Mapping[str, str], dashboard: Dashboard,
                      pagerduty_events_url: str | None = None) -> list[Channel]:
    """A `Channel` per Slack and PagerDuty receiver, named like the receiver, that reads its
    secret from `env` each time it sends (pass os.environ to follow rotations). Given to the
    Deliverer as `channels`, the shipped receivers replace the standard channels."""
    made: list[Channel] = []
    for receiver in table.receivers.values():
        if receiver.type == "slack":
            made.append(_EnvSlack(receiver, env, dashboard))
        elif receiver.type == "pagerduty":
            made.append(_EnvPagerDuty(receiver, env, dashboard, pagerduty_events_url))
    return made


class _EnvSlack(SlackChannel):
    def __init__(self, receiver: Receiver, env: Mapping[str, str],
                 dashboard: Dashboard) -> None:
        super().__init__(None, dashboard)
        self.name, self.setting = receiver.name, receiver.setting or ""
        self.receiver, self.env = receiver, env

    @property
    def webhook_url(self) -> str | None:  # type: ignore[override]
        return self.receiver.secret(self.env)

    @webhook_url.setter
    def webhook_url(self, _value: str | None) -> None:
        pass  # the parent's __init__ stores one; the URL is read from the environment instead


class _EnvPagerDuty(PagerDutyChannel):
    def __init__(self, receiver: Receiver, env: Mapping[str, str], dashboard: Dashboard,
                 events_url: str | None) -> None:
        super().__init__(None, events_url, dashboard)
        self.name, self.setting = receiver.name, receiver.setting or ""
        self.receiver, self.env = receiver, env

    @property
    def routing_key(self) -> str | None:  # type: ignore[override]
        return self.receiver.secret(self.env)

    @routing_key.setter
    def routing_key(self, _value: str | None) -> None:
        pass  # as for Slack: the key is read from the environment when sending


def describe(table: RouteTable, env: Mapping[str, str]) -> dict[str, Any]:
    """The routing as the dashboard shows it: routes in order, receivers with their type and
    whether their setting is set, and the settings that are not. No secret value."""
    receivers = [r.record(env) for r in table.receivers.values()]
    shipped = table.source == str(ROUTES_FILE)  # the server's own path says nothing to a reader
    return {"file": "the shipped routes.json" if shipped else table.source,
            "receivers": receivers,
            "routes": [r.record() for r in table.routes],
            "unsetSettings": sorted({r["setting"] for r in receivers
                                     if r["settingSet"] is False})}


# -- grouping ---------------------------------------------------------------------------------


@dataclass
class Group:
    """Alerts of one route, group key and Slack receivers, sent together as one message.
    `wait_seconds` is shown in its footer; `opened_at` and `due_at` are the caller's to use
    (the redelivery timer keeps a group's times in its outbox entries)."""

    route: str
    key: tuple[tuple[str, str], ...]
    receivers: tuple[str, ...]
    wait_seconds: int
    opened_at: float
    due_at: float
    #: By alert id: an alert shows once, in its latest state.
    notices: dict[str, AlertNotice] = field(default_factory=dict)

    def add(self, notice: AlertNotice) -> None:
        held = self.notices.get(notice.alert_id)
        # A Resolved replaces its Fired; a Fired retried after its Resolved changes nothing.
        if held is None or not (notice.fired and not held.fired):
            self.notices[notice.alert_id] = notice


# -- the group's Slack message ----------------------------------------------------------------

# Our shares of Slack's limits for one alert's section (SECTION_TEXT_MAX): title 150, rule id
# 100, comparison 300, time 200, where 500 and two links of at most _URL_MAX add up to < 3000.
_ALERT_TITLE_MAX = 150
_ALERT_WHERE_MAX = 500
_FOOTER_MAX = 1000


def group_text(selection: Selection) -> str:
    """The group a notice waits in, as the outbox keeps it: the route and its group values
    (each percent-encoded: route names and labels never hold `|` or `=`, values may)."""
    return "|".join([selection.route, *(f"{k}={quote(v, safe='')}"
                                        for k, v in selection.group_key or ())])


def group_from_text(text: str, table: RouteTable, channel: str) -> Group:
    """An empty `Group` for `group_text`'s text, on one channel, with its route's wait."""
    route, *values = text.split("|")
    key = tuple((k, unquote(v)) for k, _, v in (part.partition("=") for part in values))
    found = next((r for r in table.routes if r.name == route), None)
    seconds = found.group.wait_seconds if found is not None and found.group else 0
    return Group(route, key, (channel,), seconds, 0.0, 0.0)


def group_message(group: Group, rule_of: Callable[[AlertNotice], AlertRule],
                  dashboard: Dashboard | None = None) -> dict[str, Any]:
    """One incoming-webhook body for every alert of `group`: firing first, worst severity
    first, as many as Slack's limits allow and a count of the rest. A group of one is the
    usual single-alert message. Values are escaped with _slack's helpers."""
    dashboard = dashboard or Dashboard()
    items = sorted(((n, rule_of(n)) for n in group.notices.values()),
                   key=lambda p: (not p[0].fired, p[0].severity, p[0].fired_at, p[0].alert_id))
    if len(items) == 1:
        return SlackChannel(None, dashboard).body(*items[0])
    firing = [n for n, _ in items if n.fired]
    worst = min((n.severity for n in firing), default=None)
    counts = f"{len(firing)} firing, {len(items) - len(firing)} resolved"
    where = ", ".join(f"{k}={v}" for k, v in group.key)
    emoji = (":white_check_mark:" if worst is None else ":rotating_light:" if worst <= 1
             else ":warning:" if worst == 2 else ":information_source:")
    header = plain(f"{emoji} {len(items)} alerts · {counts}" + (f" · {where}" if where else ""),
                   HEADER_TEXT_MAX)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}}]
    used, shown = slack_len(header), 0
    def rest(count: int) -> str:
        return f"… and {count} more alerts: " + _link(dashboard.home, ":bar_chart: Dashboard")

    # Room is kept for the closing "and N more" line, whether or not it is needed.
    reserve = slack_len(rest(len(items)))
    for notice, rule in items:
        section = _mrkdwn(_alert_text(notice, rule, dashboard), SECTION_TEXT_MAX)
        size = slack_len(section["text"])
        if len(blocks) >= MAX_BLOCKS - 1 or used + size + reserve > TOTAL_TEXT_BUDGET:
            break
        blocks.append({"type": "section", "text": section})
        used += size
        shown += 1
    if shown < len(items):
        blocks.append({"type": "section",
                       "text": _mrkdwn(rest(len(items) - shown), SECTION_TEXT_MAX)})
    footer = (f"Route {code(group.route, 100)}"
              + (f" · grouped by {text(where, 600)}" if where else "")
              + f" · alerts within {group.wait_seconds} s")
    titles = [f"[{'FIRING' if n.fired else 'RESOLVED'}] {n.severity_name} "
              f"{text(r.title, _ALERT_TITLE_MAX)}" for n, r in items]
    head = f"{len(items)} alerts ({counts})" + (f" {text(where, 600)}" if where else "") + ": "
    tail = f". Dashboard: {_address(dashboard.home)}"
    room = FALLBACK_TEXT_MAX - slack_len(head) - slack_len(tail)
    return {
        "text": clip(head + _fit_lines(titles, room, "; ", "… and {} more") + tail,
                     FALLBACK_TEXT_MAX),
        "blocks": blocks,
        "attachments": [{
            "color": _RESOLVED_COLOUR if worst is None else _FIRED_COLOURS[worst],
            "blocks": [{"type": "context",
                        "elements": [_mrkdwn(clip(footer, _FOOTER_MAX), TEXT_OBJECT_MAX)]}],
        }],
    }


def _alert_text(notice: AlertNotice, rule: AlertRule, dashboard: Dashboard) -> str:
    """One alert's lines: state, severity and title; value and time; where; links."""
    dims = notice.dimensions
    state = "FIRING" if notice.fired else "RESOLVED"
    when = (f"fired {_human_time(notice.fired_at)}" if notice.fired else
            f"resolved {_human_time(notice.resolved_at or notice.fired_at)}")
    lines = [
        f"*{state} · {notice.severity_name} ({SEVERITY_NAMES[notice.severity]}) · "
        f"{text(rule.title, _ALERT_TITLE_MAX)}* ({code(rule.id, 100)})",
        f"{text(_comparison(notice, rule), 300)} · {text(when, 200)}",
    ]
    pairs = [f"{text(k, 80)}={code(v, 120)}" for k, v in dims.items()]
    if pairs:
        lines.append(_fit_lines(pairs, _ALERT_WHERE_MAX, ", ", "… and {} more"))
    board = dashboard.url(dims)
    if slack_len(url(board)) > _URL_MAX:
        board = dashboard.home
    lines.append(f"{_link(rule.runbook_url(), ':book: Runbook')}   "
                 f"{_link(board, ':bar_chart: Dashboard')}")
    return "\n".join(lines)

