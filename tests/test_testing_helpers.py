"""What adapter authors get from integration_monitoring.testing."""

from __future__ import annotations

import pytest

from integration_monitoring import get_logger, sync_job
from integration_monitoring.testing import capture_telemetry


def contact_sync(records: list[dict]) -> None:
    """An adapter's job as its author would write it."""
    with sync_job(tenant_id="tenant-123", integration_id="salesforce-connection-1",
                  adapter_type="salesforce", entity="contact") as job:
        get_logger("salesforce-adapter").info("records.fetched", recordCount=len(records))
        job.records(created=sum(1 for r in records if r.get("new")),
                    updated=sum(1 for r in records if not r.get("new")))


def test_capture_finds_events_and_metric_totals():
    """Events are found by operation, level and fields; metrics by name and labels."""
    with capture_telemetry() as captured:
        contact_sync([{"new": True}, {"new": True}, {}])
    fetched = captured.assert_event("records.fetched", level="info", recordCount=3,
                                    tenantId="tenant-123")
    assert fetched["service"] == "salesforce-adapter"
    assert captured.find("sync.completed", recordsCreated=2, recordsUpdated=1)
    assert captured.metric("sync_records_created_total", entity="contact") == 2
    assert captured.metric("sync_records_created_total", entity="deal") == 0
    assert captured.histogram_count("sync_latency_ms") == 1


def test_missing_event_fails_with_what_was_emitted():
    """assert_event's failure lists the events that were emitted."""
    with capture_telemetry() as captured:
        contact_sync([])
    with pytest.raises(AssertionError, match=r"sync\.completed"):
        captured.assert_event("sync.failed")


def test_capture_is_isolated_and_restores_the_previous_telemetry():
    """Nested captures see only their own events, and the outer one resumes afterwards."""
    log = get_logger("x")
    with capture_telemetry() as outer:
        log.info("one")
        with capture_telemetry() as inner:
            log.info("two")
        log.info("three")
    assert outer.operations == ["one", "three"]
    assert inner.operations == ["two"]
