"""The local app and the Function app serve the same ASGI application."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

from prometheus_client.parser import text_string_to_metric_families

from integration_monitoring import adapter_request, record_queue_depth, sync_job
from integration_monitoring.store import TelemetryStore
from integration_monitoring.telemetry._prometheus import SeedPrometheusReader
from integration_monitoring.testing import capture_telemetry

from .helpers import ROOT, Server, http_get, project_env


def test_serve_answers_liveness_and_metrics_and_stores_its_events(tmp_path):
    """`serve` answers /api/health and /metrics, and its own events reach the local store."""
    # given the local app running as `make run` starts it
    with Server(tmp_path, "--no-demo") as server:
        # when liveness and a scrape are asked for
        health = http_get(server.url + "/api/health").json()
        scrape = http_get(server.url + "/metrics")
        openapi = http_get(server.url + "/api/openapi.json")
        code = server.stop()
    # then both answer, and the startup event was stored when the server stopped
    assert code in (0, -15), server.stderr  # uvicorn re-raises SIGTERM after shutdown
    assert health["status"] == "ok" and health["telemetry"] == "local"
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain")
    assert openapi.json()["info"]["title"]
    started = json.loads(server.stdout.splitlines()[0])
    assert started["operation"] == "server.started"
    store = TelemetryStore(tmp_path / "telemetry.duckdb")
    rows = store.kql('AppTraces | where Message == "server.started" | project AppRoleName').rows
    store.close()
    assert rows == [("integration-monitoring",)]


def test_prometheus_names_are_exactly_the_seed_names():
    """Scraped series keep the seed's names: no unit suffix is added, `_total` is kept."""
    # given a Telemetry exposing its metrics through the Prometheus reader
    reader = SeedPrometheusReader()
    from opentelemetry.sdk.metrics import MeterProvider

    provider = MeterProvider(metric_readers=[reader])
    labels = {"tenant_id": "t1", "integration_id": "sf-1", "adapter_type": "salesforce",
              "entity": "contact"}
    with capture_telemetry() as captured:
        from integration_monitoring import Telemetry
        from integration_monitoring.telemetry import use

        use(Telemetry(meter_provider=provider, logger_provider=captured.telemetry.logger_provider,
                      tracer_provider=captured.telemetry.tracer_provider, stdout=False))
        # when every kind of measurement is taken
        with sync_job(**labels) as job:
            job.records(created=3, updated=1)
            with adapter_request() as call:
                call.status_code = 429
        record_queue_depth("sync-jobs", 150, 2)
        text = reader.exposition().decode()
    provider.shutdown()
    # then the exposition uses the seed's names with the seed's labels
    samples = {s.name: s for f in text_string_to_metric_families(text) for s in f.samples}
    for name in ("sync_jobs_total", "sync_jobs_processed_total", "sync_records_created_total",
                 "sync_records_updated_total", "sync_jobs_by_integration_total",
                 "sync_latency_ms_bucket", "sync_latency_ms_count", "sync_latency_ms_sum",
                 "adapter_requests_total", "adapter_request_duration_seconds_bucket",
                 "adapter_rate_limit_hits_total", "service_bus_queue_depth",
                 "service_bus_dlq_depth"):
        assert name in samples, name
    assert "_milliseconds" not in text
    assert samples["service_bus_queue_depth"].labels == {"queue": "sync-jobs"}
    assert samples["sync_records_created_total"].labels == labels
    assert "# TYPE sync_latency_ms histogram" in text


def test_function_app_wraps_the_same_app_behind_a_function_key(tmp_path):
    """function_app.py registers one HTTP function (auth level FUNCTION) that serves the app."""
    # given the Function app imported as the Functions host would, with a real HttpRequest
    script = """
import asyncio, inspect, json
import azure.functions as func
import function_app

class Context:
    invocation_id = "1"; function_name = "http_app_func"; function_directory = "."
    trace_context = retry_context = thread_local_storage = None

function = next(f for f in function_app.app.get_functions()
                if f.get_function_name() == "http_app_func")
binding = json.loads(function.get_function_json())["bindings"][0]
request = func.HttpRequest(method="GET", url="http://localhost/api/health", body=b"",
                           headers={}, route_params={"route": "api/health"})
response = function.get_user_function()(request, Context())
if inspect.isawaitable(response):
    response = asyncio.run(response)
print("RESULT", json.dumps({"binding": binding, "status": response.status_code,
                            "body": json.loads(response.get_body())}))
"""
    # when it handles GET /api/health
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=project_env(tmp_path))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.split("RESULT ", 1)[1])
    # then the binding is a catch-all HTTP trigger at FUNCTION level and the app answered
    assert result["binding"]["type"] == "httpTrigger"
    assert result["binding"]["authLevel"] == "FUNCTION"
    assert result["binding"]["route"] == "/{*route}"
    assert result["status"] == 200 and result["body"]["status"] == "ok"


_FUNCTIONS_PROBE = """
import asyncio, json
import azure.functions as func
import function_app

class Context:
    invocation_id = "1"; function_name = "f"; function_directory = "."
    trace_context = retry_context = thread_local_storage = None

functions = {f.get_function_name(): f for f in function_app.app.get_functions()}
bindings = {name: binding for name, f in functions.items()
            for binding in json.loads(f.get_function_json())["bindings"][:1]
            if binding["type"] == "httpTrigger"}
answers = {}
for name, path in PROBES:
    request = func.HttpRequest(method="GET", url="http://localhost" + path, body=b"",
                               headers={}, route_params={})
    response = asyncio.run(functions[name].get_user_function()(request, Context()))
    answers[path] = response.status_code
print("RESULT", json.dumps({"bindings": bindings, "answers": answers}))
"""


def _probe_function_app(tmp_path, probes, **env) -> dict:
    script = f"PROBES = {probes!r}\n" + _FUNCTIONS_PROBE
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=project_env(tmp_path, **env))
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.split("RESULT ", 1)[1])


def test_with_function_keys_only_the_dashboard_shell_is_anonymous(tmp_path):
    """The page, its assets and runbooks answer without a key (they hold no data); the shell
    function passes nothing else to the app."""
    result = _probe_function_app(tmp_path, [
        ("dashboard_shell", "/dashboard"),
        ("dashboard_shell", "/dashboard/static/dashboard.js"),
        ("dashboard_shell", "/dashboard/access.json"),
        ("dashboard_shell", "/dashboard/filters.json"),
        ("runbooks", "/docs/runbooks/high-sync-failure-rate.md"),
        ("dashboard_shell", "/dashboard/../api/admin/integrations/stats"),
        ("dashboard_shell", "/dashboard/%2e%2e/api/health"),
        ("dashboard_shell", "/dashboard/static/../../metrics"),
    ])
    bindings = result["bindings"]
    assert bindings["http_app_func"]["authLevel"] == "FUNCTION"
    assert bindings["dashboard_shell"]["authLevel"] == "ANONYMOUS"
    assert bindings["dashboard_shell"]["route"] == "dashboard/{*path}"
    assert bindings["dashboard_shell"]["methods"] == ["GET", "HEAD"]
    assert bindings["runbooks"]["methods"] == ["GET", "HEAD"]
    assert bindings["runbooks"]["authLevel"] == "ANONYMOUS"
    assert list(result["answers"].values()) == [200, 200, 200, 200, 200, 404, 404, 404]


def test_behind_entra_id_the_app_is_one_anonymous_function_that_checks_the_principal(
        tmp_path):
    """ADMIN_AUTH=entra: App Service authentication is the gate, so the host asks for no key,
    and the app itself refuses a call without a signed-in principal."""
    result = _probe_function_app(tmp_path, [("http_app_func", "/api/health")],
                                 ADMIN_AUTH="entra", WEBSITE_AUTH_ENABLED="True")
    assert set(result["bindings"]) == {"http_app_func"}
    assert result["bindings"]["http_app_func"]["authLevel"] == "ANONYMOUS"
    assert result["answers"] == {"/api/health": 401}


def test_host_json_serves_routes_without_prefix_and_uses_opentelemetry():
    """host.json drops the /api prefix (the app owns its routes) and selects OpenTelemetry."""
    host = json.loads((ROOT / "host.json").read_text())
    assert host["extensions"]["http"]["routePrefix"] == ""
    assert host["telemetryMode"] == "OpenTelemetry"


def test_library_never_imports_the_functions_host():
    """integration_monitoring stays free of azure.functions."""
    offenders = [str(path.relative_to(ROOT))
                 for path in (ROOT / "integration_monitoring").rglob("*.py")
                 if "azure.functions" in path.read_text()]
    assert offenders == []


def test_admin_endpoints_answer_the_same_through_the_function_app_and_uvicorn(tmp_path):
    """The registered Azure function and uvicorn serve identical admin answers."""
    # given a store with an hour of demo history
    env = project_env(tmp_path)
    subprocess.run([sys.executable, "-m", "integration_monitoring", "demo", "--hours", "1",
                    "--quiet"], cwd=ROOT, env=env, check=True, capture_output=True, timeout=120)
    until = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    paths = [f"/api/admin/integrations/{p}?until={until}&window=2h" for p in
             ("stats", "health", "sync-activity", "errors", "performance")]
    # when the Azure function handles each path with a real HttpRequest
    script = f"""
import asyncio, json
import azure.functions as func
import function_app

class Context:
    invocation_id = "1"; function_name = "http_app_func"; function_directory = "."
    trace_context = retry_context = thread_local_storage = None

function = next(f for f in function_app.app.get_functions()
                if f.get_function_name() == "http_app_func").get_user_function()
out = {{}}
for path in {paths!r}:
    route, _, query = path.partition("?")
    params = dict(part.split("=", 1) for part in query.split("&"))
    request = func.HttpRequest(method="GET", url="http://localhost" + path, body=b"",
                               headers={{}}, params=params, route_params={{"route": route[1:]}})
    response = asyncio.run(function(request, Context()))
    out[path] = [response.status_code, json.loads(response.get_body())]
print("RESULT", json.dumps(out))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    through_function = json.loads(done.stdout.split("RESULT ", 1)[1])
    # and uvicorn serves the same paths from the same store
    with Server(tmp_path, "--no-demo") as server:
        through_uvicorn = {path: [r.status_code, r.json()] for path in paths
                           for r in [server.get(path)]}
    # then every answer is identical
    for path in paths:
        assert through_function[path][0] == 200, through_function[path]
        assert through_function[path] == through_uvicorn[path], path
    assert through_uvicorn[paths[0]][1]["syncJobs"]["finished"] > 0
