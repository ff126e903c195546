"""Prometheus text exposition of the seed's metrics under their exact names."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics.export import MetricsData
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ._metrics import METRICS

SCOPE = "integration_monitoring"
CONTENT_TYPE = CONTENT_TYPE_LATEST


class SeedPrometheusReader(PrometheusMetricReader):
    """A Prometheus reader that keeps the seed's metric names as they are.

    The exporter appends the unit to a name unless the name already ends with it, and
    `ms` becomes `milliseconds`: `sync_latency_ms` would be served as
    `sync_latency_ms_milliseconds`. The seed's names carry their unit already, so the
    unit is dropped from our own scope's metrics before translation.
    """

    content_type = CONTENT_TYPE  # what a scrape's answer says it holds

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._scraping = threading.Lock()
        super().__init__(scope_info_enabled=False, registry=self.registry)

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000,
                         **kwargs: Any) -> None:
        # A provider-wide force_flush also collects this reader; those snapshots would queue
        # up and be served as duplicate families by the next scrape. Only a scrape's own
        # collection is kept (values are cumulative, so nothing is lost).
        if metrics_data is None or not self._scraping.locked():
            return
        super()._receive_metrics(_drop_units(metrics_data), timeout_millis, **kwargs)

    def exposition(self) -> bytes:
        """The current values in Prometheus text format.

        Every seed metric is declared (HELP and TYPE) even before its first measurement, as
        Prometheus client libraries do for metrics they know: a scrape always names them all,
        and `absent()` is never needed to tell "nothing failed yet" from "not exported".
        """
        with self._scraping:
            text = generate_latest(self.registry)
        return text + _declarations(text)


_PROMETHEUS_TYPES = {"counter": "counter", "histogram": "histogram", "gauge": "gauge"}


def _declarations(text: bytes) -> bytes:
    lines = []
    for spec in METRICS:
        if f"# TYPE {spec.name} ".encode() not in text:
            lines.append(f"# HELP {spec.name} {spec.description}\n"
                         f"# TYPE {spec.name} {_PROMETHEUS_TYPES[spec.kind]}\n")
    return "".join(lines).encode()


def _drop_units(data: MetricsData) -> MetricsData:
    resources = []
    for resource_metrics in data.resource_metrics:
        scopes = []
        for scope_metrics in resource_metrics.scope_metrics:
            if scope_metrics.scope.name == SCOPE:
                scope_metrics = dataclasses.replace(scope_metrics, metrics=[
                    dataclasses.replace(metric, unit="") for metric in scope_metrics.metrics
                ])
            scopes.append(scope_metrics)
        resources.append(dataclasses.replace(resource_metrics, scope_metrics=scopes))
    return dataclasses.replace(data, resource_metrics=resources)
