"""One answer for every tenant, cut for each reader: the questions asked do not multiply
with the tenants whose readers look.

A reader's question is asked at every tenant's scope (as an admin's is), and the reader
gets the rows of their own tenants:

- questions whose rows each belong to one tenant (an integration, a job, an alert) are cut
  by the row's `tenantId`, for a reader of any number of tenants;
- questions that count or summarize are asked in their by-tenant form (`queries.by_tenant`),
  whose rows for one tenant are that tenant's answer; for a reader of one tenant only, since
  percentiles and distinct counts of several tenants cannot be added up from theirs.

A reader of several tenants' totals is asked at the reader's own scope, as before. A shared
answer that reached a question's row cap (`take 1000`) may lack a reader's rows. For a list
the endpoint trims to `limit` it is still exact when it holds `limit` of the reader's rows:
any row of theirs left out ranks below every row kept. Otherwise the reader's own question
is asked.
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
#: The largest `take` of the questions: an answer this long may have been cut short.
CAP = 1000
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
    tenants: frozenset[str]
    grouped: bool
    #: How many of the reader's rows the endpoint serves (None: all of them).
    served: int | None = None

    def cut(self, whole: Answer) -> Answer | None:
        """The reader's rows (API rows: dicts), or None when the whole may lack some."""
        rows: list[dict[str, Any]] = [row for row in whole.rows
                                      if row.get("tenantId") in self.tenants]
        if len(whole.rows) >= CAP and (self.served is None or len(rows) < self.served):
            return None
        columns = whole.columns
        if self.grouped:
            columns = [c for c in columns if c != "tenantId"]
            rows = [{k: v for k, v in row.items() if k != "tenantId"} for row in rows]
            name = self.question.removesuffix(queries.BY_TENANT)
            if not rows and name in _NOTHING:
                rows = [dict(_NOTHING[name])]
        return Answer(columns, rows, whole.partial)


def shared(name: str, f: Filters) -> Shared | None:
    """The shared question a reader's question is cut from; None: ask it as it is."""
    if f.tenants is None or not f.tenants:
        return None
    everyone = replace(f, tenants=None)
    if name in ROWS:
        served = f.limit if name in TRIMMED else None
        return Shared(name, everyone, frozenset(f.tenants), False, served)
    if name in GROUPED and len(f.tenants) == 1:
        return Shared(name + queries.BY_TENANT, everyone, frozenset(f.tenants), True)
    return None


def nothing_to_ask(name: str, f: Filters) -> bool:
    """Queues belong to no tenant: a reader's queue question answers nothing, unasked."""
    return name == "queue_depth_trend" and f.tenants is not None
