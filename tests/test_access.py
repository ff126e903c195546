"""Access control: who may call, and a tenant-scoped reader never sees another tenant's rows.

The app is served by uvicorn over a store with two tenants; callers present what App Service
authentication would pass on (X-MS-CLIENT-PRINCIPAL) or the local bearer token.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from integration_monitoring.admin import Access, LocalBackend
from integration_monitoring.admin._access import AccessDenied
from integration_monitoring.app import create_app
from integration_monitoring.store import TelemetryStore

from .helpers import (
    PATIENT,
    ROOT,
    Server,
    http_get,
    http_post,
    http_stream,
    principal,
    project_env,
    serve_app,
)

# Recent, so that acknowledging (which looks back from the real clock) finds the alerts.
NOW = dt.datetime.now(dt.UTC).replace(tzinfo=None, second=0, microsecond=0)
UNTIL = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
ENDPOINTS = ["integrations/stats", "integrations/health", "integrations/sync-activity",
             "integrations/errors", "integrations/performance", "alerts"]
TENANT_B = ("tenant-b", "int-b1", "boom-in-b", "alert-b")


ADMIN = {"x-ms-client-principal": principal("Monitoring.Admin")}
READER_A = {"x-ms-client-principal": principal("Monitoring.Reader", tenants="tenant-a")}


def _trace(minutes_ago: float, message: str, level: int = 1, operation: str = "",
           **properties: object) -> dict:
    return {"TimeGenerated": NOW - dt.timedelta(minutes=minutes_ago), "Message": message,
            "SeverityLevel": level, "ItemCount": 1, "OperationId": operation,
            "Properties": json.dumps({k: str(v) for k, v in properties.items()})}


def _rows() -> tuple[list[dict], list[dict]]:
    traces, metrics = [], []
    for tenant, integration, adapter in (("tenant-a", "int-a1", "salesforce"),
                                         ("tenant-b", "int-b1", "hubspot")):
        where = {"tenantId": tenant, "integrationId": integration, "adapterType": adapter}
        traces.append(_trace(600, "integration.status_changed", status="active",
                             syncIntervalMinutes=15, **where))
        for i, failed in enumerate((False, True, False)):
            op = f"{integration}-job-{i}"
            at = 120 - 30 * i
            traces.append(_trace(at, "sync.started", operation=op, entity="contact",
                                 taskId=f"task-{integration}-{i}", **where))
            traces.append(_trace(at - 1, "sync.failed" if failed else "sync.completed",
                                 level=3 if failed else 1, operation=op, entity="contact",
                                 duration=900, recordCount=10, recordsCreated=10,
                                 error=f"boom-in-{tenant[-1]}" if failed else "",
                                 errorType="Boom", **where))
        traces.append(_trace(5, "sync.started", operation=f"{integration}-running",
                             entity="deal", **where))
        traces.append(_trace(20, "alert.fired", alertId=f"alert-{tenant[-1]}",
                             ruleId="high-sync-failure-rate", title=f"alert-{tenant[-1]}",
                             severity="Sev1", dimensions=json.dumps(where), **where))
        metrics.append({"TimeGenerated": NOW - dt.timedelta(minutes=30), "ItemCount": 1,
                        "Name": "adapter_request_duration_seconds", "Sum": 0.5, "Min": 0.5,
                        "Max": 0.5, "Properties": json.dumps({
                            "tenant_id": tenant, "integration_id": integration,
                            "adapter_type": adapter, "status_code": "200"})})
    traces.append(_trace(15, "alert.fired", alertId="alert-shared", ruleId="queue-backlog",
                         title="queue backlog", severity="Sev2", dimensions="{}"))
    metrics.append({"TimeGenerated": NOW - dt.timedelta(minutes=30), "ItemCount": 1,
                    "Name": "service_bus_queue_depth", "Sum": 40, "Min": 40, "Max": 40,
                    "Properties": json.dumps({"queue": "sync-jobs"})})
    return traces, metrics


def two_tenant_store(path) -> TelemetryStore:
    """A store holding tenant-a's and tenant-b's rows (and a shared alert and queue)."""
    store = TelemetryStore(path)
    traces, metrics = _rows()
    store.append("AppTraces", traces)
    store.append("AppMetrics", metrics)
    return store


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Iterator[TelemetryStore]:
    store = two_tenant_store(tmp_path_factory.mktemp("access") / "access.duckdb")
    yield store
    store.close()


@pytest.fixture(scope="module")
def entra(store) -> Iterator[str]:
    app = create_app(backend=LocalBackend(store), access=Access("entra"),
                     stream_options={"poll_s": 0.1, "stream_s": 0.5, "retry_ms": 100})
    with serve_app(app) as url:
        yield url


def get(url: str, path: str, headers: dict[str, str], **params: str) -> httpx.Response:
    return http_get(f"{url}/api/admin/{path}", headers=headers,
                     params={"until": UNTIL, "window": "24h", **params})


def strings(value: object) -> Iterator[str]:
    """Every string in a JSON document, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def mentions_b(body: object) -> list[str]:
    return [s for s in strings(body) if any(mark in s for mark in TENANT_B)]


@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_reader_sees_only_its_tenant_on_every_endpoint(entra, path):
    """The same endpoint shows tenant-b to an admin and never to tenant-a's reader."""
    # given an admin's and tenant-a's reader's view of the endpoint
    admin = get(entra, path, ADMIN)
    reader = get(entra, path, READER_A)
    # then both answer, the admin sees both tenants, the reader only tenant-a
    assert admin.status_code == reader.status_code == 200, reader.text
    assert mentions_b(admin.json()), "the data should hold tenant-b rows"
    assert mentions_b(reader.json()) == []
    tenants = {s for s in strings(reader.json()) if s.startswith("tenant-")}
    assert tenants <= {"tenant-a"}
    assert reader.json()["window"]["tenants"] == ["tenant-a"]


def test_the_reader_sees_what_an_admin_sees_for_its_tenant(entra):
    """Scoping removes other tenants' rows and nothing else."""
    for path in ENDPOINTS:
        admin = get(entra, path, ADMIN, tenantId="tenant-a").json()
        reader = get(entra, path, READER_A, tenantId="tenant-a").json()
        for body in (admin, reader):
            body["window"].pop("tenants")
            body.pop("queueDepthTrend", None)  # shared infrastructure: admins only
        assert reader == admin, path


@pytest.mark.parametrize("path", ["integrations/health", "integrations/sync-activity",
                                  "integrations/errors", "alerts"])
@pytest.mark.parametrize("q", ["int-b1", "boom-in-b", "tenant-b", "alert-b", "b"])
def test_search_never_reaches_another_tenant(entra, path, q):
    """`q` matches only inside the reader's scope."""
    body = get(entra, path, READER_A, q=q).json()
    assert body.pop("window")["filters"] == {"q": q}  # the one place the search text shows
    assert mentions_b(body) == []


def test_alert_history_hides_other_tenants_and_shared_alerts_from_a_reader(entra):
    """A reader's alert history holds its tenant's alerts, not the shared queue alert."""
    admin = {a["alertId"] for a in get(entra, "alerts", ADMIN).json()["alerts"]}
    reader = {a["alertId"] for a in get(entra, "alerts", READER_A).json()["alerts"]}
    assert admin == {"alert-a", "alert-b", "alert-shared"}
    assert reader == {"alert-a"}


def test_queue_depth_is_for_admins_only(entra):
    """Queues are shared infrastructure: they are not in a reader's performance view."""
    assert get(entra, "integrations/performance", ADMIN).json()["queueDepthTrend"]
    assert get(entra, "integrations/performance", READER_A).json()["queueDepthTrend"] == []


def test_asking_for_another_tenant_is_forbidden_and_named(entra):
    """tenantId outside the reader's scope is a 403 naming the parameter, on the stream too."""
    for path in [*ENDPOINTS, "integrations/stream"]:
        response = get(entra, path, READER_A, tenantId="tenant-b")
        assert response.status_code == 403, path
        assert response.json()["error"] == {
            "code": "tenant_not_allowed", "message": "you may read tenants tenant-a only",
            "parameter": "tenantId"}


def test_the_stream_is_scoped_to_the_reader(entra):
    """The stream's snapshot for a reader counts only its tenant's jobs."""
    def snapshot(headers: dict[str, str]) -> dict:
        with http_stream("GET", f"{entra}/api/admin/integrations/stream", headers=headers,
                          params={"until": UNTIL}) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith('data: {"fingerprint"'):
                    return json.loads(line[len("data: "):])
        raise AssertionError("no snapshot")

    admin, reader = snapshot(ADMIN), snapshot(READER_A)
    assert admin["stats"]["syncJobs"]["finished"] == 6
    assert reader["stats"]["syncJobs"]["finished"] == 3
    assert mentions_b(reader) == []
    assert admin["fingerprint"] != reader["fingerprint"]


def test_readers_cannot_acknowledge_and_admins_are_recorded_by_name(entra, store):
    """Acknowledging is for admins; the signed-in name is recorded, not the body's `by`."""
    refused = http_post(f"{entra}/api/admin/alerts/alert-a/ack", headers=READER_A,
                         json={"by": "me"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "read_only"
    # the event is written through the process's telemetry, which is not this store, so only
    # the answer is checked here (the acknowledgement path itself is tested elsewhere)
    done = http_post(f"{entra}/api/admin/alerts/alert-a/ack", headers={
        "x-ms-client-principal": principal("Monitoring.Admin", name="lead@example.com")},
        json={"by": "someone else"})
    assert done.status_code == 200, done.text
    assert done.json()["acknowledgedBy"] == "lead@example.com"


def test_me_says_who_the_caller_is(entra):
    assert get(entra, "me", READER_A).json() == {
        "name": "ops@example.com", "role": "Monitoring.Reader", "tenants": ["tenant-a"],
        "via": "entra", "mode": "entra"}
    assert get(entra, "me", ADMIN).json()["tenants"] is None


@pytest.mark.parametrize(("headers", "status", "code"), [
    ({}, 401, "unauthenticated"),
    ({"x-ms-client-principal": "not base64 json!"}, 401, "bad_principal"),
    ({"x-ms-client-principal": principal()}, 403, "no_role"),
    ({"x-ms-client-principal": principal("Monitoring.Reader")}, 403, "no_tenants"),
    ({"x-ms-client-principal": principal("Monitoring.Reader", tenants="bad id!")}, 403,
     "no_tenants"),
])
def test_callers_without_a_usable_principal_are_refused(entra, headers, status, code):
    response = get(entra, "integrations/stats", headers)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_tenant_claims_may_list_several_tenants(entra):
    both = {"x-ms-client-principal": principal("Monitoring.Reader",
                                               tenants="tenant-a, tenant-b")}
    body = get(entra, "integrations/health", both).json()
    assert {r["tenantId"] for r in body["integrations"]} == {"tenant-a", "tenant-b"}


def test_metrics_are_for_admins_only(entra):
    response = http_get(f"{entra}/metrics", headers=READER_A)
    assert response.status_code == 403 and response.json()["error"]["code"] == "admins_only"


def _guarded_routes(app) -> list[tuple[str, str]]:
    """Every (method, path) in the API's description but the relay, and /metrics (left out
    of the description), with sample path values."""
    out = [("GET", "/metrics")]
    for path, operations in app.openapi()["paths"].items():
        if path == "/api/alerts/relay":
            continue
        out.extend((method.upper(), path.replace("{alert_id}", "alert-a"))
                   for method in operations)
    return out


@pytest.mark.parametrize("access", [Access("entra"), Access("token", "s3cret-token")],
                         ids=["entra", "token"])
def test_an_anonymous_call_to_any_route_is_refused(store, access):
    """Every route that reads or changes data answers 401 to a caller with no credentials,
    and the relay keeps its own secret."""
    app = create_app(backend=LocalBackend(store), access=access)
    routes = _guarded_routes(app)
    assert len(routes) >= 11  # the endpoints, stream, alerts, ack, me, health, metrics
    with serve_app(app) as url:
        for method, path in routes:
            response = httpx.request(method, url + path, timeout=PATIENT)
            assert response.status_code == 401, (method, path, response.text)
            assert response.json()["error"]["code"] == "unauthenticated"
        relay = http_post(url + "/api/alerts/relay", json={})
        assert relay.status_code in (401, 503)
        # and the public shell still loads, telling the page how to sign its calls
        assert http_get(url + "/dashboard").status_code == 200
        assert http_get(url + "/dashboard/access.json").json()["mode"] == access.mode


def test_bearer_token_mode_checks_the_token(store):
    app = create_app(backend=LocalBackend(store), access=Access("token", "s3cret-token"))
    with serve_app(app) as url:
        wrong = get(url, "integrations/stats", {"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "wrong_token"
        assert "invalid_token" in wrong.headers["www-authenticate"]
        right = get(url, "integrations/stats", {"Authorization": "Bearer s3cret-token"})
        assert right.status_code == 200
        assert get(url, "me", {"Authorization": "Bearer s3cret-token"}).json()["via"] == "token"


def test_entra_principal_parsing_edge_cases():
    access = Access("entra", tenant_claim="extension_tenants")
    header = principal("Monitoring.Reader", name="x")
    body = json.loads(base64.b64decode(header))
    body["claims"].append({"typ": "extension_tenants", "val": "t1;t2 t3"})
    body["claims"].append({"typ": "extension_tenants", "val": 'evil"]) | take 1'})
    seen = access.authenticate({"x-ms-client-principal": base64.b64encode(
        json.dumps(body).encode()).decode()})
    assert seen.tenants == frozenset({"t1", "t2", "t3"})
    for broken in ("", base64.b64encode(b"[]").decode(), base64.b64encode(b"{}").decode(),
                   "x" * 70_000):
        with pytest.raises(AccessDenied):
            access.authenticate({"x-ms-client-principal": broken})


def test_functions_settings_choose_keys_or_entra():
    assert Access.for_functions({}).mode == "function-key"
    assert Access.for_functions({}).host_checks_keys
    platform = {"ADMIN_AUTH": "entra", "WEBSITE_AUTH_ENABLED": "True"}
    assert Access.for_functions(platform).host_checks_keys is False
    # without App Service authentication in front, anyone could send the principal header
    with pytest.raises(ValueError, match="WEBSITE_AUTH_ENABLED"):
        Access.for_functions({"ADMIN_AUTH": "entra"})
    with pytest.raises(ValueError, match="ADMIN_AUTH"):
        Access.for_functions({"ADMIN_AUTH": "open"})
    assert Access.for_local({}).mode == "open"
    assert Access.for_local({"ADMIN_API_TOKEN": "t"}).mode == "token"


def test_serve_refuses_to_bind_beyond_loopback_without_a_token(tmp_path):
    """Bound to every interface without ADMIN_API_TOKEN, the server will not start."""
    done = subprocess.run([sys.executable, "-m", "integration_monitoring", "serve", "--host",
                           "0.0.0.0", "--no-demo"], cwd=ROOT, env=project_env(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "ADMIN_API_TOKEN" in done.stderr and "Traceback" not in done.stderr


def test_serve_with_a_token_requires_it(tmp_path):
    """With ADMIN_API_TOKEN, the local server refuses anonymous calls and serves bearers."""
    with Server(tmp_path, "--no-demo", ADMIN_API_TOKEN="local-token-123") as server:
        assert http_get(server.url + "/api/health").status_code == 401
        assert server.get("/api/health").status_code == 200
        assert server.get("/dashboard/access.json").json() == {"mode": "token",
                                                              "credential": "bearer"}


def test_every_answer_carries_the_baseline_headers(entra):
    """Data is never cached or sniffed; the page's assets keep their own caching rule."""
    for path, headers in (("/api/admin/integrations/stats", ADMIN),
                          ("/api/admin/integrations/stats", {}),
                          ("/api/health", READER_A)):
        response = http_get(entra + path, headers=headers, params={"until": UNTIL})
        assert response.headers["cache-control"] == "no-store", path
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    asset = http_get(entra + "/dashboard/static/dashboard.js")
    assert asset.headers["cache-control"] == "no-cache"
    assert asset.headers["content-security-policy"].startswith("default-src 'self'")


def test_serve_without_a_token_answers_only_loopback_names(tmp_path):
    """A page elsewhere whose name resolves to 127.0.0.1 cannot read the open local app."""
    with Server(tmp_path, "--no-demo") as server:
        assert server.get("/api/health").status_code == 200
        rebound = http_get(server.url + "/api/health",
                            headers={"Host": f"attacker.example:{server.port}"})
        assert rebound.status_code == 400
        assert "telemetry" not in rebound.text  # none of the health answer


def test_a_readers_health_check_shows_no_shared_details(entra):
    reader = http_get(entra + "/api/health", headers=READER_A).json()
    admin = http_get(entra + "/api/health", headers=ADMIN).json()
    assert reader == {"status": "ok"}
    assert {"telemetry", "dropped", "alertOutbox"} <= set(admin)


def test_unscoped_filters_read_no_tenant(store):
    """Filters never scoped to a caller answer nothing: forgetting the scope fails closed."""
    from integration_monitoring.admin import AdminService, parse_filters
    from integration_monitoring.admin._access import Principal, scope

    service = AdminService(LocalBackend(store))
    unscoped = parse_filters("health", {"until": UNTIL})
    assert service.health(unscoped)["integrations"] == []
    admin = scope(unscoped, Principal("admin", None, "test"))
    assert len(service.health(admin)["integrations"]) == 2
