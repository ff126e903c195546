"""The Slack message of an alert, against what telemetry can put in it.

Each test is an accident or an attack: a 100 KB error message, 200 dimensions, a dimension
value that mentions the channel, hides a link, formats text or sits where the text is cut.
Every message built must pass `slack_problems`, a validator written from Slack's documented
limits independently of _slack.py's constants (so a wrong constant there fails here), and
the validator is shown to refuse each over-limit shape, so it cannot pass vacuously. Slack
answers a body it refuses with a 4xx, which the relay treats as permanent: a message over a
limit is a lost alert.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import unicodedata
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integration_monitoring.alerts import _slack
from integration_monitoring.alerts._delivery import Deliverer
from integration_monitoring.alerts._payload import AlertNotice, build_log_alert, parse_alert
from integration_monitoring.alerts._rules import AlertRule, rule_by_id

RUNBOOK_BASE = "https://github.example/acme/integration-monitoring/blob/main"
DASHBOARD = "http://127.0.0.1:7071"
WEBHOOK = "https://hooks.slack.example/services/T000/B000/XXXX"
T0 = dt.datetime(2025, 3, 4, 10, 15, 30, tzinfo=dt.UTC)


# -- the validator: Slack's documented limits, restated -----------------------------------------

#: https://docs.slack.dev/reference/block-kit/blocks: "up to 50 blocks in each message".
BLOCKS_MAX = 50
#: https://docs.slack.dev/reference/block-kit/blocks/header-block: plain_text, at most 150.
HEADER_MAX = 150
#: https://docs.slack.dev/reference/block-kit/blocks/section-block: text at most 3000;
#: fields at most 10 items of at most 2000 each.
SECTION_TEXT_MAX, FIELDS_MAX, FIELD_MAX = 3000, 10, 2000
#: https://docs.slack.dev/reference/block-kit/blocks/context-block: at most 10 elements.
CONTEXT_ELEMENTS_MAX = 10
#: https://docs.slack.dev/reference/block-kit/composition-objects/text-object: 1 to 3000.
TEXT_OBJECT_MAX = 3000
#: https://docs.slack.dev/reference/methods/chat.postMessage, "Truncating content": keep the
#: top-level text to 4,000 characters (Slack truncates past 40,000).
FALLBACK_MAX = 4000
#: Ours, well below the undocumented total at which Slack answers msg_blocks_too_long
#: (slackapi/bolt-js#2509: about 12,000-13,000 characters).
TOTAL_TEXT_MAX = 8000
#: https://docs.slack.dev/reference/block-kit/blocks (every block): block_id at most 255.
BLOCK_ID_MAX = 255


def units(text: str) -> int:
    """Characters as UTF-16 code units: the stricter count (an emoji is 2)."""
    return len(text.encode("utf-16-le")) // 2


def slack_problems(message: Any) -> list[str]:
    """What Slack would refuse in an incoming-webhook body; [] when it is within limits."""
    problems: list[str] = []
    total = 0

    def text_object(obj: Any, where: str, limit: int, kinds: tuple[str, ...]) -> None:
        nonlocal total
        if not isinstance(obj, dict) or obj.get("type") not in kinds:
            problems.append(f"{where}: not a {' or '.join(kinds)} text object")
            return
        text = obj.get("text")
        if not isinstance(text, str) or not 1 <= units(text) <= limit:
            size = units(text) if isinstance(text, str) else "no"
            problems.append(f"{where}.text: {size} characters, not 1 to {limit}")
            return
        if "verbatim" in obj and obj["type"] != "mrkdwn":
            problems.append(f"{where}.verbatim: only for mrkdwn")
        if "emoji" in obj and obj["type"] != "plain_text":
            problems.append(f"{where}.emoji: only for plain_text")
        total += units(text)

    def block(item: Any, where: str) -> None:
        if not isinstance(item, dict):
            problems.append(f"{where}: not an object")
            return
        if len(str(item.get("block_id", ""))) > BLOCK_ID_MAX:
            problems.append(f"{where}.block_id: over {BLOCK_ID_MAX} characters")
        kind = item.get("type")
        if kind == "header":
            text_object(item.get("text"), f"{where}.text", HEADER_MAX, ("plain_text",))
        elif kind == "section":
            if "text" not in item and "fields" not in item:
                problems.append(f"{where}: a section needs text or fields")
            if "text" in item:
                text_object(item["text"], f"{where}.text", SECTION_TEXT_MAX,
                            ("plain_text", "mrkdwn"))
            fields = item.get("fields", [])
            if not isinstance(fields, list) or len(fields) > FIELDS_MAX:
                problems.append(f"{where}.fields: more than {FIELDS_MAX} items")
            for i, f in enumerate(fields if isinstance(fields, list) else []):
                text_object(f, f"{where}.fields[{i}]", FIELD_MAX, ("plain_text", "mrkdwn"))
        elif kind == "context":
            elements = item.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= CONTEXT_ELEMENTS_MAX:
                problems.append(f"{where}.elements: not 1 to {CONTEXT_ELEMENTS_MAX} items")
                elements = []
            for i, e in enumerate(elements):
                if not (isinstance(e, dict) and e.get("type") == "image"):
                    text_object(e, f"{where}.elements[{i}]", TEXT_OBJECT_MAX,
                                ("plain_text", "mrkdwn"))
        elif kind != "divider":
            problems.append(f"{where}: unexpected block type {kind!r}")

    if not isinstance(message, dict):
        return ["the body is not an object"]
    fallback = message.get("text")
    if not isinstance(fallback, str) or not 1 <= units(fallback) <= FALLBACK_MAX:
        size = units(fallback) if isinstance(fallback, str) else "no"
        problems.append(f"text: {size} characters, not 1 to {FALLBACK_MAX}")
    blocks = [(f"blocks[{i}]", b) for i, b in enumerate(message.get("blocks", []))]
    for a, attachment in enumerate(message.get("attachments", [])):
        blocks += [(f"attachments[{a}].blocks[{i}]", b)
                   for i, b in enumerate(attachment.get("blocks", []))]
    if len(blocks) > BLOCKS_MAX:
        problems.append(f"blocks: {len(blocks)}, more than {BLOCKS_MAX}")
    for where, item in blocks:
        block(item, where)
    if total > TOTAL_TEXT_MAX:
        problems.append(f"blocks: {total} characters of text in all, over {TOTAL_TEXT_MAX}")
    return problems


# -- building messages ------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def runbook_base(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBOOK_BASE_URL", RUNBOOK_BASE)


@pytest.fixture
def deliverer() -> Iterator[Deliverer]:
    instance = Deliverer(dashboard_base_url=DASHBOARD)
    yield instance
    instance.close()


def notice_and_rule(dimensions: dict[str, str] | None = None, *, description: str | None = None,
                    operator: str | None = None, service: str | None = None,
                    rule_id: str = "integration-stale",
                    condition: str = "Fired") -> tuple[AlertNotice, AlertRule]:
    """A notice as the relay reads it from Azure's payload, for a rule of ours (its
    description replaced when given), with the payload's operator and service when given."""
    rule = rule_by_id(rule_id)
    assert rule is not None
    if description is not None:
        rule = dataclasses.replace(rule, description=description)
    body = build_log_alert(
        rule, condition=condition,
        dimensions={"integrationId": "sf-1", "tenantId": "t-1"} if dimensions is None
        else dimensions, value=5.5, window_start=T0 - rule.window, window_end=T0, fired_at=T0,
        resolved_at=T0 + dt.timedelta(minutes=5) if condition == "Resolved" else None,
        alert_id="6f1c2d3e-0000-4000-8000-000000000001")
    if operator is not None:
        body["data"]["alertContext"]["condition"]["allOf"][0]["operator"] = operator
    if service is not None:
        body["data"]["essentials"]["monitoringService"] = service
    return parse_alert(json.loads(json.dumps(body))), rule


def build(deliverer: Deliverer, dimensions: dict[str, str] | None = None,
          **options: Any) -> dict[str, Any]:
    notice, rule = notice_and_rule(dimensions, **options)
    message = deliverer.channels["slack"].body(notice, rule)
    assert slack_problems(message) == []
    return message


def mrkdwn_texts(message: dict[str, Any]) -> list[str]:
    """Every mrkdwn text of the message, and the top-level text (mrkdwn too)."""
    found = [message["text"]]

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if value.get("type") == "mrkdwn":
                found.append(value["text"])
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(message["blocks"])
    walk(message["attachments"])
    return found


def where_field(message: dict[str, Any]) -> str:
    [where] = [f["text"] for f in message["blocks"][2]["fields"]
               if f["text"].startswith("*Where*")]
    return where


def links(message: dict[str, Any], fallback: bool = False) -> list[tuple[str, str]]:
    """(address, label) of every `<...>` control sequence in the message's blocks, or in its
    top-level text."""
    found = []
    for text in [message["text"]] if fallback else mrkdwn_texts(message)[1:]:
        for inner in re.findall(r"<([^<>]*)>", text):
            address, _, caption = inner.partition("|")
            found.append((address, caption))
    return found


def assert_only_our_links(message: dict[str, Any]) -> None:
    """The only control sequences are our runbook and dashboard links: with a label (and no
    `|` in it) in the blocks, bare in the top-level text."""
    ours = (RUNBOOK_BASE + "/docs/runbooks/", DASHBOARD + "/dashboard")
    found = links(message)
    assert [a.startswith(ours[0]) for a, _ in found] == [True, False], found
    assert all(a.startswith(ours) and c and "|" not in c for a, c in found), found
    bare = links(message, fallback=True)
    assert [a.startswith(ours[0]) for a, _ in bare] == [True, False], bare
    assert all(a.startswith(ours) and not c for a, c in bare), bare


def shown_text(text: str) -> str:
    """A mrkdwn text with each of its links replaced by its label: the text a reader sees."""
    return re.sub(r"<[^<>|]*\|?([^<>]*)>", r"\1", text)


MARKERS = re.compile(r"[*~`＊＿｀]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def unescape(shown: str) -> str:
    """What Slack displays for a value escaped by _slack.text (its lookalikes put back)."""
    back = {"\u2217": "*", "\ufe61": "＊", "\u02cd": "_", "\u2e0f": "＿", "\u02cb": "`",
            "\u223c": "~"}
    shown = "".join(back.get(ch, ch) for ch in shown.replace("\u00ad", ""))
    return shown.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


# -- the validator refuses what Slack refuses -------------------------------------------------


def _over_limit(message: dict[str, Any], change: str) -> dict[str, Any]:
    message = json.loads(json.dumps(message))
    blocks = message["blocks"]
    header, summary, fields = blocks[0], blocks[1], blocks[2]["fields"]
    if change == "51 blocks":
        blocks += [{"type": "divider"}] * (51 - len(blocks) - 1)
    elif change == "header of 151":
        header["text"]["text"] = "x" * 151
    elif change == "header of 76 emoji":  # 76 code points, 152 UTF-16 units
        header["text"]["text"] = "🚨" * 76
    elif change == "mrkdwn header":
        header["text"]["type"] = "mrkdwn"
    elif change == "section text of 3001":
        summary["text"]["text"] = "x" * 3001
    elif change == "11 fields":
        fields += [{"type": "mrkdwn", "text": "x"}] * (11 - len(fields))
    elif change == "field of 2001":
        fields[0]["text"] = "x" * 2001
    elif change == "empty field":
        fields[0]["text"] = ""
    elif change == "11 context elements":
        message["attachments"][0]["blocks"][0]["elements"] *= 11
    elif change == "context text of 3001":
        message["attachments"][0]["blocks"][0]["elements"][0]["text"] = "x" * 3001
    elif change == "fallback of 4001":
        message["text"] = "x" * 4001
    elif change == "no fallback":
        del message["text"]
    elif change == "10,000 characters in all":
        blocks += [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 2500}}] * 4
    return message


OVER_LIMIT = {
    "51 blocks": "blocks: 51", "header of 151": "blocks[0].text.text: 151",
    "header of 76 emoji": "blocks[0].text.text: 152", "mrkdwn header": "blocks[0].text: not",
    "section text of 3001": "blocks[1].text.text: 3001", "11 fields": "blocks[2].fields: more",
    "field of 2001": "blocks[2].fields[0].text: 2001",
    "empty field": "blocks[2].fields[0].text: 0",
    "11 context elements": "attachments[0].blocks[0].elements: not 1 to 10",
    "context text of 3001": "attachments[0].blocks[0].elements[0].text: 3001",
    "fallback of 4001": "text: 4001", "no fallback": "text: no",
    "10,000 characters in all": "blocks: 10",
}


@pytest.mark.parametrize("change", list(OVER_LIMIT))
def test_the_validator_refuses_an_over_limit_message(deliverer, change):
    """The validator is not vacuous: each limit, broken once in an otherwise valid message,
    is named."""
    # given a message the validator accepts
    message = build(deliverer)
    # when one limit is broken, then the validator names it
    problems = slack_problems(_over_limit(message, change))
    assert len(problems) == 1 and problems[0].startswith(OVER_LIMIT[change]), problems


# -- accidents: sizes -------------------------------------------------------------------------


def test_a_100_kb_error_message_is_cut_to_fit(deliverer):
    """A 100 KB stack trace in a dimension and in the description: the message stays within
    every limit, shows the start of each with "…", and is a few KB, not 200."""
    trace = "Traceback (most recent call last):\n" + "  File \"sync.py\", line 1, in run\n" * 3100
    assert len(trace) > 100_000
    message = build(deliverer, {"integrationId": "sf-1", "tenantId": "t-1", "error": trace},
                    description=trace)
    summary = message["blocks"][1]["text"]["text"]
    assert summary.startswith("*Integration not syncing*: Traceback (most recent call last): ")
    assert summary.endswith("…") and units(summary) <= 2000
    [error] = [line for line in where_field(message).split("\n") if "error:" in line]
    assert error.startswith("• error: `Traceback") and error.endswith("…`")
    assert "\n  File" not in json.dumps(message)  # line breaks of a value are spaces
    assert len(json.dumps(message)) < 20_000
    assert "error=Traceback" in message["text"]


def test_200_dimensions_show_what_fits_and_count_the_rest(deliverer):
    """200 dimensions: the Where field lists those that fit and says how many more there
    are; the top-level text does the same and still ends with both addresses whole."""
    dimensions = {"integrationId": "sf-1", "tenantId": "t-1"}
    dimensions.update({f"dimension{i:03}": f"value-{i}" for i in range(198)})
    message = build(deliverer, dimensions)
    lines = where_field(message).split("\n")[1:]
    more = re.fullmatch(r"• … and (\d+) more dimensions", lines[-1])
    assert more and len(lines) - 1 + int(more.group(1)) == 200
    assert units(where_field(message)) <= 2000
    fallback = message["text"]
    shown = re.search(r", … and (\d+) more\)\. Runbook: ", fallback)
    assert shown and fallback.count("=value-") + 2 + int(shown.group(1)) == 200
    assert fallback.endswith(f" Dashboard: <{DASHBOARD}/dashboard?integrationId=sf-1"
                             "&amp;tenantId=t-1>")


def test_every_part_at_its_longest_at_once_still_fits():
    """Each part cut to its share, all at once (20,000-character title, rule id, description,
    operator, service, window, alert id, 300 dimensions, filters, 800-character addresses):
    the shares add up to less than every limit, the total included."""
    big = "W" * 20_000
    runbook, dashboard = "https://runbook.example/", f"{DASHBOARD}/dashboard?q="
    alert = _slack.SlackAlert(
        fired=True, severity=0, severity_name=big, severity_label=big, title=big,
        rule_id=big, description=big, comparison=big, when=big,
        runbook_url=runbook + "r" * (800 - len(runbook)),
        dashboard_url=dashboard + "d" * (800 - len(dashboard)),
        dashboard_home=f"{DASHBOARD}/dashboard", alert_id=big, source=big, window=big,
        dimensions={f"{i}{big}": big for i in range(300)},
        filters={f"integrationId{big}": big, "tenantId": big, "adapterType": big})
    assert units(_slack.url(alert.runbook_url)) == units(_slack.url(alert.dashboard_url)) == 800
    message = _slack.render(alert)
    assert slack_problems(message) == []
    assert [a for a, _ in links(message)] == [alert.runbook_url, alert.dashboard_url]


def test_values_that_escape_to_five_times_their_length_are_cut_between_entities(deliverer):
    """200 values of 1,000 ampersands (each becomes `&amp;`) and a key of 10,000 `<`: cut
    with "…", never inside an entity, and within every limit."""
    dimensions = {f"d{i}": "&" * 1000 for i in range(200)}
    dimensions["<" * 10_000] = "x"
    message = build(deliverer, dimensions, description="&" * 5000)
    for text in mrkdwn_texts(message):
        assert not re.search(r"&(?!amp;|lt;|gt;)", text), text
    assert where_field(message).split("\n")[1].endswith("&amp;…`")


EMOJI = ["👩‍👩‍👧", "🇩🇪🇫🇷", "e\u0301", "👍🏽", "❤️", "中", "🚨", "1️⃣"]


@pytest.mark.parametrize("tail", EMOJI)
def test_unicode_and_emoji_at_the_cut_point_are_cut_whole(tail):
    """Wherever the cut falls in an emoji sequence, a flag or a letter with its accent, the
    text keeps whole graphemes before its "…" and stays within the limit in UTF-16 units."""
    limit = 40
    for lead in range(limit - 14, limit + 2):
        value = "a" * lead + tail * 4
        shown = _slack.text(value, limit)
        assert units(shown) <= limit
        if units(value) <= limit:
            assert shown == value
            continue
        assert shown.endswith("…")
        kept = shown[:-1]
        assert value.startswith(kept)
        dropped = value[len(kept)]
        assert kept[-1:] != "\u200d"
        assert unicodedata.category(dropped)[0] != "M" and dropped not in "\u200d\ufe0f"
        assert not 0x1F3FB <= ord(dropped) <= 0x1F3FF
        flags = len(kept) - len(kept.rstrip("".join(map(chr, range(0x1F1E6, 0x1F200)))))
        assert flags % 2 == 0


def test_emoji_near_a_field_limit_in_a_message(deliverer):
    """The same at message level: a description and a dimension value of emoji that reach
    past their cut stay within the limits."""
    message = build(deliverer, {"integrationId": "sf-1", "note": "x" + "👩‍👩‍👧" * 200},
                    description="🇩🇪" * 2000)
    assert message["blocks"][1]["text"]["text"].endswith("🇩🇪…")
    assert "👩‍👩‍👧…`" in where_field(message)


def test_an_empty_value_is_shown_as_empty(deliverer):
    """An empty dimension value is shown as (empty), never as an empty code span or an
    empty text Slack would refuse; an empty description leaves the title alone."""
    message = build(deliverer, {"integrationId": "", "tenantId": "t-1", "queue": "   "},
                    description="")
    where = where_field(message)
    assert "• integrationId: _(empty)_" in where and "• queue: `   `" in where
    assert message["blocks"][1]["text"]["text"] == "*Integration not syncing*"
    assert "integrationId=, tenantId=t-1" in message["text"]


# -- attacks: markup in values ----------------------------------------------------------------


ATTACKS = {
    "channel mention": "<!channel>",
    "here mention": "<!here|here>",
    "user mention": "<@U123>",
    "disguised link": "<https://evil.example|click>",
    "date token": "<!date^1392734382^{date}|x>",
    "bold": "*bold*",
    "code": "`code`",
    "code block": "```rm -rf /```",
    "strikethrough": "~x~",
    "italic": "_y_",
    "entity": "&lt;",
    "quote": "> quoted\n> twice",
    "fullwidth bold": "＊bold＊",
    "fullwidth quote": "＞ quoted",
    "link label split": "a|b>c",
}


@pytest.mark.parametrize("attack", list(ATTACKS.values()), ids=list(ATTACKS))
def test_no_value_can_link_mention_or_format(deliverer, attack):
    """The attack as a dimension's value and name, the description, the payload's operator
    and monitoring service: the message is valid, its only links are ours, and each value
    shows as its characters, markers as lookalikes."""
    # given the attack in every place a value can reach
    message = build(deliverer, {"integrationId": attack, "tenantId": "t-1", attack: "v"},
                    description=attack, operator=attack, service=attack)
    # then no link, mention or date token but ours, and none in the top-level text
    assert_only_our_links(message)
    # and the attack itself is nowhere, nor a line that starts a quote
    for text in mrkdwn_texts(message):
        assert attack not in shown_text(text) or not re.search(r"[<>&*_~`＊＿｀]", attack)
        assert not re.search(r"^(&gt;|>|＞)", text, re.MULTILINE), text
    # and the value shows as itself: escaped, with no marker left
    shown = _slack.text(attack, 1000)
    assert not MARKERS.search(shown) and "<" not in shown and ">" not in shown
    assert not re.match(r"&gt;|＞", shown)  # nor would it quote at the start of a line
    assert unescape(shown) == attack.replace("\n", " ")
    assert f"• integrationId: `{shown}`" in where_field(message)
    assert message["blocks"][1]["text"]["text"] == f"*Integration not syncing*: {shown}"


def test_a_literal_entity_shows_as_typed(deliverer):
    """A value that is the text `&lt;` shows `&lt;` in Slack (sent as `&amp;lt;`), it does
    not become `<`."""
    message = build(deliverer, {"integrationId": "&lt;", "tenantId": "t-1"})
    assert "• integrationId: `&amp;lt;`" in where_field(message)


def test_identifiers_keep_their_inner_underscores(deliverer):
    """snake_case names stay copyable (Slack formats no marker inside a word); one at a
    word's edge becomes a lookalike."""
    message = build(deliverer, {"integrationId": "sf_conn_1", "tenantId": "_t_",
                                "queue": "sync_jobs_"})
    where = where_field(message)
    assert "• integrationId: `sf_conn_1`" in where
    assert "• tenantId: `ˍtˍ`" in where and "• queue: `sync_jobsˍ`" in where


def test_every_mrkdwn_text_is_verbatim(deliverer):
    """verbatim: Slack does not auto-link a bare URL, channel name or @here in a value."""
    message = build(deliverer, {"integrationId": "@here see https://evil.example #general"})
    objects = [*message["blocks"][2]["fields"], message["blocks"][1]["text"],
               message["blocks"][3]["text"]]
    objects += message["attachments"][0]["blocks"][0]["elements"]
    assert all(o["type"] == "mrkdwn" and o["verbatim"] is True for o in objects)


# -- our own links ----------------------------------------------------------------------------


def test_dimension_values_are_percent_encoded_in_the_dashboard_link(deliverer):
    """A filter value with `|`, `>`, `&`, spaces and `/` reaches the dashboard intact, and
    neither the address nor the label can end or split the link."""
    message = build(deliverer, {"integrationId": "a|b>c&d e/f", "tenantId": "t&1"})
    [(runbook, runbook_label), (dashboard, label)] = links(message)
    assert runbook == f"{RUNBOOK_BASE}/docs/runbooks/integration-stale.md"
    assert runbook_label == ":book: Runbook"
    assert not re.search(r"[|<> ]", dashboard)
    query = dashboard.replace("&amp;", "&").split("?", 1)[1]
    assert parse_qs(query) == {"integrationId": ["a|b>c&d e/f"], "tenantId": ["t&1"]}
    assert label == ":bar_chart: Dashboard (integrationId=a∣b&gt;c&amp;d e/f, tenantId=t&amp;1)"


def test_a_base_address_with_link_syntax_is_encoded_and_a_non_web_one_not_linked():
    """DASHBOARD_BASE_URL is ours, yet `|` or `>` in it cannot split the link; and only
    http(s) addresses become links."""
    odd = Deliverer(dashboard_base_url="http://127.0.0.1:7071/a|b>c")
    notice, rule = notice_and_rule()
    message = odd.channels["slack"].body(notice, rule)
    odd.close()
    assert slack_problems(message) == []
    [_, (dashboard, _)] = links(message)
    assert dashboard.startswith("http://127.0.0.1:7071/a%7Cb%3Ec/dashboard?")
    script = Deliverer(dashboard_base_url="javascript:alert(1)//")
    message = script.channels["slack"].body(notice, rule)
    script.close()
    assert [a for a, _ in links(message)] == [f"{RUNBOOK_BASE}/docs/runbooks/"
                                              "integration-stale.md"]
    assert message["blocks"][3]["text"]["text"].endswith(
        "Dashboard (integrationId=sf-1, tenantId=t-1): "
        "`javascript:alert(1)/dashboard?integrationId=sf-1&amp;tenantId=t-1`")


def test_a_filter_too_long_for_a_link_links_the_unfiltered_dashboard(deliverer):
    """A 5,000-character integration id would make an address Slack cannot show: the link
    goes to the dashboard without filters, and says so."""
    message = build(deliverer, {"integrationId": "i" * 5000, "tenantId": "t-1"})
    assert links(message)[1] == (f"{DASHBOARD}/dashboard", ":bar_chart: Dashboard (unfiltered: "
                                 "the filters are too long for a link)")
    assert message["text"].endswith(f" Dashboard: <{DASHBOARD}/dashboard>")


def test_a_relative_runbook_is_shown_as_code(deliverer, monkeypatch):
    """Without RUNBOOK_BASE_URL the runbook is a repository path: shown, not linked."""
    monkeypatch.delenv("RUNBOOK_BASE_URL")
    message = build(deliverer)
    assert message["blocks"][3]["text"]["text"].startswith(
        ":book: Runbook: `docs/runbooks/integration-stale.md`   <http://127.0.0.1:7071/")


# -- the top-level text ----------------------------------------------------------------------


@pytest.mark.parametrize("condition", ["Fired", "Resolved"])
def test_the_fallback_text_says_what_and_where_within_its_limit(deliverer, condition):
    """The top-level text (notifications, and clients without blocks): state, severity,
    rule, value, the dimensions escaped, and both addresses whole."""
    message = build(deliverer, {"integrationId": "<!channel>", "tenantId": "t-1",
                                "error": "x" * 50_000}, condition=condition)
    fallback = message["text"]
    state = "FIRING" if condition == "Fired" else "RESOLVED"
    assert fallback.startswith(f"[{state}] Sev2 Integration not syncing: hoursSinceSuccess = "
                               "5.5 (alerts when &gt; 3) (integrationId=&lt;!channel&gt;, ")
    assert fallback.endswith(
        f"). Runbook: <{RUNBOOK_BASE}/docs/runbooks/integration-stale.md> Dashboard: "
        f"<{DASHBOARD}/dashboard?integrationId=%3C%21channel%3E&amp;tenantId=t-1>")
    assert "error=" + "x" * 99 + "…). Runbook: " in fallback
    assert units(fallback) <= 4000


# -- end to end: a Slack that refuses what is over a limit -----------------------------------


def _strict_slack(request: httpx.Request) -> httpx.Response:
    """Answers as Slack's webhook does: 400 invalid_blocks for a body over a limit."""
    if slack_problems(json.loads(request.content)):
        return httpx.Response(400, text="invalid_blocks")
    return httpx.Response(200, text="ok")


def test_a_huge_alert_is_delivered_to_a_slack_that_refuses_over_limit_bodies():
    """Before, a 100 KB value made a body Slack refuses with 400, which the relay gives up
    at once as permanent: the alert was lost. Now the same alert is delivered."""
    deliverer = Deliverer(slack_webhook_url=WEBHOOK, dashboard_base_url=DASHBOARD,
                          max_attempts=1, budget=2.0)
    deliverer._client.close()
    deliverer._client = httpx.Client(transport=httpx.MockTransport(_strict_slack))
    try:
        # given the strict Slack refuses an over-limit body for good
        refused = deliverer.send_once("slack", {"text": "x" * 4001, "blocks": []})
        assert (refused.status, refused.permanent) == ("failed", True)
        assert refused.error == "HTTP 400: invalid_blocks"
        # when an alert with a 100 KB value and 200 dimensions is relayed
        dimensions = {"integrationId": "<!channel>", "tenantId": "t-1", "error": "E" * 100_000}
        dimensions.update({f"d{i}": "*x*" for i in range(197)})
        notice, rule = notice_and_rule(dimensions, description="_y_ " * 30_000)
        report = deliverer.deliver(notice, rule)
        # then Slack took it
        assert report.outcomes["slack"].status == "delivered", report.outcomes["slack"]
    finally:
        deliverer.close()


# -- any input --------------------------------------------------------------------------------


@settings(max_examples=150, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(dimensions=st.dictionaries(st.text(min_size=1, max_size=60), st.text(max_size=400),
                                  max_size=40),
       description=st.text(max_size=2500), operator=st.text(max_size=50))
def test_any_values_make_a_valid_message_with_only_our_links(deliverer, dimensions, description,
                                                             operator):
    """Whatever the payload's dimensions, description and operator, the message is within
    Slack's limits and its only links are ours."""
    notice, rule = notice_and_rule({"integrationId": "sf-1"})
    notice = dataclasses.replace(notice, dimensions=dimensions, operator=operator or None)
    message = deliverer.channels["slack"].body(
        notice, dataclasses.replace(rule, description=description))
    assert slack_problems(message) == []
    assert_only_our_links(message)


def _shows_as(text: str) -> str:
    """Lookalikes and the fullwidth forms folded into one character each, soft hyphens out."""
    fold = {"\u2217": "*", "\ufe61": "*", "\uff0a": "*", "\u02cd": "_", "\u2e0f": "_",
            "\uff3f": "_", "\u02cb": "`", "\uff40": "`", "\u223c": "~", "\uff5e": "~"}
    return "".join(fold.get(ch, ch) for ch in text.replace("\u00ad", ""))


@settings(max_examples=300, derandomize=True, deadline=None, database=None)
@given(value=st.text(max_size=300), limit=st.integers(min_value=3, max_value=400))
def test_any_value_escapes_to_its_own_characters_without_markers(value, limit):
    """text(): no marker, no `<` or `>`, no bare `&`, no line break, within `limit`; and what
    Slack shows is the value (line breaks as spaces), or its start when cut."""
    shown = _slack.text(value, limit)
    assert units(shown) <= limit
    assert not MARKERS.search(shown) and not re.search(r"[<>\n\r]|&(?!amp;|lt;|gt;)", shown)
    one_line = "".join(" " if unicodedata.category(c) == "Cc" or c in "\u2028\u2029" else c
                       for c in value)
    target = _shows_as(one_line)
    if _shows_as(unescape(shown)) != target:
        assert shown.endswith("…") and target.startswith(_shows_as(unescape(shown[:-1])))
