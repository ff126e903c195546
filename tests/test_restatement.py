"""The daily restatement: the status question reading back to it answers as the whole
retention does, before and after later changes, for every scope and filter."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from dataclasses import replace

import httpx
import pytest
from fastapi.testclient import TestClient

from integration_monitoring import Telemetry
from integration_monitoring.admin import (
    PREFIX,
    AdminService,
    Filters,
    LocalBackend,
    LogAnalyticsBackend,
    SharedQueries,
)
from integration_monitoring.admin._restatement import (
    ARRIVAL,
    COMPLETED,
    RESTATED,
    SETTLE,
    RestatementIncomplete,
    Restatements,
    restate_integrations,
)
from integration_monitoring.app import create_app
from integration_monitoring.demo import run_demo, telemetry_into
from integration_monitoring.store import TelemetryStore

from .helpers import serve_app

NOW = 1_790_000_000 * 10**9
END = dt.datetime.fromtimestamp(NOW / 1e9, dt.UTC)
HOUR = dt.timedelta(hours=1)


def _writing_at(store: TelemetryStore, moment: dt.datetime) -> Telemetry:
    """A Telemetry into the store whose events happen at `moment`."""
    ns = int(moment.timestamp() * 1e9)
    return telemetry_into(store, lambda: ns, "integration-monitoring")


@pytest.fixture(scope="module")
def six_hours(tmp_path_factory):
    """Six hours of the demo: staleness at 35 %, a pause at 50 %, expired credentials at
    55 %, an outage at 72 % of it."""
    store = TelemetryStore(tmp_path_factory.mktemp("restate") / "t.duckdb")
    run_demo(hours=6, seed=3, store=store, stdout=None, progress=False, now_ns=NOW)
    yield store
    store.close()


def _service(store: TelemetryStore, now: dt.datetime) -> AdminService:
    service = AdminService(LocalBackend(store), cache=SharedQueries(ttl_s=0))
    service.restatements = Restatements(service.backend, now=lambda: now)
    return service


SCOPES = [
    {"tenants": None},
    {"tenants": None, "status": "failing"},
    {"tenants": None, "entity": "contacts"},
    {"tenants": None, "adapter_type": "hubspot"},
    {"tenants": ("tenant-02",)},
    {"tenants": ("tenant-01", "tenant-04"), "q": "int"},
]


def test_status_reading_back_to_restatements_equals_the_whole_retention(six_hours):
    store = six_hours
    service = _service(store, END)
    # describes END - 3.5 h; the pause (END - 3 h) and the expiry (END - 2.7 h) happen
    # between the moment it describes and when it is written: they still win
    first_written = END - 2.5 * HOUR
    restated = restate_integrations(service.backend, service.restatements,
                                    telemetry=_writing_at(store, first_written),
                                    now=first_written)
    assert restated == 24
    # not read before it has had time to arrive
    assert service.restatements.lookback(first_written + ARRIVAL - dt.timedelta(seconds=1)) \
        is None
    assert service.restatements.lookback(first_written + ARRIVAL) == first_written - SETTLE
    cursor = store.cursor()
    keys = {key for (properties,) in cursor.execute(
        'SELECT "Properties" FROM "AppTraces" WHERE "Message" = ?', [RESTATED]).fetchall()
        for key in json.loads(properties)}
    cursor.close()
    assert {"status", "reason", "statusChangedAt", "restatedAt", "lastSeenAt",
            "lastSuccessfulSync", "syncIntervalMinutes", "tenantId", "integrationId",
            "adapterType"} <= keys
    # a second restatement reads back to the first only
    second_written = END - HOUR
    service.restatements.forget()
    assert service.restatements.lookback(second_written - SETTLE) is not None
    restate_integrations(service.backend, service.restatements,
                         telemetry=_writing_at(store, second_written), now=second_written)
    service.restatements.forget()
    markers = store.kql(f'AppTraces | where Message == "{COMPLETED}" | count').rows[0][0]
    assert markers == 2
    checked = 0
    for until in (first_written + ARRIVAL, END - 2 * HOUR, second_written + ARRIVAL, END):
        lookback = service.restatements.lookback(until)
        assert lookback is not None and lookback < until
        assert lookback >= until - 5 * HOUR
        for scope in SCOPES:
            f = Filters(since=until - 2 * HOUR, until=until, bucket=dt.timedelta(minutes=5),
                        **scope)
            whole = service.health(f)["integrations"]
            restated_answer = service.health(replace(f, lookback_since=lookback))
            assert restated_answer["integrations"] == whole, (until, scope)
            checked += len(whole)
    assert checked > 100
    # and the statuses that changed after the first restatement are there
    health = {row["integrationId"]: row for row in service.health(
        Filters(since=END - HOUR, until=END, bucket=dt.timedelta(minutes=5), tenants=None,
                lookback_since=service.restatements.lookback(END)))["integrations"]}
    assert {row["status"] for row in health.values()} >= {"active", "paused", "error"}


def test_on_log_analytics_the_app_looks_for_restatements_then_reads_back_to_one(
        demo_store, loopback_workspace):
    """Through the real LogsQueryClient: the first status question is preceded by one look
    for restatements, and its timespan begins at the restatement; the next asks only."""
    store = demo_store(hours=6, seed=4)  # up to the real now: the look covers 30 days back
    end = store.sql('SELECT max("TimeGenerated") FROM "AppTraces"')[0][0].replace(
        tzinfo=dt.UTC)
    written = end - 2 * HOUR
    restate_integrations(LocalBackend(store), Restatements(LocalBackend(store)),
                         telemetry=_writing_at(store, written), now=written)
    workspace = loopback_workspace(store, "ws-restated")
    backend = LogAnalyticsBackend("ws-restated", workspace.credential,
                                  endpoint=workspace.endpoint,
                                  connection_verify=workspace.ca_path)
    client = TestClient(create_app(backend=backend))
    until = end.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    first = client.get(f"{PREFIX}/health", params={"until": until, "window": "1h"})
    second = client.get(f"{PREFIX}/stats", params={"until": until, "window": "2h"})
    assert first.status_code == second.status_code == 200
    look, *asked = workspace.requests
    assert "integration.restatement_completed" in look.query
    status = [r for r in asked if "integration.status_restated" in r.query]
    assert len(status) == 2
    restated_at = (written - SETTLE).strftime("%Y-%m-%dT%H:%M:%S")
    assert {r.body["timespan"].split("/")[0][:19] for r in status} == {restated_at}
    assert not any("integration.restatement_completed" in r.query for r in asked)
    # and the answer is the one the whole retention gives
    whole = TestClient(create_app(backend=LocalBackend(store), restatements=False)).get(
        f"{PREFIX}/health", params={"until": until, "window": "1h"})
    assert first.json()["integrations"] == whole.json()["integrations"]


class _Partial:
    """The local engine's answers, flagged partial as Log Analytics flags a truncated one."""

    name = "partial"

    def __init__(self, inner: LocalBackend) -> None:
        self.inner = inner

    def query(self, kql, since, until):
        return self.inner.query(kql, since, until)

    def ask(self, name, values):
        answer = self.inner.ask(name, values)
        answer.partial = ["the query exceeded its limits"]
        return answer


def test_a_partial_answer_restates_nothing(demo_store):
    """A restatement missing integrations would hide them: none is declared complete."""
    store = demo_store(hours=1, now=END, seed=5)
    backend = _Partial(LocalBackend(store))
    with pytest.raises(RestatementIncomplete, match="partial"):
        restate_integrations(backend, Restatements(backend),
                             telemetry=_writing_at(store, END), now=END)
    counts = store.kql('AppTraces | where Message in ("integration.status_restated", '
                       '"integration.restatement_completed") | count').rows[0][0]
    assert counts == 0


class _SlowLook:
    """The local engine, whose look for restatements waits until the test lets it go."""

    name = "local"

    def __init__(self, inner: LocalBackend) -> None:
        self.inner = inner
        self.looking = threading.Event()
        self.release = threading.Event()

    def query(self, kql, since, until):
        return self.inner.query(kql, since, until)

    def ask(self, name, values):
        if name == "restatements":
            self.looking.set()
            self.release.wait(10)
        return self.inner.ask(name, values)


def test_the_look_for_restatements_holds_up_no_other_request(demo_store):
    """While one request waits for the look (a slow Log Analytics), the server still answers
    others: the look runs on a worker thread, not on the event loop."""
    store = demo_store(hours=1, now=END, seed=6)
    backend = _SlowLook(LocalBackend(store))
    with serve_app(create_app(backend=backend)) as url:
        slow = threading.Thread(target=httpx.get, args=(f"{url}{PREFIX}/health",),
                                kwargs={"timeout": 30}, daemon=True)
        slow.start()
        assert backend.looking.wait(10)
        started = time.monotonic()
        other = httpx.get(f"{url}/api/health", timeout=5)
        waited = time.monotonic() - started
        backend.release.set()
        slow.join(30)
    assert other.status_code == 200 and waited < 2
