"""The admin endpoints' answers, composed from one KQL file per question."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from .. import queries
from ._backends import Answer, Backend
from ._cache import SharedQueries
from ._filters import Filters

#: Application Insights keeps no histogram buckets, so adapter latency is an average and a
#: maximum; sync durations come from per-job events and do have percentiles.
LATENCY_NOTE = ("Adapter latency comes from adapter_request_duration_seconds, which "
                "Application Insights stores as sum, count, min and max per export interval "
                "(no buckets): avgMs is request-weighted, maxMs is the slowest request. Sync "
                "duration percentiles (p95Ms) are computed from the per-job events.")


class AdminService:
    def __init__(self, backend: Backend, cache: SharedQueries | None = None) -> None:
        self.backend = backend
        self.cache = cache or SharedQueries()

    # -- endpoints ------------------------------------------------------------------------

    def stats(self, f: Filters) -> dict[str, Any]:
        out = self._envelope(f)
        integrations = self._rows(out, "integration_status", f)
        jobs = {row["status"]: row["jobs"] for row in self._rows(out, "job_counts", f)}
        by_status = {s: jobs.get(s, 0) for s in ("pending", "processing", "completed", "failed")}
        finished = by_status["completed"] + by_status["failed"]
        out["integrations"] = _summary(integrations)
        out["syncJobs"] = {"byStatus": by_status, "finished": finished,
                           "failureRate": _rate(by_status["failed"], finished)}
        out["topIntegrations"] = self._rows(out, "top_integrations", f)[: f.limit]
        out["errorRateTrend"] = _fill(self._rows(out, "error_rate_trend", f), f,
                                      {"finished": 0, "failed": 0, "failureRate": 0.0})
        return out

    def health(self, f: Filters) -> dict[str, Any]:
        out = self._envelope(f)
        rows = self._rows(out, "integration_status", f)
        out["summary"] = _summary(rows)
        out["integrations"] = rows
        return out

    def sync_activity(self, f: Filters) -> dict[str, Any]:
        out = self._envelope(f)
        out["running"] = [] if f.status in ("completed", "failed") else self._rows(
            out, "running_jobs", f)[: f.limit]
        out["recent"] = [] if f.status == "running" else self._rows(
            out, "recent_jobs", f)[: f.limit]
        totals = self._rows(out, "record_totals", f)
        out["records"] = _totals(totals[0] if totals else {})
        out["durationTrend"] = self._rows(out, "duration_trend", f)
        return out

    def errors(self, f: Filters) -> dict[str, Any]:
        out = self._envelope(f)
        out["byIntegration"] = self._rows(out, "errors_by_integration", f)[: f.limit]
        out["errorRateTrend"] = _fill(self._rows(out, "error_rate_trend", f), f,
                                      {"finished": 0, "failed": 0, "failureRate": 0.0})
        out["topErrorTypes"] = self._rows(out, "top_error_types", f)[: f.limit]
        failed = Filters(**{**f.__dict__, "status": "failed"})
        out["failedJobs"] = self._rows(out, "recent_jobs", failed)[: f.limit]
        return out

    def performance(self, f: Filters) -> dict[str, Any]:
        out = self._envelope(f)
        out["durationByIntegration"] = self._rows(out, "duration_by_integration", f)[: f.limit]
        trend = _fill(self._rows(out, "throughput_trend", f), f,
                      {"records": 0, "jobs": 0, "recordsPerSecond": 0.0})
        records = sum(point["records"] or 0 for point in trend)
        out["recordsPerSecond"] = round(records / (f.until - f.since).total_seconds(), 3)
        out["throughputTrend"] = trend
        out["queueDepthTrend"] = self._rows(out, "queue_depth_trend", f)
        out["apiLatencyByAdapter"] = self._rows(out, "adapter_latency", f)
        out["latencyNote"] = LATENCY_NOTE
        return out

    # -- plumbing -------------------------------------------------------------------------

    def _envelope(self, f: Filters) -> dict[str, Any]:
        return {"window": _json(f.describe()), "backend": self.backend.name, "partial": False,
                "partialReasons": []}

    def _rows(self, out: dict[str, Any], name: str, f: Filters) -> list[dict[str, Any]]:
        answer = self.run(name, f)
        if answer.partial:
            out["partial"] = True
            out["partialReasons"].extend(f"{name}: {reason}" for reason in answer.partial)
        return [{key: _json(value) for key, value in row.items()} for row in answer.dicts()]

    def run(self, name: str, f: Filters) -> Answer:
        """One question, shared with identical requests within the cache's TTL."""
        values = f.values()
        key = (name, tuple(sorted((k, str(v)) for k, v in values.items())))
        text = queries.render(name, values)
        return self.cache.get(key, lambda: self.backend.query(
            text, values["_lookback_since"], f.until))


def _summary(integrations: list[dict[str, Any]]) -> dict[str, Any]:
    by_status = {status: 0 for status in ("active", "paused", "error")}
    by_health = {h: 0 for h in ("healthy", "degraded", "failing", "stale", "paused")}
    for row in integrations:
        by_status[row["status"]] = by_status.get(row["status"], 0) + 1
        by_health[row["health"]] = by_health.get(row["health"], 0) + 1
    return {"total": len(integrations), "byStatus": by_status, "byHealth": by_health}


def _totals(row: dict[str, Any]) -> dict[str, int]:
    return {key: int(row.get(key) or 0) for key in (
        "jobs", "completed", "failed", "recordsCreated", "recordsUpdated", "recordsFailed")}


def _rate(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


def _fill(points: list[dict[str, Any]], f: Filters,
          empty: dict[str, Any]) -> list[dict[str, Any]]:
    """Every bucket of the range, with zeros where nothing happened (KQL has no gaps filled
    by `summarize`, and make-series is not portable to the local engine)."""
    by_bucket = {point["bucket"]: point for point in points}
    step = f.bucket.total_seconds()
    first = math.floor(f.since.timestamp() / step) * step
    filled = []
    moment = first
    while moment < f.until.timestamp():
        stamp = _json(dt.datetime.fromtimestamp(moment, dt.UTC))
        filled.append(by_bucket.get(stamp, {"bucket": stamp, **empty}))
        moment += step
    return filled


def _json(value: Any) -> Any:
    """Values as the API serves them: UTC ISO times with a Z, no NaN, plain numbers."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if hasattr(value, "is_integer") and not isinstance(value, (int, float)):  # Decimal
        return float(value)
    return value
