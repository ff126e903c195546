"""Schemathesis fuzzing of the admin app's OpenAPI document, over a small demo store.

Every operation in /api/openapi.json gets a bounded number of generated requests (valid and
invalid, derandomized) and every answer is checked: never a 5xx, a documented status code and
content type, a body that matches the documented schema, and for every 4xx the app's error
shape `{"error": {"code", "message", "parameter"?}}`. The relay is called with the right
secret, so its arbitrary-JSON body is what gets fuzzed (a random body is never an alert: 4xx).
The SSE stream runs with a short `stream_s`, so a 200 ends in about half a second.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from integration_monitoring.admin import Answer, LocalBackend
from integration_monitoring.alerts._delivery import Deliverer
from integration_monitoring.app import create_app
from integration_monitoring.demo import run_demo
from integration_monitoring.store import TelemetryStore
from integration_monitoring.testing import capture_telemetry

SECRET = "fuzz-relay-secret"
RELAY = "/api/alerts/relay"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


class DemoBackend:
    """The local backend over the demo store, which the `demo_store` fixture fills in: the
    app (and so the schema and its tests) exists at import, the data only when tests run."""

    name = "local"

    def __init__(self) -> None:
        self.local: LocalBackend | None = None

    def query(self, kql: str, since: dt.datetime, until: dt.datetime) -> Answer:
        assert self.local is not None, "the demo_store fixture has not run"
        return self.local.query(kql, since, until)


BACKEND = DemoBackend()
DELIVERER = Deliverer.from_env(env={})  # every channel off: nothing leaves the process
APP = create_app(backend=BACKEND, deliverer_factory=lambda: DELIVERER,
                 stream_options={"stream_s": 0.5, "poll_s": 0.1})
# `schemathesis.pytest.from_fixture` would build the app in a fixture, but its LazySchema
# sets `request.node._nodeid`, which pytest 9.2 no longer has; the schema loads eagerly.
schema = schemathesis.openapi.from_asgi("/api/openapi.json", APP)
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                                deterministic=True)


@pytest.fixture(scope="module", autouse=True)
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TelemetryStore]:
    """One hour of demo telemetry behind the app, the relay configured (read per request)."""
    patch = pytest.MonkeyPatch()
    patch.setenv("ALERT_RELAY_SECRET", SECRET)
    store = TelemetryStore(tmp_path_factory.mktemp("fuzz") / "demo.duckdb")
    run_demo(hours=1, seed=7, store=store, stdout=None, progress=False)
    BACKEND.local = LocalBackend(store)
    try:
        with capture_telemetry():  # the relay's and the ack's events stay in memory
            yield store
    finally:
        BACKEND.local = None
        patch.undo()


@schema.parametrize()
@settings(max_examples=25, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_api(case: schemathesis.Case) -> None:
    if case.path == RELAY:
        case.headers = {**(case.headers or {}), "x-relay-secret": SECRET}
    response = case.call_and_validate(checks=CHECKS)
    if response.status_code >= 400:
        body = json.loads(response.content)
        error = body.get("error") if isinstance(body, dict) else None
        assert isinstance(error, dict), f"{response.status_code} without an error body: {body}"
        assert isinstance(error.get("code"), str) and isinstance(error.get("message"), str), body
    if case.path == RELAY:  # with the right secret, a generated body is never a real alert
        assert 400 <= response.status_code < 500, (response.status_code, response.text)
