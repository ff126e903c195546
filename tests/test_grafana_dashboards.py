"""The Grafana dashboards under infra/grafana/: generated from the query files and the metric
table, so the Log Analytics panels run the admin API's own KQL and the Prometheus panels select
only series that /metrics serves.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest

from integration_monitoring import queries
from integration_monitoring.admin import parse_filters
from integration_monitoring.admin._filters import Filters
from integration_monitoring.store import TelemetryStore
from integration_monitoring.telemetry._metrics import METRICS

from .helpers import ROOT
from .test_prometheus_rules import EXPOSED, load, metric_names, run
from .test_prometheus_rules import promtool as promtool  # the fixture: fails without promtool

GRAFANA = ROOT / "infra" / "grafana"
LOG_ANALYTICS = GRAFANA / "integration-monitoring-loganalytics.json"
PROMETHEUS = GRAFANA / "integration-monitoring-prometheus.json"
NOW = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)

generate = load(GRAFANA / "generate.py")


def panels(path) -> list[dict[str, Any]]:
    return [p for p in json.loads(path.read_text())["panels"] if p["type"] != "row"]


def kql_targets() -> list[tuple[str, dict[str, Any]]]:
    return [(p["title"], t) for p in panels(LOG_ANALYTICS) for t in p["targets"]]


def prometheus_targets() -> list[tuple[str, dict[str, Any]]]:
    return [(p["title"], t) for p in panels(PROMETHEUS) for t in p["targets"]]


def split(query: str) -> tuple[str, str]:
    """(prelude, question name) of a panel's query, or fail naming the panel."""
    common = queries.text("_common")
    for name in queries.names():
        if query.endswith(common + queries.text(name)):
            return query[: -len(common + queries.text(name))], name
    raise AssertionError("the query does not end with _common.kql and a question file")


def test_dashboards_are_what_the_generator_writes():
    assert generate.main(["--check"]) == 0, "run: python infra/grafana/generate.py"


@pytest.mark.parametrize(("title", "target"), kql_targets(), ids=lambda v: str(v)[:40])
def test_every_kql_panel_is_a_query_file_verbatim(title, target):
    """_common.kql and a question file byte for byte, after a prelude of only the API's names."""
    assert target["queryType"] == "Azure Log Analytics"
    la = target["azureLogAnalytics"]
    assert la["resources"] == ["$workspace"] and la["dashboardTime"] is False
    prelude, _ = split(la["query"])
    lines = prelude.splitlines()
    names = [re.fullmatch(r"let (_[a-z_]+) = [^;\n]+;", line) for line in lines]
    assert all(names), f"{title}: prelude lines other than `let _x = ...;`: {lines}"
    api_names = set(parse_filters("stream", {}, now=NOW).values())
    assert sorted(m.group(1) for m in names) == sorted(api_names)


def test_the_kql_panels_cover_every_question_of_the_api():
    used = {split(target["azureLogAnalytics"]["query"])[1] for _, target in kql_targets()}
    # stream_fingerprint only tells the live page when to refresh; the restatement's two
    # questions are the daily job's.
    assert used == set(queries.names()) - {"stream_fingerprint", "integration_state",
                                           "restatements"}


# -- the panels' KQL, interpolated as Grafana does, answers as the admin API -------------------


def grafana_interpolate(query: str, since: dt.datetime, until: dt.datetime,
                        interval: dt.timedelta, variables: dict[str, str],
                        interval_style: str = "backend") -> str:
    """What Grafana sends for a panel: `${var:json}` as JSON.stringify writes it (frontend),
    then the Azure Monitor data source's macros (backend: RFC 3339 to the second, the
    interval in ms; the frontend writes `$__interval` as e.g. 15m)."""
    text = re.sub(r"\$\{([a-z]+):json\}", lambda m: json.dumps(variables[m.group(1)]), query)
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    text = text.replace("$__timeFrom()", f"datetime('{since.strftime(stamp)}')")
    text = text.replace("$__timeTo()", f"datetime('{until.strftime(stamp)}')")
    minutes = int(interval.total_seconds() // 60)
    text = text.replace("$__interval", f"{int(interval.total_seconds() * 1000)}ms"
                        if interval_style == "backend" else f"{minutes}m")
    assert "$" not in text, "an interpolation was left over"
    return text


@pytest.fixture(scope="module")
def store(demo_store) -> TelemetryStore:
    """Two hours of the demo's workload up to NOW."""
    return demo_store(hours=2, now=NOW, seed=7)


def rows(store: TelemetryStore, text: str) -> list[str]:
    return sorted(repr(row) for row in store.kql(text).rows)


NO_FILTER = {"tenant": "", "integration": "", "adapter": "", "entity": "", "status": "", "q": ""}


@pytest.mark.parametrize(("variables", "answering"), [
    (NO_FILTER, 14),
    ({**NO_FILTER, "adapter": "hubspot", "status": "active"}, 14),
    ({**NO_FILTER, "q": 'session" | take 0 //\\'}, 8),
], ids=["no filter", "adapter and status", "hostile search"])
@pytest.mark.parametrize("style", ["backend", "frontend"])
def test_kql_panels_answer_as_the_admin_api_does(store, variables, answering, style):
    """Each panel, interpolated the way Grafana does, returns the rows the API's rendering of
    the same question returns for the same range and filters."""
    since, until = NOW - dt.timedelta(hours=2), NOW
    bucket = dt.timedelta(minutes=15)
    answered = 0
    for title, target in kql_targets():
        query = target["azureLogAnalytics"]["query"]
        prelude, name = split(query)
        status = re.search(r"let _status = (.+);", prelude).group(1)
        filters = Filters(
            since=since, until=until, bucket=bucket, tenant_id=variables["tenant"],
            integration_id=variables["integration"], adapter_type=variables["adapter"],
            entity=variables["entity"], q=variables["q"],
            status=variables["status"] if status == "${status:json}" else json.loads(status),
            tenants=None)
        grafana = rows(store, grafana_interpolate(query, since, until, bucket, variables, style))
        api = rows(store, queries.render(name, filters.values()))
        assert grafana == api, title
        answered += bool(api)
    assert answered >= answering  # panels with rows, not only empty answers


# -- Prometheus ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("title", "target"), prometheus_targets(), ids=lambda v: str(v)[:40])
def test_every_prometheus_panel_selects_only_served_series(title, target):
    """Metric names are ones /metrics exposes (the metric table, plus _bucket/_sum/_count for
    histograms)."""
    names = metric_names(target["expr"])
    assert names, f"{title}: no metric in {target['expr']}"
    assert names <= EXPOSED, f"{title}: {names - EXPOSED} is not served"


def test_the_prometheus_panels_use_every_seed_metric():
    used = set().union(*(metric_names(t["expr"]) for _, t in prometheus_targets()))
    for spec in METRICS:
        if spec.seed:
            kinds = ("_bucket", "_sum", "_count") if spec.kind == "histogram" else ("",)
            assert any(spec.name + kind in used for kind in kinds), spec.name


def test_prometheus_panel_expressions_parse(promtool, tmp_path):
    """promtool accepts every panel expression (as a recording rule), Grafana's variables
    replaced by values of their kind."""
    lines = ["groups:", "  - name: grafana", "    rules:"]
    for index, (_, target) in enumerate(prometheus_targets()):
        expr = (target["expr"].replace("$__rate_interval", "5m").replace("$__range", "1h")
                .replace("$tenant", ".*").replace("$integration", ".*")
                .replace("$adapter", ".*").replace("$entity", ".*"))
        assert "$" not in expr
        lines += [f"      - record: grafana:panel_{index}",
                  f"        expr: '{expr.replace(chr(39), chr(39) * 2)}'"]
    path = tmp_path / "panels.yml"
    path.write_text("\n".join(lines) + "\n")
    done = run(promtool, "check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr


def test_each_dashboard_has_the_five_components():
    for path in (LOG_ANALYTICS, PROMETHEUS):
        rows_ = [p["title"] for p in json.loads(path.read_text())["panels"] if p["type"] == "row"]
        assert {"System overview", "Integration health", "Sync activity", "Error monitoring",
                "Performance"} <= set(rows_), path.name
