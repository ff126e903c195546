"""KQL literals and the query files: nothing escapes a literal; every file runs."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integration_monitoring import queries
from integration_monitoring.admin import parse_filters
from integration_monitoring.queries import LiteralError, kql_literal, kql_string, prelude
from integration_monitoring.store import TelemetryStore


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = TelemetryStore(tmp_path_factory.mktemp("q") / "q.duckdb")
    store.append("AppTraces", [{"TimeGenerated": dt.datetime(2026, 1, 1), "Message": "m",
                                "Properties": '{"error": "x"}'}])
    yield store
    store.close()


allowed_text = st.text(alphabet=st.characters(
    blacklist_categories=("Cs",),
    blacklist_characters="".join(map(chr, [*range(0, 9), 11, 12, *range(14, 32), 127]))),
    max_size=60)
hostile = st.sampled_from(['"', "\\", '\\"', "|", "//", "\n", "'", '" | take 0 //',
                           "let x = 1;", '"; AppTraces | count //', "\r\n\t", "@\"", "é☃"])


@settings(max_examples=300, deadline=None)
@given(text=st.lists(st.one_of(allowed_text, hostile), max_size=5).map("".join))
def test_no_string_escapes_its_literal(store, text):
    """Any allowed string, however hostile, comes back from KQL exactly as it went in."""
    literal = kql_string(text)
    rows = store.kql(f"print v = {literal}, n = 1").rows
    assert rows == [(text, 1)]
    matched = store.kql(f'let _q = {literal};\nAppTraces | where Message == _q | count').rows
    assert matched == [(1 if text == "m" else 0,)]


@pytest.mark.parametrize("bad", ["\x00", "a\x07b", "\x1b[31m", "\x7f"])
def test_control_characters_are_refused(bad):
    """Control characters other than tab and newlines cannot be literals."""
    with pytest.raises(LiteralError):
        kql_string(bad)


def test_literals_of_every_kind_round_trip(store):
    """Datetimes, timespans, numbers and booleans reach KQL as the same values."""
    values = {"_t": dt.datetime(2026, 3, 10, 12, 0, 0, 123456, tzinfo=dt.UTC),
              "_s": dt.timedelta(minutes=15), "_n": 1000, "_r": 2.5, "_b": True, "_x": "a\"b"}
    text = prelude(values) + "print t = _t, s = _s, n = _n, r = _r, b = _b, x = _x"
    assert store.kql(text).rows == [(dt.datetime(2026, 3, 10, 12, 0, 0, 123456),
                                     dt.timedelta(minutes=15), 1000, 2.5, True, 'a"b')]
    with pytest.raises(LiteralError):
        kql_literal(float("nan"))
    with pytest.raises(LiteralError):
        prelude({"bad name": 1})


@pytest.mark.parametrize("name", queries.names())
def test_every_query_file_runs_on_the_local_engine(store, name):
    """Each question renders with the prelude and runs (filters on TimeGenerated first)."""
    filters = parse_filters("sync-activity", {"until": "2026-01-02T00:00:00Z", "status": "failed",
                                       "tenantId": "t", "q": 'x"|y'})
    store.kql(queries.render(name, filters.values()))
    store.kql(queries.render(name, replace(filters, tenants=("t", "u")).values()))
    body = queries.text(name)
    reads_a_view = any(view in body for view in ("InRange", "Jobs", "LabelledMetrics"))
    assert reads_a_view or "| where TimeGenerated between" in body


def test_unknown_query_names_are_refused():
    """Only files in the queries folder can be rendered."""
    for name in ("../secrets", "nope", "_common;"):
        with pytest.raises(KeyError):
            queries.text(name)


@pytest.mark.parametrize("name", queries.names())
def test_bound_values_answer_as_written_ones(store, name):
    """Each question with its values bound as parameters (as the local engine runs it)
    answers exactly what the text with the values written as literals answers, hostile
    strings and every scope included; the text itself does not change with the values."""
    odd = ['{"tenantId": "t", "integrationId": "i.1:a@b/c", "adapterType": "a", '
           '"error": "x\\"|y", "duration": 5, "recordCount": 2}',
           # values of other JSON types than the usual, and keys missing
           '{"tenantId": "t", "integrationId": "i2", "duration": "7.5", "recordCount": "12", '
           '"recordsCreated": 1.9, "status": {"nested": true}, "attempt": null}',
           '{"tenantId": "u", "integrationId": "i3", "recordCount": [1, 2], "duration": true}',
           '{"tenantId": "u", "integrationId": "i4", "recordsFailed": " 12 ", "duration": '
           '"1e3", "recordsUpdated": "-0", "recordCount": "9223372036854775808", '
           '"attempt": "2.5", "recordsCreated": "abc"}',
           '{}', '[1, 2]']
    store.append("AppTraces", [
        {"TimeGenerated": dt.datetime(2026, 1, 1, 12, n), "Message": message,
         "SeverityLevel": 3, "Properties": properties, "OperationId": f"op{n % 3}"}
        for n, (message, properties) in enumerate(
            (m, p) for m in ("sync.failed", "sync.completed", "sync.started",
                             "integration.status_changed") for p in odd)])
    texts = set()
    for params, tenants in [({}, None), ({"tenantId": "t", "q": 'x"|y'}, ("t", "u")),
                            ({"integrationId": "i.1:a@b/c", "status": "failed"}, None),
                            ({"q": "' | take 0 //"}, ())]:
        filters = parse_filters("sync-activity", {"until": "2026-01-02T00:00:00Z", **params})
        values = replace(filters, tenants=tenants).values()
        text, bound = queries.parameterized(name, values)
        texts.add(text.split("\n", 1)[0])
        # (repr: NaN equals itself there)
        assert repr(store.kql(text, parameters=bound).rows) == repr(store.kql(
            queries.render(name, values)).rows)
    assert len(texts) == 1
    # and it reads the kept columns instead of parsing JSON, converting them in place
    assert '"_kept_' in store.translation(text)
    assert 'list_transform(["_kept_' not in store.translation(text)
    assert """coalesce("_kept_""" not in store.translation(text)  # its text is kept too


def test_a_store_written_before_keys_were_kept_is_brought_up_to_date(tmp_path):
    """A file whose tables hold the rows themselves (as files written before had them)
    opens with every row, answers as before, and shows the workspace's columns only."""
    import duckdb

    from integration_monitoring.store import TABLES

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute('CREATE TABLE "AppTraces" ("TimeGenerated" TIMESTAMP, "Message" VARCHAR, '
                '"Properties" JSON)')
    con.execute("""INSERT INTO "AppTraces" VALUES ('2026-01-01 12:00:00', 'sync.completed',
                   '{"tenantId": "t", "integrationId": "i", "recordCount": 4}')""")
    con.close()
    # an old file's table has the columns it was made with; give it the rest
    con = duckdb.connect(str(path))
    have = {r[0] for r in con.execute("DESCRIBE \"AppTraces\"").fetchall()}
    for name, kind in TABLES["AppTraces"]:
        if name not in have:
            con.execute(f'ALTER TABLE "AppTraces" ADD COLUMN "{name}" '
                        f'{"TIMESTAMP" if kind == "datetime" else "VARCHAR"}')
    con.close()
    store = TelemetryStore(path)
    try:
        values = parse_filters("stats", {"until": "2026-01-02T00:00:00Z"})
        values = replace(values, tenants=None).values()
        text, bound = queries.parameterized("record_totals", values)
        assert store.kql(text, parameters=bound).rows[0][0] == 1
        assert store.kql(text, parameters=bound).rows == store.kql(
            queries.render("record_totals", values)).rows
        columns = [row[0] for row in store.sql('DESCRIBE "AppTraces"')]
        assert sorted(columns) == sorted(name for name, _ in TABLES["AppTraces"])
    finally:
        store.close()


def test_a_store_that_kept_keys_but_not_their_text_gains_it(tmp_path):
    """A file from before the kept values' text was kept too: opening it adds and fills the
    text, and the questions read it and answer as the JSON does."""
    import duckdb

    from integration_monitoring.store._schema import KEPT_KEYS

    path = tmp_path / "kept.duckdb"
    store = TelemetryStore(path)
    store.append("AppTraces", [{"TimeGenerated": dt.datetime(2026, 1, 1, 12), "Message":
                                "sync.completed", "Properties": '{"tenantId": "t", '
                                '"integrationId": 7, "adapterType": null, "recordCount": 4}'}])
    store.close()
    con = duckdb.connect(str(path))
    for key in KEPT_KEYS:
        con.execute(f'ALTER TABLE "_AppTraces" DROP COLUMN "_text_{key}"')
    con.close()
    store = TelemetryStore(path)
    try:
        texts = store.sql('SELECT "_text_tenantId", "_text_integrationId", '
                          '"_text_adapterType", "_text_entity" FROM "_AppTraces"')
        assert texts == [("t", "7", "", "")]
        values = replace(parse_filters("stats", {"until": "2026-01-02T00:00:00Z"}),
                         tenants=None).values()
        text, bound = queries.parameterized("top_integrations", values)
        assert '"_text_' in store.translation(text)
        assert store.kql(text, parameters=bound).rows == store.kql(
            queries.render("top_integrations", values)).rows
    finally:
        store.close()


def test_a_key_a_table_no_longer_keeps_leaves_the_file(tmp_path):
    """Metrics keep only their labels: an older file's metric columns for trace keys are
    dropped when it opens (a column no longer written would go stale), and the metric
    questions still read the labels kept."""
    import duckdb

    path = tmp_path / "wide.duckdb"
    TelemetryStore(path).close()
    con = duckdb.connect(str(path))
    con.execute('ALTER TABLE "_AppMetrics" ADD COLUMN "_kept_duration" JSON')
    con.execute('ALTER TABLE "_AppMetrics" ADD COLUMN "_text_duration" VARCHAR')
    con.close()
    store = TelemetryStore(path)
    try:
        columns = {row[0] for row in store.sql('DESCRIBE "_AppMetrics"')}
        assert not {"_kept_duration", "_text_duration"} & columns
        assert {"_kept_queue", "_text_tenant_id"} <= columns
        store.append("AppMetrics", [{"TimeGenerated": dt.datetime(2026, 1, 1, 12),
                                     "Name": "queue_depth", "Sum": 3.0, "ItemCount": 1,
                                     "Properties": '{"queue": "sync-jobs"}'}])
        values = replace(parse_filters("performance", {"until": "2026-01-02T00:00:00Z"}),
                         tenants=None).values()
        text, bound = queries.parameterized("queue_depth_trend", values)
        assert '"_kept_queue"' in store.translation(text) or '"_text_queue"' in \
            store.translation(text)
        assert store.kql(text, parameters=bound).rows == store.kql(
            queries.render("queue_depth_trend", values)).rows
    finally:
        store.close()
