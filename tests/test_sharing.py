"""A reader's answer cut from the answer for every tenant is the answer to the reader's own
question: for every shared question, every tenant, with filters, on the demo's telemetry."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from integration_monitoring import queries
from integration_monitoring.admin import AdminService, Answer, LocalBackend, parse_filters
from integration_monitoring.admin._service import _json
from integration_monitoring.admin._sharing import (
    DEEP,
    GROUPED,
    ROWS,
    SUMMED,
    TRIMMED,
    shared,
)

NOW = dt.datetime(2026, 3, 4, 12, 0, tzinfo=dt.UTC)
CAP = queries.cap("top_integrations")  # the lists' `take`


@pytest.fixture(scope="module")
def store(demo_store):
    return demo_store(6, now=NOW, tenants=5, integrations=15, seed=11)


class Counting(LocalBackend):
    def __init__(self, store):
        super().__init__(store)
        self.asked: list[str] = []

    def ask(self, name, values):
        self.asked.append(name)
        return super().ask(name, values)


def own(backend, name, f):
    """The reader's own question, asked at the reader's scope, as the API serves rows."""
    answer = backend.ask(name, f.values())
    return [{k: _json(v) for k, v in row.items()} for row in answer.dicts()]


def tenants_of(store):
    return sorted(r[0] for r in store.sql(
        """SELECT DISTINCT json_extract_string("Properties", '$.tenantId') FROM "AppTraces"
           WHERE json_extract_string("Properties", '$.tenantId') IS NOT NULL"""))


@pytest.mark.parametrize("name", sorted(ROWS | GROUPED))
@pytest.mark.parametrize("params", [{}, {"adapterType": "salesforce", "window": "2h"},
                                    {"status": "failed"}])
def test_a_reader_cut_from_everyone_gets_their_own_answer(store, name, params):
    backend = Counting(store)
    service = AdminService(backend)
    tenants = tenants_of(store)
    assert len(tenants) >= 3
    endpoint = "sync-activity" if "status" in params else "stats"
    base = parse_filters(endpoint, {"until": NOW.isoformat(), **params}, now=NOW)
    readers = [(t,) for t in tenants] + [tuple(tenants[:2]), tuple(tenants[1:]),
                                         ("no-such-tenant",), None]
    compared_rows = 0
    for scope in readers:
        f = replace(base, tenants=scope)
        mine = service.run(name, f).rows
        theirs = own(backend, name, f)
        if name in TRIMMED:  # the endpoint serves the first `limit`
            mine, theirs = mine[: f.limit], theirs[: f.limit]
        if name in ROWS or (scope is not None and len(scope) == 1):
            assert repr(mine) == repr(theirs), (name, scope)
        elif name in SUMMED:  # added up from the tenants' rows; ratios worked out again
            assert same_sums(mine, theirs), (name, scope, mine, theirs)
        compared_rows += len(theirs)
    # (a backfill leaves no job running, and fires no alert)
    assert compared_rows > 0 or params or name in ("alerts", "running_jobs"), \
        "the case should compare rows"
    # every single-tenant reader shared one question
    shared = [a for a in backend.asked if a in (name, name + queries.BY_TENANT)]
    assert shared.count(name + queries.BY_TENANT if name in GROUPED | DEEP else name) >= 1


def same_sums(mine, theirs):
    """Rows equal, but for ratios within their rounding (Python's and the engine's may
    round a half differently)."""
    if [set(row) for row in mine] != [set(row) for row in theirs]:
        return False
    for a, b in zip(mine, theirs, strict=True):
        for key, value in a.items():
            other = b[key]
            if key in ("failureRate", "recordsPerSecond") and None not in (value, other):
                if abs(value - other) > 0.0011:
                    return False
            elif value != other and not (value in (None, 0) and other in (None, 0)):
                return False
    return True


def test_an_admins_totals_cost_no_question_of_their_own():
    """An admin's counts and sums are added up from the by-tenant answer the readers share:
    admins and readers of a window ask each of those once between them."""
    from tests.test_fairness import CountingBackend

    backend = CountingBackend()
    service = AdminService(backend)
    base = parse_filters("stats", {"until": NOW.isoformat()}, now=NOW)
    for scope in [None, ("tenant-1",), ("tenant-1", "tenant-2"), ("tenant-3",)]:
        for name in SUMMED:
            service.run(name, replace(base, tenants=scope))
    assert len(backend.texts) == len(SUMMED)


def test_readers_of_any_number_of_tenants_ask_once_per_question():
    """Fifty single-tenant readers of one window ask each shared question once."""
    from tests.test_fairness import CountingBackend

    backend = CountingBackend()
    service = AdminService(backend)
    base = parse_filters("stats", {"until": NOW.isoformat()}, now=NOW)
    for n in range(50):
        service.stats(replace(base, tenants=(f"tenant-{n}",)))
    assert len(backend.texts) == 4


def test_a_capped_list_serves_a_reader_only_when_it_holds_what_is_served():
    """The shared list reached its cap: a reader with `limit` rows in it is served from it
    (any row of theirs left out ranks below all of these); one with fewer asks their own."""
    f = replace(parse_filters("sync-activity", {"until": NOW.isoformat(), "limit": "3"},
                              now=NOW), tenants=("busy",))
    plan = shared("recent_jobs", f)
    assert plan.question == "recent_jobs.by_tenant" and plan.cap == 10 * CAP  # the deeper list
    rows = [{"tenantId": "busy" if n % 10 == 0 else "other", "n": n} for n in range(plan.cap)]
    mine = plan.cut(Answer(["tenantId", "n"], rows))
    assert [row["n"] for row in mine.rows][:3] == [0, 10, 20]
    quiet = replace(f, tenants=("quiet",))
    assert shared("recent_jobs", quiet).cut(Answer(["tenantId", "n"], rows)) is None
    # below the cap the list holds everything: exact for everyone
    assert shared("recent_jobs", quiet).cut(Answer(["tenantId", "n"], rows[:10])).rows == []
    # a list of integrations is shared as it is, capped at its own `take`
    top = shared("top_integrations", replace(f, limit=3))
    assert (top.question, top.cap) == ("top_integrations", CAP)
    assert top.cut(Answer(["tenantId", "n"], rows[:CAP])).rows[:3] == mine.rows[:3]
    assert shared("top_integrations", quiet).cut(Answer(["tenantId", "n"], rows[:CAP])) is None


def test_a_long_answer_without_a_cap_serves_everyone():
    """A by-tenant trend has a row per bucket and tenant, thousands of them, and no `take`:
    nothing is left out of it, so it serves every reader and every admin however long."""
    f = parse_filters("stats", {"until": NOW.isoformat()}, now=NOW)
    assert queries.cap("error_rate_trend.by_tenant") is None
    rows = [{"tenantId": f"t{n % 50}", "bucket": f"b{n // 50:03d}", "finished": 2, "failed": 1,
             "failureRate": 50.0} for n in range(50 * 97)]
    whole = Answer(["tenantId", "bucket", "finished", "failed", "failureRate"], rows)
    reader = shared("error_rate_trend", replace(f, tenants=("t7",))).cut(whole)
    assert len(reader.rows) == 97 and "tenantId" not in reader.rows[0]
    admin = shared("error_rate_trend", replace(f, tenants=None)).cut(whole)
    assert len(admin.rows) == 97
    assert admin.rows[0] == {"bucket": "b000", "finished": 100, "failed": 50,
                             "failureRate": 50.0}
    # the alerts serve every row (the active ones): a capped list never serves a reader
    alerts = replace(parse_filters("alerts", {"until": NOW.isoformat(), "limit": "3"},
                                   now=NOW), tenants=("busy",))
    assert shared("alerts", alerts).cut(Answer(["tenantId", "n"], rows)) is None


def test_each_readers_cut_is_made_once_per_shared_answer(store):
    """An admin's sums and a reader's rows are worked out once per shared answer: the next
    caller with the same scope gets the same rows, and another scope its own."""
    service = AdminService(LocalBackend(store))
    base = parse_filters("stats", {"until": NOW.isoformat()}, now=NOW)
    admin = replace(base, tenants=None)
    reader = replace(base, tenants=("tenant-1", "tenant-2"))
    first, again = (service.run("error_rate_trend", admin) for _ in range(2))
    assert again is first and first.rows
    mine = service.run("error_rate_trend", reader)
    assert mine is not first and mine.rows != first.rows
    assert service.run("error_rate_trend", reader) is mine
