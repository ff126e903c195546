"""The admin endpoints on a small known dataset: values checked, every filter, bad input."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from integration_monitoring import (
    Telemetry,
    adapter_request,
    connection_status_changed,
    integration_status_changed,
    job_enqueued,
    record_queue_depth,
    sync_job,
)
from integration_monitoring.admin import PREFIX, Access, FilterError, LocalBackend, parse_filters
from integration_monitoring.admin._filters import ENDPOINTS, PARAMETERS, Parameter
from integration_monitoring.app import create_app
from integration_monitoring.store import StoreLogExporter, StoreMetricExporter, TelemetryStore

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
UNTIL = "2026-03-10T12:00:00Z"
MS = 1_000_000


class Clock:
    def __init__(self, start: dt.datetime) -> None:
        self.ns = int(start.timestamp() * 1e9)

    def __call__(self) -> int:
        return self.ns

    def at(self, moment: dt.datetime) -> None:
        self.ns = int(moment.timestamp() * 1e9)

    def advance(self, ms: float) -> None:
        self.ns += int(ms * MS)


def _job(t, clock, ms, created=0, updated=0, fail=None, **labels):
    try:
        with sync_job(**labels, telemetry=t, sync_type="scheduled") as job:
            clock.advance(ms)
            job.records(created=created, updated=updated)
            if fail:
                raise fail
    except Exception:
        pass


class SessionTokenInvalid(Exception):
    retryable = True


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Four integrations with known histories, written through the telemetry library."""
    path = tmp_path_factory.mktemp("admin") / "known.duckdb"
    store = TelemetryStore(path)
    clock = Clock(NOW - dt.timedelta(hours=30))
    resource = Resource.create({"service.name": "sync-worker"})
    logs = LoggerProvider(resource=resource)
    logs.add_log_record_processor(SimpleLogRecordProcessor(StoreLogExporter(store)))
    metrics = MeterProvider(resource=resource, metric_readers=[PeriodicExportingMetricReader(
        StoreMetricExporter(store, clock=clock), export_interval_millis=3_600_000)])
    t = Telemetry(logger_provider=logs, meter_provider=metrics,
                  tracer_provider=TracerProvider(), stdout=False, clock=clock)
    sf = {"tenant_id": "tenant-a", "integration_id": "salesforce-1", "adapter_type": "salesforce",
          "entity": "contact"}
    hs = {"tenant_id": "tenant-a", "integration_id": "hubspot-2", "adapter_type": "hubspot"}
    pd = {"tenant_id": "tenant-b", "integration_id": "pipedrive-3", "adapter_type": "pipedrive",
          "entity": "deal"}
    zd = {"tenant_id": "tenant-b", "integration_id": "zendesk-4", "adapter_type": "zendesk"}
    # 30 h ago: every integration is created (outside the 24 h window)
    for labels, status, interval in ((sf, "active", 15), (hs, "paused", 15), (pd, "active", 60),
                                     (zd, "active", 30)):
        integration_status_changed(tenant_id=labels["tenant_id"],
                                   integration_id=labels["integration_id"], status=status,
                                   adapter_type=labels["adapter_type"], reason="created",
                                   syncIntervalMinutes=interval, telemetry=t)
        connection_status_changed(tenant_id=labels["tenant_id"],
                                  integration_id=labels["integration_id"], status="connected",
                                  adapter_type=labels["adapter_type"], telemetry=t)
    # 10 h ago: pipedrive's last successful sync (then it stops: stale)
    clock.at(NOW - dt.timedelta(hours=10))
    _job(t, clock, 5000, created=7, **pd)
    # 3 h ago: zendesk's credentials expire
    clock.at(NOW - dt.timedelta(hours=3))
    connection_status_changed(tenant_id="tenant-b", integration_id="zendesk-4", status="expired",
                              adapter_type="zendesk", reason="Refresh token expired",
                              telemetry=t)
    # 20 min ago onwards: salesforce runs three good jobs and one that fails
    clock.at(NOW - dt.timedelta(minutes=20))
    job_enqueued(**sf, telemetry=t)
    for ms, created, updated in ((1000, 10, 1), (2000, 20, 2), (3000, 30, 3)):
        clock.advance(60_000)
        with adapter_request(telemetry=t, **sf) as call:
            clock.advance(200 if created < 30 else 400)
            call.status_code = 429 if created == 20 else 200
        _job(t, clock, ms, created=created, updated=updated, **sf)
    clock.advance(60_000)
    _job(t, clock, 500, fail=SessionTokenInvalid("Invalid session token: \"expired\" | take 1"),
         **sf)
    # queue samples in two buckets, exported as the periodic reader would
    for minutes_ago, depth, dlq in ((90, 150, 1), (5, 80, 2)):
        clock.at(NOW - dt.timedelta(minutes=minutes_ago))
        record_queue_depth("sync-jobs", depth, dlq, telemetry=t)
        metrics.force_flush()
    metrics.shutdown()
    logs.shutdown()
    yield store
    store.close()


@pytest.fixture(scope="module")
def api(store):
    return TestClient(create_app(backend=LocalBackend(store)))


def get(api, path: str, **params):
    response = api.get(f"/api/admin/integrations/{path}", params={"until": UNTIL, **params})
    assert response.status_code == 200, response.text
    return response.json()


def test_stats_counts_integrations_jobs_and_failure_rate(api):
    """Integrations by status, job transitions by status, top integrations, failure trend."""
    body = get(api, "stats")
    assert body["integrations"] == {
        "total": 4, "byStatus": {"active": 2, "paused": 1, "error": 1},
        "byHealth": {"healthy": 0, "degraded": 1, "failing": 1, "stale": 1, "paused": 1}}
    assert body["syncJobs"] == {"byStatus": {"pending": 1, "processing": 5, "completed": 4,
                                             "failed": 1}, "finished": 5, "failureRate": 20.0}
    top = body["topIntegrations"][0]
    assert (top["integrationId"], top["jobs"], top["failed"], top["records"]) == (
        "salesforce-1", 4, 1, 66)
    trend = body["errorRateTrend"]
    assert len(trend) == 96 and body["window"]["bucketSeconds"] == 900
    assert sum(p["failed"] for p in trend) == 1 and sum(p["finished"] for p in trend) == 5
    assert max(p["failureRate"] for p in trend) == 25.0  # 1 of the 4 jobs in 11:30-11:45


def test_health_derives_status_connection_staleness_and_frequency(api):
    """Each integration's status, last success, frequency, errors and connection."""
    rows = {r["integrationId"]: r for r in get(api, "health")["integrations"]}
    sf, hs, pd, zd = (rows[k] for k in ("salesforce-1", "hubspot-2", "pipedrive-3", "zendesk-4"))
    assert (sf["status"], sf["health"], sf["syncs"], sf["failedSyncs"], sf["errorCount"]) == (
        "active", "degraded", 4, 1, 1)
    assert sf["lastSuccessfulSync"].startswith("2026-03-10T11:43:06")
    assert sf["syncsPerHour"] == round(4 / 24, 2)
    assert sf["expectedIntervalMinutes"] == 15 and sf["connectionStatus"] == "connected"
    assert (hs["status"], hs["health"], hs["lastSuccessfulSync"]) == ("paused", "paused", None)
    assert (pd["status"], pd["health"], pd["stale"]) == ("active", "stale", True)
    assert pd["lastSuccessfulSync"].startswith("2026-03-10T02:00:05")
    assert (zd["status"], zd["health"], zd["connectionStatus"], zd["connectionReason"]) == (
        "error", "failing", "expired", "Refresh token expired")


def test_sync_activity_lists_jobs_records_and_durations(api):
    """Latest jobs newest first, record totals, duration trend; limit and status apply."""
    body = get(api, "sync-activity", limit="3")
    assert [j["status"] for j in body["recent"]] == ["failed", "completed", "completed"]
    first = body["recent"][0]
    assert (first["integrationId"], first["entity"], first["durationMs"], first["errorType"]) == (
        "salesforce-1", "contact", 500.0, "SessionTokenInvalid")
    assert body["records"] == {"jobs": 5, "completed": 4, "failed": 1, "recordsCreated": 67,
                               "recordsUpdated": 6, "recordsFailed": 0}
    assert body["running"] == []
    assert sum(p["jobs"] for p in body["durationTrend"]) == 5
    assert max(p["maxMs"] for p in body["durationTrend"]) == 5000.0
    completed = get(api, "sync-activity", status="completed")["recent"]
    assert len(completed) == 4 and {j["status"] for j in completed} == {"completed"}


def test_errors_group_by_integration_and_type(api):
    """Errors by integration with the latest, top error types, failed jobs."""
    body = get(api, "errors")
    by = {r["integrationId"]: r for r in body["byIntegration"]}
    assert by["salesforce-1"]["errors"] == 1
    assert by["salesforce-1"]["lastOperation"] == "sync.failed"
    assert by["zendesk-4"]["lastOperation"] == "connection.status_changed"
    assert body["topErrorTypes"] == [{
        "errorType": "SessionTokenInvalid", "failures": 1, "integrations": 1,
        "example": 'Invalid session token: "expired" | take 1',
        "lastSeen": body["failedJobs"][0]["finishedAt"]}]
    assert len(body["failedJobs"]) == 1


def test_performance_reports_durations_throughput_queues_and_latency(api):
    """Durations by integration, records per second, queue depth trend, adapter latency."""
    body = get(api, "performance")
    by = {r["integrationId"]: r for r in body["durationByIntegration"]}
    assert by["salesforce-1"]["avgMs"] == round((1000 + 2000 + 3000 + 500) / 4, 1)
    assert by["salesforce-1"]["recordsPerSecond"] == round(66 / 6.5, 2)
    assert body["recordsPerSecond"] == round(73 / 86400, 3)
    depths = [(p["active"], p["deadLettered"]) for p in body["queueDepthTrend"]]
    assert depths == [(150.0, 1.0), (80.0, 2.0)]
    (latency,) = body["apiLatencyByAdapter"]
    assert (latency["adapterType"], latency["requests"], latency["avgMs"], latency["maxMs"],
            latency["rateLimited"]) == ("salesforce", 3, round(800 / 3, 1), 400.0, 1)
    assert "no buckets" in body["latencyNote"]


@pytest.mark.parametrize(("params", "expected"), [
    ({"tenantId": "tenant-b"}, {"pipedrive-3", "zendesk-4"}),
    ({"integrationId": "hubspot-2"}, {"hubspot-2"}),
    ({"adapterType": "salesforce"}, {"salesforce-1"}),
    ({"status": "paused"}, {"hubspot-2"}),
    ({"status": "stale"}, {"pipedrive-3"}),
    ({"q": "zendesk"}, {"zendesk-4"}),
    ({"tenantId": "tenant-zzz"}, set()),
])
def test_health_filters(api, params, expected):
    """Each filter narrows the integrations; an unknown id is simply empty."""
    rows = get(api, "health", **params)["integrations"]
    assert {r["integrationId"] for r in rows} == expected


def test_time_range_filters(api):
    """window and since/until move the range; only jobs inside it count."""
    assert get(api, "stats", window="1h")["syncJobs"]["finished"] == 4
    body = get(api, "stats", since="2026-03-10T01:00:00Z")
    assert body["syncJobs"]["finished"] == 5 and body["window"]["bucketSeconds"] == 900
    assert get(api, "stats", window="10m")["syncJobs"]["finished"] == 0


def test_entity_and_q_filters_on_jobs(api):
    """entity narrows jobs; q matches error text literally, quotes and pipes included."""
    assert len(get(api, "sync-activity", entity="deal")["recent"]) == 1
    found = get(api, "errors", q='"expired" | take 1')["failedJobs"]
    assert len(found) == 1
    assert get(api, "errors", q="| take 1000")["failedJobs"] == []
    assert get(api, "errors", q='\\" or 1==1 //')["failedJobs"] == []


@pytest.mark.parametrize(("path", "params", "parameter"), [
    ("health", {"bogus": "1"}, "bogus"),
    ("health", {"status": "bogus"}, "status"),
    ("sync-activity", {"status": "paused"}, "status"),
    ("stats", {"status": "active"}, "status"),
    ("errors", {"limit": "0"}, "limit"),
    ("errors", {"limit": "1001"}, "limit"),
    ("errors", {"limit": "ten"}, "limit"),
    ("errors", {"limit": "-1"}, "limit"),
    ("performance", {"since": "yesterday"}, "since"),
    ("performance", {"until": "2026-13-40"}, "until"),
    ("performance", {"window": "5 days"}, "window"),
    ("performance", {"window": "90d"}, "window"),
    ("performance", {"window": "1h", "since": "2026-03-10T00:00:00Z"}, "window"),
    ("performance", {"since": "2026-03-11T00:00:00Z"}, "since"),
    ("health", {"tenantId": "tenant 1; drop"}, "tenantId"),
    ("health", {"tenantId": "tenant-a\n"}, "tenantId"),
    ("health", {"integrationId": "x\"y"}, "integrationId"),
    ("health", {"adapterType": "Sales Force"}, "adapterType"),
    ("sync-activity", {"entity": "contact|take"}, "entity"),
    ("errors", {"q": "x" * 201}, "q"),
    ("errors", {"q": "bell\x07"}, "q"),
])
def test_bad_input_is_a_400_naming_the_parameter(api, path, params, parameter):
    """Bad parameters get 400 and a JSON error naming the parameter, never a 500."""
    response = api.get(f"/api/admin/integrations/{path}", params={"until": UNTIL, **params})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["parameter"] == parameter and error["code"] and error["message"]


def test_repeated_parameter_is_rejected(api):
    """A parameter given twice is ambiguous and refused."""
    response = api.get("/api/admin/integrations/health?tenantId=a&tenantId=b")
    assert response.status_code == 400
    assert response.json()["error"]["parameter"] == "tenantId"


def test_unavailable_store_is_a_503_with_retry_after(tmp_path):
    """A closed local store answers 503 with Retry-After, not a stack trace."""
    gone = TelemetryStore(tmp_path / "gone.duckdb")
    gone.close()
    client = TestClient(create_app(backend=LocalBackend(gone)))
    response = client.get("/api/admin/integrations/health")
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert response.json()["error"]["code"] == "backend_unavailable"


# -- one definition per parameter: the document, the parser and the dashboard agree ----------

def _path(endpoint: str) -> str:
    return "/api/admin/alerts" if endpoint == "alerts" else f"{PREFIX}/{endpoint}"


def _documented(app) -> dict[str, list[dict]]:
    """Each endpoint's query parameters as the API document lists them."""
    paths = app.openapi()["paths"]
    return {endpoint: paths[_path(endpoint)]["get"]["parameters"] for endpoint in ENDPOINTS}


def _examples(schema: dict) -> tuple[list[str], list[str]]:
    """Values the schema allows and values it does not, at its edges."""
    if "enum" in schema:
        return schema["enum"], ["bogus"]
    if schema["type"] == "integer":
        low, high = schema["minimum"], schema["maximum"]
        return [str(low), str(high)], [str(low - 1), str(high + 1), "ten"]
    if "maxLength" in schema:
        return ["x" * schema["maxLength"]], ["x" * (schema["maxLength"] + 1)]
    if schema.get("format") == "date-time":
        return ["2026-03-10T11:00:00Z"], ["yesterday"]
    return [], ["not valid!", "x" * 129]  # patterns: see the property test below


DOCUMENTED = _documented(create_app())


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_the_api_document_says_what_the_parser_enforces(endpoint):
    """Every parameter the document lists is taken, its values as the schema says; every
    other parameter is refused."""
    documented = DOCUMENTED[endpoint]
    for parameter in documented:
        allowed, refused = _examples(parameter["schema"])
        for value in allowed:
            parse_filters(endpoint, {parameter["name"]: value}, now=NOW)
        for value in refused:
            with pytest.raises(FilterError) as error:
                parse_filters(endpoint, {parameter["name"]: value}, now=NOW)
            assert error.value.parameter == parameter["name"], value
    for name in set(PARAMETERS) - {p["name"] for p in documented}:
        with pytest.raises(FilterError) as error:
            parse_filters(endpoint, {name: "1"}, now=NOW)
        assert error.value.code == "unknown_parameter"


PATTERNS = sorted({(p["name"], p["schema"]["pattern"]) for params in DOCUMENTED.values()
                   for p in params if "pattern" in p["schema"]})


@pytest.mark.parametrize(("name", "pattern"), PATTERNS, ids=[n for n, _ in PATTERNS])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_value_is_taken_exactly_when_it_matches_the_documented_pattern(name, pattern, data):
    """The parser checks the very pattern the document shows (and for window the 1m..31d
    its description gives, forgiving spaces around it)."""
    value = data.draw(st.one_of(st.from_regex(pattern, fullmatch=True), st.text(max_size=12)))
    text = value.strip() if name == "window" else value
    matches = re.fullmatch(pattern, text) is not None
    if name == "window" and matches:
        minutes = int(text[:-1]) * {"m": 1, "h": 60, "d": 1440}[text[-1]]
        matches = 1 <= minutes <= 31 * 1440
    try:
        parse_filters("stream", {name: value}, now=NOW)
        taken = True
    except FilterError as error:
        assert error.parameter == name
        taken = False
    assert taken == (matches or (value == "" and name != "window"))  # "": any, for a filter


def test_the_dashboard_reads_the_api_documents_parameters():
    """/dashboard/filters.json, public like the page, lists each endpoint's parameters as the
    document does, and the default window the parser uses."""
    app = create_app(access=Access("token", "s3cret-token"))
    served = TestClient(app).get("/dashboard/filters.json")  # no credential
    assert served.status_code == 200
    assert served.json()["endpoints"] == _documented(app)
    window = served.json()["defaults"]["window"]
    default = parse_filters("stats", {"until": UNTIL}, now=NOW)
    assert parse_filters("stats", {"until": UNTIL, "window": window}, now=NOW) == default


def test_a_parameter_defined_once_reaches_the_document_the_parser_and_the_page(monkeypatch):
    """A parameter added to the definitions is parsed, documented and offered to the page,
    with nothing else to change."""
    region = Parameter("region", "only this region", PARAMETERS["entity"].reader,
                       pattern=re.compile(r"^[a-z]{2,8}$"))
    monkeypatch.setitem(PARAMETERS, "region", region)
    monkeypatch.setitem(ENDPOINTS, "stats", dataclasses.replace(
        ENDPOINTS["stats"], allowed=ENDPOINTS["stats"].allowed | {"region"}))
    app = create_app()
    stats = _documented(app)["stats"]
    assert stats[-1] == {"name": "region", "in": "query", "required": False,
                         "description": "only this region",
                         "schema": {"type": "string", "pattern": "^[a-z]{2,8}$"}}
    assert "region" not in {p["name"] for p in _documented(app)["health"]}
    page = TestClient(app).get("/dashboard/filters.json").json()
    assert page["endpoints"]["stats"] == stats
    parse_filters("stats", {"region": "emea"}, now=NOW)
    with pytest.raises(FilterError, match="region"):
        parse_filters("stats", {"region": "EMEA 1"}, now=NOW)
