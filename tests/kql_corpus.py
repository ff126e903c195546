"""Every KQL text the project sends to Log Analytics or ships for people to run, as sent.

Each source is read where it lives, so a new question, rule, tile, panel or snippet joins
the corpus by itself:
- the admin API: each endpoint's questions as `AdminService` renders them (a backend that
  records what it is asked), for parameter sets that set every filter and every status, for
  an admin and a tenant-scoped reader, plus the live stream's fingerprint, and the daily
  restatement's two questions;
- the alert rules, as `alert-rules.bicep` joins their lines;
- the workbook's tiles, as `workbook.bicep` builds them and Workbooks substitutes them;
- the Grafana panels, with the data source's macros substituted both ways Grafana writes them;
- every `kql` or `kusto` fenced block in the README, `docs/` and the runbooks.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Iterator

import tree_sitter
import tree_sitter_bicep

from integration_monitoring import Telemetry
from integration_monitoring.admin._backends import Answer, TextBackend
from integration_monitoring.admin._filters import ENDPOINTS, parse_filters
from integration_monitoring.admin._restatement import Restatements, restate_integrations
from integration_monitoring.admin._service import AdminService
from integration_monitoring.alerts import RULES_FILE, RUNBOOKS

from .helpers import ROOT

NOW = dt.datetime(2026, 3, 4, 12, 0, 7, tzinfo=dt.UTC)
#: Values chosen to be awkward in a KQL string literal.
AWKWARD_Q = 'say "hi" \\ it\'s | take 1 // \\" \\\\'
EVERY_FILTER = {"tenantId": "tenant-7", "integrationId": "int-7.a:b@c/d",
                "adapterType": "salesforce", "entity": "Contact"}
EXPLICIT_RANGE = {"since": "2026-03-01T00:00:00Z", "until": "2026-03-03T06:30:00Z"}
SCOPES = {"admin": None, "reader": ("tenant-7", "tenant-8"),
          "one-tenant reader": ("tenant-7",)}
FENCE = re.compile(r"^```(?:kql|kusto)[ \t]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


class RecordingBackend(TextBackend):
    """Answers every query with no rows and keeps the text it was asked."""

    name = "recording"

    def __init__(self) -> None:
        self.texts: list[str] = []

    def query(self, kql: str, since: dt.datetime, until: dt.datetime) -> Answer:
        self.texts.append(kql)
        return Answer([], [])


def parameter_sets(endpoint: str) -> Iterator[dict[str, str]]:
    """No parameters; every filter the endpoint takes with each of its statuses (and none);
    every filter over an explicit range."""
    spec = ENDPOINTS[endpoint]
    yield {}
    everything = {k: v for k, v in EVERY_FILTER.items() if k in spec.allowed}
    if "q" in spec.allowed:
        everything["q"] = AWKWARD_Q
    for status in ("", *spec.statuses):
        yield {**everything, **({"status": status} if status else {})}
    yield {**everything, **EXPLICIT_RANGE}


def admin_texts() -> Iterator[tuple[str, str]]:
    for endpoint in ENDPOINTS:
        for number, params in enumerate(parameter_sets(endpoint)):
            parsed = parse_filters(endpoint, params, now=NOW)
            for scope, tenants in SCOPES.items():
                backend = RecordingBackend()
                service = AdminService(backend, parallel=1)
                filters = dataclasses.replace(parsed, tenants=tenants)
                if endpoint == "stream":
                    service.run("stream_fingerprint", filters)
                else:
                    getattr(service, endpoint.replace("-", "_"))(filters)
                for text in backend.texts:
                    yield f"api {endpoint} #{number} {scope}", text
    # the daily restatement: where it reads back to, and what it asks
    backend = RecordingBackend()
    restate_integrations(backend, Restatements(backend, now=lambda: NOW),
                         telemetry=Telemetry(stdout=False), now=NOW)
    for text in backend.texts:
        yield "restatement job", text


def alert_rule_texts() -> Iterator[tuple[str, str]]:
    rules = json.loads(RULES_FILE.read_text())["rules"]
    for rule in rules:
        yield f"alert rule {rule['id']}", "\n".join(rule["query"])  # join(rule.query, '\n')


def workbook_texts() -> Iterator[tuple[str, str]]:
    from .test_infra import TILES, as_workbook, tile_text, workbook_parts

    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_bicep.language()))
    prelude, common, files = workbook_parts(parser)
    cases = [{}, {"Tenant": "tenant-7", "Integration": "int-7", "Adapter": "hubspot",
                  "Entity": "Deal", "Search": AWKWARD_Q, "HealthStatus": "stale",
                  "JobStatus": "failed", "AlertState": "active"}]
    since, until = NOW - dt.timedelta(days=2), NOW
    for tile in TILES:
        for number, case in enumerate(cases):
            status = as_workbook(tile["status"], since, until, dt.timedelta(minutes=30), case)
            text = (prelude + f'let _status = "{status}";\n' + common.read_text()
                    + tile_text(files, tile["query"]))
            yield (f"workbook tile {tile['title']!r} #{number}",
                   as_workbook(text, since, until, dt.timedelta(minutes=30), case))


def grafana_texts() -> Iterator[tuple[str, str]]:
    from .test_grafana_dashboards import grafana_interpolate, kql_targets

    variables = [dict.fromkeys(("tenant", "integration", "adapter", "entity", "status", "q"), ""),
                 {"tenant": "tenant-7", "integration": "int-7", "adapter": "hubspot",
                  "entity": "Deal", "status": "degraded", "q": AWKWARD_Q}]
    for title, target in kql_targets():
        query = target["azureLogAnalytics"]["query"]
        for number, values in enumerate(variables):
            for style in ("backend", "frontend"):
                yield (f"grafana panel {title!r} #{number} {style}",
                       grafana_interpolate(query, NOW - dt.timedelta(hours=6), NOW,
                                           dt.timedelta(minutes=5), values, style))


def document_texts() -> Iterator[tuple[str, str]]:
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")),
                 *sorted(RUNBOOKS.glob("*.md"))]:
        for number, match in enumerate(FENCE.finditer(path.read_text())):
            yield f"{path.relative_to(ROOT)} block {number + 1}", match.group(1)


SOURCES = {"admin API": admin_texts, "alert rules": alert_rule_texts,
           "workbook": workbook_texts, "grafana": grafana_texts, "docs": document_texts}


def corpus() -> dict[str, list[tuple[str, str]]]:
    """Source -> [(label, text)], each distinct text once per source."""
    found: dict[str, list[tuple[str, str]]] = {}
    for source, texts in SOURCES.items():
        seen: dict[str, str] = {}
        for label, text in texts():
            seen.setdefault(text, label)
        found[source] = [(label, text) for text, label in seen.items()]
    return found
