"""Shared fixtures: an isolated telemetry capture and a seed-format JSON line sink."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration_monitoring.testing import Captured, capture_telemetry

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


@pytest.fixture(scope="session")
def log_schema() -> dict:
    """The seed's log event format as a JSON Schema."""
    path = ROOT / "integration_monitoring" / "schemas" / "log-event.schema.json"
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def pagerduty_request_schema() -> dict[str, Any]:
    """The enqueue operation's request body schema, with the document's components to resolve
    its `$ref`s (`#/components/schemas/Payload`, `Links`, `Images`)."""
    path = (Path(__file__).resolve().parents[2] / "shared" / "schemas"
            / "pagerduty-events-v2.openapi.json")
    if not path.exists():
        pytest.skip(f"{path} is not on this machine")
    document = json.loads(path.read_text())
    operation = document["paths"]["/enqueue"]["post"]
    assert operation["operationId"] == "createV2Event"
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    return {**schema, "components": document["components"]}
