"""Shared fixtures: an isolated telemetry capture, a seed-format JSON line sink, demo stores
and loopback workspaces over them, and loopback Slack and PagerDuty endpoints."""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from integration_monitoring.demo import run_demo
from integration_monitoring.store import TelemetryStore
from integration_monitoring.testing import Captured, capture_telemetry

from .azurite import Azurite, running_azurite
from .loopback.capture import CaptureServer
from .loopback.loganalytics import LogAnalyticsLoopback

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def captured() -> Iterator[Captured]:
    """Everything emitted in the test, in memory, with stdout lines off."""
    with capture_telemetry() as result:
        yield result


@pytest.fixture
def stdout_lines(captured: Captured) -> Iterator[callable]:
    """The captured telemetry writes its JSON lines here; call to get them parsed."""
    sink = io.StringIO()
    captured.telemetry.stdout = True
    captured.telemetry.stream = sink

    def lines() -> list[dict]:
        return [json.loads(line) for line in sink.getvalue().splitlines()]

    yield lines


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., TelemetryStore]]:
    """Builds a DuckDB store holding `hours` of the demo's workload up to `now` (default: the
    real now), with run_demo's other options; every store is closed after the module."""
    with ExitStack() as stack:

        def build(hours: float, now: dt.datetime | None = None, **options: Any) -> TelemetryStore:
            store = TelemetryStore(tmp_path_factory.mktemp("demo") / "demo.duckdb")
            stack.callback(store.close)
            now_ns = None if now is None else int(now.timestamp()) * 1_000_000_000
            run_demo(hours=hours, store=store, stdout=None, progress=False, now_ns=now_ns,
                     **options)
            return store

        yield build


@pytest.fixture(scope="module")
def loopback_workspace() -> Iterator[Callable[..., LogAnalyticsLoopback]]:
    """Starts the Log Analytics query API on 127.0.0.1 over a store, answering for the given
    workspace ids (any, when none are named); stopped after the module."""
    with ExitStack() as stack:

        def start(store: TelemetryStore, *workspaces: str) -> LogAnalyticsLoopback:
            return stack.enter_context(
                LogAnalyticsLoopback(store, workspaces=workspaces or None))

        yield start


@pytest.fixture(scope="session")
def log_schema() -> dict:
    """The seed's log event format as a JSON Schema."""
    path = ROOT / "integration_monitoring" / "schemas" / "log-event.schema.json"
    return json.loads(path.read_text())


PAGERDUTY_DOCUMENT = ROOT.parent / "shared" / "schemas" / "pagerduty-events-v2.openapi.json"
PAGERDUTY_RESTATED = ROOT / "tests" / "schemas" / "pagerduty-events-v2-request.schema.json"


def published_pagerduty_schema() -> dict[str, Any] | None:
    """The enqueue request schema from PagerDuty's OpenAPI document, with its components for
    the `$ref`s; None when the document is not beside the repository."""
    if not PAGERDUTY_DOCUMENT.exists():
        return None
    document = json.loads(PAGERDUTY_DOCUMENT.read_text())
    operation = document["paths"]["/enqueue"]["post"]
    assert operation["operationId"] == "createV2Event"
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    return {**schema, "components": document["components"]}


@pytest.fixture(scope="module")
def pagerduty_request_schema() -> dict[str, Any]:
    """PagerDuty's own request schema when its document is at hand, else our restatement of
    its rules (checked against the document wherever both exist)."""
    return published_pagerduty_schema() or json.loads(PAGERDUTY_RESTATED.read_text())


@pytest.fixture
def slack() -> Iterator[CaptureServer]:
    """A Slack incoming webhook: answers 200 `ok`."""
    with CaptureServer(200, "ok") as server:
        yield server


@pytest.fixture
def pagerduty() -> Iterator[CaptureServer]:
    """The PagerDuty Events API v2: answers 202 with its success body."""
    with CaptureServer(202, {"status": "success", "message": "Event processed"}) as server:
        yield server


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """Microsoft's Storage emulator serving the Table service: one per session, that is one
    per xdist worker that runs a test using it."""
    yield from running_azurite()


def pytest_terminal_summary(terminalreporter) -> None:
    """How many KQL texts Kusto.Language analysed, by source (tests/test_kusto.py)."""
    counts = {}
    for report in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get(
            "failed", []):
        for key, value in getattr(report, "user_properties", []):
            if key == "kql_texts_analysed":
                source, count = value
                counts[source] = count
    if counts:
        terminalreporter.write_line(
            f"Kusto.Language analysed {sum(counts.values())} KQL texts: "
            + ", ".join(f"{source} {count}" for source, count in counts.items()))
