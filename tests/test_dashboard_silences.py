"""Silences in the dashboard, in a real browser: an active alert is silenced from its row,
the silence is listed with its matchers and expired again; a silenced alert says by which
silence and where it was routed. Headless Debian Chromium against the admin app on a small
store of its own (no demo, so it starts in a moment), one app and one browser for the module.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from integration_monitoring.admin import Access, LocalBackend
from integration_monitoring.alerts import Deliverer
from integration_monitoring.app import create_app
from integration_monitoring.store import TelemetryStore

from .helpers import http_get, http_post, serve_app
from .screenshot import launch
from .test_dashboard import CSP_VIOLATIONS, PATIENCE_MS, TOKEN, Dashboard

pytestmark = pytest.mark.skipif(not Path("/usr/bin/chromium").exists(),
                                reason="needs Debian's Chromium (`make test` installs it)")
expect.set_options(timeout=PATIENCE_MS)

SILENCES = "/api/admin/silences"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
ALERT_ID = "alert-silence-1"
WHERE = {"tenantId": "tenant-s", "integrationId": "int-s1", "adapterType": "hubspot"}


def _fired(alert_id: str, minutes_ago: float) -> dict:
    """An `alert.fired` event as the relay writes it, `minutes_ago` by the wall clock."""
    at = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=minutes_ago)
    return {"TimeGenerated": at, "Message": "alert.fired", "SeverityLevel": 2, "ItemCount": 1,
            "Properties": json.dumps({"alertId": alert_id, "ruleId": "integration-stale",
                                      "title": "Integration stale", "severity": "Sev2",
                                      "dimensions": json.dumps(WHERE), **WHERE})}


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Iterator[SimpleNamespace]:
    """The admin app, wanting a bearer token, on a store where one alert fires; its silences
    are kept in the relay's outbox beside that store."""
    folder = tmp_path_factory.mktemp("silences")
    store = TelemetryStore(folder / "telemetry.duckdb")
    store.append("AppTraces", [_fired(ALERT_ID, 10)])
    deliverer = Deliverer.from_env({"TELEMETRY_DB": str(folder / "telemetry.duckdb")})
    try:
        with serve_app(create_app(backend=LocalBackend(store), access=Access("token", TOKEN),
                                  deliverer_factory=lambda: deliverer)) as url:
            yield SimpleNamespace(url=url)
    finally:
        deliverer.close()
        store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture
def dashboard(browser, app) -> Iterator[Dashboard]:
    """A signed-in tab that records CSP violations."""
    tab = Dashboard(browser, app)
    tab.page.add_init_script(CSP_VIOLATIONS)
    yield tab
    tab.close()


def _in_hours(hours: float) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _silences(app, state: str | None = None) -> dict[str, dict]:
    answer = http_get(app.url + SILENCES, params={"state": state} if state else None,
                      headers=HEADERS)
    assert answer.status_code == 200, answer.text
    return {s["id"]: s for s in answer.json()["silences"]}


def test_an_alert_is_silenced_from_its_row_and_the_silence_expired(app, dashboard):
    """Silence on the alert's row opens a form prefilled from the row; what the API refuses is
    said in the form; a silence made there is listed as active with its matchers, and the API
    has it; Expire takes it out of the active list."""
    # given the dashboard with the active alert
    before = _silences(app)
    page = dashboard.page
    dashboard.open()
    row = page.locator(f'[data-alert="{ALERT_ID}"]')
    silence_button = row.get_by_role("button", name="Silence")
    # when Silence is pressed from the keyboard
    silence_button.focus()
    page.keyboard.press("Enter")
    # then a form opens under the row, prefilled with the rule and the row's labels, the
    # focus in its comment
    form = page.get_by_role("form", name="Silence “Integration stale”")
    expect(form).to_be_visible()
    expect(silence_button).to_have_attribute("aria-expanded", "true")
    expect(form.locator("[data-matcher]")).to_have_text("ruleId = integration-stale")
    for label, value in WHERE.items():
        expect(form.get_by_label(f"{label} = {value}")).to_be_checked()
    comment = form.get_by_label("Comment")
    expect(comment).to_be_focused()
    ends_at = form.get_by_label("Ends at")
    default_end = dt.datetime.fromisoformat(ends_at.input_value())  # local time
    assert abs(default_end - (dt.datetime.now() + dt.timedelta(hours=2))) < dt.timedelta(minutes=2)
    # and Escape closes it, giving the focus back to the button
    page.keyboard.press("Escape")
    expect(form).to_have_count(0)
    expect(silence_button).to_be_focused()
    expect(silence_button).to_have_attribute("aria-expanded", "false")
    # when it is opened again and sent without a comment
    page.keyboard.press("Enter")
    form.get_by_role("button", name="Create silence").click()
    # then the API's message is shown in the form and the comment is marked as wrong
    refused = http_post(app.url + SILENCES, headers=HEADERS, json={
        "matchers": [{"label": "ruleId", "values": ["integration-stale"]}],
        "endsAt": _in_hours(1), "comment": ""}).json()["error"]
    expect(form.get_by_role("alert")).to_have_text(
        f"{refused['message']} ({refused['parameter']})")
    expect(comment).to_have_attribute("aria-invalid", "true")
    expect(comment).to_be_focused()
    assert _silences(app) == before
    # when the adapter is left out, 8 h is chosen, a comment given and the form sent
    form.get_by_label("adapterType = hubspot").uncheck()
    form.get_by_role("button", name="8 h").click()
    comment.fill("int-s1 is being migrated")
    form.get_by_role("button", name="Create silence").click()
    # then the form closes, the focus is back on the row's button, and the API has an active
    # silence of the rule, tenant and integration, to about 8 h from now
    expect(form).to_have_count(0)
    expect(silence_button).to_be_focused()
    [silence] = [s for s in _silences(app, "active").values() if s["id"] not in before]
    assert silence["matchers"] == [
        {"label": "ruleId", "operator": "Equals", "values": ["integration-stale"]},
        {"label": "tenantId", "operator": "Equals", "values": ["tenant-s"]},
        {"label": "integrationId", "operator": "Equals", "values": ["int-s1"]}]
    assert silence["comment"] == "int-s1 is being migrated"
    ends = dt.datetime.fromisoformat(silence["endsAt"].replace("Z", "+00:00"))
    assert abs(ends - (dt.datetime.now(dt.UTC) + dt.timedelta(hours=8))) < dt.timedelta(minutes=2)
    # and the Silences section lists it as active, with those matchers and the comment
    listed = page.locator(f'#silences-list tr[data-silence="{silence["id"]}"]')
    expect(listed).to_have_attribute("data-state", "active")
    expect(listed.locator(".matcher")).to_have_text([
        "ruleId = integration-stale", "tenantId = tenant-s", "integrationId = int-s1"])
    expect(listed).to_contain_text(silence["id"][:8])
    expect(listed).to_contain_text("int-s1 is being migrated")
    expect(page.locator("#alerts-status")).to_contain_text(f"silence {silence['id'][:8]}")
    # when it is expired
    listed.get_by_role("button", name="Expire").click()
    # then it leaves the active list for the expired ones, folded away, and the API agrees
    expect(listed).to_have_count(0)
    expect(page.locator("#silences-list")).to_contain_text("No active or upcoming silences.")
    expect(page.locator("#silences-expired-count")).to_have_text("(1)")
    expired = page.locator(f'#silences-expired-list tr[data-silence="{silence["id"]}"]')
    expect(expired).to_be_hidden()
    assert _silences(app)[silence["id"]]["state"] == "expired"
    # and nothing failed or broke the page's Content-Security-Policy (the console logs only the
    # refused request)
    assert dashboard.page_errors == []
    assert [e for e in dashboard.console_errors
            if not e.startswith("Failed to load resource: the server responded with a status "
                                f"of 400 (Bad Request) ({app.url}{SILENCES})")] == []
    assert page.evaluate("() => window.cspViolations") == []


def test_a_silenced_alert_says_by_which_silence_and_where_it_was_routed(app, dashboard):
    """A row whose notifications a silence held back shows `silenced` with the silence's short
    id, which leads to the silence; its channels are listed as routed and silenced, and none
    is called undelivered. The routing section shows the relay's routes and receivers."""
    # given an active silence and the alerts API answering the alert as held back by it
    made = http_post(app.url + SILENCES, headers=HEADERS, json={
        "matchers": [{"label": "tenantId", "values": ["tenant-s"]}],
        "endsAt": _in_hours(1), "comment": "maintenance"})
    assert made.status_code == 201, made.text
    silence_id = made.json()["id"]
    page = dashboard.page
    real = http_get(app.url + "/api/admin/alerts?status=active", headers=HEADERS).json()
    delivery = {"pagerduty": "silenced", "slack": "silenced"}
    held = [{**a, "silencedBy": silence_id, "delivery": delivery} for a in real["active"]]
    page.route(re.compile(r"/api/admin/alerts\?"), lambda route: route.fulfill(
        json={**real, "active": held, "alerts": held}))
    try:
        # when the dashboard opens
        dashboard.open()
        # then the row says which silence held it and where it was routed
        row = page.locator(f'[data-alert="{ALERT_ID}"]')
        note = row.locator(f'[data-silenced-by="{silence_id}"]')
        expect(note).to_have_text(f"silenced {silence_id[:8]}")
        expect(row.locator(".routed")).to_have_text(
            "routed to: pagerduty (silenced), slack (silenced)")
        expect(row.locator(".undelivered")).to_have_count(0)
        # when the note is followed, the silence's row in the list has the focus
        note.click()
        expect(page.locator(f"#silence-{silence_id}")).to_be_focused()
        assert "#" not in page.url
        # and the routing section lists each route in order and each receiver
        routing = http_get(app.url + "/api/admin/routes", headers=HEADERS).json()
        expect(page.locator("#routing-routes tr[data-route]")).to_have_count(
            len(routing["routes"]))
        for receiver in routing["receivers"]:
            expect(page.locator(f'#routing-receivers tr[data-receiver="{receiver["name"]}"]')
                   ).to_contain_text(receiver["type"])
        assert dashboard.page_errors == []
    finally:
        http_post(f"{app.url}{SILENCES}/{silence_id}/expire", json={}, headers=HEADERS)
