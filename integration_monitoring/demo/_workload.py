"""The demo workload: schedulers enqueue sync jobs, workers run them against simulated APIs.

Adapter code below uses only the public telemetry API, as an adapter author would.
"""

from __future__ import annotations

import math
import random
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from .. import (
    Telemetry,
    adapter_request,
    bind,
    connection_status_changed,
    get_logger,
    integration_status_changed,
    job_enqueued,
    message_failed,
    message_processed,
    sync_job,
)
from ..queues import LocalDepths, LocalQueue, register_local_queue, sample_queue_depths
from ._sim import Simulation
from ._world import Integration, World

SECOND = 1_000_000_000
MINUTE = 60 * SECOND
QUEUE_NAME = "sync-jobs"
WORKER_SERVICE = "sync-worker"


class AdapterError(Exception):
    """An adapter failure; `retryable` says whether redelivering the job may help."""

    retryable = True


class SessionTokenInvalid(AdapterError):
    pass


class CredentialsExpired(AdapterError):
    retryable = False


class ProviderError(AdapterError):
    pass


class RateLimitExhausted(AdapterError):
    pass


@dataclass
class Response:
    status: int
    retry_after: float | None = None


@dataclass
class Timeline:
    """When the scripted incidents happen, as absolute simulated times (ns)."""

    stale_at: int
    expire_at: int
    pause_at: int
    outage: tuple[int, int]
    outage_adapter: str
    storm_at: int
    rate_burst: tuple[int, int]

    @classmethod
    def over(cls, start_ns: int, end_ns: int, world: World) -> Timeline:
        span = max(end_ns - start_ns, MINUTE)

        def at(fraction: float) -> int:
            return start_ns + int(span * fraction)

        outage_len = min(25 * MINUTE, span // 10)
        adapters = sorted({i.adapter_type for i in world.integrations})
        outage_adapter = "zendesk" if "zendesk" in adapters else adapters[-1]
        return cls(stale_at=at(0.35), expire_at=at(0.55), pause_at=at(0.5),
                   outage=(at(0.72), at(0.72) + outage_len), outage_adapter=outage_adapter,
                   storm_at=at(0.86), rate_burst=(at(0.8), at(0.8) + min(6 * MINUTE, span // 10)))


@dataclass
class Counts:
    jobs_enqueued: int = 0
    jobs_done: int = 0
    jobs_failed: int = 0
    dead_lettered: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class Workload:
    """Processes of the simulated platform, all writing through one Telemetry."""

    def __init__(self, world: World, sim: Simulation, telemetry: Telemetry, seed: int,
                 timeline: Timeline, *, workers: int | None = None,
                 announce: bool = True, sample_queues: bool = True) -> None:
        self.world = world
        self.sim = sim
        self.t = telemetry
        self.rng = random.Random(seed * 7919 + 1)
        self.timeline = timeline
        self.queue = register_local_queue(LocalQueue(QUEUE_NAME, max_delivery_count=5))
        self.by_id = {i.integration_id: i for i in world.integrations}
        self.status = {i.integration_id: ("paused" if i.paused else "active")
                       for i in world.integrations}
        self.connection = {i.integration_id: "connected" for i in world.integrations}
        self.auth_failures: dict[str, int] = {}
        self.counts = Counts()
        self.workers = workers or max(3, len(world.integrations) // 8)
        self.announce = announce
        self.sample_queues = sample_queues
        self._task_ids = iter(range(1, 1 << 62))

    # -- processes ------------------------------------------------------------------------

    def start(self) -> None:
        if self.announce:
            self._announce()
        for integration in self.world.integrations:
            self.sim.spawn(self.scheduler(integration),
                           delay_s=self.rng.uniform(0, integration.interval_s))
        for _ in range(self.workers):
            self.sim.spawn(self.worker())
        self.sim.spawn(self.incidents())
        self.sim.spawn(self.sampler())

    def _announce(self) -> None:
        for i in self.world.integrations:
            integration_status_changed(
                tenant_id=i.tenant_id, integration_id=i.integration_id,
                status=self.status[i.integration_id], adapter_type=i.adapter_type,
                reason="created", syncIntervalMinutes=i.interval_s // 60,
                entities=list(i.entities), telemetry=self.t)
            connection_status_changed(
                tenant_id=i.tenant_id, integration_id=i.integration_id, status="connected",
                adapter_type=i.adapter_type, reason="authorized", telemetry=self.t)

    def scheduler(self, integration: Integration) -> Generator[float, None, None]:
        while True:
            now = self.sim.now_ns
            stale = "stale" in integration.quirks and now >= self.timeline.stale_at
            if self.status[integration.integration_id] == "active" and not stale:
                kind = "scheduled"
                if self.rng.random() < 0.04:
                    kind = "manual"
                for entity in integration.entities:
                    self.enqueue(integration, entity, kind)
                if self.rng.random() < 0.25:
                    self.enqueue(integration, self.rng.choice(integration.entities), "webhook")
            yield integration.interval_s * self.rng.uniform(0.97, 1.03)

    def enqueue(self, integration: Integration, entity: str, sync_type: str) -> None:
        task_id = f"task-{next(self._task_ids)}"
        job_enqueued(**integration.labels, entity=entity, taskId=task_id, syncType=sync_type,
                     telemetry=self.t)
        self.queue.send({"integration_id": integration.integration_id, "entity": entity,
                         "sync_type": sync_type, "task_id": task_id})
        self.counts.jobs_enqueued += 1

    def worker(self) -> Generator[float, None, None]:
        while True:
            log = get_logger(WORKER_SERVICE, self.t)  # self.t changes when going live
            message = self.queue.receive(self.sim.now_ns)
            if message is None:
                yield 2.0
                continue
            body = message.body
            integration = self.by_id[body["integration_id"]]
            try:
                yield from self.run_job(integration, body, message.delivery_count)
            except Exception as error:  # adapter errors, connection failures, timeouts
                self.counts.jobs_failed += 1
                with bind(**integration.labels, entity=body["entity"], task_id=body["task_id"]):
                    if getattr(error, "retryable", True):
                        dead = self.queue.abandon(message)
                    else:
                        self.queue.dead_letter(message, type(error).__name__, str(error))
                        dead = True
                    status = "dead_lettered" if dead else "abandoned"
                    message_failed(QUEUE_NAME, status=status, telemetry=self.t)
                    message_processed(QUEUE_NAME, status=status, telemetry=self.t)
                    if dead:
                        self.counts.dead_lettered += 1
                        log.error("message.dead_lettered", queue=QUEUE_NAME,
                                  deliveryCount=message.delivery_count,
                                  reason=message.dead_letter_reason, error=str(error))
                yield 1.0
            else:
                self.counts.jobs_done += 1
                self.queue.complete(message)
                with bind(**integration.labels, entity=body["entity"]):
                    message_processed(QUEUE_NAME, status="completed", telemetry=self.t)

    def run_job(self, integration: Integration, body: dict[str, Any],
                attempt: int) -> Generator[float, None, None]:
        rng = self.rng
        profile = integration.profile
        log = get_logger(f"{integration.adapter_type}-adapter", self.t)
        if body["sync_type"] == "webhook":
            total = rng.randint(1, 25)
        else:
            total = int(rng.lognormvariate(math.log(profile.records_per_sync), 0.7)
                        * integration.scale)
            if body["sync_type"] == "manual":
                total *= 5
        if "slow" in integration.quirks and rng.random() < 0.25:
            total = profile.page_size * rng.randint(25, 40)
        pages = max(1, math.ceil(total / profile.page_size))
        with sync_job(**integration.labels, entity=body["entity"], sync_type=body["sync_type"],
                      task_id=body["task_id"], attempt=attempt, telemetry=self.t) as job:
            for page in range(1, pages + 1):
                yield from self.fetch(integration, body["entity"], page)
                count = min(profile.page_size, total - (page - 1) * profile.page_size)
                count = max(count, 0)
                log.info("records.fetched", page=page, recordCount=count)
                failed = 0
                if count and "partial" in integration.quirks and rng.random() < 0.3:
                    failed = rng.randint(1, max(1, count // 10))
                    log.warn("records.rejected", recordCount=failed,
                             error=rng.choice(("Required field missing: email",
                                               "Duplicate external id",
                                               "Value too long for field: description")))
                created = rng.randint(0, count - failed) if count > failed else 0
                job.records(created=created, updated=count - failed - created, failed=failed)
                yield count * rng.uniform(0.002, 0.008) + 0.05

    def fetch(self, integration: Integration, entity: str,
              page: int) -> Generator[float, None, Response]:
        rng = self.rng
        slow = 6.0 if "slow" in integration.quirks else 1.0
        for attempt in range(1, 10):
            with adapter_request(operation="fetch", entity=entity, telemetry=self.t) as call:
                yield rng.lognormvariate(math.log(integration.profile.latency_ms / 1000), 0.5) \
                    * slow
                response = self.respond(integration)
                call.status_code = response.status
                call.retry_after = response.retry_after
            if response.status == 429:
                yield response.retry_after or 2.0 ** attempt
                continue
            if response.status == 401:
                raise self.auth_failure(integration)
            if response.status >= 500:
                raise ProviderError(f"{response.status} from {integration.adapter_type} API")
            self.auth_failures.pop(integration.integration_id, None)
            return response
        raise RateLimitExhausted(f"still rate limited after {attempt} attempts")

    def respond(self, integration: Integration) -> Response:
        """What the simulated provider API answers (or raises) right now."""
        rng = self.rng
        now = self.sim.now_ns
        timeline = self.timeline
        if "expiring" in integration.quirks and now >= timeline.expire_at:
            return Response(401)
        if integration.adapter_type == timeline.outage_adapter and \
                timeline.outage[0] <= now < timeline.outage[1]:
            roll = rng.random()
            if roll < 0.45:
                return Response(503)
            if roll < 0.75:
                raise ConnectionResetError("Connection reset by peer")
            if roll < 0.95:
                raise TimeoutError("Read timed out after 30s")
        if "rate_limited" in integration.quirks:
            if timeline.rate_burst[0] <= now < timeline.rate_burst[1] and rng.random() < 0.95:
                return Response(429, retry_after=0.05)  # a client that ignores Retry-After
            if rng.random() < 0.12:
                return Response(429, retry_after=float(rng.randint(1, 10)))
        if "flaky" in integration.quirks and rng.random() < 0.03:
            raise rng.choice((ConnectionRefusedError("Connection refused"),
                              TimeoutError("Connect timed out after 10s")))
        roll = rng.random()
        if roll < 0.004:
            return Response(429, retry_after=2.0)
        if roll < 0.006:
            return Response(500)
        return Response(200)

    def auth_failure(self, integration: Integration) -> AdapterError:
        """401s: the session token is retried twice, then the refresh token is found expired."""
        key = integration.integration_id
        self.auth_failures[key] = self.auth_failures.get(key, 0) + 1
        labels = {"tenant_id": integration.tenant_id, "integration_id": key,
                  "adapter_type": integration.adapter_type, "telemetry": self.t}
        if self.auth_failures[key] < 3:
            if self.connection[key] == "connected":
                self.connection[key] = "failing"
                connection_status_changed(status="failing", previous="connected",
                                          reason="Invalid session token", **labels)
            return SessionTokenInvalid("Invalid session token")
        if self.connection[key] != "expired":
            connection_status_changed(status="expired", previous=self.connection[key],
                                      reason="Refresh token expired", **labels)
            self.connection[key] = "expired"
            integration_status_changed(status="error", previous=self.status[key],
                                       reason="Credentials expired; reconnect required",
                                       **labels)
            self.status[key] = "error"
        return CredentialsExpired("Refresh token expired: reconnect required")

    def incidents(self) -> Generator[float, None, None]:
        """The scripted pause and storm; later, random storms while running live. A run that
        resumes after them keeps their outcome without playing them again."""
        timeline = self.timeline
        resumed_after = self.sim.now_ns
        if timeline.pause_at >= resumed_after:
            yield (timeline.pause_at - self.sim.now_ns) / SECOND
        for integration in self.world.with_quirk("paused_later"):
            key = integration.integration_id
            if self.status[key] == "active":
                if timeline.pause_at >= resumed_after:
                    integration_status_changed(
                        tenant_id=integration.tenant_id, integration_id=key, status="paused",
                        previous="active", adapter_type=integration.adapter_type,
                        reason="Paused by tenant admin", telemetry=self.t)
                self.status[key] = "paused"
        if timeline.storm_at >= resumed_after:
            yield (timeline.storm_at - self.sim.now_ns) / SECOND
            self.storm()
        while True:  # live: now and then, another storm
            yield 1800.0
            if self.rng.random() < 0.2:
                self.storm()

    def storm(self) -> None:
        """A tenant's bulk import fires a flood of webhooks: the queue backs up."""
        active = [i for i in self.world.integrations if self.status[i.integration_id] == "active"]
        if not active:
            return
        tenant = self.rng.choice(active).tenant_id
        targets = [i for i in active if i.tenant_id == tenant]
        # Enough work to keep every worker busy for minutes: the queue visibly backs up.
        for _ in range(max(600, 25 * len(self.world.integrations))):
            integration = self.rng.choice(targets)
            self.enqueue(integration, self.rng.choice(integration.entities), "webhook")

    def sampler(self) -> Generator[float, None, None]:
        """Samples depths once a simulated minute, unless a host's timer does it (live)."""
        source = LocalDepths()
        while True:
            if self.sample_queues:
                sample_queue_depths(source, [QUEUE_NAME], self.t)
            yield 60.0
