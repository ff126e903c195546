"""Service Bus queue depth sampling, and the local queue the demo workload runs on."""

from ._local import LocalQueue, Message, local_queues, register_local_queue
from ._sampler import (
    LocalDepths,
    QueueDepth,
    SampleResult,
    SamplerSettings,
    ServiceBusDepths,
    SettingError,
    parse_queue_names,
    sample_queue_depths,
    sampler_settings,
)

__all__ = [
    "LocalDepths",
    "LocalQueue",
    "Message",
    "QueueDepth",
    "SampleResult",
    "SamplerSettings",
    "ServiceBusDepths",
    "SettingError",
    "local_queues",
    "parse_queue_names",
    "register_local_queue",
    "sample_queue_depths",
    "sampler_settings",
]
