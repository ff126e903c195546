"""The queue depth sampler as a timer job: settings -> depth source -> metrics, flushed."""

from __future__ import annotations

import threading

from ..telemetry import Telemetry, current
from ._sampler import DepthSource, SampleResult, sample_queue_depths, sampler_settings

_sources: dict[str | None, DepthSource] = {}
_lock = threading.Lock()


def run_queue_sampler(telemetry: Telemetry | None = None) -> SampleResult:
    """Sample every configured queue once and flush, as one timer invocation does.

    The depth source (and its Service Bus client and credential) is kept between runs so a
    token is not fetched every minute.
    """
    t = telemetry or current()
    settings = sampler_settings()
    with _lock:
        source = _sources.get(settings.namespace)
        if source is None:
            source = _sources[settings.namespace] = settings.source()
    result = sample_queue_depths(source, settings.queue_names(), t)
    t.flush()
    return result
