"""A Table Storage endpoint that only refuses, for the one fault Azurite cannot produce.

The outbox's Table Storage tests run against Azurite, Microsoft's Storage emulator
(tests/azurite.py): tables, entities, queries, etags, size limits and authorization are its.
Azurite never throttles and is never unavailable, so this stand-in is kept for that alone: it
answers every request with one status, in the Table service's JSON error format
(`x-ms-error-code` and an `odata.error` body), the way the service answers when it throttles
an account (503 `ServerBusy`; 429 from gateways and the Cosmos DB Table API).

    with TableLoopback(503) as tables:
        outbox = TableOutbox(tables.endpoint, tables.credential,
                             connection_verify=tables.ca_path)

HTTPS with a throwaway certificate authority (`trustme`), since the SDK sends bearer tokens over
HTTPS only; `credential` hands out a fixed token. `requests` records what was sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

from ._server import LoopbackHandler, LoopbackServer
from .servicebus import StaticTokenCredential

JSON_TYPE = "application/json;odata=minimalmetadata;streaming=true;charset=utf-8"
#: The error code and message the service sends with each status.
ERRORS = {
    503: ("ServerBusy", "The server is busy."),
    500: ("OperationTimedOut", "Operation could not be completed within the specified time."),
    429: ("TooManyRequests", "The request rate is too large."),
}


@dataclass
class Seen:
    """One request as the stand-in received it."""

    method: str
    path: str  # as sent, query string included
    headers: dict[str, str]  # names lower-cased


class TableLoopback(LoopbackServer):
    """Answers every request with `status` (and `Retry-After` when given)."""

    name = "table-loopback"

    def __init__(self, status: int = 503, retry_after: str | None = None) -> None:
        super().__init__()
        self.status = status
        self.retry_after = retry_after
        self.credential = StaticTokenCredential("table-loopback-token")
        self.requests: list[Seen] = []

    @property
    def endpoint(self) -> str:
        return self.url

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    def _answer(self, method: str, path: str,
                headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.requests.append(Seen(method, path, headers))
        code, message = ERRORS.get(self.status, ("InternalError", "The server failed."))
        extra = {"Retry-After": self.retry_after} if self.retry_after is not None else {}
        body = {"odata.error": {"code": code, "message": {"lang": "en-US", "value": message}}}
        return self.status, {"Content-Type": JSON_TYPE, "x-ms-error-code": code,
                             "x-ms-version": headers.get("x-ms-version", "2019-02-02"),
                             **extra}, json.dumps(body).encode()


def _handler_for(loopback: TableLoopback) -> type[BaseHTTPRequestHandler]:
    class Handler(LoopbackHandler):
        def _any(self) -> None:
            self.read_body()
            status, headers, body = loopback._answer(self.command, self.path,
                                                     self.lower_headers())
            self.respond(status, headers, body)

        def do_GET(self) -> None:
            self._any()

        def do_POST(self) -> None:
            self._any()

        def do_PUT(self) -> None:
            self._any()

        def do_DELETE(self) -> None:
            self._any()

    return Handler
