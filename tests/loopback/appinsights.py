"""An Application Insights ingestion endpoint on 127.0.0.1, for tests.

    with AppInsightsLoopback() as ingestion:
        exporter = AzureMonitorLogExporter(connection_string=ingestion.connection_string,
                                           connection_verify=ingestion.ca_path,
                                           disable_offline_storage=True)
        ...
        ingestion.wait_for(lambda envelopes: len(envelopes) >= 3)

It speaks HTTPS with a throwaway certificate authority (`trustme`), accepts
`POST /v2.1/track` whose body is a JSON array of envelopes or newline-delimited JSON,
gzip-encoded or not, records every envelope and answers like the service does:
`{"itemsReceived": N, "itemsAccepted": N, "errors": []}`.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any, Self

from ._server import LoopbackHandler, LoopbackServer

INSTRUMENTATION_KEY = "00000000-0000-0000-0000-000000000000"
TRACK_PATH = "/v2.1/track"
#: Keeps an exporter away from Microsoft's own endpoints (statsbeat, OneSettings) and its
#: self-diagnostics off the ingestion endpoint under test.
QUIET_EXPORTER_ENV = {
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true",
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
}

Envelope = dict[str, Any]


class AppInsightsLoopback(LoopbackServer):
    """An HTTPS server that records what Application Insights exporters send it."""

    name = "appinsights-loopback"

    def __init__(self) -> None:
        super().__init__()
        self._envelopes: list[Envelope] = []
        self._requests: list[tuple[str, dict[str, str]]] = []
        self._failures: list[int] = []

    def start(self) -> Self:
        super().start()
        self.url = f"https://{self.address}/"  # the ingestion endpoint, as the portal writes it
        return self

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    # -- what tests use -------------------------------------------------------------------

    @property
    def connection_string(self) -> str:
        return f"InstrumentationKey={INSTRUMENTATION_KEY};IngestionEndpoint={self.url}"

    @property
    def envelopes(self) -> list[Envelope]:
        """A snapshot of every envelope accepted so far, in arrival order."""
        with self._lock:
            return list(self._envelopes)

    @property
    def requests(self) -> list[tuple[str, dict[str, str]]]:
        """(path, headers) of every request received, failed ones included."""
        with self._lock:
            return list(self._requests)

    def fail_next(self, count: int, status: int = 503) -> None:
        """Answer the next `count` requests with `status` (their envelopes are not recorded)."""
        with self._lock:
            self._failures.extend([status] * count)

    def clear(self) -> None:
        with self._lock:
            self._envelopes.clear()
            self._requests.clear()

    def wait_for(self, predicate: Callable[[list[Envelope]], Any],
                 timeout: float = 5.0) -> list[Envelope]:
        """Poll until `predicate(envelopes)` is truthy; returns the envelopes it accepted."""
        deadline = time.monotonic() + timeout
        while True:
            envelopes = self.envelopes
            if predicate(envelopes):
                return envelopes
            if time.monotonic() >= deadline:
                names = [e.get("name") for e in envelopes]
                raise AssertionError(
                    f"condition not met within {timeout}s; received {len(envelopes)} "
                    f"envelopes: {names}")
            time.sleep(0.02)

    # -- called by the handler ------------------------------------------------------------

    def _receive(self, path: str, headers: dict[str, str],
                 body: bytes) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self._requests.append((path, headers))
            status = self._failures.pop(0) if self._failures else None
        if status is not None:
            return status, {"itemsReceived": 0, "itemsAccepted": 0, "errors": []}
        if path.split("?", 1)[0].replace("//", "/") != TRACK_PATH:
            return 404, {"error": f"no such endpoint: {path}"}
        try:
            envelopes = parse_envelopes(body, headers.get("content-encoding", ""))
        except ValueError as exc:
            return 400, {"itemsReceived": 0, "itemsAccepted": 0,
                         "errors": [{"index": 0, "statusCode": 400, "message": str(exc)}]}
        with self._lock:
            self._envelopes.extend(envelopes)
        count = len(envelopes)
        return 200, {"itemsReceived": count, "itemsAccepted": count, "errors": []}


def parse_envelopes(body: bytes, content_encoding: str = "") -> list[Envelope]:
    """A track request body -> envelopes: a JSON array, one object, or one object per line."""
    if "gzip" in content_encoding.lower() or body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    text = body.decode("utf-8").strip()
    if not text:
        return []
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        parsed = [json.loads(line) for line in text.splitlines() if line.strip()]
    return parsed if isinstance(parsed, list) else [parsed]


def _handler_for(loopback: AppInsightsLoopback) -> type[BaseHTTPRequestHandler]:
    class Handler(LoopbackHandler):
        def do_POST(self) -> None:
            status, answer = loopback._receive(self.path, self.lower_headers(), self.read_body())
            self.respond(status, {"Content-Type": "application/json"},
                         json.dumps(answer).encode())

    return Handler
