"""The dashboard in a real browser: headless Debian Chromium driven by Playwright against the
local app with demo data, one server and one browser for the whole module."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Response,
    expect,
    sync_playwright,
)

from integration_monitoring.admin import Access, LocalBackend, LogAnalyticsBackend
from integration_monitoring.admin._filters import ENDPOINTS
from integration_monitoring.alerts import rule_by_id
from integration_monitoring.alerts._payload import build_log_alert
from integration_monitoring.app import create_app
from integration_monitoring.store import TelemetryStore

from .helpers import Server, http_get, http_post, serve_app
from .loopback.loganalytics import LogAnalyticsLoopback
from .screenshot import launch
from .test_access import READER_A, two_tenant_store

pytestmark = [
    pytest.mark.skipif(not Path("/usr/bin/chromium").exists(),
                       reason="needs Debian's Chromium (`make test` installs it)"),
    # Under `pytest -n` with `--dist loadgroup`, the module shares one server and one browser.
    pytest.mark.xdist_group("dashboard"),
]

VIEWPORT = {"width": 1280, "height": 720}
TOKEN = "dashboard-test-token-8d1f"
RELAY_SECRET = "dashboard-test-relay-secret"
# A tab signed in before the page runs, as after the sign-in form (tested on its own).
SIGNED_IN = f"sessionStorage.setItem('integration-monitoring.credential', '{TOKEN}')"
ADAPTERS = ("hubspot", "pipedrive", "salesforce", "zendesk")
CHARTS = ("chart-error-rate", "chart-duration", "chart-throughput", "chart-queue")
# How long the page may take to show what a test waits for: a fresh server's first queries
# take a few seconds alone, and many more on a machine busy with other work; a page that
# never shows it still fails, only later.
PATIENCE_MS = 60_000
expect.set_options(timeout=PATIENCE_MS)

# Page-side readers. They are passed to evaluate() as functions: the page's CSP forbids
# eval, which Playwright would need for bare expressions.
CARDS = """(panel) => Object.fromEntries([...document.querySelectorAll(`#${panel} .card`)]
    .map((card) => [card.querySelector(".label").textContent,
                    card.querySelector(".value").textContent]))"""
COLUMN = """([panel, index]) => [...document.querySelectorAll(`#${panel} tbody tr`)]
    .map((row) => row.cells[index].textContent.trim())"""
ALL_ROWS_ARE = """([panel, index, value]) => {
    const rows = [...document.querySelectorAll(`#${panel} tbody tr`)];
    return rows.length > 0 && rows.every((row) => row.cells[index].textContent.trim() === value);
}"""
ROW_COUNT_IS = """([panel, count]) =>
    document.querySelectorAll(`#${panel} tbody tr`).length === count"""
CHART = """(id) => {
    const canvas = document.getElementById(id);
    const chart = window.Chart && Chart.getChart(canvas);
    const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let painted = 0;
    for (let i = 3; i < pixels.length; i += 4) if (pixels[i]) painted += 1;
    return { width: canvas.width, height: canvas.height, painted,
             labels: chart ? chart.data.labels.length : 0,
             points: chart ? chart.data.datasets.map((d) => d.data.filter((v) => v !== null).length)
                           : [] };
}"""
FACTS = """() => Object.fromEntries([...document.querySelectorAll("#integration-facts dt")]
    .map((dt) => [dt.textContent, dt.nextElementSibling.textContent]))"""
# Records, in order, each change of the body's data-snapshots and data-loaded attributes.
BODY_CHANGES = """window.addEventListener("DOMContentLoaded", () => {
    window.bodyChanges = [];
    new MutationObserver((records) => records.forEach((r) => bodyChanges.push(r.attributeName)))
        .observe(document.body, { attributes: true,
                                  attributeFilter: ["data-snapshots", "data-loaded"] });
});"""
REFRESHED_AFTER_SECOND_SNAPSHOT = """() => {
    const second = bodyChanges.indexOf("data-snapshots", bodyChanges.indexOf("data-snapshots") + 1);
    return second >= 0 && bodyChanges.indexOf("data-loaded", second) > second;
}"""
CSP_VIOLATIONS = """window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) =>
    cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`));"""


def _number(text: str) -> float:
    return float(text.replace(",", "").replace("%", "").replace("ms", "").strip())


def _params(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


class Dashboard:
    """One browser tab on the dashboard, keeping what its console reported as errors."""

    def __init__(self, browser: Browser, server: Server, color_scheme: str = "light",
                 signed_in: bool = True) -> None:
        self.server = server
        self.context = browser.new_context(base_url=server.url, viewport=VIEWPORT,
                                           locale="en-US", color_scheme=color_scheme)
        if signed_in:
            self.context.add_init_script(SIGNED_IN)
        self.context.set_default_timeout(PATIENCE_MS)
        self.page: Page = self.context.new_page()
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.page_errors.append(str(error)))

    def _console(self, message: ConsoleMessage) -> None:
        where = message.location.get("url", "")
        # The page declares no icon, so Chromium asks for /favicon.ico and logs its 404
        # (reported separately); anything else the console calls an error counts.
        if message.type == "error" and not where.endswith("/favicon.ico"):
            self.console_errors.append(f"{message.text} ({where})")

    def open(self, query: str = "") -> Response:
        """Go to the dashboard and wait until its first refresh has rendered."""
        response = self.page.goto("/dashboard" + query)
        self.page.wait_for_selector("body[data-loaded]")
        return response

    def apply(self, **fields: str) -> None:
        """Choose options in the filter form's selects and press Apply."""
        for name, value in fields.items():
            self.page.locator(f"#filters [name={name}]").select_option(value)
        self.page.get_by_role("button", name="Apply").click()

    def cards(self, panel: str) -> dict[str, str]:
        return self.page.evaluate(CARDS, panel)

    def column(self, panel: str, index: int) -> list[str]:
        return self.page.evaluate(COLUMN, [panel, index])

    def rows(self, panel: str) -> int:
        return self.page.locator(f"#{panel} tbody tr").count()

    def wait_rows_all(self, panel: str, index: int, value: str) -> None:
        self.page.wait_for_function(ALL_ROWS_ARE, arg=[panel, index, value])

    def wait_row_count(self, panel: str, count: int) -> None:
        self.page.wait_for_function(ROW_COUNT_IS, arg=[panel, count])

    def field(self, name: str) -> str:
        return self.page.locator(f"#filters [name={name}]").input_value()

    def dataset(self, key: str) -> str | None:
        return self.page.evaluate("(key) => document.body.dataset[key] ?? null", key)

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    """The local host with two hours of demo history, its demo running live; its API wants
    a bearer token, as anywhere ADMIN_API_TOKEN is set."""
    with Server(tmp_path_factory.mktemp("dashboard"), "--hours", "2",
                ADMIN_API_TOKEN=TOKEN, ALERT_RELAY_SECRET=RELAY_SECRET) as server:
        server.wait_for(lambda s: s.get("/api/health").json()["host"]["demo"] == "live",
                        timeout=120)
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium, launched as `make screenshot` launches it."""
    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture
def tabs(browser, server) -> Iterator[Callable[..., Dashboard]]:
    """Opens fresh tabs (each in its own context) and closes them after the test."""
    opened: list[Dashboard] = []

    def tab(color_scheme: str = "light", signed_in: bool = True) -> Dashboard:
        opened.append(Dashboard(browser, server, color_scheme, signed_in))
        return opened[-1]

    yield tab
    for dashboard in opened:
        dashboard.close()


@pytest.fixture
def dashboard(tabs) -> Dashboard:
    """A fresh light-mode tab at 1280×720."""
    return tabs()


def test_the_five_components_render_with_data(server, dashboard):
    """System overview, health, activity, errors and performance all show the demo's data."""
    # given the server with two hours of demo history
    total = server.get("/api/admin/integrations/stats").json()["integrations"]["total"]
    # when the dashboard opens
    dashboard.open()
    page = dashboard.page
    # then the system overview counts integrations and jobs and lists the busiest
    overview = dashboard.cards("overview-cards")
    assert _number(overview["Integrations"]) == total == 24
    assert _number(overview["Jobs completed"]) > 0
    assert "Failure rate" in overview
    assert dashboard.rows("top-integrations") > 0
    # and the health table has a row per integration
    assert dashboard.rows("health-table") == total
    # and sync activity shows record counts and the last jobs
    activity = dashboard.cards("activity-cards")
    assert _number(activity["Jobs finished"]) > 0
    assert _number(activity["Records created"]) > 0
    assert dashboard.rows("recent") > 0
    # and error monitoring lists failing integrations, error types and failed jobs
    for panel in ("errors-by-integration", "error-types", "failed-jobs"):
        assert dashboard.rows(panel) > 0, panel
    # and performance shows throughput, per-adapter latency and per-integration durations
    performance = dashboard.cards("performance-cards")
    assert _number(performance["Records per second"]) > 0
    assert {f"{adapter} API avg" for adapter in ADAPTERS} <= set(performance)
    assert dashboard.rows("latency") == len(ADAPTERS)
    assert dashboard.rows("duration-by-integration") > 0
    expect(page.locator("#latency-note")).not_to_be_empty()
    # and every chart is a Chart.js chart with data points, painted on its canvas
    for chart in CHARTS:
        drawn = page.evaluate(CHART, chart)
        assert drawn["width"] > 0 and drawn["height"] > 0 and drawn["painted"] > 0, chart
        assert drawn["labels"] > 0 and drawn["points"], chart
        assert all(points > 0 for points in drawn["points"]), (chart, drawn)
    # and the active alerts section is there, with alerts or saying there are none
    expect(page.get_by_role("heading", name="Active alerts")).to_be_visible()
    expect(page.locator("#alerts-list")).not_to_be_empty()


def test_a_filter_changes_the_numbers_and_the_url(server, dashboard):
    """Choosing an adapter and pressing Apply narrows every panel and puts it in the URL."""
    # given the dashboard over every integration
    dashboard.open()
    before = dashboard.cards("overview-cards")
    # when an adapter is chosen in the form and applied
    dashboard.apply(adapterType="hubspot")
    # then the URL carries the filter
    dashboard.page.wait_for_url(lambda url: _params(url) == {"adapterType": "hubspot"})
    # and the health table holds only that adapter's integrations
    dashboard.wait_rows_all("health-table", 2, "hubspot")
    # and the overview counts only them, as the API does
    stats = server.get("/api/admin/integrations/stats?adapterType=hubspot").json()
    after = dashboard.cards("overview-cards")
    assert _number(after["Integrations"]) == stats["integrations"]["total"]
    assert _number(after["Integrations"]) < _number(before["Integrations"])
    assert _number(after["Jobs completed"]) < _number(before["Jobs completed"])
    assert set(dashboard.column("top-integrations", 1)) == {"hubspot"}
    latency = [label for label in dashboard.cards("performance-cards") if "API avg" in label]
    assert latency == ["hubspot API avg"]


def test_reloading_the_url_restores_the_view(dashboard):
    """A filtered view survives a reload: the form is filled from the URL and rows match."""
    # given a view filtered in the form by adapter and range
    dashboard.open()
    dashboard.apply(adapterType="pipedrive", window="6h")
    page = dashboard.page
    page.wait_for_url(lambda url: _params(url) == {"adapterType": "pipedrive", "window": "6h"})
    dashboard.wait_rows_all("health-table", 2, "pipedrive")
    url = page.url
    rows = sorted(dashboard.column("health-table", 0))
    integrations = dashboard.cards("overview-cards")["Integrations"]
    # when the page is reloaded
    page.reload()
    page.wait_for_selector("body[data-loaded]")
    # then the URL, the form and the rows are those of the filtered view
    assert page.url == url
    assert dashboard.field("adapterType") == "pipedrive"
    assert dashboard.field("window") == "6h"
    assert dashboard.field("status") == dashboard.field("integrationId") == ""
    assert sorted(dashboard.column("health-table", 0)) == rows
    assert set(dashboard.column("health-table", 2)) == {"pipedrive"}
    assert dashboard.cards("overview-cards")["Integrations"] == integrations


def test_an_integration_link_opens_its_view_and_back_returns(dashboard):
    """Clicking an integration shows its own view; the browser's Back restores the overview."""
    # given the dashboard and the first integration in the health table
    dashboard.open()
    page = dashboard.page
    total = dashboard.rows("health-table")
    row = page.locator("#health-table tbody tr").first
    link = row.locator("a[data-integration]")
    integration = link.get_attribute("data-integration")
    tenant, adapter = row.locator("td").nth(1).inner_text(), row.locator("td").nth(2).inner_text()
    # when its link is clicked
    link.click()
    # then the URL names it and its panel shows its facts
    page.wait_for_url(lambda url: _params(url).get("integrationId") == integration)
    assert _params(page.url).get("tenantId") == tenant
    expect(page.locator("#integration")).to_be_visible()
    expect(page.locator("#integration-title")).to_have_text(f"Integration {integration}")
    dashboard.wait_rows_all("health-table", 0, integration)
    facts = page.evaluate(FACTS)
    assert facts["Tenant"] == tenant and facts["Adapter"] == adapter
    assert {"Health", "Connection", "Last successful sync", "Syncs in range"} <= set(facts)
    assert dashboard.field("integrationId") == integration
    # when the browser goes back
    page.go_back()
    # then the overview of every integration is back
    page.wait_for_url(lambda url: "integrationId" not in _params(url))
    expect(page.locator("#integration")).to_be_hidden()
    dashboard.wait_row_count("health-table", total)
    assert dashboard.field("integrationId") == ""


def test_a_live_update_arrives_without_a_reload(server, dashboard):
    """New telemetry reaches the open page over the event stream and the panels refresh."""
    # given the dashboard open, live, with its first snapshot
    page = dashboard.page
    page.add_init_script(BODY_CHANGES)
    dashboard.open()
    expect(page.locator("#live")).to_have_text("Live")
    page.wait_for_function("() => Number(document.body.dataset.snapshots) >= 1")
    first = dashboard.dataset("lastSnapshot")
    page.evaluate("() => { window.sameDocument = true; }")
    # when new telemetry arrives: a resolved notice through the relay writes an event now,
    # whatever the live demo happens to write meanwhile
    rule = rule_by_id("integration-stale")
    now = dt.datetime.now(dt.UTC)
    notice = build_log_alert(rule, condition="Resolved",
                             dimensions={"integrationId": "live-1", "tenantId": "acme"},
                             value=None, window_start=now - rule.window, window_end=now,
                             fired_at=now, resolved_at=now, alert_id=str(uuid.uuid4()))
    relayed = http_post(server.url + "/api/alerts/relay", json=notice,
                   headers={"x-relay-secret": RELAY_SECRET})
    assert relayed.status_code == 202, relayed.text
    # then a second snapshot with a new fingerprint comes over the open stream
    page.wait_for_function(
        "(first) => Number(document.body.dataset.snapshots) >= 2"
        " && document.body.dataset.lastSnapshot !== first", arg=first, timeout=60_000)
    second = dashboard.dataset("lastSnapshot")
    assert int(second.split("@")[0]) > int(first.split("@")[0])
    # and the panels are refreshed after it, in the same document
    page.wait_for_function(REFRESHED_AFTER_SECOND_SNAPSHOT)
    assert page.evaluate("() => window.sameDocument") is True
    expect(page.locator("#live")).to_have_text("Live")


def test_the_console_stays_clean(dashboard):
    """Loading, filtering, opening an integration and going back log no error."""
    # given a fresh tab
    page = dashboard.page
    # when the dashboard loads, is filtered, opens an integration and goes back
    dashboard.open()
    dashboard.apply(adapterType="salesforce")
    dashboard.wait_rows_all("health-table", 2, "salesforce")
    link = page.locator("#health-table a[data-integration]").first
    integration = link.get_attribute("data-integration")
    link.click()
    dashboard.wait_rows_all("health-table", 0, integration)
    page.go_back()
    page.wait_for_url(lambda url: "integrationId" not in _params(url))
    dashboard.wait_rows_all("health-table", 2, "salesforce")
    # then no script failed and the console logged no error
    assert dashboard.page_errors == []
    assert dashboard.console_errors == []


def _natural(text: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def test_the_health_table_sorts_from_the_keyboard(dashboard):
    """A focused column header sorts on Enter, ascending then descending."""
    # given the health table in its default order (worst health first)
    dashboard.open()
    page = dashboard.page
    before = dashboard.column("health-table", 0)
    button = page.locator("#health-table thead button[data-sort='integrationId']")
    cell = page.locator("#health-table thead th:has(button[data-sort='integrationId'])")
    expect(cell).to_have_attribute("aria-sort", "none")
    # when the Integration header is focused and Enter pressed
    button.focus()
    page.keyboard.press("Enter")
    # then the rows are in ascending integration order (numbers compared as numbers)
    expect(cell).to_have_attribute("aria-sort", "ascending")
    ascending = dashboard.column("health-table", 0)
    assert ascending == sorted(ascending, key=_natural) != before
    # when Enter is pressed again (the focus stayed on the header)
    page.keyboard.press("Enter")
    # then the order is reversed
    expect(cell).to_have_attribute("aria-sort", "descending")
    descending = dashboard.column("health-table", 0)
    assert descending == sorted(descending, key=_natural, reverse=True)


def test_the_focus_stays_on_the_sort_button(dashboard):
    """After sorting from the keyboard, the focus stays on the header that was pressed."""
    # given the health table
    dashboard.open()
    page = dashboard.page
    # when a header is focused and Enter pressed
    page.locator("#health-table thead button", has_text="Tenant").focus()
    page.keyboard.press("Enter")
    # then that header still has the focus
    expect(page.locator("#health-table thead button", has_text="Tenant")).to_be_focused()


def test_no_horizontal_scroll_at_1280_by_720(dashboard):
    """At 1280×720 neither the overview nor an integration's view scrolls sideways."""
    # given a 1280×720 window
    page = dashboard.page
    assert page.viewport_size == VIEWPORT
    overflow = """() => ({ page: document.documentElement.scrollWidth - innerWidth,
        panels: [...document.querySelectorAll(".panel, .filters, .top")]
            .filter((el) => el.scrollWidth > el.clientWidth)
            .map((el) => el.id || el.className) })"""
    # when the dashboard shows every panel
    dashboard.open()
    # then nothing is wider than the window
    assert page.evaluate(overflow) == {"page": 0, "panels": []}
    # when an integration's view is open
    link = page.locator("#health-table a[data-integration]").first
    integration = link.get_attribute("data-integration")
    link.click()
    expect(page.locator("#integration-title")).to_have_text(f"Integration {integration}")
    # then still nothing is wider than the window
    assert page.evaluate(overflow) == {"page": 0, "panels": []}


def test_dark_mode_follows_the_system(tabs):
    """With a dark colour scheme the page and its charts use the dark palette."""
    style = """() => ({ background: getComputedStyle(document.body).backgroundColor,
                        text: getComputedStyle(document.body).color,
                        panel: getComputedStyle(document.querySelector(".panel")).backgroundColor,
                        ticks: Chart.getChart("chart-duration").options.scales.x.ticks.color })"""

    def luminance(rgb: str) -> float:
        red, green, blue = (int(part) for part in re.findall(r"\d+", rgb)[:3])
        return 0.2126 * red + 0.7152 * green + 0.0722 * blue

    # given the same dashboard in a light and in a dark browser
    looks = {}
    for scheme in ("light", "dark"):
        tab = tabs(scheme)
        # when it opens
        tab.open()
        looks[scheme] = tab.page.evaluate(style)
    light, dark = looks["light"], looks["dark"]
    # then the dark page is dark with light text, unlike the light one
    assert dark["background"] != light["background"]
    assert luminance(dark["background"]) < 64 < luminance(light["background"])
    assert luminance(dark["text"]) > luminance(dark["background"])
    assert dark["panel"] != light["panel"]
    # and the charts' axis labels follow the scheme
    assert dark["ticks"] != light["ticks"]


def test_the_page_has_a_strict_csp_and_no_inline_script(server, dashboard):
    """The page is served with a Content-Security-Policy and runs no inline script."""
    # given a tab that records CSP violations
    page = dashboard.page
    page.add_init_script(CSP_VIOLATIONS)
    # when the dashboard opens
    response = dashboard.open()
    # then the policy allows scripts from the app's origin only
    policy = dict(
        (name, values) for name, *values in
        (directive.split() for directive in response.headers["content-security-policy"].split(";")
         if directive.strip()))
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert not any("unsafe" in value for values in policy.values() for value in values)
    assert response.headers["x-content-type-options"] == "nosniff"
    # and the served HTML and the live document have no inline script or handler
    for attributes, body in re.findall(r"<script\b([^>]*)>(.*?)</script>",
                                       server.get("/dashboard").text, re.S):
        assert "src=" in attributes and not body.strip()
    inline = page.evaluate("""() => ({
        scripts: [...document.scripts].filter((s) => !s.src).length,
        handlers: [...document.querySelectorAll("*")].flatMap((el) =>
            [...el.attributes].filter((a) => a.name.startsWith("on")).map((a) => a.name)),
    })""")
    assert inline == {"scripts": 0, "handlers": []}
    # and nothing the page does breaks the policy
    assert page.evaluate("() => window.cspViolations") == []


def test_a_bad_filter_in_the_url_shows_the_api_message(server, dashboard):
    """An invalid filter in the URL shows the API's message in the banner; Clear recovers."""
    # given a URL whose status filter the API refuses
    refused = server.get("/api/admin/integrations/health?status=bogus")
    assert refused.status_code == 400
    error = refused.json()["error"]
    page = dashboard.page
    # when it is opened
    page.goto("/dashboard?status=bogus")
    # then the banner shows the API's message, naming the parameter
    banner = page.locator("#error")
    expect(banner).to_be_visible()
    expect(banner).to_have_text(f"Could not load: {error['message']} ({error['parameter']})")
    assert dashboard.page_errors == []
    # when the filters are cleared
    page.get_by_role("button", name="Clear").click()
    # then the banner goes and the data loads
    expect(banner).to_be_hidden()
    page.wait_for_url(lambda url: urlsplit(url).path == "/dashboard" and not _params(url))
    page.wait_for_selector("body[data-loaded]")
    dashboard.wait_row_count("health-table", 24)
    assert dashboard.page_errors == []


def test_active_alerts_show_with_a_runbook_and_can_be_acknowledged(server, dashboard):
    """An alert fired on the demo data is listed with its runbook and acknowledged in place."""
    # given an alert that the host's evaluator fired on the demo data
    server.wait_for(lambda s: s.get("/api/admin/alerts?status=active").json()["active"],
                    timeout=90)
    # when the dashboard opens
    dashboard.open()
    page = dashboard.page
    # then the alert is listed with its title, severity and a runbook that opens
    item = page.locator("#alerts-list [data-alert]").first
    expect(item).to_be_visible()
    alert_id = item.get_attribute("data-alert")
    known = {a["alertId"]: a for a in server.get("/api/admin/alerts").json()["alerts"]}
    alert = known[alert_id]
    expect(item).to_contain_text(alert["title"])
    expect(item.locator(".pill")).to_have_text(alert["severity"])
    runbook = item.get_by_role("link", name="Runbook").get_attribute("href")
    assert server.get(runbook).status_code == 200
    # when it is acknowledged from the page
    item.get_by_role("button", name="Acknowledge").click()
    # then it shows who acknowledged it, and the API agrees
    expect(item).to_contain_text("acknowledged by dashboard")
    expect(item).to_have_class(re.compile(r"\backed\b"))
    acked = {a["alertId"]: a for a in server.get("/api/admin/alerts").json()["alerts"]}
    assert acked[alert_id]["acknowledgedBy"] == "dashboard"
    assert dashboard.page_errors == []


def test_signing_in_keeps_the_token_out_of_urls(server, tabs):
    """Without a credential the page asks for the token; once given, every API call and
    the live stream carry it in a header, and no URL holds it."""
    # given a tab that has never signed in, recording every request
    dashboard = tabs(signed_in=False)
    page = dashboard.page
    requests = []
    page.on("request", lambda request: requests.append(request))
    # when the dashboard opens
    page.goto("/dashboard")
    # then it asks for the admin API token and loads nothing
    form = page.locator("#sign-in")
    expect(form).to_be_visible()
    expect(form).to_contain_text("Admin API token")
    # when a wrong token is given, it asks again with the server's reason
    page.get_by_label("Admin API token").fill("wrong")
    page.get_by_role("button", name="Continue").click()
    expect(form).to_contain_text("not the admin API token")
    # when the right one is given
    page.get_by_label("Admin API token").fill(TOKEN)
    page.get_by_role("button", name="Continue").click()
    # then the data loads, the stream goes live, and the caller is shown
    page.wait_for_selector("body[data-loaded]")
    expect(form).to_be_hidden()
    expect(page.locator("#live")).to_have_text("Live")
    expect(page.locator("#who")).to_contain_text("all tenants")
    dashboard.wait_row_count("health-table", 24)
    api = [r for r in requests if "/api/" in r.url]
    assert any("/integrations/stream" in r.url for r in api)
    signed = [r for r in api if r.headers.get("authorization") == f"Bearer {TOKEN}"]
    assert len(signed) >= 7
    assert all(TOKEN not in r.url for r in requests)
    assert dashboard.page_errors == []
    # when the user signs out, the form is back
    page.get_by_role("button", name="Sign out").click()
    expect(form).to_be_visible()


@pytest.fixture(scope="module")
def entra_app(tmp_path_factory) -> Iterator[str]:
    """The app as behind App Service authentication, over two tenants' data."""
    store = two_tenant_store(tmp_path_factory.mktemp("entra") / "entra.duckdb")
    with serve_app(create_app(backend=LocalBackend(store), access=Access("entra"))) as url:
        yield url
    store.close()


def test_a_tenant_reader_sees_only_its_tenant_in_the_page(browser, entra_app):
    """Signed in as tenant-a's reader (the platform adds the principal header), the page
    lists tenant-a only, says so, and offers no acknowledgement."""
    context = browser.new_context(base_url=entra_app, viewport=VIEWPORT,
                                  extra_http_headers=READER_A)
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto("/dashboard")
        page.wait_for_selector("body[data-loaded]")
        expect(page.locator("#who")).to_have_text("ops@example.com · tenants tenant-a")
        tenants = page.evaluate(COLUMN, ["health-table", 1])
        assert tenants == ["tenant-a"]
        assert "tenant-b" not in page.locator("main").inner_text()
        alert = page.locator("#alerts-list [data-alert]")
        expect(alert).to_have_count(1)
        expect(alert.get_by_role("button", name="Acknowledge")).to_be_hidden()
        assert errors == []
    finally:
        context.close()


def test_an_alert_whose_notifications_did_not_arrive_says_so(dashboard):
    """An active alert with Slack still retrying and PagerDuty given up says both in its row;
    one delivered everywhere says nothing about delivery."""
    # given the alerts API answering two active alerts (the rest is the real app's)
    base = {"ruleId": "high-sync-failure-rate", "title": "High sync failure rate",
            "severity": "Sev1", "state": "active", "firedAt": "2025-03-04T10:15:30.000000Z",
            "resolvedAt": None, "acknowledgedAt": None, "acknowledgedBy": None,
            "ackNote": None, "tenantId": None, "integrationId": None, "adapterType": "hubspot",
            "dimensions": {"adapterType": "hubspot"}, "value": 42.0, "threshold": 10.0,
            "operator": "GreaterThan", "runbookUrl": None, "dashboardUrl": None}
    alerts = [{**base, "alertId": "undelivered-1",
               "delivery": {"pagerduty": "abandoned", "slack": "retrying"}},
              {**base, "alertId": "delivered-1",
               "delivery": {"pagerduty": "delivered", "slack": "delivered"}}]
    page = dashboard.page
    page.route(re.compile(r"/api/admin/alerts\?"), lambda route: route.fulfill(
        json={"active": alerts, "alerts": alerts}))
    # when the dashboard opens
    dashboard.open()
    # then the first row names each missing channel and what became of it, marked as failed
    note = page.locator('[data-alert="undelivered-1"] .undelivered')
    expect(note).to_have_text("undelivered: pagerduty (gave up), slack (retrying)")
    expect(note).to_have_class(re.compile(r"\bv-failed\b"))
    # and the delivered one has no such note
    expect(page.locator('[data-alert="delivered-1"]')).to_be_visible()
    expect(page.locator('[data-alert="delivered-1"] .undelivered')).to_have_count(0)
    assert dashboard.page_errors == []


@pytest.fixture(scope="module")
def workspace(demo_store, loopback_workspace) -> LogAnalyticsLoopback:
    """A loopback Log Analytics workspace over an hour of demo data up to now."""
    return loopback_workspace(demo_store(hours=1, seed=5, tenants=2, integrations=4),
                              "ws-outage")


def test_the_page_says_when_log_analytics_is_down_and_recovers_by_itself(browser, workspace):
    """With the workspace down the page shows the API's 503 message and that it is
    reconnecting; when it is back, the page fills in and clears the message unaided."""
    backend = LogAnalyticsBackend("ws-outage", workspace.credential, endpoint=workspace.endpoint,
                                  connection_verify=workspace.ca_path, retries=0,
                                  connection_timeout=2)
    app = create_app(backend=backend, stream_options={"poll_s": 0.5, "stream_s": 5.0,
                                                      "retry_ms": 500})
    with serve_app(app) as url:
        context = browser.new_context(base_url=url, viewport=VIEWPORT)
        try:
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            # given the workspace down when the page opens
            workspace.go_down()
            page.goto("/dashboard")
            # then the page says it could not load, and that the stream is reconnecting
            banner = page.locator("#error")
            expect(banner).to_contain_text("Could not load:")
            expect(page.locator("#live")).to_contain_text("Reconnecting")
            assert page.locator("#health-table tbody tr").count() == 0
            # when the workspace is back
            workspace.come_up()
            # then the page fills in and the banner goes, without a reload
            expect(page.locator("#live")).to_have_text("Live")
            page.wait_for_function(ROW_COUNT_IS, arg=["health-table", 4])
            expect(banner).to_be_hidden()
            assert errors == []
        finally:
            workspace.come_up()
            context.close()


def test_the_stream_reconnects_after_the_front_end_answers_503(dashboard):
    """A 503 when the stream connects (a host starting or scaling) is retried as its
    Retry-After says, and the page goes live; a refused filter is not retried."""
    page = dashboard.page
    refused = []

    def busy_twice(route):
        if len(refused) < 2:
            refused.append(route.request.url)
            route.fulfill(status=503, headers={"Retry-After": "1"},
                          content_type="application/json",
                          body='{"error": {"code": "busy", "message": "starting"}}')
        else:
            route.continue_()

    page.route("**/api/admin/integrations/stream*", busy_twice)
    dashboard.open()
    expect(page.locator("#live")).to_have_text("Live")
    assert len(refused) == 2
    assert dashboard.page_errors == []


def test_the_page_takes_its_filters_from_the_servers_definitions(browser, monkeypatch, tmp_path):
    """The form's statuses and what each panel is sent follow the server's definitions: a
    status the health endpoint gains is offered, and a filter an endpoint stops taking is no
    longer sent to it."""
    # given a server whose health endpoint takes one more status and whose performance
    # endpoint no longer takes adapterType
    health, performance = ENDPOINTS["health"], ENDPOINTS["performance"]
    monkeypatch.setitem(ENDPOINTS, "health", dataclasses.replace(
        health, statuses=(*health.statuses, "retired")))
    monkeypatch.setitem(ENDPOINTS, "performance", dataclasses.replace(
        performance, allowed=performance.allowed - {"adapterType"}))
    store = TelemetryStore(tmp_path / "empty.duckdb")
    with serve_app(create_app(backend=LocalBackend(store), access=Access("open"))) as url:
        document = http_get(url + "/api/openapi.json").json()
        [status] = [p for p in document["paths"]["/api/admin/integrations/health"]["get"][
            "parameters"] if p["name"] == "status"]
        assert status["schema"]["enum"][-1] == "retired"
        context = browser.new_context(base_url=url, viewport=VIEWPORT)
        try:
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            asked: list[str] = []
            page.on("request", lambda request: asked.append(request.url))
            # when the page opens filtered by adapter
            page.goto("/dashboard?adapterType=hubspot")
            page.wait_for_selector("body[data-loaded]")
            # then the Status field offers the health endpoint's statuses, the new one too
            options = page.locator("#filters [name=status] option").all_text_contents()
            assert options == ["any", *health.statuses, "retired"]
            # when the new status is chosen and applied
            loaded = page.evaluate("() => document.body.dataset.loaded")
            page.locator("#filters [name=status]").select_option("retired")
            page.get_by_role("button", name="Apply").click()
            page.wait_for_function("(before) => document.body.dataset.loaded !== before",
                                   arg=loaded)
            # then health is asked for it, and performance is not sent the adapter
            sent = {urlsplit(u).path.rsplit("/", 1)[-1]: _params(u) for u in asked
                    if "/api/admin/integrations/" in u}
            assert sent["health"] == {"adapterType": "hubspot", "status": "retired"}
            assert sent["stats"] == sent["stream"] == {"adapterType": "hubspot"}
            assert sent["performance"] == {}
            expect(page.locator("#error")).to_be_hidden()
            assert errors == []
        finally:
            context.close()
    store.close()
