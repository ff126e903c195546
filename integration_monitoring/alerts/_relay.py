"""The alert relay endpoint: Azure Monitor's action group POSTs here, we fan out to channels.

    app.include_router(relay_router())            # POST /api/alerts/relay

Configure the action group's webhook with the common alert schema and the URL
`https://<app>/api/alerts/relay?secret=<ALERT_RELAY_SECRET>` (a plain action-group webhook
cannot send custom headers, so the query parameter is what Azure uses; callers that can set
headers may send `x-relay-secret` instead). On the Functions host the function key (`code=`)
is required as well.

Delivery runs synchronously inside the request, every channel in parallel and each bounded by
the deliverer's budget (8 s by default), so the answer comes before the 10 s an action group
waits for its first call, and it reports what happened on each channel. A channel still
failing then is `queued`: the outbox keeps it and the redelivery timer sends it later (see
`_redelivery`). Responses: 202 with
`{"alertId", "ruleId", "condition", "duplicate", "channels": {...}, "errors": {...}}`; 400 for
a body that is not a common-schema alert (the message names the field); 401 for a missing or
wrong secret; 413 for a body over MAX_BODY; 503 `relay_not_configured` while
ALERT_RELAY_SECRET is unset. An alert whose rule is not in the rules list (an Azure platform
alert, a rule made in the portal, sharing the action group) goes through the routes like any
other, with a generic message built from the common schema's essentials (`generic_rule`).

What a caller without the secret can make us do is bounded: such a refusal (401, or 503
while unconfigured) writes no event; it is counted in the `alert_relay_rejected_total`
metric by reason, stderr hears at most one line per reason per minute (`RefusalNotes`), and
the connection closes without its body being read. Refusals after the secret matched are events
(`alert.relay_rejected`) as well as counted. The body is read as it streams in and refused
with 413 the moment it passes MAX_BODY (or at once when Content-Length says so), whatever
Content-Length claims or whether the body is chunked. A JSON number a double cannot hold
(more than 309 digits, 1e400, NaN, Infinity), nesting deeper than MAX_DEPTH, or a
metricValue or threshold that is not finite is a 400 that says so.
"""

from __future__ import annotations

import functools
import hmac
import json
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from ..http import error_response
from ..telemetry import current, get_logger
from ._delivery import Deliverer
from ._payload import PayloadError, parse_alert
from ._routing import generic_rule
from ._rules import AlertRule, rule_by_id

PATH = "/api/alerts/relay"
SECRET_SETTING = "ALERT_RELAY_SECRET"
SECRET_HEADER = "x-relay-secret"
SECRET_QUERY = "secret"
MAX_BODY = 1024 * 1024  # Azure caps a common-schema notification at 256 KB
#: Nesting the common schema never comes near (it is six levels deep).
MAX_DEPTH = 64
#: The metric every refusal is counted in, by `reason` (the error code).
REJECTED_METRIC = "alert_relay_rejected_total"
#: Refusals anyone can cause without the secret: counted and noted, never an event each.
UNAUTHENTICATED = ("relay_not_configured", "missing_secret", "wrong_secret")

log = get_logger("alert-relay")

_ERROR = {"type": "object", "properties": {"error": {"type": "object", "properties": {
    "code": {"type": "string"}, "message": {"type": "string"},
    "parameter": {"type": "string"}}, "required": ["code", "message"]}}}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"description": "handled; per-channel outcomes: delivered, queued (for redelivery by "
                         "the timer), failed, skipped, duplicate, superseded (a Fired after "
                         "its Resolved) or action_group",
          "content": {"application/json": {"example": {
              "alertId": "/subscriptions/.../alerts/1b2c...", "ruleId": "high-sync-failure-rate",
              "condition": "Fired", "duplicate": False,
              "channels": {"email": "action_group", "slack": "queued",
                           "pagerduty": "delivered"},
              "errors": {"slack": "HTTP 503: ... (gave up after 4 attempts)"}}}}},
    400: {"description": "the body is not a common-schema alert; the message names the field",
          "content": {"application/json": {"schema": _ERROR}}},
    401: {"description": "the relay secret is missing or wrong",
          "content": {"application/json": {"schema": _ERROR}}},
    413: {"description": f"the body is over {MAX_BODY} bytes (refused as soon as it is)",
          "content": {"application/json": {"schema": _ERROR}}},
    503: {"description": "ALERT_RELAY_SECRET is not set: the relay refuses every call",
          "content": {"application/json": {"schema": _ERROR}}},
}


@functools.cache
def default_deliverer() -> Deliverer:
    """One Deliverer per process, from the environment (it holds the idempotency memory and
    the outbox, which the redelivery timer shares)."""
    return Deliverer.from_env()


def relay_router(deliverer_factory: Callable[[], Deliverer] = default_deliverer, *,
                 rules: Callable[[str], AlertRule | None] = rule_by_id,
                 notes: RefusalNotes | None = None) -> APIRouter:
    """`POST /api/alerts/relay`. `deliverer_factory` is called per request and should return
    a long-lived Deliverer (duplicates are recognised by the instance); `rules` finds a rule
    by id; `notes` writes the stderr lines about refusals without the secret (default: one
    per reason per minute). ALERT_RELAY_SECRET is read on every request."""
    router = APIRouter(tags=["alerts"])
    notes = notes or RefusalNotes()

    def refuse(status: int, code: str, message: str, parameter: str | None = None,
               headers: dict[str, str] | None = None) -> JSONResponse:
        """A refusal before the secret matched: counted and noted, no event; the body is
        left unread, so the connection closes rather than draining it."""
        _count(code)
        notes.note(code, message)
        return error_response(status, code, message, parameter,
                              {**(headers or {}), "Connection": "close"})

    @router.post(PATH, status_code=202, responses=_RESPONSES, openapi_extra={
        "parameters": [
            {"name": SECRET_QUERY, "in": "query", "required": False,
             "schema": {"type": "string"},
             "description": "the relay secret (ALERT_RELAY_SECRET), as action groups send it"},
            {"name": SECRET_HEADER, "in": "header", "required": False,
             "schema": {"type": "string"}, "description": "the relay secret, as a header"}],
        "requestBody": {"required": True, "description": "Azure Monitor common alert schema",
                        "content": {"application/json": {"schema": {"type": "object"}}}}})
    async def relay(request: Request) -> JSONResponse:
        """Relay one Azure Monitor alert notification (common alert schema) to the rule's
        channels: Slack and PagerDuty here, e-mail by the action group itself."""
        expected = os.environ.get(SECRET_SETTING, "")
        if not expected:
            return refuse(503, "relay_not_configured",
                          f"{SECRET_SETTING} is not set, so the relay accepts no alerts; set it "
                          "and put it in the action group's webhook URL",
                          headers={"Retry-After": "60"})
        given = request.headers.get(SECRET_HEADER) or request.query_params.get(SECRET_QUERY)
        if not given:
            return refuse(401, "missing_secret",
                          f"send the relay secret as the {SECRET_HEADER} header or the "
                          f"{SECRET_QUERY} query parameter", SECRET_QUERY)
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return refuse(401, "wrong_secret", "the relay secret does not match", SECRET_QUERY)

        try:
            raw = await read_body(request, MAX_BODY)
        except BodyTooLarge as exc:
            # Closing is what stops the sender; reading on would only drain what it sends.
            return _reject(413, "body_too_large", str(exc), headers={"Connection": "close"})
        except ClientDisconnect:
            return _reject(400, "invalid_body", "the connection closed before the body ended")
        if not raw.strip():
            return _reject(400, "invalid_body",
                           "the body is empty; expected an Azure Monitor common alert schema "
                           "JSON object")
        try:
            body = parse_json(raw)
        except BodyError as exc:
            return _reject(400, "invalid_body", str(exc))
        try:
            notice = parse_alert(body)
        except PayloadError as exc:
            return _reject(400, "invalid_alert", str(exc), exc.field)
        where = "data.alertContext.condition.allOf[0]"
        for name, number in (("metricValue", notice.value), ("threshold", notice.threshold)):
            if number is not None and not math.isfinite(number):
                return _reject(400, "invalid_alert",
                               f"{where}.{name} must be a finite number, not {number}",
                               f"{where}.{name}")

        deliverer = deliverer_factory()
        rule = rules(notice.rule_id) or generic_rule(notice, deliverer.routes)
        report = await run_in_threadpool(deliverer.deliver, notice, rule)
        return JSONResponse(report.summary(), status_code=202)

    return router


def _count(code: str) -> None:
    current().metric(REJECTED_METRIC, 1, {"reason": code})


def _reject(status: int, code: str, message: str, parameter: str | None = None,
            headers: dict[str, str] | None = None) -> JSONResponse:
    """A refusal of a caller that knows the secret: the app's error shape
    `{"error": {"code", "message", "parameter"?}}`, an event, and the count."""
    _count(code)
    log.warn("alert.relay_rejected", status=status, code=code, reason=message,
             parameter=parameter)
    return error_response(status, code, message, parameter, headers)


# -- reading the body ------------------------------------------------------------------------


class BodyTooLarge(ValueError):
    """The body is over the limit (said by Content-Length, or found while reading)."""


class BodyError(ValueError):
    """The body is not JSON the relay can take; the message says why."""


async def read_body(request: Request, limit: int) -> bytes:
    """The body, read as it arrives and refused as soon as it passes `limit` bytes: at once
    when Content-Length says it will, else when the bytes received do (a Content-Length that
    lies, or none with chunked encoding, cannot get more than `limit` bytes buffered)."""
    declared = request.headers.get("content-length", "").strip()
    if declared.isascii() and declared.isdigit() and (len(declared) > 18
                                                      or int(declared) > limit):
        raise BodyTooLarge(f"the body is over {limit} bytes (Content-Length: "
                           f"{declared[:20]}{'...' if len(declared) > 20 else ''})")
    received = bytearray()
    async for chunk in request.stream():
        if len(received) + len(chunk) > limit:
            raise BodyTooLarge(f"the body is over {limit} bytes")
        received += chunk
    return bytes(received)


def parse_json(raw: bytes) -> Any:
    """JSON as I-JSON (RFC 7493) allows it: every number fits a double (no NaN, Infinity,
    1e400 or integer of thousands of digits), nesting at most MAX_DEPTH, text encodable as
    UTF-8. BodyError says what is wrong."""
    try:
        body = json.loads(raw, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except BodyError:
        raise
    except RecursionError:
        raise BodyError(f"the body is nested too deeply (more than {MAX_DEPTH} levels)") \
            from None
    except ValueError as exc:  # JSONDecodeError, and UnicodeDecodeError for bytes
        raise BodyError(f"the body is not JSON: {exc}") from None
    if _deeper_than(body, MAX_DEPTH):
        raise BodyError(f"the body is nested too deeply (more than {MAX_DEPTH} levels)")
    try:  # lone surrogates decode from \u escapes but cannot be sent on as UTF-8
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeError as exc:
        raise BodyError(f"the body is not JSON text that can be sent on: {exc}") from None
    return body


#: More digits than this is past a double's range (1.8e308) for any integer.
_MAX_DIGITS = 309


def _excerpt(text: str) -> str:
    return text if len(text) <= 24 else f"{text[:12]}...{text[-6:]} ({len(text)} characters)"


def _int(text: str) -> int:
    digits = len(text) - text.startswith("-")
    if digits <= _MAX_DIGITS:
        value = int(text)
        if digits < _MAX_DIGITS or abs(value) <= _DOUBLE_MAX:
            return value
    raise BodyError(f"the body has a number no double can hold (beyond 1.8e308 either way): "
                    f"{_excerpt(text)}")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BodyError(f"the body has a number no double can hold (beyond 1.8e308 either "
                        f"way): {_excerpt(text)}")
    return value


def _constant(name: str) -> Any:
    raise BodyError(f"the body is not JSON: {name} is not a JSON number")


_DOUBLE_MAX = int(sys.float_info.max)


def _deeper_than(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, (dict, list)):
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in
                     (node.values() if isinstance(node, dict) else node))
    return False


# -- refusals without the secret --------------------------------------------------------------


class RefusalNotes:
    """One stderr line per refusal reason per `every_s` (60 s), saying how many more came
    since the last line. Anyone who can reach the relay can cause these refusals, so they are
    counted in the metric rather than logged one by one (each event is paid for at
    ingestion). `clock` is injectable for tests; `stream` defaults to stderr."""

    def __init__(self, every_s: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 stream: IO[str] | None = None) -> None:
        self.every_s = every_s
        self.clock = clock
        self.stream = stream
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def note(self, reason: str, message: str) -> bool:
        """Write a line for this refusal unless one for `reason` went out less than
        `every_s` ago (then it is only counted, for the next line); True if written."""
        now = self.clock()
        with self._lock:
            last = self._last.get(reason)
            if last is not None and now - last < self.every_s:
                self._held[reason] = self._held.get(reason, 0) + 1
                return False
            self._last[reason] = now
            held = self._held.pop(reason, 0)
        line = f"alert relay: refused a request ({reason}): {message}"
        if held:
            line += f"; {held} more refused for this reason since the previous line"
        try:
            stream = self.stream or sys.stderr
            stream.write(" ".join(line.split()) + "\n")
            stream.flush()
        except Exception:
            pass  # stderr closed: the metric still counts
        return True
