"""A JSON-capturing HTTP endpoint on 127.0.0.1, standing in for Slack and PagerDuty in tests.

    with CaptureServer(status=202, body={"status": "success"}) as pagerduty:
        pagerduty.fail_next(2, status=429, retry_after="0")
        ...  # POST to pagerduty.url
        pagerduty.bodies  # the JSON bodies of the requests that were answered with success

Plain HTTP (the code under test takes its URLs from configuration). Every request is recorded
in `requests` with its path, headers, parsed JSON body and the status it was answered with;
`fail_next` makes the next N requests fail with a status (and a Retry-After header if given).
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from ._server import LoopbackHandler, LoopbackServer


@dataclass
class Received:
    """One request the server received."""

    path: str
    headers: dict[str, str]
    body: Any
    status: int


class CaptureServer(LoopbackServer):
    """Records JSON POSTs; answers `status` with `body`, or fails while told to."""

    name = "capture-server"
    tls = False

    def __init__(self, status: int = 200, body: Any = "ok") -> None:
        super().__init__()
        self.status = status
        self.body = body
        self.requests: list[Received] = []
        self._failures: list[tuple[int, str | None]] = []

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    # -- faults and results ---------------------------------------------------------------

    def heal(self) -> None:
        """Drop any failures still queued: answer normally from now on."""
        with self._lock:
            self._failures.clear()

    def fail_next(self, times: int, status: int = 500, retry_after: str | None = None) -> None:
        """Answer the next `times` requests with `status` (and Retry-After, when given)."""
        with self._lock:
            self._failures.extend([(status, retry_after)] * times)

    @property
    def bodies(self) -> list[Any]:
        """JSON bodies of the requests answered with success."""
        with self._lock:
            return [r.body for r in self.requests if 200 <= r.status < 300]

    @property
    def attempts(self) -> int:
        with self._lock:
            return len(self.requests)

    def _answer(self, path: str, headers: dict[str, str],
                raw: bytes) -> tuple[int, str | None, bytes, str]:
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        with self._lock:
            status, retry_after = self._failures.pop(0) if self._failures else (self.status, None)
            self.requests.append(Received(path, headers, body, status))
        if 200 <= status < 300:
            payload, kind = ((self.body.encode(), "text/plain") if isinstance(self.body, str)
                             else (json.dumps(self.body).encode(), "application/json"))
        else:
            payload, kind = json.dumps({"status": "error", "code": status}).encode(), \
                "application/json"
        return status, retry_after, payload, kind


def unused_url() -> str:
    """An http://127.0.0.1 URL nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/down"


def _handler_for(capture: CaptureServer) -> type[BaseHTTPRequestHandler]:
    class Handler(LoopbackHandler):
        def do_POST(self) -> None:
            status, retry_after, payload, kind = capture._answer(
                self.path, self.lower_headers(), self.read_body())
            headers = {"Content-Type": kind}
            if retry_after is not None:
                headers["Retry-After"] = retry_after
            self.respond(status, headers, payload)

    return Handler
