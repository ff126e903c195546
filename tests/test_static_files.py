"""The dashboard's files as a browser gets them, over a real server: the page links each
asset by its content hash and such an address is cached for a year; any other address is
revalidated with an ETag (304 when unchanged); a browser that accepts gzip gets it; HEAD
answers with GET's headers and no body; nothing else in the folder is served."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import re
from collections.abc import Iterator

import httpx
import pytest

from integration_monitoring.admin._dashboard import ASSETS, DASHBOARD
from integration_monitoring.app import create_app

from .helpers import PATIENT, serve_app

PLAIN = {"Accept-Encoding": "identity"}


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with serve_app(create_app()) as url, httpx.Client(base_url=url, timeout=PATIENT) as client:
        yield client


def linked(client: httpx.Client) -> dict[str, str]:
    """The assets the page links, by name, with the version in their address."""
    page = client.get("/dashboard").text
    return dict(re.findall(r'"/dashboard/static/([\w./]+)\?v=(\w+)"', page))


def test_the_page_links_every_asset_by_its_content_hash(client):
    versions = linked(client)
    assert set(versions) == set(ASSETS)
    for name, version in versions.items():
        served = client.get(f"/dashboard/static/{name}", headers=PLAIN).content
        assert served == (DASHBOARD / name).read_bytes()
        assert version == hashlib.sha256(served).hexdigest()[:16]


@pytest.mark.parametrize("name", sorted(ASSETS))
def test_an_asset_by_its_hashed_address_is_kept_a_year(client, name):
    version = linked(client)[name]
    answer = client.get(f"/dashboard/static/{name}", params={"v": version})
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"


@pytest.mark.parametrize("address", ["/dashboard/static/dashboard.js",
                                     "/dashboard/static/dashboard.js?v=0123456789abcdef",
                                     "/dashboard"])
def test_any_other_address_is_revalidated_and_304_when_unchanged(client, address):
    """An old page's stale hash must not pin an asset: it is revalidated like a bare one."""
    first = client.get(address)
    assert first.headers["cache-control"] == "no-cache"
    etag = first.headers["etag"]
    again = client.get(address, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    changed = client.get(address, headers={"If-None-Match": '"something-else"'})
    assert changed.status_code == 200 and changed.content


@pytest.mark.parametrize(("accept", "compressed"), [
    ("gzip, deflate, br", True), ("br;q=1.0, gzip;q=0.5", True), ("*", True),
    ("identity", False), ("gzip;q=0", False), ("", False), ("br", False)])
def test_gzip_only_when_the_browser_accepts_it(client, accept, compressed):
    original = (DASHBOARD / "vendor/chart.umd.js").read_bytes()
    with client.stream("GET", "/dashboard/static/vendor/chart.umd.js",
                       headers={"Accept-Encoding": accept}) as answer:
        wire = b"".join(answer.iter_raw())  # as sent, not decoded
        headers = answer.headers
    assert headers["vary"] == "Accept-Encoding"
    assert (headers.get("content-encoding") == "gzip") is compressed
    assert int(headers["content-length"]) == len(wire)
    assert (gzip.decompress(wire) if compressed else wire) == original
    if compressed:
        assert len(wire) < len(original) / 2


@pytest.mark.parametrize("path", ["/dashboard", "/dashboard/static/dashboard.css",
                                  "/dashboard/static/vendor/chart.umd.js",
                                  "/dashboard/access.json", "/dashboard/filters.json",
                                  "/docs/runbooks/high-sync-failure-rate.md"])
def test_head_answers_with_gets_headers_and_no_body(client, path):
    got = client.get(path, headers=PLAIN)
    head = client.head(path, headers=PLAIN)
    assert (head.status_code, got.status_code) == (200, 200)
    assert head.content == b""
    for name in ("content-type", "content-length", "etag", "cache-control"):
        assert head.headers.get(name) == got.headers.get(name), name
    assert int(head.headers["content-length"]) == len(got.content)


@pytest.mark.parametrize("path", ["package.json", "node_modules/chart.js/package.json",
                                  "../_dashboard.py", "index.html", "vendor/", "nope.js"])
def test_only_the_assets_are_served(client, path):
    answer = client.get(f"/dashboard/static/{path}")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"


def test_the_security_headers_stay_on_every_file(client):
    for path in ("/dashboard", "/dashboard/static/dashboard.js"):
        headers = client.get(path).headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"


def test_the_app_itself_sends_no_body_for_head():
    """Not left to the server: the app's own answer to HEAD has GET's length and no body."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "HEAD", "path": "/dashboard/filters.json",
             "raw_path": b"/dashboard/filters.json", "query_string": b"", "headers": [],
             "scheme": "http", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1),
             "http_version": "1.1", "root_path": ""}
    asyncio.run(create_app()(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    length = dict(start["headers"])[b"content-length"]
    assert start["status"] == 200 and int(length) > 0
    assert b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body") == b""
