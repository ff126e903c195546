"""The queue depth sampler through the real ServiceBusAdministrationClient, and its settings."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from integration_monitoring.queues import (
    LocalDepths,
    LocalQueue,
    ServiceBusDepths,
    SettingError,
    parse_queue_names,
    register_local_queue,
    sample_queue_depths,
    sampler_settings,
)
from integration_monitoring.schedules import QUEUE_SAMPLER, TIMERS, next_fire

from .helpers import ROOT, project_env
from .loopback.servicebus import ServiceBusLoopback


def test_sampler_records_each_queue_and_survives_failing_ones(captured):
    """Depths of healthy queues are recorded; not found, forbidden and slow ones warn and count."""
    with ServiceBusLoopback() as bus:
        # given a namespace with two healthy queues, one forbidden and one too slow
        bus.set_queue("sync-jobs", active=140, dead_letter=3)
        bus.set_queue("webhooks", active=12, dead_letter=0)
        bus.set_queue("exports", active=1)
        bus.fail_queue("exports", 403)
        bus.set_queue("slow", active=1)
        bus.fail_queue("slow", None, delay_s=2)
        source = ServiceBusDepths(bus.namespace, bus.credential, timeout_s=0.5, retries=0,
                                  connection_verify=bus.ca_path)
        # when one sampling run covers them all and a queue that does not exist
        result = sample_queue_depths(source, ["sync-jobs", "missing", "exports", "slow",
                                              "webhooks"])
        source.close()
    # then the healthy queues are recorded with their labels
    assert [(d.queue, d.active, d.dead_letter) for d in result.depths] == [
        ("sync-jobs", 140, 3), ("webhooks", 12, 0)]
    assert captured.metric("service_bus_queue_depth", queue="sync-jobs") == 140
    assert captured.metric("service_bus_dlq_depth", queue="sync-jobs") == 3
    assert captured.metric("service_bus_queue_depth", queue="webhooks") == 12
    # and each failure is a warn event and a counted failure, naming the queue
    assert set(result.failures) == {"missing", "exports", "slow"}
    for queue, error_type in (("missing", "ResourceNotFoundError"),
                              ("exports", "HttpResponseError"),
                              ("slow", "ServiceResponseTimeoutError")):
        captured.assert_event("queue.sample_failed", level="warn", queue=queue,
                              errorType=error_type)
        assert captured.metric("service_bus_sample_failures_total", queue=queue) == 1


def test_sampler_reads_the_local_queue_through_the_same_code(captured):
    """Without Service Bus, the demo's local queue is sampled by the same function."""
    queue = register_local_queue(LocalQueue("local-sample-test", max_delivery_count=1))
    for n in range(3):
        queue.send({"n": n})
    message = queue.receive(now_ns=0)
    queue.abandon(message)  # one delivery allowed: dead-lettered
    result = sample_queue_depths(LocalDepths(), ["local-sample-test"])
    assert [(d.active, d.dead_letter) for d in result.depths] == [(2, 1)]
    assert captured.metric("service_bus_dlq_depth", queue="local-sample-test") == 1


def test_local_queue_has_service_bus_delivery_semantics():
    """Abandoned messages come back until the max delivery count, then dead-letter."""
    queue = LocalQueue("semantics", max_delivery_count=2)
    queue.send("job")
    queue.send("later", scheduled_at_ns=100)
    first = queue.receive(0)
    assert queue.abandon(first) is False and queue.active_count == 1
    again = queue.receive(0)
    assert again is first and again.delivery_count == 2
    assert queue.abandon(again) is True
    assert (queue.dead_letter_count, queue.dead_letters[0].dead_letter_reason) == (
        1, "MaxDeliveryCountExceeded")
    assert queue.receive(50) is None and queue.scheduled_count == 1
    assert queue.receive(100).body == "later"


@pytest.mark.parametrize(("env", "setting"), [
    ({"SERVICEBUS_QUEUES": "sync-jobs,bad queue!"}, "SERVICEBUS_QUEUES"),
    ({"SERVICEBUS_QUEUES": "a,a"}, "SERVICEBUS_QUEUES"),
    ({"SERVICEBUS_FULLY_QUALIFIED_NAMESPACE": "ns.servicebus.windows.net"}, "SERVICEBUS_QUEUES"),
    ({"SERVICEBUS_FULLY_QUALIFIED_NAMESPACE": "sb://ns.servicebus.windows.net/",
      "SERVICEBUS_QUEUES": "q"}, "SERVICEBUS_FULLY_QUALIFIED_NAMESPACE"),
])
def test_bad_settings_name_the_setting(env, setting):
    """Malformed Service Bus settings fail with an error that names the setting."""
    with pytest.raises(SettingError) as raised:
        sampler_settings(env)
    assert raised.value.setting == setting
    assert str(raised.value).startswith(setting)


def test_good_settings_choose_the_source():
    """A namespace selects Service Bus; no namespace selects the local queues."""
    remote = sampler_settings({"SERVICEBUS_FULLY_QUALIFIED_NAMESPACE": "ns.servicebus.windows.net",
                               "SERVICEBUS_QUEUES": "sync-jobs, webhooks"})
    assert (remote.namespace, remote.queues) == ("ns.servicebus.windows.net",
                                                 ["sync-jobs", "webhooks"])
    assert sampler_settings({}).namespace is None
    assert parse_queue_names("a/b c.d") == ["a/b", "c.d"]


def test_schedule_is_validated_and_computed():
    """The schedule setting is a six-field NCRONTAB; nonsense names the setting."""
    assert QUEUE_SAMPLER.resolve({}) == "0 * * * * *"
    assert QUEUE_SAMPLER.resolve({"QUEUE_SAMPLE_SCHEDULE": "*/30 * * * * *"}) == "*/30 * * * * *"
    for bad in ("* * * * *", "every minute", "0 61 * * * *"):
        with pytest.raises(SettingError, match="QUEUE_SAMPLE_SCHEDULE"):
            QUEUE_SAMPLER.resolve({"QUEUE_SAMPLE_SCHEDULE": bad})
    import datetime as dt
    assert next_fire("0 */5 * * * *", dt.datetime(2026, 1, 1, 0, 1, 7)) == dt.datetime(
        2026, 1, 1, 0, 5)


def test_function_app_registers_exactly_the_declared_timers(tmp_path):
    """Each timer on the Function app has the schedule expression of its TimerSpec."""
    script = """
import json
import function_app
timers = {}
for function in function_app.app.get_functions():
    binding = json.loads(function.get_function_json())["bindings"][0]
    if binding["type"] == "timerTrigger":
        timers[function.get_function_name()] = binding["schedule"]
print("RESULT", json.dumps(timers))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=project_env(tmp_path))
    assert done.returncode == 0, done.stderr
    registered = json.loads(done.stdout.split("RESULT ", 1)[1])
    assert registered == {timer.name: timer.schedule for timer in TIMERS}
    assert registered["sample_queue_depths"] == "%QUEUE_SAMPLE_SCHEDULE%"


def test_function_app_refuses_to_start_with_a_bad_setting(tmp_path):
    """A malformed SERVICEBUS_QUEUES stops the Function app at start-up, naming it."""
    done = subprocess.run([sys.executable, "-c", "import function_app"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60,
                          env=project_env(tmp_path, SERVICEBUS_QUEUES="no spaces allowed!"))
    assert done.returncode != 0
    assert "SERVICEBUS_QUEUES" in done.stderr
