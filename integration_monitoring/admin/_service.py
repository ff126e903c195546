"""The admin endpoints' answers, composed from one KQL file per question."""

from __future__ import annotations

import datetime as dt
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from .._time import naive_utc
from ._backends import Answer, Backend
from ._cache import SharedQueries
from ._fairness import Fairness
from ._filters import NOW_GRANULARITY_S, Filters, parse_filters
from ._rendered import RenderedAnswers
from ._restatement import Restatements
from ._sharing import nothing_to_ask, shared

#: Application Insights keeps no histogram buckets, so adapter latency is an average and a
#: maximum; sync durations come from per-job events and do have percentiles.
LATENCY_NOTE = ("Adapter latency comes from adapter_request_duration_seconds, which "
                "Application Insights stores as sum, count, min and max per export interval "
                "(no buckets): avgMs is request-weighted, maxMs is the slowest request. Sync "
                "duration percentiles (p95Ms) are computed from the per-job events.")


#: How long an instance shows the acknowledgements it recorded itself, whatever the store says:
#: the list's `until` is rounded down to 5 s, and Log Analytics shows a new event only after
#: its ingestion delay (minutes).
ACK_OVERLAY = dt.timedelta(minutes=15)


class AdminService:
    """Answers the endpoints; an endpoint's questions run side by side, at most `parallel`
    on the engine at once for the whole app (Log Analytics allows five concurrent queries per
    identity) and within each caller's share (`_fairness.py`)."""

    def __init__(self, backend: Backend, cache: SharedQueries | None = None,
                 parallel: int = 4, fairness: Fairness | None = None,
                 restatements: bool = True) -> None:
        self.backend = backend
        self.cache = cache or SharedQueries(**getattr(backend, "freshness", {}))
        self.until_step_s: int = getattr(backend, "until_step_s", NOW_GRANULARITY_S)
        self.rendered = RenderedAnswers()
        self.fairness = fairness or Fairness(at_once=parallel)
        # Threads that may wait: the limits on the engine are the fairness's, not the pool's
        # (a fixed pool would queue one caller's questions behind another's flood).
        self._pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="admin-query")
        self._acks: dict[str, dict[str, Any]] = {}  # alertId -> what acknowledge() recorded
        self._ack_lock = threading.Lock()  # two clicks at once record one acknowledgement
        #: Where the lifecycle's lookback may begin (`_restatement.py`); None: the whole
        #: retention always, and no question asked to find out.
        self.restatements = Restatements(backend) if restatements else None

    def close(self) -> None:
        """Let its question threads go (a service made for one job, not the app's)."""
        self._pool.shutdown(wait=False)

    def parse(self, endpoint: str, params: Any, now: dt.datetime | None = None) -> Filters:
        """An endpoint's filters; a window ending now ends on this backend's `until` step,
        and the lifecycle reads back to the latest restatement there is."""
        f = parse_filters(endpoint, params, now, self.until_step_s)
        if self.restatements is None:
            return f
        return replace(f, lookback_since=self.restatements.lookback(f.until))

    # -- endpoints ------------------------------------------------------------------------

    def stats(self, f: Filters) -> dict[str, Any]:
        out, rows = self._answer(f, "integration_status", "job_counts", "top_integrations",
                                 "error_rate_trend")
        jobs = {row["status"]: row["jobs"] for row in rows["job_counts"]}
        by_status = {s: jobs.get(s, 0) for s in ("pending", "processing", "completed", "failed")}
        finished = by_status["completed"] + by_status["failed"]
        out["integrations"] = _summary(rows["integration_status"])
        out["syncJobs"] = {"byStatus": by_status, "finished": finished,
                           "failureRate": _rate(by_status["failed"], finished)}
        out["topIntegrations"] = rows["top_integrations"][: f.limit]
        out["errorRateTrend"] = _fill(rows["error_rate_trend"], f,
                                      {"finished": 0, "failed": 0, "failureRate": 0.0})
        return out

    def health(self, f: Filters) -> dict[str, Any]:
        out, rows = self._answer(f, "integration_status")
        out["summary"] = _summary(rows["integration_status"])
        out["integrations"] = rows["integration_status"]
        return out

    def sync_activity(self, f: Filters) -> dict[str, Any]:
        wanted = ["record_totals", "duration_trend"]
        if f.status != "running":
            wanted.append("recent_jobs")
        if f.status not in ("completed", "failed"):
            wanted.append("running_jobs")
        out, rows = self._answer(f, *wanted)
        out["running"] = rows.get("running_jobs", [])[: f.limit]
        out["recent"] = rows.get("recent_jobs", [])[: f.limit]
        totals = rows["record_totals"]
        out["records"] = _totals(totals[0] if totals else {})
        out["durationTrend"] = rows["duration_trend"]
        return out

    def errors(self, f: Filters) -> dict[str, Any]:
        failed = Filters(**{**f.__dict__, "status": "failed"})
        out, rows = self._answer(f, "errors_by_integration", "error_rate_trend",
                                 "top_error_types", ("recent_jobs", failed))
        out["byIntegration"] = rows["errors_by_integration"][: f.limit]
        out["errorRateTrend"] = _fill(rows["error_rate_trend"], f,
                                      {"finished": 0, "failed": 0, "failureRate": 0.0})
        out["topErrorTypes"] = rows["top_error_types"][: f.limit]
        out["failedJobs"] = rows["recent_jobs"][: f.limit]
        return out

    def performance(self, f: Filters) -> dict[str, Any]:
        out, rows = self._answer(f, "duration_by_integration", "throughput_trend",
                                 "queue_depth_trend", "adapter_latency")
        out["durationByIntegration"] = rows["duration_by_integration"][: f.limit]
        trend = _fill(rows["throughput_trend"], f,
                      {"records": 0, "jobs": 0, "recordsPerSecond": 0.0})
        records = sum(point["records"] or 0 for point in trend)
        out["recordsPerSecond"] = round(records / (f.until - f.since).total_seconds(), 3)
        out["throughputTrend"] = trend
        out["queueDepthTrend"] = rows["queue_depth_trend"]
        out["apiLatencyByAdapter"] = rows["adapter_latency"]
        out["latencyNote"] = LATENCY_NOTE
        return out

    def alerts(self, f: Filters) -> dict[str, Any]:
        out, rows = self._answer(f, "alerts")
        alerts = [self._acknowledged(_alert(row)) for row in rows["alerts"]]
        out["active"] = [a for a in alerts if a["state"] == "active"]
        out["alerts"] = alerts[: f.limit]
        return out

    def acknowledge(self, alert_id: str, by: str, note: str) -> dict[str, Any] | None:
        """Record `alert.acknowledged` once; None when no such alert was fired."""
        with self._ack_lock:
            return self._acknowledge(alert_id, by, note)

    def _acknowledge(self, alert_id: str, by: str, note: str) -> dict[str, Any] | None:
        from ..telemetry import current, get_logger

        f = Filters(since=_now() - dt.timedelta(minutes=1), until=_now(),
                    bucket=dt.timedelta(minutes=1), q="", tenants=None)  # admins only
        known = {row["alertId"]: row for row in self.run("alerts", f).rows}
        alert = known.get(alert_id)
        if alert is None:
            return None
        earlier = self._acknowledged(_alert(alert))
        if earlier.get("acknowledgedAt"):  # acknowledging twice records nothing more
            return {"alertId": alert_id, "acknowledgedBy": earlier["acknowledgedBy"],
                    "acknowledgedAt": earlier["acknowledgedAt"], "alreadyAcknowledged": True}
        get_logger("admin-api").info(
            "alert.acknowledged", tenant_id=alert["tenantId"],
            integration_id=alert["integrationId"], alertId=alert_id, ruleId=alert["ruleId"],
            acknowledgedBy=by, note=note)
        current().flush(timeout_millis=5000)
        at = _now()
        self._forget_old_acks(at)
        self._acks[alert_id] = {"at": at, "acknowledgedAt": _json(at),
                                "acknowledgedBy": by, "ackNote": note}
        self.cache.forget(lambda key: key[0] == "alerts")
        return {"alertId": alert_id, "acknowledgedBy": by, "acknowledgedAt": _json(at),
                "alreadyAcknowledged": False}

    def _acknowledged(self, alert: dict[str, Any]) -> dict[str, Any]:
        """The alert with this instance's own recent acknowledgement, when the store has none
        yet."""
        mine = self._acks.get(alert.get("alertId", ""))
        if mine is None or alert.get("acknowledgedAt") or _now() - mine["at"] > ACK_OVERLAY:
            return alert
        return {**alert, **{k: v for k, v in mine.items() if k != "at"}}

    def _forget_old_acks(self, now: dt.datetime) -> None:
        for alert_id in [a for a, ack in self._acks.items() if now - ack["at"] > ACK_OVERLAY]:
            del self._acks[alert_id]

    # -- plumbing -------------------------------------------------------------------------

    def _answer(self, f: Filters, *questions: str | tuple[str, Filters]
                ) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
        """Run the questions concurrently; the envelope notes any partial answer."""
        out = {"window": _json(f.describe()), "backend": self.backend.name, "partial": False,
               "partialReasons": []}
        asked = [(q, f) if isinstance(q, str) else q for q in questions]
        futures = {name: self._pool.submit(self.run, name, filters) for name, filters in asked}
        rows = {}
        for name, future in futures.items():
            answer = future.result()
            if answer.partial:
                out["partial"] = True
                out["partialReasons"].extend(f"{name}: {reason}" for reason in answer.partial)
            rows[name] = answer.rows
        return out, rows

    def run(self, name: str, f: Filters) -> Answer:
        """One question, its rows as the API serves them (dicts of JSON values), shared
        with identical requests within the cache's TTL, and a reader's cut from the answer
        for every tenant where it can be (`_sharing.py`). Cached rows are read, not
        changed."""
        if nothing_to_ask(name, f):
            return Answer([], [])
        plan = shared(name, f)
        if plan is not None:
            mine = plan.cut(self._ask(plan.question, plan.filters))
            if mine is not None:
                return mine
        return self._ask(name, f)

    def _ask(self, name: str, f: Filters) -> Answer:
        values = f.values()
        # A window ending now moves on every step; while its answer is asked, the same
        # window's answer from a step or a few before stands in (within the stale time).
        # (a generator: made only when the cache has no answer for this window)
        steps = int(self.cache.stale_s // self.until_step_s) if f.live else 0
        earlier = (_key(name, f.earlier(n * self.until_step_s).values())
                   for n in range(1, steps + 1))

        def ask() -> Answer:
            with self.fairness.question(f.caller):
                answer = self.backend.ask(name, values)
            rows = [{k: _json(v) for k, v in row.items()} for row in answer.dicts()]
            return Answer(answer.columns, rows, answer.partial)

        return self.cache.get(_key(name, values), ask, earlier)


def _key(name: str, values: dict[str, Any]) -> tuple[Any, ...]:
    return (name, tuple(sorted((k, str(v)) for k, v in values.items())))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _alert(row: dict[str, Any]) -> dict[str, Any]:
    """An alert row with its dimensions as an object (they travel as JSON text)."""
    import json

    alert = dict(row)
    try:
        dimensions = json.loads(row.get("dimensions") or "{}")
    except ValueError:
        dimensions = {}
    alert["dimensions"] = dimensions if isinstance(dimensions, dict) else {}
    return alert


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
        return naive_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"
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
