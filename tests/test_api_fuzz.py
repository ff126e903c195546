"""Schemathesis fuzzing of the admin app against its own OpenAPI document, on demo data.

Every operation in /api/openapi.json gets a bounded number of generated requests (valid and
invalid, derandomized) and every answer is checked: never a 5xx, a documented status code and
content type, a body that matches the documented schema, and for every 4xx the app's error
shape `{"error": {"code", "message", "parameter"?}}`.

- The relay is called with the right secret, so its arbitrary-JSON body is what gets fuzzed
  (a generated body is never a common-schema alert: always a 4xx).
- The acknowledgement's body is not in the document, so the test draws one itself (valid,
  wrong or any JSON), and half the time aims at an alert that exists.
- The SSE stream runs with a short `stream_s`, so a 200 ends in about half a second.
- The app's own events (relay, acknowledgements) land in the demo store, a minute in the past
  so the admin queries (whose `until` is now rounded down to 5 s) see them at once.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from integration_monitoring import Telemetry
from integration_monitoring.admin import Answer, LocalBackend
from integration_monitoring.alerts import SqliteOutbox, load_rules
from integration_monitoring.alerts._delivery import Deliverer
from integration_monitoring.alerts._payload import build_log_alert
from integration_monitoring.app import create_app
from integration_monitoring.store import StoreLogExporter, TelemetryStore
from integration_monitoring.telemetry import use

SECRET = "fuzz-relay-secret"
RELAY = "/api/alerts/relay"
ACK = "/api/admin/alerts/{alert_id}/ack"
STREAM = "/api/admin/integrations/stream"
KNOWN_ALERTS = ("3f6c1a2e-0000-4000-8000-000000000001", "3f6c1a2e-0000-4000-8000-000000000002")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


class DemoBackend:
    """The local backend over the demo store that the `fuzzed_store` fixture fills in: the app
    (so the schema and the tests it parametrizes) exists at import, the data when tests run."""

    name = "local"

    def __init__(self) -> None:
        self.local: LocalBackend | None = None

    def query(self, kql: str, since: dt.datetime, until: dt.datetime) -> Answer:
        assert self.local is not None, "the fuzzed_store fixture has not run"
        return self.local.query(kql, since, until)

    def ask(self, name: str, values: dict) -> Answer:
        assert self.local is not None, "the fuzzed_store fixture has not run"
        return self.local.ask(name, values)


BACKEND = DemoBackend()
# Every channel off: nothing leaves the process. The outbox (with the relay's claims) is this
# process's own, not the checkout's .data/, where another worker or an earlier run would hold
# the same alerts' claims.
DELIVERER = Deliverer.from_env(env={}, outbox=SqliteOutbox(
    Path(tempfile.mkdtemp(prefix="fuzz-outbox-")) / "alert-outbox.sqlite3"))
APP = create_app(backend=BACKEND, deliverer_factory=lambda: DELIVERER,
                 stream_options={"stream_s": 0.5, "poll_s": 0.1})


# `schemathesis.pytest.from_fixture` would let a fixture build the app, but its LazySchema
# sets `request.node._nodeid`, which pytest 9.2 nodes no longer have (AttributeError), so
# the schema is loaded here; it does not depend on the data. Responses, status codes and
# content types are checked against the document as the app serves it.
schema = schemathesis.openapi.from_dict(APP.openapi())
schema.app = APP
schema.location = "/api/openapi.json"
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                                deterministic=True)


def _alert(alert_id: str) -> dict[str, Any]:
    rule = load_rules()[0]
    now = dt.datetime.now(dt.UTC)
    return build_log_alert(rule, condition="Fired", dimensions=dict.fromkeys(rule.dimensions,
                                                                            "hubspot"),
                           value=rule.threshold + 1, window_start=now - rule.window,
                           window_end=now, fired_at=now, alert_id=alert_id)


@pytest.fixture(scope="module", autouse=True)
def fuzzed_store(demo_store) -> Iterator[TelemetryStore]:
    """One hour of demo telemetry behind the app, the relay configured (it reads the secret
    per request), and two alerts fired through it."""
    store = demo_store(hours=1, seed=7)
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(StoreLogExporter(store)))
    telemetry = Telemetry(logger_provider=provider, meter_provider=MeterProvider(),
                          tracer_provider=TracerProvider(), stdout=False,
                          clock=lambda: time.time_ns() - 60 * 10**9)
    previous = use(telemetry)
    BACKEND.local = LocalBackend(store)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ALERT_RELAY_SECRET", SECRET)
        client = TestClient(APP)
        for alert_id in KNOWN_ALERTS:
            answer = client.post(RELAY, json=_alert(alert_id), headers={"x-relay-secret": SECRET})
            assert answer.status_code == 202, answer.text
        listed = client.get("/api/admin/alerts").json()
        assert {a["alertId"] for a in listed["alerts"]} >= set(KNOWN_ALERTS), listed
        try:
            yield store
        finally:
            BACKEND.local = None
            use(previous)
            provider.shutdown()


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=10)
#: No body, a valid acknowledgement, one with wrong fields or types, or any JSON at all.
ACK_BODIES = st.one_of(
    st.none(),
    st.fixed_dictionaries({}, optional={"by": st.text(max_size=120),
                                        "note": st.text(max_size=520)}),
    st.dictionaries(st.sampled_from(["by", "note", "extra"]), _json, max_size=3),
    _json)


@schema.given(data=st.data())
@schema.parametrize()
@settings(max_examples=25, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_api(case: schemathesis.Case, data: st.DataObject) -> None:
    call: dict[str, Any] = {}
    path = case.operation.path
    if path == RELAY:  # the secret is right: the body is what gets fuzzed
        case.headers = {**(case.headers or {}), "x-relay-secret": SECRET}
    if path == ACK:
        if data.draw(st.booleans(), label="known alert"):
            case.path_parameters = {"alert_id": data.draw(st.sampled_from(KNOWN_ALERTS))}
        body = data.draw(ACK_BODIES, label="ack body")
        # without a body, sometimes without the JSON media type too (refused: 415)
        typed = body is not None or data.draw(st.booleans(), label="json type")
        if typed:
            call = {"headers": {"Content-Type": "application/json"}}
        if body is not None:
            call["data"] = json.dumps(body).encode()
    response = case.call_and_validate(checks=CHECKS, **call)

    _assert_error_shape(response)
    if path == RELAY:  # a generated body is never a common-schema alert
        assert 400 <= response.status_code < 500, (response.status_code, response.text)
    if path == ACK:
        expected = (200, 400, 404) if typed else (415,)
        assert response.status_code in expected, (response.status_code, response.text)


def _surrogate_alert() -> bytes:
    """A valid alert but for a lone surrogate (legal JSON escape, not encodable text) in the
    dimension that goes into the dashboard link."""
    body = _alert("3f6c1a2e-0000-4000-8000-0000000000ff")
    body["data"]["alertContext"]["condition"]["allOf"][0]["dimensions"] = [
        {"name": "adapterType", "value": "\ud800"}]
    return json.dumps(body).encode()


#: Arbitrary JSON that generation from a schema does not reach: nesting past Python's
#: recursion limit, escapes that decode to unencodable text, bytes that are not UTF-8.
EDGE_BODIES = {
    "nested-1000": b"[" * 1000 + b"]" * 1000,
    "nested-100k": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "not-utf8": b'{"by": "\xff\xfe"}',
    "lone-surrogate": b'"\\ud800"',
    "truncated": b'{"by": ',
    "huge-number": b"1e999",
}
EDGE_CASES = [(RELAY, name) for name in [*EDGE_BODIES, "surrogate-alert"]] + [
    (ACK, name) for name in [*EDGE_BODIES, "surrogate-by"]]


@pytest.mark.parametrize(("path", "name"), EDGE_CASES, ids=[f"{'relay' if p == RELAY else 'ack'}"
                                                            f"-{n}" for p, n in EDGE_CASES])
def test_edge_bodies(path: str, name: str) -> None:
    """Every such body is a 4xx with the error shape, checked like the generated ones."""
    raw = {"surrogate-alert": _surrogate_alert, "surrogate-by": lambda: b'{"by": "\\ud800"}'
           }.get(name, lambda: EDGE_BODIES[name])()
    operation = schema[path]["POST"]
    if path == RELAY:
        case = operation.Case(headers={"x-relay-secret": SECRET})
    else:
        case = operation.Case(path_parameters={"alert_id": KNOWN_ALERTS[0]})
    response = case.call_and_validate(checks=CHECKS, data=raw,
                                      headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    _assert_error_shape(response)


def _assert_error_shape(response: Any) -> None:
    """A 4xx or 5xx is `{"error": {"code", "message", "parameter"?}}` and nothing else."""
    if response.status_code < 400:
        return
    body = json.loads(response.content)
    error = body.get("error") if isinstance(body, dict) else None
    assert isinstance(error, dict) and set(body) == {"error"}, body
    assert isinstance(error.get("code"), str), body
    assert isinstance(error.get("message"), str), body
    assert set(error) <= {"code", "message", "parameter"}, body
