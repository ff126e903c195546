"""Grafana dashboards for the seed's five dashboard components, generated so they stay in sync.

    python infra/grafana/generate.py            # writes the two dashboards below
    python infra/grafana/generate.py --check    # exit 1 when a dashboard is out of date

integration-monitoring-loganalytics.json
    Azure Monitor data source, Log Analytics queries. Each query is the admin API's own text:
    a prelude of `let` statements, then integration_monitoring/queries/_common.kql, then the
    question's .kql file, byte for byte. Only the prelude differs from the API's: it takes the
    values from the dashboard (`$__timeFrom()`, `$__timeTo()`, `$__interval`, the filter
    variables) instead of request parameters.
integration-monitoring-prometheus.json
    Prometheus data source, PromQL on the metrics /metrics serves under the seed's names.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
for folder in (ROOT, HERE.parent):  # the library, and infra/ for the write-or-check loop
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from _generated import write_or_check  # noqa: E402

from integration_monitoring import queries  # noqa: E402
from integration_monitoring.admin._filters import LOOKBACK, MAX_BUCKETS  # noqa: E402

LOG_ANALYTICS = HERE / "integration-monitoring-loganalytics.json"
PROMETHEUS = HERE / "integration-monitoring-prometheus.json"

AZURE_MONITOR = "grafana-azure-monitor-datasource"
SCHEMA_VERSION = 39
FILTERS = ("tenant", "integration", "adapter", "entity")

#: The prelude every Log Analytics panel starts with: the names _common.kql reads, from Grafana.
#: `$__timeFrom()`, `$__timeTo()` and `$__interval` are the data source's macros (datetime(...)
#: and a timespan); `${var:json}` writes a text box's value as a double-quoted string with `"`
#: and `\` escaped, which KQL reads as the same string ("" means "any", as in the API).
PRELUDE = {
    "_since": "$__timeFrom()",
    "_until": "$__timeTo()",
    "_lookback_since": f"$__timeTo() - {LOOKBACK.days}d",
    "_bucket": "$__interval",
    "_tenant": "${tenant:json}",
    "_integration": "${integration:json}",
    "_adapter": "${adapter:json}",
    "_entity": "${entity:json}",
    "_status": '""',
    "_q": "${q:json}",
    # Grafana's data source reads with its own identity: every tenant is in scope.
    "_all_tenants": "true",
    "_tenants": "dynamic([])",
}


def prelude(**overrides: str) -> str:
    """`let _name = <value>;` for each name, sorted as queries.prelude() writes them."""
    values = {**PRELUDE, **overrides}
    assert set(values) == set(PRELUDE), f"unknown prelude names {set(values) - set(PRELUDE)}"
    return "".join(f"let {name} = {values[name]};\n" for name in sorted(values))


def kql(question: str, **overrides: str) -> str:
    """The full text a panel sends: prelude, then _common.kql and the question, unchanged."""
    return prelude(**overrides) + queries.text("_common") + queries.text(question)


# -- panels ---------------------------------------------------------------------------------------


@dataclass
class Panel:
    title: str
    type: str  # table | timeseries | stat | bargauge
    targets: list[dict[str, Any]]
    width: int = 12
    height: int = 8
    description: str = ""
    unit: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    transformations: list[dict[str, Any]] = field(default_factory=list)
    max_data_points: int | None = None


def layout(sections: list[tuple[str, list[Panel]]], datasource: dict[str, str]
           ) -> list[dict[str, Any]]:
    """Rows of panels, left to right, wrapping at Grafana's 24 columns."""
    out: list[dict[str, Any]] = []
    y = 0
    ids = iter(range(1, 1000))
    for title, panels in sections:
        out.append({"type": "row", "title": title, "id": next(ids), "collapsed": False,
                    "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        y += 1
        x, row_height = 0, 0
        for panel in panels:
            if x + panel.width > 24:
                x, y, row_height = 0, y + row_height, 0
            item: dict[str, Any] = {
                "type": panel.type,
                "title": panel.title,
                "id": next(ids),
                "datasource": datasource,
                "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
                "targets": panel.targets,
                "fieldConfig": {"defaults": {"unit": panel.unit} if panel.unit else {},
                                "overrides": []},
                "options": panel.options,
            }
            if panel.description:
                item["description"] = panel.description
            if panel.transformations:
                item["transformations"] = panel.transformations
            if panel.max_data_points:
                item["maxDataPoints"] = panel.max_data_points
            out.append(item)
            x += panel.width
            row_height = max(row_height, panel.height)
        y += row_height
    return out


def dashboard(uid: str, title: str, description: str, variables: list[dict[str, Any]],
              panels: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": None,
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["integration-monitoring"],
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": "now-24h", "to": "now"},
        "refresh": "1m",
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [],
        "panels": panels,
    }


def textbox(name: str, label: str, description: str) -> dict[str, Any]:
    return {"type": "textbox", "name": name, "label": label, "description": description,
            "query": "", "current": {"text": "", "value": ""}, "hide": 0}


def datasource_variable(plugin: str, label: str) -> dict[str, Any]:
    return {"type": "datasource", "name": "datasource", "label": label, "query": plugin,
            "current": {}, "hide": 0, "refresh": 1, "regex": "", "options": []}


# -- Log Analytics ------------------------------------------------------------------------------

TABLE = {"showHeader": True, "cellHeight": "sm"}
STAT = {"reduceOptions": {"values": False, "calcs": ["lastNotNull"], "fields": ""},
        "colorMode": "value", "graphMode": "none", "textMode": "value_and_name"}
ROWS_AS_BARS = {"reduceOptions": {"values": True, "calcs": [], "fields": ""},
                "displayMode": "basic", "orientation": "horizontal", "showUnfilled": True}
LEGEND = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
          "tooltip": {"mode": "multi", "sort": "none"}}


def la(question: str, result: str = "table", **overrides: str) -> list[dict[str, Any]]:
    """One Azure Log Analytics target. `dashboardTime` stays off: the queries bound their own
    time (and status lookups reach back beyond the dashboard's range)."""
    return [{
        "refId": "A",
        "queryType": "Azure Log Analytics",
        "azureLogAnalytics": {
            "query": kql(question, **overrides),
            "resources": ["$workspace"],
            "resultFormat": result,
            "dashboardTime": False,
        },
    }]


def log_analytics_sections() -> list[tuple[str, list[Panel]]]:
    status = {"_status": "${status:json}"}
    trend = {"max_data_points": MAX_BUCKETS}
    return [
        ("Active alerts", [
            Panel("Alerts (fired, resolved, acknowledged)", "table", la("alerts"), 24, 7,
                  "alert.fired / alert.resolved / alert.acknowledged events the relay wrote.",
                  options=TABLE),
        ]),
        ("System overview", [
            Panel("Integrations by status", "bargauge", la("integration_status", **status), 6,
                  8, "Last integration.status_changed per integration (active, paused, error).",
                  options=ROWS_AS_BARS,
                  transformations=[{"id": "groupBy", "options": {"fields": {
                      "status": {"operation": "groupby", "aggregations": []},
                      "integrationId": {"operation": "aggregate", "aggregations": ["count"]},
                  }}}]),
            Panel("Sync jobs by status", "bargauge", la("job_counts"), 6, 8,
                  "Transitions in the range, as sync_jobs_total counts them.",
                  options=ROWS_AS_BARS),
            Panel("Top integrations by sync volume", "table", la("top_integrations"), 12, 8,
                  options=TABLE),
            Panel("Error rate trend", "timeseries", la("error_rate_trend", "time_series"), 24, 8,
                  "Finished and failed jobs per bucket, and the failure rate in percent.",
                  options=LEGEND, **trend),
        ]),
        ("Integration health", [
            Panel("Integration health", "table", la("integration_status", **status), 24, 10,
                  "Status, health, last successful sync, syncs per hour, failures, errors and "
                  "connection per integration. The status variable filters status or health.",
                  options=TABLE),
        ]),
        ("Sync activity", [
            Panel("Running now", "table", la("running_jobs"), 12, 8,
                  "Started in the last two hours of the range, not finished.", options=TABLE),
            Panel("Records created / updated / failed", "stat", la("record_totals"), 12, 8,
                  options=STAT),
            Panel("Last jobs", "table", la("recent_jobs"), 24, 10, "Newest first.",
                  options=TABLE),
            Panel("Sync duration trend (avg, p95, max)", "timeseries",
                  la("duration_trend", "time_series"), 24, 8, unit="ms", options=LEGEND,
                  **trend),
        ]),
        ("Error monitoring", [
            Panel("Errors by integration", "table", la("errors_by_integration"), 12, 8,
                  options=TABLE),
            Panel("Top error types", "table", la("top_error_types"), 12, 8, options=TABLE),
            Panel("Error rate trend", "timeseries", la("error_rate_trend", "time_series"), 24, 8,
                  options=LEGEND, **trend),
            Panel("Failed sync jobs", "table", la("recent_jobs", _status='"failed"'), 24, 10,
                  options=TABLE),
        ]),
        ("Performance", [
            Panel("Sync duration by integration", "table", la("duration_by_integration"), 12, 8,
                  "Average, p95 and maximum duration, and records per second of sync time.",
                  options=TABLE),
            Panel("API latency by adapter", "table", la("adapter_latency"), 12, 8,
                  "Request-weighted average and maximum: Application Insights keeps no "
                  "histogram buckets.", options=TABLE),
            Panel("Records processed per second", "timeseries",
                  la("throughput_trend", "time_series"), 12, 8, options=LEGEND, **trend),
            Panel("Queue and dead-letter depth", "timeseries",
                  la("queue_depth_trend", "time_series"), 12, 8, options=LEGEND, **trend),
        ]),
    ]


def log_analytics_dashboard() -> dict[str, Any]:
    variables = [
        datasource_variable(AZURE_MONITOR, "Azure Monitor"),
        textbox("workspace", "Workspace",
                "Resource id of the Log Analytics workspace: /subscriptions/<id>/resourceGroups/"
                "<group>/providers/Microsoft.OperationalInsights/workspaces/<name>"),
        textbox("tenant", "Tenant", "tenantId; empty means any"),
        textbox("integration", "Integration", "integrationId; empty means any"),
        textbox("adapter", "Adapter", "adapterType, e.g. salesforce; empty means any"),
        textbox("entity", "Entity", "entity, e.g. contact; empty means any"),
        textbox("status", "Status", "integration status or health (active, paused, error, "
                "healthy, degraded, failing, stale); empty means any"),
        textbox("q", "Search", "text matched in errors, integration and task ids"),
    ]
    source = {"type": AZURE_MONITOR, "uid": "${datasource}"}
    return dashboard(
        "intmon-loganalytics", "Integration monitoring (Log Analytics)",
        "The admin dashboard's five components from the admin API's KQL files "
        "(integration_monitoring/queries), run on the Log Analytics workspace.",
        variables, layout(log_analytics_sections(), source))


# -- Prometheus ---------------------------------------------------------------------------------

#: The filter variables as label matchers (multi-value variables become regex alternations).
LABELS = ('tenant_id=~"$tenant", integration_id=~"$integration", adapter_type=~"$adapter", '
          'entity=~"$entity"')
BY_INTEGRATION = "tenant_id, integration_id, adapter_type"


def sel(metric: str, *matchers: str) -> str:
    return f"{metric}{{{', '.join((*matchers, LABELS))}}}"


def prom(expr: str, legend: str = "", ref: str = "A", instant: bool = False,
         table: bool = False) -> dict[str, Any]:
    target: dict[str, Any] = {"refId": ref, "expr": expr, "legendFormat": legend or "__auto",
                              "range": not instant, "instant": instant}
    if table:
        target["format"] = "table"
    return target


def per_integration(metric: str, how: str = "increase", *matchers: str) -> str:
    return f"sum by ({BY_INTEGRATION}) ({how}({sel(metric, *matchers)}[$__range]))"


def failure_rate(by: str = "") -> str:
    """The alert rule's ratio: failed over finished jobs (completed or failed transitions)."""
    total = f"sum by ({by}) " if by else "sum"
    failed = sel("sync_jobs_failed_total")
    finished = sel("sync_jobs_total", 'status=~"completed|failed"')
    return (f"100 * {total}(rate({failed}[$__rate_interval])) / "
            f"{total}(rate({finished}[$__rate_interval]))")


def prometheus_sections() -> list[tuple[str, list[Panel]]]:
    merged = [{"id": "merge", "options": {}},
              {"id": "organize", "options": {"excludeByName": {"Time": True}}}]
    completed = sel("sync_jobs_total", 'status="completed"')
    processing = sel("sync_jobs_total", 'status="processing"')
    not_success = sel("adapter_requests_total", 'status!="success"')
    last_success = (f"1000 * max by ({BY_INTEGRATION}) (max_over_time((timestamp(increase("
                    f"{completed}[2m]) > 0))[$__range:1m]))")
    return [
        ("System overview", [
            Panel("Sync jobs by status", "bargauge", [prom(
                f"sum by (status) (increase({sel('sync_jobs_total')}[$__range]))",
                "{{status}}", instant=True)], 6, 8, "Transitions in the range.",
                options=ROWS_AS_BARS),
            Panel("Integrations syncing", "stat", [prom(
                f"count(sum by (integration_id) (increase("
                f"{sel('sync_jobs_by_integration_total')}[$__range])) > 0)", instant=True)],
                6, 8, "Integrations that started a sync in the range. Lifecycle status (active, "
                "paused, error) is an event, not a metric: the Log Analytics dashboard has it.",
                options=STAT),
            Panel("Top integrations by sync volume", "table", [prom(
                f"topk(10, {per_integration('sync_jobs_by_integration_total')})",
                instant=True, table=True)], 12, 8, options=TABLE),
            Panel("Failure rate (%)", "timeseries", [prom(failure_rate(), "failed / finished")],
                  24, 8, "Failed over finished jobs, as the HighSyncFailureRate rule computes "
                  "it.", unit="percent", options=LEGEND),
        ]),
        ("Integration health", [
            Panel("Integration health", "table", [
                prom(per_integration("sync_jobs_processed_total"), ref="A", instant=True,
                     table=True),
                prom(per_integration("sync_jobs_failed_total"), ref="B", instant=True,
                     table=True),
                prom(f"3600 * {per_integration('sync_jobs_by_integration_total', 'rate')}",
                     ref="C", instant=True, table=True),
                prom(last_success, ref="D", instant=True, table=True),
                prom(per_integration("adapter_connection_failures_total"), ref="E",
                     instant=True, table=True),
                prom(per_integration("adapter_rate_limit_hits_total"), ref="F", instant=True,
                     table=True),
            ], 24, 10, "Per integration over the range: finished jobs (A), failed (B), syncs "
                "started per hour (C), last successful sync (D, to the minute), connection "
                "failures (E), rate-limited requests (F).", options=TABLE,
                transformations=merged),
        ]),
        ("Sync activity", [
            Panel("Jobs running now", "stat", [prom(
                f"sum({processing}) - "
                f"sum({sel('sync_jobs_processed_total')})", instant=True)], 6, 8,
                "Started minus finished since each process started (per-process counters).",
                options=STAT),
            Panel("Records created / updated / failed", "stat", [
                prom(f"sum(increase({sel(m)}[$__range]))", label, ref, instant=True)
                for ref, m, label in (("A", "sync_records_created_total", "created"),
                                      ("B", "sync_records_updated_total", "updated"),
                                      ("C", "sync_records_failed_total", "failed"))],
                  6, 8, options=STAT),
            Panel("Jobs finished per minute", "timeseries", [prom(
                f"60 * sum by (status) (rate({sel('sync_jobs_processed_total')}"
                "[$__rate_interval]))", "{{status}}")], 12, 8,
                "Per-job history (the last 100 jobs) lives in the logs: see the Log Analytics "
                "dashboard.", options=LEGEND),
            Panel("Sync duration trend (avg, p95)", "timeseries", [
                prom("histogram_quantile(0.95, sum by (le) (rate("
                     f"{sel('sync_latency_ms_bucket')}[$__rate_interval])))", "p95", "A"),
                prom(f"sum(rate({sel('sync_latency_ms_sum')}[$__rate_interval])) / "
                     f"sum(rate({sel('sync_latency_ms_count')}[$__rate_interval]))", "avg", "B"),
            ], 24, 8, unit="ms", options=LEGEND),
        ]),
        ("Error monitoring", [
            Panel("Failed jobs by integration", "table", [prom(
                f"topk(20, {per_integration('sync_jobs_failed_total')} > 0)", instant=True,
                table=True)], 12, 8, options=TABLE),
            Panel("Failed adapter requests by status", "table", [prom(
                "sum by (adapter_type, status) (increase("
                f"{not_success}[$__range])) > 0",
                instant=True, table=True)], 12, 8,
                "rate_limited, client_error, server_error, connection_failed, error. Error "
                "types and messages live in the logs.", options=TABLE),
            Panel("Failure rate by adapter (%)", "timeseries", [prom(
                failure_rate("adapter_type"), "{{adapter_type}}")], 12, 8, unit="percent",
                options=LEGEND),
            Panel("Service Bus messages per minute", "timeseries", [
                prom(f"60 * sum by (queue, status) (rate("
                     f"{sel('service_bus_messages_failed_total')}[$__rate_interval]))",
                     "{{queue}} {{status}}", "A"),
                prom(f"60 * sum by (queue, status) (rate("
                     f"{sel('service_bus_messages_processed_total')}[$__rate_interval]))",
                     "{{queue}} {{status}}", "B"),
            ], 12, 8, "Failed and dead-lettered (A) against completed and abandoned (B).",
                options=LEGEND),
        ]),
        ("Performance", [
            Panel("Average sync duration by integration", "table", [prom(
                f"{per_integration('sync_latency_ms_sum', 'rate')} / "
                f"{per_integration('sync_latency_ms_count', 'rate')}", instant=True,
                table=True)], 12, 8, unit="ms", options=TABLE),
            Panel("Records processed per second", "timeseries", [
                prom(f"sum(rate({sel('sync_records_created_total')}[$__rate_interval]))",
                     "created", "A"),
                prom(f"sum(rate({sel('sync_records_updated_total')}[$__rate_interval]))",
                     "updated", "B"),
            ], 12, 8, options=LEGEND),
            Panel("Queue and dead-letter depth", "timeseries", [
                prom("max by (queue) (service_bus_queue_depth)", "{{queue}} active", "A"),
                prom("max by (queue) (service_bus_dlq_depth)", "{{queue}} dead-lettered",
                     "B"),
            ], 12, 8, options=LEGEND),
            Panel("API latency by adapter (p95, avg)", "timeseries", [
                prom("histogram_quantile(0.95, sum by (adapter_type, le) (rate("
                     f"{sel('adapter_request_duration_seconds_bucket')}[$__rate_interval])))",
                     "{{adapter_type}} p95", "A"),
                prom("sum by (adapter_type) (rate("
                     f"{sel('adapter_request_duration_seconds_sum')}[$__rate_interval])) / "
                     "sum by (adapter_type) (rate("
                     f"{sel('adapter_request_duration_seconds_count')}[$__rate_interval]))",
                     "{{adapter_type}} avg", "B"),
            ], 12, 8, unit="s", options=LEGEND),
            Panel("Rate-limit hits per second by adapter", "timeseries", [prom(
                f"sum by (adapter_type) (rate({sel('adapter_rate_limit_hits_total')}"
                "[$__rate_interval]))", "{{adapter_type}}")], 12, 8, options=LEGEND),
        ]),
    ]


def label_variable(name: str, label: str, prom_label: str) -> dict[str, Any]:
    query = f"label_values(sync_jobs_by_integration_total, {prom_label})"
    return {"type": "query", "name": name, "label": label,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "query": {"query": query, "refId": f"{name}-values"}, "definition": query,
            "refresh": 2, "includeAll": True, "multi": True, "allValue": ".*",
            "current": {"text": ["All"], "value": ["$__all"]}, "sort": 1, "hide": 0,
            "regex": "", "options": []}


def prometheus_dashboard() -> dict[str, Any]:
    variables = [
        datasource_variable("prometheus", "Prometheus"),
        label_variable("tenant", "Tenant", "tenant_id"),
        label_variable("integration", "Integration", "integration_id"),
        label_variable("adapter", "Adapter", "adapter_type"),
        label_variable("entity", "Entity", "entity"),
    ]
    source = {"type": "prometheus", "uid": "${datasource}"}
    return dashboard(
        "intmon-prometheus", "Integration monitoring (Prometheus)",
        "The admin dashboard's five components from the seed's metrics as /metrics serves them.",
        variables, layout(prometheus_sections(), source))


def outputs() -> dict[Path, str]:
    return {path: json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
            for path, build in ((LOG_ANALYTICS, log_analytics_dashboard),
                                (PROMETHEUS, prometheus_dashboard))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when a file differs from what would be written")
    args = parser.parse_args(argv)
    return write_or_check(outputs(), args.check, __file__)


if __name__ == "__main__":
    sys.exit(main())
