"""Response shapes of the admin endpoints (they are the OpenAPI document's schemas)."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(Model):
    code: str
    message: str
    parameter: str | None = None


class ErrorBody(Model):
    error: ErrorDetail


class Window(Model):
    since: str
    until: str
    bucketSeconds: int
    filters: dict[str, str]
    tenants: list[str] | None = None  # the caller's scope, for tenant-scoped readers


class Me(Model):
    name: str
    role: str
    tenants: list[str] | None
    via: str
    mode: str


class Envelope(Model):
    window: Window
    backend: str
    partial: bool
    partialReasons: list[str]


class IntegrationCounts(Model):
    total: int
    byStatus: dict[str, int]
    byHealth: dict[str, int]


class JobCounts(Model):
    byStatus: dict[str, int]
    finished: int
    failureRate: float


class TopIntegration(Model):
    tenantId: str
    integrationId: str
    adapterType: str
    jobs: int
    failed: int
    records: int | None


class RatePoint(Model):
    bucket: str
    finished: int
    failed: int
    failureRate: float | None


class Stats(Envelope):
    integrations: IntegrationCounts
    syncJobs: JobCounts
    topIntegrations: list[TopIntegration]
    errorRateTrend: list[RatePoint]


class IntegrationHealth(Model):
    tenantId: str
    integrationId: str
    adapterType: str
    status: str
    statusReason: str | None
    statusChangedAt: str | None
    health: str
    stale: bool
    connectionStatus: str
    connectionReason: str | None
    lastSuccessfulSync: str | None
    lastSyncAt: str | None
    expectedIntervalMinutes: int | None
    syncs: int
    failedSyncs: int
    syncsPerHour: float
    errorCount: int


class Health(Envelope):
    summary: IntegrationCounts
    integrations: list[IntegrationHealth]


class RunningJob(Model):
    operationId: str
    taskId: str | None
    tenantId: str
    integrationId: str
    adapterType: str
    entity: str
    syncType: str | None
    attempt: int | None
    startedAt: str
    runningSeconds: float


class FinishedJob(Model):
    finishedAt: str
    startedAt: str | None
    taskId: str | None
    tenantId: str
    integrationId: str
    adapterType: str
    entity: str
    syncType: str | None
    attempt: int | None
    status: str
    durationMs: float | None
    recordsCreated: int | None
    recordsUpdated: int | None
    recordsFailed: int | None
    error: str | None
    errorType: str | None
    operationId: str


class RecordTotals(Model):
    jobs: int
    completed: int
    failed: int
    recordsCreated: int
    recordsUpdated: int
    recordsFailed: int


class DurationPoint(Model):
    bucket: str
    jobs: int
    avgMs: float | None
    p95Ms: float | None
    maxMs: float | None


class SyncActivity(Envelope):
    running: list[RunningJob]
    recent: list[FinishedJob]
    records: RecordTotals
    durationTrend: list[DurationPoint]


class IntegrationErrors(Model):
    tenantId: str
    integrationId: str
    adapterType: str
    errors: int
    lastErrorAt: str
    lastOperation: str
    lastError: str | None


class ErrorType(Model):
    errorType: str
    failures: int
    integrations: int
    example: str | None
    lastSeen: str


class Errors(Envelope):
    byIntegration: list[IntegrationErrors]
    errorRateTrend: list[RatePoint]
    topErrorTypes: list[ErrorType]
    failedJobs: list[FinishedJob]


class IntegrationDuration(Model):
    tenantId: str
    integrationId: str
    adapterType: str
    jobs: int
    avgMs: float | None
    p95Ms: float | None
    maxMs: float | None
    records: int | None
    recordsPerSecond: float | None


class ThroughputPoint(Model):
    bucket: str
    records: int | None
    jobs: int
    recordsPerSecond: float | None


class QueueDepthPoint(Model):
    bucket: str
    queue: str
    active: float | None
    deadLettered: float | None


class AdapterLatency(Model):
    adapterType: str
    requests: int
    avgMs: float | None
    maxMs: float | None
    rateLimited: int | None
    failed: int | None


class Performance(Envelope):
    durationByIntegration: list[IntegrationDuration]
    recordsPerSecond: float
    throughputTrend: list[ThroughputPoint]
    queueDepthTrend: list[QueueDepthPoint]
    apiLatencyByAdapter: list[AdapterLatency]
    latencyNote: str


class Alert(Model):
    alertId: str
    ruleId: str
    title: str | None
    severity: str | None
    state: str
    firedAt: str
    resolvedAt: str | None
    acknowledgedAt: str | None
    acknowledgedBy: str | None
    ackNote: str | None
    tenantId: str | None
    integrationId: str | None
    adapterType: str | None
    dimensions: dict[str, str]
    value: float | None
    threshold: float | None
    operator: str | None
    runbookUrl: str | None
    dashboardUrl: str | None
    #: Per channel (slack, pagerduty, or a route's receiver), what became of the alert's
    #: notifications: delivered, silenced (held back by a silence), grouped (waiting for its
    #: group's message), retrying (in the outbox), failed (not queued) or abandoned (given
    #: up); the worst of its Fired and Resolved notices. Empty when it had no relayed channel.
    delivery: dict[str, Literal["delivered", "silenced", "grouped", "retrying", "failed",
                                "abandoned"]] = Field(default_factory=dict)
    #: The silence that held its Fired notice back, if one did.
    silencedBy: str | None = None
    #: The route (alerts/routes.json) that chose its receivers.
    route: str | None = None

    @field_validator("silencedBy", "route", mode="before")
    @classmethod
    def _none_when_empty(cls, value: Any) -> Any:
        return value or None

    @field_validator("delivery", mode="before")
    @classmethod
    def _delivery_from_text(cls, value: Any) -> Any:
        """The query answers JSON text (make_bag is not portable); "" when nothing was sent."""
        if value is None or value == "":
            return {}
        if isinstance(value, str):
            return json.loads(value)
        return value


class Alerts(Envelope):
    active: list[Alert]
    alerts: list[Alert]


class Acknowledgement(Model):
    by: str = "anonymous"
    note: str = ""


class Acknowledged(Model):
    alertId: str
    acknowledgedBy: str
    acknowledgedAt: str
    #: True when the alert was acknowledged before: nothing new was recorded.
    alreadyAcknowledged: bool = False
