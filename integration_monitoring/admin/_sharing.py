"""One answer for every tenant, cut for each reader: the questions asked do not multiply
with the tenants whose readers look.

A reader's question is asked at every tenant's scope (as an admin's is), and the reader
gets the rows of their own tenants:

- questions whose rows each belong to one tenant (an integration, a job, an alert) are cut
  by the row's `tenantId`, for a reader of any number of tenants, and by its `adapterType`
  for anyone who filters by adapter;
- questions that count or summarize are asked in their by-tenant form (`queries.by_tenant`),
  whose rows for one tenant are that tenant's answer; for a reader of one tenant only, since
  percentiles and distinct counts of several tenants cannot be added up from theirs.

Counts and sums for several tenants (an admin's, or a reader's of several) add up from the
by-tenant rows (`SUMMED`), so an admin's totals cost no question of their own. Percentiles
and distinct counts do not add up: a reader of several tenants asks those at their own
scope. A shared
answer that reached a question's row cap (`take 1000`) may lack a reader's rows. For a list
the endpoint trims to `limit` it is still exact when it holds `limit` of the reader's rows:
any row of theirs left out ranks below every row kept. The latest jobs, a list of events
where one tenant's share of the latest thousand is small, are shared in their deeper
by-tenant form (ten times the rows). Otherwise the reader's own question is asked.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from .. import queries
from ._backends import Answer
from ._filters import Filters

#: Questions whose rows carry the tenant they belong to.
ROWS = frozenset({"integration_status", "top_integrations", "errors_by_integration",
                  "duration_by_integration", "running_jobs", "recent_jobs", "alerts"})
#: Of those, the lists an endpoint serves only the first `limit` rows of.
TRIMMED = frozenset({"top_integrations", "errors_by_integration", "duration_by_integration",
                     "running_jobs", "recent_jobs"})
#: Questions with a by-tenant form.
GROUPED = frozenset({"job_counts", "error_rate_trend", "record_totals", "throughput_trend",
                     "duration_trend", "top_error_types", "adapter_latency",
                     "stream_fingerprint"})
#: Of those, the lists shared in their deeper by-tenant form.
DEEP = frozenset({"recent_jobs"})
#: Questions whose answer for several tenants adds up from the by-tenant rows: the columns
#: that group the rows, the columns taken as the latest instead of summed, and the ratios
#: worked out again from the sums.
SUMMED: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "job_counts": (("status",), ()),
    "record_totals": ((), ()),
    "error_rate_trend": (("bucket",), ()),
    "throughput_trend": (("bucket",), ()),
    "stream_fingerprint": ((), ("latest",)),
}
#: A question that summarizes without groups answers one row even for no data; its
#: by-tenant form has no row for a tenant without data, so the reader gets this one.
_NOTHING = {
    "record_totals": {"jobs": 0, "completed": 0, "failed": 0, "recordsCreated": 0,
                      "recordsUpdated": 0, "recordsFailed": 0},
    "stream_fingerprint": {"events": 0, "latest": None},
}


@dataclass(frozen=True)
class Shared:
    """How to answer one reader from an answer for every tenant."""

    question: str
    filters: Filters
    #: The tenants whose rows are the reader's; None: every tenant's.
    tenants: frozenset[str] | None
    grouped: bool
    #: How many of the reader's rows the endpoint serves (None: all of them).
    served: int | None = None
    #: The tenants' rows are added up (`SUMMED`).
    summed: bool = False
    #: Only the rows of this adapter are the reader's ("": every adapter's).
    adapter: str = ""

    @property
    def cap(self) -> int | None:
        """The most rows the shared question answers (its `take`); None: every row."""
        return queries.cap(self.question)

    def cut(self, whole: Answer) -> Answer | None:
        """The reader's rows (API rows: dicts), or None when the whole may lack some; made
        once per shared answer and kept with it (every admin's totals are the same sums)."""
        key = (self.question, self.tenants, self.adapter, self.served)
        if key not in whole.cuts:
            whole.cuts[key] = self._cut(whole)
        return whole.cuts[key]

    def _cut(self, whole: Answer) -> Answer | None:
        rows: list[dict[str, Any]] = [
            row for row in whole.rows
            if (self.tenants is None or row.get("tenantId") in self.tenants)
            and (not self.adapter or row.get("adapterType") == self.adapter)]
        if (self.cap is not None and len(whole.rows) >= self.cap
                and (self.served is None or len(rows) < self.served)):
            return None
        columns = whole.columns
        if self.grouped:
            columns = [c for c in columns if c != "tenantId"]
            rows = [{k: v for k, v in row.items() if k != "tenantId"} for row in rows]
            name = self.question.removesuffix(queries.BY_TENANT)
            if self.summed:
                rows = _added(name, rows, self.filters)
            if not rows and name in _NOTHING:
                rows = [dict(_NOTHING[name])]
        return Answer(columns, rows, whole.partial)


def shared(name: str, f: Filters) -> Shared | None:
    """The shared question a question is cut from; None: ask it as it is."""
    if f.tenants is not None and not f.tenants:
        return None  # never scoped to a caller: answers nothing, asked as it is
    everyone = replace(f, tenants=None)
    mine = None if f.tenants is None else frozenset(f.tenants)
    if name in SUMMED and (mine is None or len(mine) > 1):
        return Shared(name + queries.BY_TENANT, everyone, mine, True, summed=True)
    if name in ROWS:
        adapter = f.adapter_type
        if mine is None and not adapter:
            return None  # an admin's own question is the shared one
        # rows carry their adapter too: every adapter's answer serves the filtered ones
        whole = replace(everyone, adapter_type="")
        served = f.limit if name in TRIMMED else None
        if name in DEEP and mine is not None:
            return Shared(name + queries.BY_TENANT, whole, mine, False, served,
                          adapter=adapter)
        return Shared(name, whole, mine, False, served, adapter=adapter)
    if name in GROUPED and mine is not None and len(mine) == 1:
        return Shared(name + queries.BY_TENANT, everyone, mine, True)
    return None


def _added(name: str, rows: list[dict[str, Any]], f: Filters) -> list[dict[str, Any]]:
    """The tenants' rows of a `SUMMED` question added up into the rows for all of them."""
    keys, latest = SUMMED[name]
    totals: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        group = tuple(row.get(k) for k in keys)
        total = totals.get(group)
        if total is None:
            totals[group] = dict(row)
            continue
        for column, value in row.items():
            if column in keys or value is None:
                continue
            if total[column] is None:
                total[column] = value
            elif column in latest:
                total[column] = max(total[column], value)
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                total[column] += value
    added = [totals[group] for group in sorted(totals, key=lambda g: [str(v) for v in g])]
    for row in added:
        if "failureRate" in row:
            row["failureRate"] = round(100.0 * row["failed"] / row["finished"], 2) \
                if row["finished"] else None
        if "recordsPerSecond" in row:
            seconds = f.bucket.total_seconds()
            row["recordsPerSecond"] = None if row["records"] is None else round(
                row["records"] / seconds, 3)
    return added


def nothing_to_ask(name: str, f: Filters) -> bool:
    """Queues belong to no tenant: a reader's queue question answers nothing, unasked."""
    return name == "queue_depth_trend" and f.tenants is not None
