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
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    """One request the server received."""

    path: str
    headers: dict[str, str]
    body: Any
    status: int


class CaptureServer:
    """Records JSON POSTs; answers `status` with `body`, or fails while told to."""

    def __init__(self, status: int = 200, body: Any = "ok") -> None:
        self.status = status
        self.body = body
        self.requests: list[Received] = []
        self._failures: list[tuple[int, str | None]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> CaptureServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        server.daemon_threads = True
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(target=server.serve_forever, name="capture-server",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> CaptureServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

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


def _handler(capture: CaptureServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, retry_after, payload, kind = capture._answer(self.path, headers, raw)
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(payload)))
            if retry_after is not None:
                self.send_header("Retry-After", retry_after)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

    return Handler
