"""The admin API answers the same through Log Analytics as through the local store.

One demo history in a DuckDB file; two apps: one with `LocalBackend` on the store, one with
`LogAnalyticsBackend`, whose `LogsQueryClient` talks HTTPS to a Log Analytics loopback
that runs each received query with duckdb-kql on the same store and answers in the
service's wire format. Whatever differs between the two bodies is the production path's
doing: the SDK's parsing, the retry loop, partial results, the escaping of values.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from integration_monitoring import queries
from integration_monitoring.admin import (
    LocalBackend,
    LogAnalyticsBackend,
    QueryFailed,
)
from integration_monitoring.admin._service import _json
from integration_monitoring.app import create_app
from integration_monitoring.store import TelemetryStore

from .loopback.loganalytics import LogAnalyticsLoopback
from .loopback.servicebus import StaticTokenCredential

NOW = dt.datetime(2025, 6, 2, 12, 0, tzinfo=dt.UTC)
UNTIL = "2025-06-02T12:00:00Z"
WORKSPACE = "ws-1"
PREFIX = "/api/admin/integrations"
HOSTILE_Q = '" | take 1 //'

#: (endpoint, filters): every endpoint unfiltered, then filter combinations.
CASES = [
    ("stats", {}),
    ("health", {}),
    ("sync-activity", {"limit": "100"}),
    ("errors", {"limit": "50"}),
    ("performance", {}),
    ("stats", {"tenantId": "tenant-105"}),
    ("performance", {"adapterType": "salesforce", "window": "1h"}),
    ("sync-activity", {"status": "failed", "adapterType": "zendesk", "limit": "20"}),
    ("errors", {"tenantId": "tenant-105", "q": "503 from"}),
    ("health", {"status": "degraded", "q": "connection-1"}),
    ("sync-activity", {"status": "running", "q": 'say "hi" \\ it\'s'}),
]


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(demo_store) -> TelemetryStore:
    """Three hours of the demo's workload up to NOW, in a DuckDB file."""
    return demo_store(hours=3, now=NOW, seed=7)


@pytest.fixture(scope="module")
def workspace(store: TelemetryStore, loopback_workspace) -> LogAnalyticsLoopback:
    """The Log Analytics query API on 127.0.0.1, answering from the same store."""
    return loopback_workspace(store, WORKSPACE)


@pytest.fixture
def faults(workspace: LogAnalyticsLoopback) -> Iterator[LogAnalyticsLoopback]:
    """The loopback with no requests recorded; faults left unconsumed are dropped after."""
    workspace.clear_requests()
    yield workspace
    workspace.reset()


@pytest.fixture(scope="module")
def local(store: TelemetryStore) -> TestClient:
    """The admin app on the local store."""
    return TestClient(create_app(backend=LocalBackend(store)))


@pytest.fixture(scope="module")
def azure(workspace: LogAnalyticsLoopback) -> TestClient:
    """The admin app on Log Analytics (the loopback)."""
    return azure_client(workspace)


def azure_backend(workspace: LogAnalyticsLoopback, **options: Any) -> LogAnalyticsBackend:
    return LogAnalyticsBackend(WORKSPACE, workspace.credential, endpoint=workspace.endpoint,
                               connection_verify=workspace.ca_path, **options)


def azure_client(workspace: LogAnalyticsLoopback, **options: Any) -> TestClient:
    """A fresh app (so a fresh query cache) on Log Analytics, whose every query is the
    endpoint's (no look for restatements: `test_restatement.py` has that)."""
    return TestClient(create_app(backend=azure_backend(workspace, **options),
                                 restatements=False))


def get(client: TestClient, endpoint: str, **params: str) -> Any:
    return client.get(f"{PREFIX}/{endpoint}", params={"until": UNTIL, **params})


# -- helpers ---------------------------------------------------------------------------------


def differences(left: Any, right: Any, where: str = "$") -> list[str]:
    """Every place two JSON documents differ, JSON types included (1 is not 1.0)."""
    if type(left) is not type(right):
        return [f"{where}: {left!r} ({type(left).__name__}) != "
                f"{right!r} ({type(right).__name__})"]
    if isinstance(left, dict):
        found = [f"{where}.{key}: only on one side" for key in left.keys() ^ right.keys()]
        for key in left.keys() & right.keys():
            found += differences(left[key], right[key], f"{where}.{key}")
        return found
    if isinstance(left, list):
        found = [] if len(left) == len(right) else [
            f"{where}: {len(left)} items != {len(right)} items"]
        for index, (a, b) in enumerate(zip(left, right, strict=False)):
            found += differences(a, b, f"{where}[{index}]")
        return found
    return [] if left == right else [f"{where}: {left!r} != {right!r}"]


def has_rows(body: dict[str, Any]) -> bool:
    return any(isinstance(value, list) and value and key != "partialReasons"
               for key, value in body.items() if key not in ("errorRateTrend",
                                                             "throughputTrend"))


_UNESCAPE = {"n": "\n", "r": "\r", "t": "\t"}


def split_kql(text: str) -> tuple[str, list[str]]:
    """KQL with comments dropped and each string literal replaced by "", and the values of
    those literals, in order."""
    code: list[str] = []
    literals: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("//", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        quote = text[i]
        if quote in "\"'":
            j, value = i + 1, []
            while text[j] != quote:
                if text[j] == "\\":
                    value.append(_UNESCAPE.get(text[j + 1], text[j + 1]))
                    j += 2
                else:
                    value.append(text[j])
                    j += 1
            literals.append("".join(value))
            code.append('""')
            i = j + 1
            continue
        code.append(quote)
        i += 1
    return "".join(code), literals


# -- parity ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("endpoint", "params"), CASES,
                         ids=[f"{e}-{'&'.join(f'{k}={v}' for k, v in p.items()) or 'all'}"
                              for e, p in CASES])
def test_both_backends_answer_the_same(local, azure, endpoint, params):
    """An endpoint's body is the same on Log Analytics as locally, but for `backend`."""
    # given the same history behind both apps, and an explicit `until`
    # when both answer the same request
    here, there = get(local, endpoint, **params), get(azure, endpoint, **params)
    # then both succeed, with bodies identical value for value and type for type
    assert (here.status_code, there.status_code) == (200, 200), (here.text, there.text)
    mine, theirs = here.json(), there.json()
    assert (mine.pop("backend"), theirs.pop("backend")) == ("local", "log-analytics")
    assert differences(mine, theirs) == []
    assert theirs["partial"] is False
    if not params.get("q") and params.get("status") != "running":
        assert has_rows(mine), "the case should compare rows, not two empty lists"


def test_values_of_the_types_the_queries_return_round_trip(store, workspace):
    """string, long, int, real, bool and datetime values arrive as the local engine's."""
    # given a query returning one value of each type the admin queries use, and nulls
    kql = ('print s = "a \\"b\\"", e = "", l = long(9007199254740993), i = int(-2), '
           "r = real(0.1), w = real(3), b = true, f = false, "
           "d = datetime(2025-06-02 11:59:59.123456), d0 = datetime(2025-06-02), "
           "nr = real(null), nl = long(null), ni = int(null), nd = datetime(null), "
           "nb = bool(null)")
    since = NOW - dt.timedelta(days=30)
    # when it runs on both backends
    there = azure_backend(workspace).query(kql, since, NOW)
    here = LocalBackend(store).query(kql, since, NOW)
    # then the columns and the values, as the admin API serves them, are the same
    assert there.columns == here.columns
    assert differences([_json(v) for v in here.rows[0]],
                       [_json(v) for v in there.rows[0]]) == []
    assert there.partial == []


@pytest.mark.parametrize("expression", [
    "real(nan)", "real(+inf)", "real(-inf)", "1d + 2h + 3m + 4.5s", "90s"])
def test_values_of_other_types_round_trip(store, workspace, expression):
    """Non-finite reals and timespans arrive as the local engine's."""
    # given a query returning one such value
    kql = f"print v = {expression}"
    since = NOW - dt.timedelta(days=30)
    # when it runs on both backends
    there = azure_backend(workspace).query(kql, since, NOW).rows[0][0]
    here = LocalBackend(store).query(kql, since, NOW).rows[0][0]
    # then the admin API would serve the same JSON value
    assert differences(_json(here), _json(there)) == []


# -- edge values -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def edge() -> Iterator[tuple[TestClient, TestClient]]:
    """Apps on a store holding one integration known only from a sync, and a latency
    export that counted no requests (its average is 0/0, NaN in KQL)."""
    store = TelemetryStore(":memory:")
    at = dt.datetime(2025, 6, 2, 11, 30)
    labels = {"tenantId": "tenant-x", "integrationId": "hubspot-9", "adapterType": "hubspot",
              "entity": "contact"}
    store.append("AppTraces", [{
        "TimeGenerated": at, "Message": "sync.completed", "SeverityLevel": 1,
        "OperationId": "0af7651916cd43dd8448eb211c80319c", "ItemCount": 1,
        "Properties": json.dumps({**labels, "duration": 1500.0, "recordCount": 3})}])
    store.append("AppMetrics", [{
        "TimeGenerated": at, "Name": "adapter_request_duration_seconds", "ItemCount": 0,
        "Sum": 0.0, "Min": 0.0, "Max": 0.0,
        "Properties": json.dumps({"tenant_id": "tenant-x", "integration_id": "hubspot-9",
                                  "adapter_type": "hubspot", "status": "success"})}])
    with LogAnalyticsLoopback(store) as server:
        yield TestClient(create_app(backend=LocalBackend(store))), azure_client(server)
    store.close()


def test_a_nan_average_is_null_on_both_paths(edge):
    """A 0/0 average (NaN, "NaN" on the wire) is served as null by both apps."""
    # given a latency export that counted no requests
    local, azure = edge
    # when /performance is asked of both apps
    mine, theirs = get(local, "performance").json(), get(azure, "performance").json()
    # then the average is null on both, and the bodies are the same
    assert [row["avgMs"] for row in mine["apiLatencyByAdapter"]] == [None]
    assert [row["avgMs"] for row in theirs["apiLatencyByAdapter"]] == [None]
    mine.pop("backend")
    theirs.pop("backend")
    assert differences(mine, theirs) == []


def test_an_integration_without_lifecycle_events_reads_the_same(edge):
    """An integration known only from a sync has the same /health row on both apps."""
    # given an integration with no status or connection event
    local, azure = edge
    # when /health is asked of both apps
    mine, theirs = get(local, "health").json(), get(azure, "health").json()
    # then its row is the same
    assert differences(mine["integrations"], theirs["integrations"]) == []


# -- the production path's own behaviour ------------------------------------------------------


def test_the_sdk_sends_the_documented_request(local, faults):
    """One POST per query, with a bearer token, the window as timespan and `Prefer: wait`."""
    # given a fresh app on Log Analytics
    client = azure_client(faults)
    # when /health is asked for
    assert get(client, "health").status_code == 200
    # then one request reached the workspace, shaped as the service documents it
    [request] = faults.requests
    assert (request.method, request.path) == ("POST", f"/v1/workspaces/{WORKSPACE}/query")
    assert request.headers["authorization"] == f"Bearer {faults.credential.token}"
    assert request.headers["prefer"] == "wait=60"
    assert request.headers["content-type"] == "application/json"
    assert request.body["timespan"] == "2025-05-03T12:00:00.000Z/2025-06-02T12:00:00.000Z"
    assert request.body["workspaces"] is None
    assert request.query.startswith("let _adapter = ")


def test_throttling_beyond_the_retries_is_503_with_retry_after(faults):
    """429s with Retry-After, more of them than the retries, answer 503 and Retry-After."""
    # given a backend that retries once, and a workspace that throttles the next two
    # queries for a second
    faults.fail_next(2, 429, retry_after=1)
    client = azure_client(faults, retries=1, backoff_s=0.01)
    # when /health is asked for
    response = get(client, "health")
    # then the app gives up after two attempts with 503, passing the service's advice on
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"]["code"] == "backend_unavailable"
    assert "429" in response.json()["error"]["message"]
    assert len(faults.requests) == 2


def test_one_server_error_is_retried(local, faults):
    """A single 503 is retried, and the answer is the one the local path gives."""
    # given a workspace that fails the next query once
    faults.fail_next(1, 503)
    client = azure_client(faults, backoff_s=0.01)
    # when /health is asked for
    response = get(client, "health")
    # then the retry succeeds, and the body is the local one
    assert response.status_code == 200, response.text
    assert len(faults.requests) == 2
    theirs, mine = response.json(), get(local, "health").json()
    theirs.pop("backend")
    mine.pop("backend")
    assert differences(mine, theirs) == []


def test_a_slow_query_beyond_the_server_timeout_is_503(faults):
    """A query the service cancels at `Prefer: wait` (504) ends, without retries, in 503."""
    # given a workspace slower than the one-second server timeout
    faults.delay(1.5)
    client = azure_client(faults, server_timeout_s=1, retries=0)
    # when /health is asked for
    response = get(client, "health")
    # then the app answers 503 with a Retry-After, not a hang or a 500
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "backend_unavailable"
    assert int(response.headers["retry-after"]) > 0
    assert faults.requests[0].headers["prefer"] == "wait=1"


def test_a_client_read_timeout_is_503(faults):
    """A workspace that does not answer within the client's read timeout is a 503."""
    # given a workspace slower than the client's half-second read timeout
    faults.delay(1.5)
    backend = azure_backend(faults, read_timeout=0.5, retries=0)
    client = TestClient(create_app(backend=backend, restatements=False),
                        raise_server_exceptions=False)
    # when /health is asked for
    response = get(client, "health")
    # then the app answers 503 with a Retry-After, as for any unavailable engine
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "backend_unavailable"


def test_a_partial_result_is_served_and_flagged(faults):
    """A partial answer is 200 with `partial: true` and a reason naming the query."""
    # given a workspace whose next answer is partial
    faults.partial_next(1)
    client = azure_client(faults)
    # when /health is asked for
    response = get(client, "health")
    # then the rows are served, flagged as partial, with the query's name in the reason
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["partial"] is True
    [reason] = body["partialReasons"]
    assert reason.startswith("integration_status: ")
    assert len(reason) > len("integration_status: ")
    assert body["integrations"]


def test_a_query_the_engine_rejects_fails_alike(store, workspace):
    """KQL the engine cannot run is QueryFailed on both backends (a 400 on Log Analytics)."""
    # given a query with an unknown function
    kql = "AppTraces | extend x = no_such_function(Message)"
    since = NOW - dt.timedelta(days=30)
    # when it runs on both backends, then both raise QueryFailed
    with pytest.raises(QueryFailed, match=r"\(400\)") as failed:
        azure_backend(workspace).query(kql, since, NOW)
    with pytest.raises(QueryFailed, match="no_such_function"):
        LocalBackend(store).query(kql, since, NOW)
    # and the service's BadArgumentError reached the SDK, the engine's reason innermost
    cause = failed.value.__cause__
    assert cause.status_code == 400
    assert cause.model.code == "BadArgumentError"
    assert "no_such_function" in cause.model.message


#: The shared views as they once were: an open tabular parameter whose body names columns.
#: duckdb-kql runs it; Kusto.Language, like Log Analytics, cannot resolve TenantId in `(*)`.
OPEN_SCHEMA_VIEW = ("let Scoped = (T:(*)) { T | project-away TenantId | extend tenantId = "
                    "tostring(Properties.tenantId), integrationId = "
                    "tostring(Properties.integrationId), adapterType = "
                    "tostring(Properties.adapterType), entity = tostring(Properties.entity) };\n")


def test_kql_that_only_duckdb_kql_runs_is_refused_as_log_analytics_refuses_it(
        store, faults, local, monkeypatch):
    """The loopback judges with Kusto.Language: a text duckdb-kql runs but Log Analytics would
    refuse is the service's 400 through the real LogsQueryClient, and the admin API answers
    it as any query the engine rejects (a JSON 502, no 500)."""
    # given the shared views written with an open tabular parameter
    common = queries.text("_common")
    start = common.index("let Scoped")
    end = common.index("let InRange")
    broken = common[:start] + OPEN_SCHEMA_VIEW + common[end:]
    monkeypatch.setattr(queries, "text",
                        lambda name: broken if name == "_common" else TEXTS[name])
    # which the local engine runs as before
    assert get(local_client(store), "health").status_code == 200
    # when the admin API on Log Analytics is asked
    response = get(azure_client(faults), "health")
    # then it answers as for any query the engine rejects
    assert response.status_code == 502, response.text
    assert response.json()["error"]["code"] == "query_failed"
    # because the service refused it as a semantic error, naming the column
    text = queries.render("integration_status", {**FILTERS_VALUES})
    with pytest.raises(QueryFailed, match=r"\(400\)") as failed:
        azure_backend(faults).query(text, NOW - dt.timedelta(days=30), NOW)
    error = failed.value.__cause__
    assert error.model.code == "BadArgumentError"
    assert '"code": "SemanticError"' in str(error) and "'TenantId'" in str(error)


TEXTS = {name: queries.text(name) for name in [*queries.names(), "_common"]}
FILTERS_VALUES = {"_since": NOW - dt.timedelta(hours=1), "_until": NOW,
                  "_lookback_since": NOW - dt.timedelta(days=30),
                  "_bucket": dt.timedelta(minutes=5), "_tenant": "", "_integration": "",
                  "_adapter": "", "_entity": "", "_status": "", "_q": "",
                  "_all_tenants": True, "_tenants": ()}


def local_client(store: TelemetryStore) -> TestClient:
    return TestClient(create_app(backend=LocalBackend(store)))


def test_a_token_the_service_refuses_is_an_error_not_a_retry(faults):
    """A 401 from the service is not retried and answers a JSON error."""
    # given a backend whose credential hands out a token the workspace does not accept
    backend = LogAnalyticsBackend(WORKSPACE, StaticTokenCredential("not-the-token"),
                                  endpoint=faults.endpoint, connection_verify=faults.ca_path)
    client = TestClient(create_app(backend=backend, restatements=False))
    # when /health is asked for
    response = get(client, "health")
    # then the one request was refused, and the app says the engine rejected the query
    assert [request.headers["authorization"] for request in faults.requests] == [
        "Bearer not-the-token"]
    assert response.status_code == 502, response.text
    assert response.json()["error"]["code"] == "query_failed"


def test_user_text_reaches_kql_only_inside_a_string_literal(local, faults):
    """q with `" | take 1 //` changes a string literal of the queries and nothing else."""
    # given the queries /errors sends for an ordinary q
    client = azure_client(faults)
    assert get(client, "errors", q="plain").status_code == 200
    baseline = sorted(split_kql(request.query)[0] for request in faults.requests)
    faults.clear_requests()
    # when q tries to close the string, cut the query short and comment out the rest
    response = get(client, "errors", q=HOSTILE_Q)
    sent = [request.query for request in faults.requests]
    # then every query starts with the prelude, is the same code as before, and carries
    # q exactly, as the value of a string literal
    assert response.status_code == 200, response.text
    assert sent and all(text.startswith("let ") and "let _since = datetime(" in text
                        for text in sent)
    assert sorted(split_kql(text)[0] for text in sent) == baseline
    for text in sent:
        code, literals = split_kql(text)
        assert HOSTILE_Q in literals
        assert "take 1 //" not in code
        assert code.count('let _q = "";') == 1
    # and the answer is the local one
    theirs, mine = response.json(), get(local, "errors", q=HOSTILE_Q).json()
    theirs.pop("backend")
    mine.pop("backend")
    assert differences(mine, theirs) == []


def test_the_loopback_speaks_the_service_format(store, workspace):
    """Datetimes, timespans, reals and dynamics are written as the service writes them."""
    # given a query returning one value of each awkward type
    from azure.monitor.query import LogsQueryClient

    kql = ("print d = datetime(2025-06-02 11:59:59.1), t = 1d + 2h + 3m + 4.5s, "
           "n = real(nan), i = real(-inf), y = dynamic({\"a\": [1, 2]}), s = tostring(1)")
    client = LogsQueryClient(workspace.credential, endpoint=workspace.endpoint,
                             connection_verify=workspace.ca_path)
    # when the SDK runs it
    result = client.query_workspace(WORKSPACE, kql, timespan=dt.timedelta(days=1))
    # then the SDK reads what the service would have sent
    [table] = result.tables
    assert table.columns_types == ["datetime", "timespan", "real", "real", "dynamic", "string"]
    [row] = table.rows
    assert row[0] == dt.datetime(2025, 6, 2, 11, 59, 59, 100000, tzinfo=dt.UTC)
    assert row[1] == "1.02:03:04.5000000"
    assert (row[2], row[3]) == ("NaN", "-Infinity")
    assert row[4] == '{"a":[1,2]}'
    assert row[5] == "1"
    assert math.isnan(float(row[2]))
