"""Faults at the Azure boundary, and what the people and timers depending on it get.

Log Analytics: the admin app (a real FastAPI app served by uvicorn, asked over HTTP) queries
through the real `LogsQueryClient` a loopback workspace that answers from a demo store and
can be made slow, throttling, partially failing or down, and healed again. Whatever the
fault, a caller gets either the full answer, a flagged partial one, or a JSON 503 with a
Retry-After; and once the fault ends, the full answer again.

Service Bus: the queue sampler's timer entry point reads queue depths through the real
`ServiceBusAdministrationClient` from a loopback namespace where some queues are refused,
missing, throttled or slow, or where the whole namespace is unreachable. Healthy queues are
always recorded, every failure is counted by queue and reason and logged naming the queue,
and the timer never sees an exception.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import httpx
import pytest

from integration_monitoring.admin import LocalBackend, LogAnalyticsBackend, SharedQueries
from integration_monitoring.app import create_app
from integration_monitoring.queues import ServiceBusDepths, jobs
from integration_monitoring.schedules import QUEUE_SAMPLER
from integration_monitoring.store import TelemetryStore

from .helpers import http_get, serve_app
from .loopback.loganalytics import PARTIAL_DETAIL, LogAnalyticsLoopback
from .loopback.servicebus import ServiceBusLoopback

NOW = dt.datetime(2025, 6, 2, 12, 0, tzinfo=dt.UTC)
UNTIL = "2025-06-02T12:00:00Z"
EARLIER = "2025-06-02T11:00:00Z"  # another question, to open a connection before a fault
WORKSPACE = "ws-faults"
HEALTH = "/api/admin/integrations/health"
STATS = "/api/admin/integrations/stats"
STATS_QUERIES = ("integration_status", "job_counts", "top_integrations", "error_rate_trend")


# -- Log Analytics: fixtures -------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(demo_store) -> TelemetryStore:
    """Two hours of a small demo workload up to NOW."""
    return demo_store(hours=2, now=NOW, seed=11, tenants=3, integrations=6)


@pytest.fixture(scope="module")
def workspace(store: TelemetryStore, loopback_workspace) -> LogAnalyticsLoopback:
    return loopback_workspace(store, WORKSPACE)


@pytest.fixture
def faults(workspace: LogAnalyticsLoopback) -> Iterator[LogAnalyticsLoopback]:
    """The workspace, no requests recorded; every fault switched off afterwards."""
    workspace.reset()
    workspace.clear_requests()
    yield workspace
    workspace.reset()


@pytest.fixture(scope="module")
def expected(store: TelemetryStore) -> dict[str, dict[str, Any]]:
    """What the local store says, through the app on the local backend: the full answers."""
    with serve_app(create_app(backend=LocalBackend(store))) as url:
        return {path: _without_backend(http_get(url + path, params={"until": UNTIL}).json())
                for path in (HEALTH, STATS)}


@dataclass
class Admin:
    """The admin app on Log Analytics (the loopback), over HTTP, and the waits of its retries."""

    url: str
    waits: list[float] = field(default_factory=list)

    def get(self, path: str, until: str = UNTIL) -> httpx.Response:
        return http_get(self.url + path, params={"until": until})


@pytest.fixture
def admin(faults: LogAnalyticsLoopback) -> Iterator[Callable[..., Admin]]:
    """Start a fresh app (fresh query cache) with the given backend options."""
    with ExitStack() as stack:

        def start(cache: SharedQueries | None = None, **options: Any) -> Admin:
            waits: list[float] = []

            def sleep(seconds: float) -> None:  # really waits; remembers for how long
                waits.append(seconds)
                time.sleep(seconds)

            options = {"backoff_s": 0.01, "sleep": sleep, **options}
            backend = LogAnalyticsBackend(WORKSPACE, faults.credential,
                                          endpoint=faults.endpoint,
                                          connection_verify=faults.ca_path, **options)
            url = stack.enter_context(serve_app(create_app(backend=backend, cache=cache,
                                                           restatements=False)))
            return Admin(url, waits)

        yield start


@dataclass
class FakeClock:
    """The cache's clock, moved by the test: ages without sleeping, whatever the load."""

    now: float = 0.0

    def __call__(self) -> float:
        return self.now


def _without_backend(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != "backend"}


def assert_unavailable(response: httpx.Response) -> dict[str, Any]:
    """A 503 as the API documents it: JSON error, Retry-After in whole seconds, no trace."""
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["retry-after"].isdigit()
    assert int(response.headers["retry-after"]) >= 1
    body = response.json()
    assert list(body) == ["error"]
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == "backend_unavailable"
    assert "Traceback" not in response.text
    return body["error"]


# -- Log Analytics: throttling -----------------------------------------------------------------


def test_throttling_that_ends_within_the_retries_is_waited_out(faults, admin, expected):
    """Two 429s asking for 1 s each, then recovery: the caller gets the full answer, and
    the service was asked again only after the time it asked for."""
    # given a workspace that throttles the next two queries, asking for a second each
    faults.fail_next(2, 429, retry_after=1)
    app = admin(retries=2)
    # when /health is asked for
    response = app.get(HEALTH)
    # then the answer is complete and the same as the store's
    assert response.status_code == 200, response.text
    assert _without_backend(response.json()) == expected[HEALTH]
    # and the app waited as told before each retry, which the service saw
    assert app.waits == [1, 1]
    arrivals = [request.at for request in faults.requests]
    assert len(arrivals) == 3
    assert all(later - earlier >= 0.95 for earlier, later in pairwise(arrivals))


def test_throttling_longer_than_the_app_waits_is_passed_on_at_once(faults, admin, expected):
    """A 429 asking for two minutes is not retried early: the caller gets 503 with that
    Retry-After straight away, and the full answer once the throttling ends."""
    # given a workspace that throttles every query for 120 s
    faults.fail_always(429, retry_after=120)
    app = admin(retries=2)
    # when /health is asked for
    started = time.monotonic()
    response = app.get(HEALTH)
    # then the caller is told to come back in 120 s, without the app waiting or retrying
    error = assert_unavailable(response)
    assert time.monotonic() - started < 60  # not the 120 s asked for (and no wait at all)
    assert response.headers["retry-after"] == "120"
    assert "429" in error["message"]
    assert app.waits == []
    assert len(faults.requests) == 1
    # when the throttling ends and the caller asks again (within the cache's 15 s)
    faults.reset()
    again = app.get(HEALTH)
    # then the failure was not kept: the engine is asked again and the answer is full
    assert again.status_code == 200, again.text
    assert _without_backend(again.json()) == expected[HEALTH]
    assert len(faults.requests) == 2


# -- Log Analytics: each way of being unavailable, then recovering ----------------------------


@dataclass(frozen=True)
class Outage:
    name: str
    start: Callable[[LogAnalyticsLoopback], None]
    options: dict[str, Any]
    requests: int  # how many requests the workspace sees for one question
    waits: int  # how many times the app waits before retrying
    retry_after: str | None = None  # the Retry-After the caller gets, when known


OUTAGES = [
    Outage("throttled-persistently", lambda w: w.fail_always(429, retry_after=1),
           {"retries": 2}, requests=3, waits=2, retry_after="1"),
    Outage("internal-errors", lambda w: w.fail_always(500), {"retries": 2},
           requests=3, waits=2, retry_after="30"),
    Outage("busy-with-retry-after", lambda w: w.fail_always(503, retry_after=1),
           {"retries": 1}, requests=2, waits=1, retry_after="1"),
    Outage("gateway-html-502",
           lambda w: w.fail_always(502, body="<html><body>502 Bad Gateway</body></html>"),
           {"retries": 2}, requests=3, waits=2, retry_after="30"),
    Outage("proxy-page-with-200", lambda w: w.fail_always(200, body="<html>Sign in</html>"),
           {"retries": 1}, requests=2, waits=1, retry_after="30"),
    Outage("slower-than-the-server-timeout", lambda w: w.delay(1.5),
           {"retries": 2, "server_timeout_s": 1}, requests=1, waits=0, retry_after="60"),
    # stalled until healed: the read timeout ends the wait however busy the machine, and it
    # leaves a loaded machine the time to answer the question again once the fault is over
    Outage("slower-than-the-read-timeout", lambda w: w.stall(),
           {"retries": 2, "read_timeout": 6}, requests=1, waits=0, retry_after="60"),
    Outage("connection-refused", lambda w: w.go_down(), {"retries": 2},
           requests=0, waits=2, retry_after="30"),
]


@pytest.mark.parametrize("outage", OUTAGES, ids=[outage.name for outage in OUTAGES])
def test_an_unavailable_engine_is_a_503_and_recovery_is_immediate(faults, admin, expected,
                                                                   outage):
    """Before: 200. During: a bounded number of attempts, then a JSON 503 with Retry-After,
    never a 500 or a hang. After: the full answer at once, nothing cached from the fault."""
    # given an app that has already talked to the workspace (a live pooled connection)
    app = admin(**outage.options)
    assert app.get(HEALTH, until=EARLIER).status_code == 200
    faults.clear_requests()
    # when the workspace fails in this way and /health is asked for
    outage.start(faults)
    started = time.monotonic()
    response = app.get(HEALTH)
    took = time.monotonic() - started
    # then the caller gets a 503 it can act on, after a bounded number of attempts
    assert_unavailable(response)
    if outage.retry_after is not None:
        assert response.headers["retry-after"] == outage.retry_after
    assert len(faults.requests) == outage.requests
    assert len(app.waits) == outage.waits
    assert took < 30  # no hang: at most a 6 s read timeout, or 2 s of waits, plus the load
    # when the fault ends and the same question is asked again, within the cache's TTL
    faults.reset()
    again = app.get(HEALTH)
    # then the answer is the full one
    assert again.status_code == 200, again.text
    assert _without_backend(again.json()) == expected[HEALTH]


# -- Log Analytics: partial answers -------------------------------------------------------------


def test_a_partial_answer_is_flagged_and_soon_replaced_by_the_full_one(faults, admin, expected):
    """One of /stats' four queries comes back partial: the answer is served with its rows,
    `partial` and the reason naming that query; identical requests right after share it,
    and once it has aged 2 s the next request asks again and gets the full answer."""
    # given a workspace whose next answer is partial
    faults.partial_next(1)
    clock = FakeClock()
    app = admin(cache=SharedQueries(clock=clock))
    # when /stats is asked for
    first = app.get(STATS)
    # then it is a 200 flagged partial, naming the query and the service's reason
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["partial"] is True
    [reason] = body["partialReasons"]
    name, _, detail = reason.partition(": ")
    assert name in STATS_QUERIES
    assert detail == PARTIAL_DETAIL
    # and nothing the engine did return is missing
    assert {**_without_backend(body), "partial": False, "partialReasons": []} == expected[STATS]
    assert len(faults.requests) == len(STATS_QUERIES)
    # when another viewer asks at once, then it shares that answer without a new query
    assert app.get(STATS).json()["partialReasons"] == [reason]
    assert len(faults.requests) == len(STATS_QUERIES)
    # when the partial answer has aged past its 2 s
    clock.now += 2.1
    last = app.get(STATS)
    # then only the partial query is asked again, and the answer is full
    assert last.status_code == 200, last.text
    assert _without_backend(last.json()) == expected[STATS]
    assert len(faults.requests) == len(STATS_QUERIES) + 1


def test_a_standing_partial_fault_flags_every_answer_until_it_ends(faults, admin, expected):
    """While every query is partial, every endpoint says so; when it stops, none does."""
    # given a workspace that answers every query partially
    faults.partial_always("Partial query failure: 1 of 4 shards unavailable")
    clock = FakeClock()
    app = admin(cache=SharedQueries(clock=clock))
    # when /health and /stats are asked for
    health, stats = app.get(HEALTH).json(), app.get(STATS).json()
    # then both are flagged, each reason naming its query
    assert health["partialReasons"] == [
        "integration_status: Partial query failure: 1 of 4 shards unavailable"]
    assert sorted(reason.split(": ")[0] for reason in stats["partialReasons"]) == sorted(
        STATS_QUERIES)
    # when the fault ends and the partial answers have aged
    faults.reset()
    clock.now += 2.1
    # then the same questions are answered in full
    assert _without_backend(app.get(HEALTH).json()) == expected[HEALTH]
    assert _without_backend(app.get(STATS).json()) == expected[STATS]


# -- Service Bus ---------------------------------------------------------------------------------


@pytest.fixture
def bus() -> Iterator[ServiceBusLoopback]:
    with ServiceBusLoopback() as server:
        yield server


@pytest.fixture
def timer(bus: ServiceBusLoopback, monkeypatch: pytest.MonkeyPatch
          ) -> Iterator[Callable[..., ServiceBusDepths]]:
    """Configure the timer for the loopback namespace and `queues`; returns the depth source
    the timer will use (the Function app keeps one per namespace between runs)."""
    sources: list[ServiceBusDepths] = []

    def configure(queues: list[str], credential: Any = None,
                  **options: Any) -> ServiceBusDepths:
        monkeypatch.setenv("SERVICEBUS_FULLY_QUALIFIED_NAMESPACE", bus.namespace)
        monkeypatch.setenv("SERVICEBUS_QUEUES", ",".join(queues))
        source = ServiceBusDepths(bus.namespace, credential or bus.credential,
                                  connection_verify=bus.ca_path,
                                  **{"timeout_s": 2.0, "retries": 0, **options})
        sources.append(source)
        monkeypatch.setitem(jobs._sources, bus.namespace, source)
        return source

    yield configure
    for source in sources:
        source.close()


def failures(captured: Any) -> dict[str, dict[str, Any]]:
    """queue.sample_failed events by queue (metadata)."""
    found = {}
    for event in captured.find("queue.sample_failed"):
        assert event["level"] == "warn" and event["service"] == "queue-depth-sampler"
        found[event["metadata"]["queue"]] = event["metadata"]
    return found


def test_refused_and_missing_queues_are_counted_and_healthy_ones_recorded(bus, timer,
                                                                          captured):
    """401, 403, a 404 and a queue that was never created, between healthy queues: the
    timer run completes, the healthy depths are recorded, each failure is counted by queue
    and reason and logged with the service's own words and what to do."""
    # given a namespace where the app may not read two queues and two do not exist
    bus.set_queue("sync-jobs", active=140, dead_letter=3)
    bus.set_queue("webhooks", active=12, dead_letter=0)
    for name, status in (("audit", 401), ("exports", 403), ("archive", 404)):
        bus.set_queue(name, active=1)
        bus.fail_queue(name, status)
    timer(["sync-jobs", "audit", "exports", "archive", "retired", "webhooks"])
    # when the timer fires
    result = QUEUE_SAMPLER.run()
    # then the healthy queues, before and after the failing ones, are recorded
    assert [(d.queue, d.active, d.dead_letter) for d in result.depths] == [
        ("sync-jobs", 140, 3), ("webhooks", 12, 0)]
    assert captured.metric("service_bus_queue_depth", queue="sync-jobs") == 140
    assert captured.metric("service_bus_dlq_depth", queue="sync-jobs") == 3
    assert captured.metric("service_bus_queue_depth", queue="webhooks") == 12
    assert captured.series("service_bus_queue_depth") and all(
        labels["queue"] in ("sync-jobs", "webhooks")
        for labels, _ in captured.series("service_bus_queue_depth"))
    # and each failing queue is counted once, under its reason
    reasons = {"audit": "forbidden", "exports": "forbidden", "archive": "not_found",
               "retired": "not_found"}
    assert result.reasons == reasons
    for queue, reason in reasons.items():
        assert captured.metric("service_bus_sample_failures_total", queue=queue,
                               reason=reason) == 1
    assert captured.metric("service_bus_sample_failures_total") == 4
    # and each is one warn event naming the queue, the reason and what to do about it
    events = failures(captured)
    assert set(events) == set(reasons)
    assert events["audit"]["statusCode"] == 401
    assert events["exports"]["statusCode"] == 403
    assert "Data Owner" in events["exports"]["hint"]
    assert "SERVICEBUS_QUEUES" in events["retired"]["hint"]
    # with the service's explanation and its TrackingId, not the SDK's XML wrapper
    assert events["exports"]["error"].startswith("Service Bus answered 403: Unauthorized")
    assert "TrackingId:" in events["exports"]["error"]
    assert "claims required" in events["audit"]["error"]
    assert "could not be found" in events["archive"]["error"]
    assert not any("<Error>" in event["error"] for event in events.values())
    # and every queue was asked for exactly once
    assert sorted(request.path.split("?")[0] for request in bus.requests) == sorted(
        f"/{queue}" for queue in ["sync-jobs", "audit", "exports", "archive", "retired",
                                  "webhooks"])


def test_throttled_failing_and_slow_queues_do_not_stop_the_run(bus, timer, captured):
    """429, 503 and an answer slower than the read timeout are each that queue's failure:
    the queues after them are still read."""
    # given a queue throttled, one failing, one too slow, and a healthy one last
    for name in ("busy", "broken", "slow", "sync-jobs"):
        bus.set_queue(name, active=5)
    bus.fail_queue("busy", 429)
    bus.fail_queue("broken", 503)
    bus.fail_queue("slow", None, delay_s=2)
    timer(["busy", "broken", "slow", "sync-jobs"], timeout_s=0.3)
    # when the timer fires
    result = QUEUE_SAMPLER.run()
    # then the healthy queue is recorded and the others are counted by reason
    assert [d.queue for d in result.depths] == ["sync-jobs"]
    assert result.reasons == {"busy": "throttled", "broken": "server_error", "slow": "timeout"}
    for queue, reason in result.reasons.items():
        assert captured.metric("service_bus_sample_failures_total", queue=queue,
                               reason=reason) == 1
    assert failures(captured)["slow"]["errorType"] == "ServiceResponseTimeoutError"


def test_an_unreachable_namespace_is_counted_for_every_queue_then_recovers(bus, timer,
                                                                           captured):
    """Connections refused: the first queue's failure stands for the namespace, the run
    ends at once, every queue is counted as unreachable; the next run after the outage
    records every depth again, with the same client."""
    # given three queues and a namespace that is down
    queues = ["sync-jobs", "webhooks", "exports"]
    for depth, name in enumerate(queues, start=1):
        bus.set_queue(name, active=depth * 10, dead_letter=depth)
    timer(queues)
    bus.go_down()
    # when the timer fires
    started = time.monotonic()
    result = QUEUE_SAMPLER.run()
    # then it returns promptly (retrying three queues would take tens of seconds), having
    # recorded nothing and asked nothing
    assert time.monotonic() - started < 10
    assert result.depths == []
    assert bus.requests == []
    assert captured.series("service_bus_queue_depth") == []
    # and every queue is counted and logged as unreachable, the first one with the cause
    assert result.reasons == dict.fromkeys(queues, "unreachable")
    for queue in queues:
        assert captured.metric("service_bus_sample_failures_total", queue=queue,
                               reason="unreachable") == 1
    events = failures(captured)
    assert events["sync-jobs"]["attempted"] is True
    assert events["sync-jobs"]["errorType"] == "ServiceRequestError"
    assert "refused" in events["sync-jobs"]["error"].lower()
    assert [events[q]["attempted"] for q in queues[1:]] == [False, False]
    assert "sync-jobs" in events["webhooks"]["error"]
    # when the namespace is back and the timer fires again
    bus.come_up()
    again = QUEUE_SAMPLER.run()
    # then every depth is recorded, and no failure was added
    assert [(d.queue, d.active, d.dead_letter) for d in again.depths] == [
        ("sync-jobs", 10, 1), ("webhooks", 20, 2), ("exports", 30, 3)]
    assert again.failures == {}
    assert captured.metric("service_bus_queue_depth", queue="exports") == 30
    assert captured.metric("service_bus_sample_failures_total") == 3


def test_an_identity_without_a_token_fails_the_run_once_not_per_queue(bus, timer, captured,
                                                                      monkeypatch):
    """A credential that cannot get a token (no identity configured) is a namespace-wide
    failure: one attempt, every queue counted under `credential`, nothing raised."""
    # given a credential with nothing to authenticate with
    from azure.identity import EnvironmentCredential

    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET",
                 "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_USERNAME", "AZURE_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    bus.set_queue("sync-jobs", active=1)
    bus.set_queue("webhooks", active=2)
    timer(["sync-jobs", "webhooks"], credential=EnvironmentCredential())
    # when the timer fires
    result = QUEUE_SAMPLER.run()
    # then nothing reached the namespace, and both queues are counted under `credential`
    assert bus.requests == []
    assert result.reasons == {"sync-jobs": "credential", "webhooks": "credential"}
    events = failures(captured)
    assert events["sync-jobs"]["errorType"] == "CredentialUnavailableError"
    assert events["webhooks"]["attempted"] is False
    assert "token" in events["webhooks"]["hint"]
