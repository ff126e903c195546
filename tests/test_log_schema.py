"""Every stdout line is one event in exactly the seed's JSON schema."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import jsonschema
import pytest

from integration_monitoring import get_logger, sync_job
from integration_monitoring.telemetry import SeedLogHandler

from .conftest import ROOT


@pytest.mark.parametrize("level", ["info", "warn", "error"])
def test_each_level_writes_one_schema_valid_line(level, stdout_lines, log_schema):
    """info, warn and error each write a line the seed's JSON Schema accepts."""
    # given a logger for an adapter
    log = get_logger("salesforce-adapter")
    # when it logs at the level
    getattr(log, level)("fetch.failed", tenant_id="tenant-123",
                        integration_id="salesforce-connection-1", entity="contact",
                        record_count=5, duration=12.5, error="Invalid session token",
                        retryable=True)
    # then exactly one line, valid, with the seed's keys and nothing else
    (line,) = stdout_lines()
    jsonschema.validate(line, log_schema)
    assert list(line) == ["timestamp", "level", "service", "operation", "tenantId",
                          "integrationId", "metadata"]
    assert line["level"] == level
    assert line["metadata"] == {"entity": "contact", "recordCount": 5, "duration": 12.5,
                                "error": "Invalid session token", "retryable": True}
    assert line["timestamp"].endswith("Z")


def test_seed_examples_round_trip(stdout_lines, log_schema):
    """The seed's two example entries come out as the seed shows them, timestamps aside."""
    # when the seed's examples are logged through the library
    get_logger("sync-task-service").info(
        "sync.started", tenant_id="tenant-123", integration_id="salesforce-connection-1",
        taskId="task-456", entity="contact", syncType="scheduled")
    get_logger("salesforce-adapter").error(
        "fetch.failed", tenant_id="tenant-123", integration_id="salesforce-connection-1",
        entity="contact", error="Invalid session token", retryable=True)
    # then they match the seed field for field
    started, failed = stdout_lines()
    for line in (started, failed):
        jsonschema.validate(line, log_schema)
        line.pop("timestamp")
    assert started == {
        "level": "info", "service": "sync-task-service", "operation": "sync.started",
        "tenantId": "tenant-123", "integrationId": "salesforce-connection-1",
        "metadata": {"taskId": "task-456", "entity": "contact", "syncType": "scheduled"},
    }
    assert failed == {
        "level": "error", "service": "salesforce-adapter", "operation": "fetch.failed",
        "tenantId": "tenant-123", "integrationId": "salesforce-connection-1",
        "metadata": {"entity": "contact", "error": "Invalid session token", "retryable": True},
    }


def test_sync_job_and_stdlib_lines_are_schema_valid(captured, stdout_lines, log_schema):
    """Events from the helpers and from plain stdlib logging validate too."""
    # given stdlib logging routed through the seed handler
    logger = logging.getLogger("hubspot-adapter")
    handler = SeedLogHandler(captured.telemetry)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        # when a job runs and stdlib code logs at three levels
        with sync_job(tenant_id="t1", integration_id="hs-1", adapter_type="hubspot",
                      entity="deal") as job:
            job.records(created=2)
            logger.info("page fetched", extra={"operation": "fetch.page", "recordCount": 50})
            logger.warning("slow down", extra={"operation": "fetch.retry"})
            try:
                raise ConnectionResetError("peer reset")
            except ConnectionResetError:
                logger.exception("fetch failed")
    finally:
        logger.removeHandler(handler)
    # then every line validates, and stdlib records inherit the job's context
    lines = stdout_lines()
    assert [line["operation"] for line in lines] == [
        "sync.started", "fetch.page", "fetch.retry", "fetch failed", "sync.completed"]
    for line in lines:
        jsonschema.validate(line, log_schema)
    assert {line["tenantId"] for line in lines} == {"t1"}
    assert lines[3]["level"] == "error"
    assert lines[3]["metadata"]["errorType"] == "ConnectionResetError"


def test_stdout_of_a_real_process_is_only_seed_lines(tmp_path, log_schema):
    """A configured process prints nothing on stdout but seed lines."""
    # given a script that configures telemetry and logs three ways
    script = (
        "import logging\n"
        "from integration_monitoring import configure_telemetry, get_logger, flush\n"
        "configure_telemetry('worker')\n"
        "get_logger('salesforce-adapter').warn('rate_limit.hit', tenant_id='t', "
        "integration_id='i', retryAfter=2)\n"
        "logging.getLogger('sync').info('plain message')\n"
        "logging.getLogger('sync').debug('not an event')\n"
        "flush()\n"
    )
    # when it runs
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={"TELEMETRY_DB": str(tmp_path / "t.duckdb"), "PATH": "/usr/bin:/bin"},
    )
    # then stdout holds exactly two valid lines
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["operation"] for line in lines] == ["rate_limit.hit", "plain message"]
    for line in lines:
        jsonschema.validate(line, log_schema)
