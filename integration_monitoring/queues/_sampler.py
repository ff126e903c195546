"""Sample queue and dead-letter depths into `service_bus_queue_depth` / `service_bus_dlq_depth`.

The same code samples Azure Service Bus (through `ServiceBusAdministrationClient`) or the
demo's local queues; only the depth source differs.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..telemetry import Telemetry, current, get_logger, record_queue_depth
from ._local import local_queues

SAMPLER_SERVICE = "queue-depth-sampler"
#: Service Bus entity names: letters, digits, `.`, `-`, `_`, `/`; start and end alphanumeric.
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._/-]{0,258}[A-Za-z0-9])?$")
_NAMESPACE = re.compile(r"^[A-Za-z0-9.-]+(?::\d{1,5})?$")
#: Why a queue could not be sampled (the `reason` label of the failure counter), and what
#: to do about it.
HINTS = {
    "forbidden": "the app's identity needs Azure Service Bus Data Owner (the Manage right) "
                 "on the queue or the namespace",
    "not_found": "the namespace has no such queue: check SERVICEBUS_QUEUES",
    "throttled": "Service Bus is throttling the namespace; the next run tries again",
    "timeout": "Service Bus did not answer in time; the next run tries again",
    "server_error": "Service Bus failed to answer; the next run tries again",
    "unreachable": "the namespace could not be reached (DNS, network, firewall, TLS); "
                   "the next run tries again",
    "credential": "the app's identity could not get a token (managed identity, az login)",
    "error": "unexpected failure; see the error",
}
#: Failures that every other queue of the namespace would meet too: after one, the run
#: stops asking, so it ends well inside its schedule instead of waiting out each queue.
NAMESPACE_WIDE = frozenset({"unreachable", "credential"})


class SettingError(ValueError):
    """An app setting is missing or malformed; the message names it."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting


@dataclass(frozen=True)
class QueueDepth:
    queue: str
    active: int
    dead_letter: int
    scheduled: int = 0


@dataclass
class SampleResult:
    depths: list[QueueDepth] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # queue: "ErrorType: message"
    reasons: dict[str, str] = field(default_factory=dict)  # queue: a key of HINTS


class DepthSource(Protocol):
    def depth(self, queue: str) -> QueueDepth: ...


class LocalDepths:
    """Depths of the in-process queues the demo registered."""

    def depth(self, queue: str) -> QueueDepth:
        found = local_queues().get(queue)
        if found is None:
            raise LookupError(f"no local queue named {queue!r}")
        return QueueDepth(queue, found.active_count, found.dead_letter_count,
                          found.scheduled_count)


class ServiceBusDepths:
    """Depths from Service Bus queue runtime properties, with Entra ID (no keys).

    Reading runtime properties through the management API needs the Manage right on the
    queue: the Azure Service Bus Data Owner role (Receiver/Sender roles are not enough).
    """

    def __init__(self, namespace: str, credential: Any = None, *, timeout_s: float = 10.0,
                 retries: int = 1, **client_options: Any) -> None:
        from azure.servicebus.management import ServiceBusAdministrationClient

        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        # Only read_timeout bounds a slow answer, and the SDK retries it 3 times by default:
        # one run must finish well inside its one-minute schedule.
        self.namespace = namespace
        self.timeout_s = timeout_s
        self._client = ServiceBusAdministrationClient(
            namespace, credential, retry_total=retries, **client_options)

    def depth(self, queue: str) -> QueueDepth:
        props = self._client.get_queue_runtime_properties(queue, read_timeout=self.timeout_s,
                                                          connection_timeout=self.timeout_s)
        return QueueDepth(queue, props.active_message_count or 0,
                          props.dead_letter_message_count or 0,
                          props.scheduled_message_count or 0)

    def close(self) -> None:
        self._client.close()


def sample_queue_depths(source: DepthSource, queues: list[str],
                        telemetry: Telemetry | None = None) -> SampleResult:
    """Record each queue's depths. A queue that cannot be read is logged (warn, naming the
    queue, the reason and what to do) and counted by reason; the others are still sampled.
    Nothing is raised: a timer run always completes."""
    t = telemetry or current()
    log = get_logger(SAMPLER_SERVICE, t)
    namespace = getattr(source, "namespace", None)
    result = SampleResult()
    cut_off: tuple[str, str] | None = None  # (reason, first queue) of a namespace-wide failure
    for queue in queues:
        if cut_off is not None:
            reason, first = cut_off
            result.failures[queue] = f"not tried: {first} failed with {reason}"
            _failed(t, log, result, queue, reason, namespace=namespace, attempted=False,
                    error=f"not tried: the namespace failed for {first!r} ({reason})")
            continue
        try:
            depth = source.depth(queue)
        except Exception as exc:  # not found, forbidden, timeout: the others still count
            reason, status = failure_reason(exc)
            result.failures[queue] = f"{type(exc).__name__}: {exc}"
            _failed(t, log, result, queue, reason, namespace=namespace, attempted=True,
                    error=describe_failure(exc), errorType=type(exc).__name__,
                    statusCode=status)
            if reason in NAMESPACE_WIDE:
                cut_off = (reason, queue)
            continue
        record_queue_depth(queue, depth.active, depth.dead_letter, telemetry=t)
        result.depths.append(depth)
    return result


def _failed(t: Telemetry, log: Any, result: SampleResult, queue: str, reason: str,
            **fields: Any) -> None:
    result.reasons[queue] = reason
    t.metric("service_bus_sample_failures_total", 1, {"queue": queue, "reason": reason})
    log.warn("queue.sample_failed", queue=queue, reason=reason, hint=HINTS[reason],
             **{key: value for key, value in fields.items() if value is not None})


def failure_reason(exc: BaseException) -> tuple[str, int | None]:
    """A key of HINTS for an exception a depth source raised, and the HTTP status if any."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseTimeoutError,
    )

    status = getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else None
    if isinstance(exc, (ResourceNotFoundError, LookupError)) or status == 404:
        return "not_found", status
    if status in (401, 403):
        return "forbidden", status
    if isinstance(exc, ClientAuthenticationError) and status is None:
        return "credential", None  # raised by the credential, before any request
    if status == 429:
        return "throttled", status
    if status is not None and status >= 500:
        return "server_error", status
    if isinstance(exc, (ServiceResponseTimeoutError, TimeoutError)):
        return "timeout", status
    if isinstance(exc, ServiceRequestError):  # no connection: DNS, refused, TLS
        return "unreachable", status
    return "error", status


_DETAIL = re.compile(r"<Detail>(.*?)</Detail>", re.DOTALL)


def describe_failure(exc: BaseException) -> str:
    """One line for the event: the service's own `<Detail>` (with its TrackingId, which
    Microsoft support asks for) rather than the SDK's "Operation returned ..." wrapper."""
    status = getattr(exc, "status_code", None)
    detail = None
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            found = _DETAIL.search(response.text() or "")
        except Exception:  # an unreadable body: fall back to the exception's text
            found = None
        if found:
            detail = html.unescape(found.group(1)).strip()
    text = detail or getattr(exc, "message", None) or str(exc) or type(exc).__name__
    text = " ".join(str(text).split())[:1000]
    return f"Service Bus answered {status}: {text}" if isinstance(status, int) else text


def parse_queue_names(value: str | None, setting: str = "SERVICEBUS_QUEUES") -> list[str]:
    """Queue names from a comma- or space-separated setting; rejects malformed names."""
    names = [name for name in re.split(r"[,\s]+", value or "") if name]
    for name in names:
        if not _QUEUE_NAME.fullmatch(name):
            raise SettingError(setting, f"{name!r} is not a valid queue name")
    if len(set(names)) != len(names):
        raise SettingError(setting, "lists a queue twice")
    return names


@dataclass
class SamplerSettings:
    """Where depths come from: Service Bus when a namespace is set, else the local queues."""

    namespace: str | None
    queues: list[str]

    def source(self, **options: Any) -> DepthSource:
        if self.namespace:
            return ServiceBusDepths(self.namespace, **options)
        return LocalDepths()

    def queue_names(self) -> list[str]:
        return self.queues if self.namespace or self.queues else sorted(local_queues())


def sampler_settings(env: Mapping[str, str] | None = None) -> SamplerSettings:
    """Read and validate `SERVICEBUS_FULLY_QUALIFIED_NAMESPACE` and `SERVICEBUS_QUEUES`."""
    env = os.environ if env is None else env
    namespace = (env.get("SERVICEBUS_FULLY_QUALIFIED_NAMESPACE") or "").strip() or None
    queues = parse_queue_names(env.get("SERVICEBUS_QUEUES"))
    if namespace:
        if namespace.startswith(("sb://", "https://")) or not _NAMESPACE.fullmatch(namespace):
            raise SettingError("SERVICEBUS_FULLY_QUALIFIED_NAMESPACE",
                               f"{namespace!r} should look like <name>.servicebus.windows.net")
        if not queues:
            raise SettingError("SERVICEBUS_QUEUES",
                               "name at least one queue to sample when a namespace is set")
    return SamplerSettings(namespace, queues)
