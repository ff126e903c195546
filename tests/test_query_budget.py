"""Log Analytics' per-identity query limits, held by the loopback query API, and the app
living within them: its query budget, stale answers while a question is asked again, and
readers of fifty tenants whose dashboards cost no more queries than one admin's."""

from __future__ import annotations

import datetime as dt
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
from azure.core.exceptions import HttpResponseError
from azure.monitor.query import LogsQueryClient

from integration_monitoring.admin import (
    AdminService,
    Answer,
    BackendUnavailable,
    LogAnalyticsBackend,
    QueryBudget,
    SharedQueries,
    parse_filters,
)
from integration_monitoring.admin._backends import TextBackend
from tests.loopback.loganalytics import Limits, LogAnalyticsLoopback

NOW = dt.datetime(2026, 3, 4, 12, 0, tzinfo=dt.UTC)
WORKSPACE = "ws-budget"


@pytest.fixture(scope="module")
def store(demo_store):
    return demo_store(3, now=NOW, tenants=10, integrations=30, seed=5)


def client(workspace: LogAnalyticsLoopback) -> LogsQueryClient:
    return LogsQueryClient(workspace.credential, endpoint=workspace.endpoint,
                           connection_verify=workspace.ca_path, retry_total=0)


# -- the loopback holds the service's limits -----------------------------------------------


def test_five_queries_run_at_once_and_the_rest_wait_their_turn(store):
    with LogAnalyticsLoopback(store, workspaces=(WORKSPACE,)) as workspace:
        workspace.delay(1.0)
        most = 0
        stop = threading.Event()

        def watch() -> None:
            nonlocal most
            while not stop.is_set():
                most = max(most, workspace.running_now())
                time.sleep(0.01)

        watcher = threading.Thread(target=watch)
        watcher.start()
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: client(workspace).query_workspace(
                WORKSPACE, "AppTraces | count", timespan=dt.timedelta(days=30)), range(8)))
        stop.set()
        watcher.join()
        assert len(answers) == 8 and workspace.throttled == 0
        assert most == 5


def test_more_than_the_rate_gets_429_with_retry_after(store):
    limits = Limits(per_window=4, window_s=30)
    with LogAnalyticsLoopback(store, workspaces=(WORKSPACE,), limits=limits) as workspace:
        for _ in range(4):
            client(workspace).query_workspace(WORKSPACE, "print 1", timespan=None)
        with pytest.raises(HttpResponseError) as refused:
            client(workspace).query_workspace(WORKSPACE, "print 1", timespan=None)
        assert refused.value.status_code == 429
        assert 1 <= int(refused.value.response.headers["Retry-After"]) <= 30
        assert workspace.throttled == 1


def test_a_query_left_in_the_queue_too_long_gets_429(store):
    limits = Limits(concurrent=1, queue_wait_s=0.5)
    with LogAnalyticsLoopback(store, workspaces=(WORKSPACE,), limits=limits) as workspace:
        workspace.delay(3.0)
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(client(workspace).query_workspace, WORKSPACE, "print 1",
                                timespan=None)
            time.sleep(0.3)
            second = pool.submit(client(workspace).query_workspace, WORKSPACE, "print 2",
                                 timespan=None)
            with pytest.raises(HttpResponseError) as refused:
                second.result()
            assert refused.value.status_code == 429
            first.result()


# -- the app's side ------------------------------------------------------------------------


def test_the_budget_makes_a_query_wait_for_a_place_and_refuses_a_long_wait():
    now = [0.0]
    budget = QueryBudget(per_window=3, window_s=30, max_wait_s=5, clock=lambda: now[0])
    for _ in range(3):
        budget.take()
    assert budget.spent() == 3
    with pytest.raises(Exception) as spent:
        budget.take()
    assert spent.value.retry_after == 30
    now[0] = 27.0  # three seconds before a place frees: worth waiting for
    waited = threading.Thread(target=budget.take)
    waited.start()
    now[0] = 30.0
    waited.join(timeout=10)
    assert not waited.is_alive()


def test_a_spent_budget_is_a_503_with_retry_after_not_a_query(store):
    with LogAnalyticsLoopback(store, workspaces=(WORKSPACE,)) as workspace:
        backend = LogAnalyticsBackend(WORKSPACE, workspace.credential,
                                      endpoint=workspace.endpoint,
                                      connection_verify=workspace.ca_path,
                                      budget=QueryBudget(per_window=1, max_wait_s=0))
        backend.query("print 1", NOW - dt.timedelta(hours=1), NOW)
        with pytest.raises(BackendUnavailable) as spent:
            backend.query("print 2", NOW - dt.timedelta(hours=1), NOW)
        assert spent.value.retry_after >= 1
        assert len(workspace.queries) == 1


def test_a_stale_answer_is_served_at_once_while_it_is_asked_again():
    now = [0.0]
    cache = SharedQueries(ttl_s=60, stale_s=600, clock=lambda: now[0])
    release = threading.Event()
    asked = []

    def slow(value):
        def compute():
            asked.append(value)
            if value > 1:
                release.wait(10)
            return value
        return compute

    assert cache.get("k", slow(1)) == 1
    now[0] = 61.0  # past its TTL: the old answer now, a new one in the background
    started = time.monotonic()
    assert cache.get("k", slow(2)) == 1
    assert cache.get("k", slow(3)) == 1  # one refresh at a time
    assert time.monotonic() - started < 1
    release.set()
    deadline = time.monotonic() + 10
    while cache.get("k", slow(4)) != 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cache.get("k", slow(5)) == 2
    assert asked == [1, 2]
    now[0] = 61.0 + 60 + 601  # too old to serve: asked again, and waited for
    assert cache.get("k", slow(1)) == 1


def test_fifty_tenants_readers_and_admins_cost_the_queries_of_one(store):
    """Readers of fifty tenants and admins, each with the whole dashboard, ask each
    question once per window: the count does not grow with tenants or viewers."""
    with LogAnalyticsLoopback(store, workspaces=(WORKSPACE,)) as workspace:
        backend = LogAnalyticsBackend(WORKSPACE, workspace.credential,
                                      endpoint=workspace.endpoint,
                                      connection_verify=workspace.ca_path)
        service = AdminService(backend)
        base = parse_filters("stats", {"until": NOW.isoformat()}, now=NOW)

        def dashboard(tenants):
            f = replace(base, tenants=tenants)
            for panel in (service.stats, service.health, service.sync_activity,
                          service.errors, service.performance):
                panel(f)

        dashboard(None)
        one = len(workspace.queries)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(dashboard, [(f"tenant-{n % 50}",) for n in range(200)]))
        # readers add the by-tenant forms of what does not add up (percentiles, distinct
        # counts) and the two deeper lists of latest jobs; the rest is the admins' answer cut
        assert len(workspace.queries) <= one + 5
        readers = len(workspace.queries)
        base = replace(base, adapter_type="salesforce")
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(dashboard, [None] + [(f"tenant-{n % 50}",) for n in range(50)]))
        # filtered by adapter: the 7 integration and job lists these panels show, and the 2
        # deeper lists, are cut from the unfiltered ones
        assert len(workspace.queries) - readers <= one + 5 - 7 - 2
        assert workspace.throttled == 0


class Minutes(TextBackend):
    """A backend with Log Analytics' freshness whose second and later answers wait for
    `release`."""

    name = "minutes"
    freshness = LogAnalyticsBackend.freshness
    until_step_s = LogAnalyticsBackend.until_step_s

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.release = threading.Event()

    def query(self, kql, since, until):
        self.texts.append(kql)
        if len(self.texts) > 1:
            self.release.wait(10)
        return Answer(["events", "latest"], [(len(self.texts), None)])


def test_when_the_minute_turns_the_last_minutes_answer_stands_in_while_it_is_asked():
    backend = Minutes()
    service = AdminService(backend, restatements=False)

    def fingerprint(params, now):
        f = replace(service.parse("stream", params, now=now), tenants=None)
        return f, service.run("stream_fingerprint", f).rows[0]["events"]

    f, events = fingerprint({}, NOW + dt.timedelta(seconds=30))
    assert (f.live, f.until, events) == (True, NOW, 1)  # a window ending now, on the minute
    started = time.monotonic()
    f, events = fingerprint({}, NOW + dt.timedelta(seconds=70))
    assert f.until == NOW + dt.timedelta(minutes=1)
    assert events == 1 and time.monotonic() - started < 1  # the last minute's, at once
    backend.release.set()
    deadline = time.monotonic() + 10
    while fingerprint({}, NOW + dt.timedelta(seconds=70))[1] != 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert len(backend.texts) == 2
    # a window the caller fixed is asked as it is, never stood in for
    f, events = fingerprint({"until": (NOW + dt.timedelta(minutes=2)).isoformat()},
                            NOW + dt.timedelta(seconds=130))
    assert (f.live, events) == (False, 3)
