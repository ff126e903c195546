"""Context binding: a sync job binds tenant, integration and task once; events inherit them."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

#: Keys of the bound context that are not metadata: they fill the event's top level
#: and the metric labels.
TOP_LEVEL = {"tenant_id": "tenantId", "integration_id": "integrationId"}
LABELS = ("tenant_id", "integration_id", "adapter_type", "entity")

_bound: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "integration_monitoring_bound", default=MappingProxyType({})
)


def bound() -> Mapping[str, Any]:
    """What is bound in the current context (do not mutate)."""
    return _bound.get()


@contextmanager
def bind(**values: Any) -> Iterator[dict[str, Any]]:
    """Bind values for the duration of a block; nested blocks add to and shadow outer ones.

    `tenant_id` and `integration_id` fill the event's top-level fields, `adapter_type` and
    `entity` fill metric labels, and every other key (e.g. `task_id`) joins each event's
    metadata. Values of `None` are ignored, so optional arguments can be passed through.
    """
    merged = {**_bound.get(), **{k: v for k, v in values.items() if v is not None}}
    token = _bound.set(merged)
    try:
        yield merged
    finally:
        _bound.reset(token)


def current_labels(overrides: dict[str, Any]) -> dict[str, str]:
    """Metric labels from the bound context, overridden by explicit non-empty values."""
    ctx = _bound.get()
    labels: dict[str, str] = {}
    for name in LABELS:
        value = overrides.get(name)
        if value is None:
            value = ctx.get(name)
        if value is not None and value != "":
            labels[name] = str(value)
    return labels
