"""Every KQL text the project sends or ships passes Microsoft's Kusto.Language, given the
workspace's real tables, with Log Analytics' own refusals added (tests/kusto.py).

duckdb-kql runs more than Log Analytics does, so it is never the judge of a query: these
tests are. The texts are gathered where they live (tests/kql_corpus.py).
"""

from __future__ import annotations

import pytest

from integration_monitoring import queries
from integration_monitoring.store._schema import TABLES

from . import kql_corpus
from .kusto import WORKSPACE_TABLES, KustoAnalyser, shared_analyser


@pytest.fixture(scope="module")
def kusto() -> KustoAnalyser:
    return shared_analyser()


@pytest.fixture(scope="module")
def corpus() -> dict[str, list[tuple[str, str]]]:
    return kql_corpus.corpus()


def test_the_analysers_tables_are_the_local_stores():
    """The columns Kusto.Language is given are the ones the local store creates, in order."""
    assert WORKSPACE_TABLES == TABLES


@pytest.mark.parametrize(("text", "code"), [
    ("AppTraces | where NoSuchColumn == 1", "KS142"),
    ("AppTraces | summarize by bin(TimeGenerated 5m)", "KS005"),
    ("AppTraces | where SeverityLevel has 3 and Message > now()", "KS106"),
    ("let V = (T:(*)) { T | project-away TenantId }; V(AppTraces)", "KS142"),
    ('AppTraces | extend at = ingestion_time()', "LogAnalytics"),
    ('cluster("other").database("db").AppTraces | take 1', "LogAnalytics"),
    ("AppTraces | summarize last = max(TimeGenerated)", "KS228"),
], ids=["unknown column", "syntax", "types", "open tabular parameter", "ingestion_time",
        "cross cluster", "keyword as name"])
def test_the_analyser_refuses_what_log_analytics_refuses(kusto, text, code):
    """A control: each kind of defect is an error, so an empty list below means something."""
    assert code in {error.code for error in kusto.errors(text)}, kusto.diagnostics(text)


def test_the_analyser_accepts_what_log_analytics_runs(kusto):
    text = ("let Scoped = (T:(TenantId:string, Properties:dynamic)) { T | project-away TenantId"
            " | extend tenantId = tostring(Properties.tenantId) };\n"
            "AppTraces | invoke Scoped() | summarize count() by bin(TimeGenerated, 5m), "
            "tenantId, Message")
    assert kusto.errors(text) == []


def test_the_corpus_holds_every_question_rule_tile_panel_and_snippet(corpus):
    """Nothing is kept by hand: each source contributes every item it has."""
    admin = "\n".join(text for _, text in corpus["admin API"])
    for name in queries.names():
        # a question whose every answer adds up from its by-tenant form is sent only so
        sent = [form for form in (name, name + queries.BY_TENANT)
                if form in queries.forms() and queries.text(form) in admin]
        assert sent, f"the admin API never sent {name}"
    rules = {label for label, _ in corpus["alert rules"]}
    assert len(rules) == len(list(kql_corpus.alert_rule_texts()))
    tiles = {label.rsplit(" #", 1)[0] for label, _ in corpus["workbook"]}
    assert len(tiles) >= len({t["title"] for t in _tiles()})
    assert len(corpus["grafana"]) >= len(list(kql_corpus.grafana_texts())) // 2
    blocks = {label.split(" block")[0] for label, _ in corpus["docs"]}
    assert any(path.startswith("integration_monitoring/alerts/runbooks/") for path in blocks)


def _tiles():
    from .test_infra import TILES

    return TILES


@pytest.mark.parametrize("source", list(kql_corpus.SOURCES))
def test_every_kql_text_passes_kusto(kusto, corpus, source, record_property):
    """No error from Kusto.Language in any text of the source, as it is sent."""
    texts = corpus[source]
    assert texts, f"no KQL found in the {source}"
    failures = [f"{label}: {error.describe(text)}"
                for label, text in texts for error in kusto.errors(text)]
    record_property("kql_texts_analysed", (source, len(texts)))
    assert not failures, "\n".join(failures[:20])
