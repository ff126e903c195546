"""`make screenshot`: the dashboard with demo data, as a PNG for the README.

    python -m tests.screenshot docs/dashboard.png
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from .helpers import Server

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"]


def launch(playwright):
    """Debian's Chromium, headless, kept off the network beyond loopback."""
    return playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                      args=CHROMIUM_ARGS)


def main(out: str) -> int:
    with tempfile.TemporaryDirectory() as tmp, \
            Server(Path(tmp), "--hours", "24") as server, sync_playwright() as playwright:
        server.wait_for(lambda s: s.get("/api/health").json()["host"]["demo"] == "live",
                        timeout=180)
        # An announced maintenance, so the picture shows the silences too.
        ends = dt.datetime.now(dt.UTC) + dt.timedelta(days=90)
        httpx.post(server.url + "/api/admin/silences", json={
            "matchers": [{"label": "adapterType", "values": ["zendesk"]}],
            "endsAt": ends.isoformat(), "timeZone": "Europe/Berlin",
            "weekly": {"days": ["Saturday"], "startTime": "02:00", "endTime": "04:00"},
            "comment": "Zendesk's weekly maintenance window", "createdBy": "ops@example.com"},
            timeout=10).raise_for_status()
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 1440, "height": 900}, color_scheme="light")
        page.goto(server.url + "/dashboard")
        page.wait_for_selector("body[data-loaded]", timeout=60_000)
        page.wait_for_timeout(500)
        page.screenshot(path=out, full_page=True)
        browser.close()
        server.stop()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "docs/dashboard.png"))
