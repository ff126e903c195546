"""The Slack message of an alert: a Block Kit body that Slack accepts whatever the telemetry
says, and in which no value from telemetry can format text, link or mention anyone.

    message = render(SlackAlert(fired=True, severity=1, ...))  # the incoming-webhook body

Everything in the message that is not a literal of this module (rule titles and descriptions,
dimension names and values, the payload's operator and service, times, ids) is a *value* and
goes through `text`, `code`, `label` or `url` (the header is plain_text, not mrkdwn, and
holds our rule's title only; `plain` keeps it to one line and its limit):

- `&`, `<` and `>` become `&amp;`, `&lt;` and `&gt;`, as Slack's formatting reference requires
  (https://docs.slack.dev/messaging/formatting-message-text#escaping), so a value can open
  no link, mention (`<!channel>`, `<@U123>`) or date token.
- The mrkdwn markers become lookalikes that Slack does not parse: `*` → `∗` (U+2217),
  `_` → `ˍ` (U+02CD), `~` → `∼` (U+223C), backtick → `ˋ` (U+02CB), and the fullwidth forms
  Slack also parses (`＊` → `﹡`, `＿` → `⸏`, `｀` → `ˋ`, and `～` → `∼` as a precaution). The
  table is jsx-slack's, worked out against Slack's clients
  (https://github.com/yhatt/jsx-slack/blob/main/docs/about-escape-and-exact-mode.md). An
  underscore between two ASCII letters or digits stays, so `sf_conn_1` can be copied as it
  is: Slack formats no marker inside a word (same source). Zero-width characters are no
  escape: jsx-slack inserts U+200B around markers precisely to make Slack format them.
- Line breaks and other control characters become spaces, so a value never starts a line
  (where `>` would quote); a value that starts with `>` gets a soft hyphen before it anyway.
- Every mrkdwn text object says `verbatim: true`, so Slack does not turn a bare URL, channel
  name or `@here` in a value into a link or mention; our own `<url|label>` links still work
  (https://docs.slack.dev/reference/block-kit/composition-objects/text-object).
- Our links percent-encode anything in the address that could end or split `<url|label>`,
  and a label's `|` becomes `∣` (U+2223).

Lengths are counted in UTF-16 code units (an emoji counts 2), the larger of the two ways a
"character" can be counted, and on the escaped text, so escaping cannot push a cut text back
over its limit. A text that must be cut ends in "…", never inside `&amp;`, a surrogate pair,
an emoji's ZWJ sequence, a flag or a letter's combining marks.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

# -- Slack's limits ---------------------------------------------------------------------------

#: "You can include up to 50 blocks in each message"
#: (https://docs.slack.dev/reference/block-kit/blocks).
MAX_BLOCKS = 50
#: Header block: "Maximum length for the text in this field is 150 characters"
#: (https://docs.slack.dev/reference/block-kit/blocks/header-block).
HEADER_TEXT_MAX = 150
#: Section block: text "maximum length is 3000 characters"; fields "Maximum number of items
#: is 10. Maximum length for the text in each item is 2000 characters"
#: (https://docs.slack.dev/reference/block-kit/blocks/section-block).
SECTION_TEXT_MAX = 3000
SECTION_FIELDS_MAX = 10
FIELD_TEXT_MAX = 2000
#: Context block: elements "Maximum number of items is 10"
#: (https://docs.slack.dev/reference/block-kit/blocks/context-block).
CONTEXT_ELEMENTS_MAX = 10
#: Text object: "The minimum length is 1 and maximum length is 3000 characters"
#: (https://docs.slack.dev/reference/block-kit/composition-objects/text-object).
TEXT_OBJECT_MAX = 3000
#: The top-level `text` (notifications, and the fallback where blocks cannot be shown):
#: "For best results, limit the number of characters in the text field to 4,000 characters
#: [...] Slack will truncate messages containing more than 40,000 characters"
#: (https://docs.slack.dev/reference/methods/chat.postMessage, "Truncating content"; the
#: truncation applies to incoming webhooks too:
#: https://docs.slack.dev/changelog/2018-truncating-really-long-messages).
FALLBACK_TEXT_MAX = 4000
#: Ours: every text of the blocks added up. Slack refuses blocks whose texts add up to
#: somewhere around 11,000-13,000 characters with `msg_blocks_too_long`, a limit it does not
#: document (https://github.com/slackapi/bolt-js/issues/2509, .../issues/2867); our shares
#: below add up to at most about 7,800.
TOTAL_TEXT_BUDGET = 8000

# -- our shares of them -----------------------------------------------------------------------

_TITLE_MAX = 200  # a rule title wherever it appears
_DESCRIPTION_SECTION_MAX = 2000  # the summary section: title and description
_RULE_ID_MAX = 200
_COMPARISON_MAX = 300
_KEY_MAX = 80  # a dimension's name
_VALUE_MAX = 300  # a dimension's value in the Where field
_FALLBACK_VALUE_MAX = 100  # a dimension's value in the top-level text
_FILTER_VALUE_MAX = 60  # a filter value in the dashboard link's label
_URL_MAX = 800  # a link's address; a longer dashboard address links the unfiltered dashboard
_SOURCE_MAX = 200  # the payload's monitoring service or signal type
_ALERT_ID_MAX = 200

ELLIPSIS = "…"
EMPTY = "_(empty)_"  # ours: a dimension whose value is the empty string
_FIRED_COLOURS = ("#B01E3C", "#E01E5A", "#F2952F", "#ECB22E", "#439FE0")
_RESOLVED_COLOUR = "#2EB67D"

_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_LOOKALIKES = {
    "*": "\u2217", "\uff0a": "\ufe61",  # ∗ ﹡
    "_": "\u02cd", "\uff3f": "\u2e0f",  # ˍ ⸏
    "`": "\u02cb", "\uff40": "\u02cb",  # ˋ
    "~": "\u223c", "\uff5e": "\u223c",  # ∼
}
_PIPE = "\u2223"  # ∣, for `|` in a link's label
_SOFT_HYPHEN = "\u00ad"
#: What may stay as it is in a link's address (RFC 3986 reserved and unreserved characters,
#: and % for what is already encoded); anything else, `|`, `<`, `>` and spaces among it, is
#: percent-encoded.
_URL_SAFE = "/:?#[]@!$&'()*+,;=%-._~"


@dataclass(frozen=True)
class SlackAlert:
    """What the message says, as plain strings; `render` decides how Slack shows them."""

    fired: bool
    severity: int  # 0 (critical) .. 4 (verbose)
    severity_name: str  # "Sev1"
    severity_label: str  # "Error"
    title: str
    rule_id: str
    description: str
    comparison: str  # "failureRate = 12.5 (alerts when > 10)"
    when: str  # "Fired 2025-03-04 10:15:30 UTC"
    runbook_url: str
    dashboard_url: str  # filtered to the alert's integration, tenant, adapter type
    dashboard_home: str  # unfiltered, linked when the filtered address is too long
    alert_id: str
    source: str  # the payload's monitoring service or signal type
    window: str
    dimensions: Mapping[str, str] = field(default_factory=dict)
    filters: Mapping[str, str] = field(default_factory=dict)  # the dashboard's filters


def render(alert: SlackAlert) -> dict[str, Any]:
    """An incoming-webhook body: Block Kit blocks, a `text` fallback and a colour bar."""
    state = "FIRING" if alert.fired else "RESOLVED"
    severity = text(f"{alert.severity_name} ({alert.severity_label})", _TITLE_MAX)
    title = text(alert.title.strip(), _TITLE_MAX)
    header = plain(f"{_emoji(alert)} {state} · {alert.severity_name} · {alert.title}",
                   HEADER_TEXT_MAX)
    if alert.fired and alert.description.strip():
        prefix = f"*{title}*: "
        summary = prefix + text(alert.description, _DESCRIPTION_SECTION_MAX - slack_len(prefix))
    elif alert.fired:
        summary = f"*{title}*"
    else:
        summary = f"*{title}* is back within its threshold."
    lines = [f"• {text(k, _KEY_MAX)}: {code(v, _VALUE_MAX)}" for k, v in alert.dimensions.items()]
    where = "*Where*\n" + (_fit_lines(lines, FIELD_TEXT_MAX - len("*Where*\n"), "\n",
                                       "• … and {} more dimensions") if lines else "—")
    fields = [
        f"*Severity*\n{severity}",
        f"*Status*\n{text(alert.when, _TITLE_MAX)}",
        f"*Rule*\n{title} ({code(alert.rule_id, _RULE_ID_MAX)})",
        f"*Value vs threshold*\n{text(alert.comparison, _COMPARISON_MAX)}",
        where,
    ]
    footer = (f"Alert {code(alert.alert_id, _ALERT_ID_MAX)} · {text(alert.source, _SOURCE_MAX)}"
              f" · window {text(alert.window, _TITLE_MAX)}")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}},
        {"type": "section", "text": _mrkdwn(summary, SECTION_TEXT_MAX)},
        {"type": "section", "fields": [_mrkdwn(f, FIELD_TEXT_MAX) for f in fields]},
        {"type": "section", "text": _mrkdwn("   ".join(_links(alert)), SECTION_TEXT_MAX)},
    ]
    return {
        "text": _fallback(alert, state),
        "blocks": blocks,
        "attachments": [{
            "color": _FIRED_COLOURS[alert.severity] if alert.fired else _RESOLVED_COLOUR,
            "blocks": [{"type": "context",
                        "elements": [_mrkdwn(footer, TEXT_OBJECT_MAX)]}],
        }],
    }


# -- values -----------------------------------------------------------------------------------


def text(value: str, limit: int) -> str:
    """A value as mrkdwn that shows it, formats nothing, links nothing and mentions nobody,
    cut to `limit` with "…"."""
    # Escaping only lengthens, so past limit + 1 characters everything would be cut anyway.
    clipped = clip(_escape(value[: limit + 1]), limit)
    if clipped.endswith("_" + ELLIPSIS):  # a kept underscore is at a word's end now
        clipped = clipped[:-2] + _LOOKALIKES["_"] + ELLIPSIS
    return clipped


def code(value: str, limit: int) -> str:
    """A value as inline code (ids, names), escaped like `text`; `_(empty)_` for ""."""
    if value == "":
        return EMPTY
    return f"`{text(value, limit - 2)}`"


def label(value: str, limit: int) -> str:
    """A value inside a link's label: `text`, and `|` as `∣`."""
    return text(value.replace("|", _PIPE), limit)


def url(address: str) -> str:
    """A link's address as it goes between `<` and `|`: what could end or split the link
    percent-encoded, then `&` as `&amp;`."""
    return quote(address, safe=_URL_SAFE).replace("&", "&amp;")


def plain(value: str, limit: int) -> str:
    """A plain_text value: one line, cut to `limit` with "…"."""
    return clip(_one_line(value[: limit + 1]), limit)


def slack_len(value: str) -> int:
    """Length in UTF-16 code units: an emoji or other astral character counts 2."""
    return len(value.encode("utf-16-le")) // 2


def clip(value: str, limit: int) -> str:
    """`value` (escaped already) cut to at most `limit` UTF-16 units, ending in "…" when cut;
    never inside an entity, a surrogate pair or a grapheme (combining marks, ZWJ sequences,
    variation selectors, skin tones, flags)."""
    if slack_len(value) <= limit:
        return value
    budget, used, cut = max(0, limit - 1), 0, 0
    for ch in value:
        used += 2 if ord(ch) > 0xFFFF else 1
        if used > budget:
            break
        cut += 1
    while True:
        before = cut
        while cut > 0 and (_extends(value[cut]) or value[cut - 1] == "\u200d"):
            cut -= 1
        if cut > 0 and _regional(value[cut]) and _regional(value[cut - 1]):
            run = 0
            while cut - run > 0 and _regional(value[cut - run - 1]):
                run += 1
            cut -= run % 2
        amp = value.rfind("&", max(0, cut - 4), cut)
        if amp != -1 and value.find(";", amp) >= cut:
            cut = amp
        if cut == before:
            break
    return value[:cut].rstrip() + ELLIPSIS


def _escape(value: str) -> str:
    value = _one_line(value)
    out = []
    for i, ch in enumerate(value):
        if ch in _ENTITIES:
            out.append(_ENTITIES[ch])
        elif ch == "_" and _ascii_word(value, i - 1) and _ascii_word(value, i + 1):
            out.append(ch)
        else:
            out.append(_LOOKALIKES.get(ch, ch))
    escaped = "".join(out)
    return _SOFT_HYPHEN + escaped if escaped.startswith(("&gt;", "\uff1e")) else escaped


def _one_line(value: str) -> str:
    """Line breaks, tabs and other control characters as spaces."""
    return "".join(" " if (ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F
                           or ch in "\u2028\u2029") else ch for ch in value)


def _ascii_word(value: str, index: int) -> bool:
    return 0 <= index < len(value) and value[index].isascii() and value[index].isalnum()


def _extends(ch: str) -> bool:
    """A character that belongs to the grapheme before it."""
    cp = ord(ch)
    return (unicodedata.category(ch) in ("Mn", "Mc", "Me") or cp == 0x200D
            or 0xFE00 <= cp <= 0xFE0F or 0x1F3FB <= cp <= 0x1F3FF
            or 0xE0020 <= cp <= 0xE007F or 0xE0100 <= cp <= 0xE01EF)


def _regional(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


# -- pieces -----------------------------------------------------------------------------------


def _mrkdwn(value: str, limit: int) -> dict[str, Any]:
    """A mrkdwn text object; `clip` is only a last guard, each part has its share already."""
    return {"type": "mrkdwn", "text": clip(value, limit) or "—", "verbatim": True}


def _emoji(alert: SlackAlert) -> str:
    if not alert.fired:
        return ":white_check_mark:"
    return (":rotating_light:" if alert.severity <= 1 else
            ":warning:" if alert.severity == 2 else ":information_source:")


def _fit_lines(lines: Iterable[str], limit: int, joiner: str, more: str) -> str:
    """As many of `lines` as fit in `limit` with room for `more` (formatted with how many
    were left out) whenever some are."""
    lines = list(lines)
    shown: list[str] = []
    used = 0
    for index, line in enumerate(lines):
        left = len(lines) - index - 1
        extra = slack_len(joiner + more.format(left)) if left else 0
        size = (slack_len(joiner) if shown else 0) + slack_len(line)
        if used + size + extra > limit:
            break
        shown.append(line)
        used += size
    if len(shown) < len(lines):
        shown.append(more.format(len(lines) - len(shown)))
    return joiner.join(shown)


def _links(alert: SlackAlert) -> list[str]:
    """The runbook and the dashboard filtered to the alert (our `<url|label>` links)."""
    shown = ", ".join(f"{text(k, _KEY_MAX)}={label(v, _FILTER_VALUE_MAX)}"
                      for k, v in alert.filters.items())
    dashboard = ":bar_chart: Dashboard" + (f" ({shown})" if shown else "")
    if slack_len(url(alert.dashboard_url)) > _URL_MAX:
        return [_link(alert.runbook_url, ":book: Runbook"),
                _link(alert.dashboard_home, ":bar_chart: Dashboard (unfiltered: the filters "
                      "are too long for a link)")]
    return [_link(alert.runbook_url, ":book: Runbook"), _link(alert.dashboard_url, dashboard)]


def _link(address: str, caption: str) -> str:
    """`<url|caption>` for an http(s) address of sane length; otherwise the address as code
    (a relative runbook path, when RUNBOOK_BASE_URL is unset)."""
    target = url(address)
    if address.startswith(("https://", "http://")) and slack_len(target) <= _URL_MAX:
        return f"<{target}|{caption}>"
    return f"{caption}: {code(address, _URL_MAX)}"


def _address(address: str) -> str:
    """An address shown as itself: `<url>` (nothing inside a link is formatted) for http(s),
    otherwise as text."""
    target = url(address)
    if address.startswith(("https://", "http://")) and slack_len(target) <= _URL_MAX:
        return f"<{target}>"
    return text(address, _URL_MAX)


def _fallback(alert: SlackAlert, state: str) -> str:
    """The top-level `text`: one line with the addresses whole (as `<url>` links), the Where
    list cut to fit."""
    head = (f"[{state}] {text(alert.severity_name, _TITLE_MAX)} "
            f"{text(alert.title, _TITLE_MAX)}: {text(alert.comparison, _COMPARISON_MAX)}")
    dashboard = alert.dashboard_url
    if slack_len(url(dashboard)) > _URL_MAX:
        dashboard = alert.dashboard_home
    tail = f". Runbook: {_address(alert.runbook_url)} Dashboard: {_address(dashboard)}"
    room = FALLBACK_TEXT_MAX - slack_len(head) - slack_len(tail) - len(" ()")
    pairs = [f"{text(k, _KEY_MAX)}={text(v, _FALLBACK_VALUE_MAX)}"
             for k, v in alert.dimensions.items()]
    where = _fit_lines(pairs, room, ", ", "… and {} more") if pairs else "-"
    return clip(f"{head} ({where}){tail}", FALLBACK_TEXT_MAX)
