"""Posting alert payloads to the relay, as an action group's webhook does."""

from __future__ import annotations

import os
from typing import Any

import httpx

from ..telemetry import get_logger


class RelayPoster:
    """POSTs common-schema payloads to the relay with the shared secret; never raises."""

    def __init__(self, url: str, secret: str | None = None, timeout_s: float = 30.0) -> None:
        self.url = url
        self.secret = secret if secret is not None else os.environ.get("ALERT_RELAY_SECRET", "")
        self.timeout_s = timeout_s
        self.failures = 0

    def __call__(self, payload: dict[str, Any]) -> int | None:
        try:
            response = httpx.post(self.url, json=payload, timeout=self.timeout_s,
                                  headers={"x-relay-secret": self.secret})
        except httpx.HTTPError as error:
            self.failures += 1
            get_logger("alert-evaluator").error(
                "alert.post_failed", url=self.url, error=str(error),
                errorType=type(error).__name__)
            return None
        if response.status_code >= 300:
            self.failures += 1
            get_logger("alert-evaluator").error(
                "alert.post_failed", url=self.url, statusCode=response.status_code,
                error=response.text[:500])
        return response.status_code
