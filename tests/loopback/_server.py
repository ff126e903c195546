"""What the loopback servers share: an HTTP(S) server on 127.0.0.1 in a daemon thread.

A subclass of `LoopbackServer` names itself (`name`: its thread's name and its temporary
directory's prefix), says whether it speaks HTTPS (`tls`: with a throwaway `trustme`
certificate authority whose certificate is written to `ca_path`) and whether it ignores
errors in handlers (`quiet`), and builds its request handler in `_handler`, usually a
`LoopbackHandler`. `start` picks a free port (`address` is then `127.0.0.1:<port>` and `url`
`http[s]://127.0.0.1:<port>`); `stop` sets `_stopping` (which releases handlers stalled on
it), shuts the server down and removes the certificate.
"""

from __future__ import annotations

import shutil
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import trustme


class LoopbackServer:
    name = "loopback"
    tls = True
    quiet = False

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards what subclasses record
        self._stopping = threading.Event()
        self._dir: str | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.ca_path = ""
        self.address = ""
        self.url = ""

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def start(self) -> Self:
        self._stopping.clear()
        server_class = _QuietServer if self.quiet else ThreadingHTTPServer
        server = server_class(("127.0.0.1", 0), self._handler())
        server.daemon_threads = True
        if self.tls:
            server.socket = self._tls_context().wrap_socket(server.socket, server_side=True)
        self._server = server
        self.address = f"127.0.0.1:{server.server_address[1]}"
        self.url = f"{'https' if self.tls else 'http'}://{self.address}"
        self._thread = threading.Thread(target=server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name=self.name, daemon=True)
        self._thread.start()
        return self

    def _tls_context(self) -> ssl.SSLContext:
        ca = trustme.CA()
        self._dir = tempfile.mkdtemp(prefix=f"{self.name}-")
        self.ca_path = str(Path(self._dir) / "ca.pem")
        ca.cert_pem.write_to_path(self.ca_path)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(context)
        return context

    def stop(self) -> None:
        self._stopping.set()  # releases handlers stalled on it
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class LoopbackHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive, no request log, and helpers to read a request and answer it."""

    protocol_version = "HTTP/1.1"

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def lower_headers(self) -> dict[str, str]:
        return {key.lower(): value for key, value in self.headers.items()}

    def respond(self, status: int, headers: dict[str, str], body: bytes) -> None:
        """`status`, `headers` in order, then Content-Length and `body`."""
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output quiet


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that gave up (timeouts) reset their connections; that is expected
