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
wrong secret; 422 `unknown_rule`; 503 `relay_not_configured` while ALERT_RELAY_SECRET is unset.
"""

from __future__ import annotations

import functools
import hmac
import json
import os
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from ..telemetry import get_logger
from ._delivery import Deliverer
from ._payload import PayloadError, parse_alert
from ._rules import AlertRule, load_rules, rule_by_id

PATH = "/api/alerts/relay"
SECRET_SETTING = "ALERT_RELAY_SECRET"
SECRET_HEADER = "x-relay-secret"
SECRET_QUERY = "secret"
MAX_BODY = 1024 * 1024  # Azure caps a common-schema notification at 256 KB

log = get_logger("alert-relay")

_ERROR = {"type": "object", "properties": {"error": {"type": "object", "properties": {
    "code": {"type": "string"}, "message": {"type": "string"},
    "parameter": {"type": "string"}}, "required": ["code", "message"]}}}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"description": "handled; per-channel outcomes: delivered, queued (for redelivery by "
                         "the timer), failed, skipped, duplicate or action_group",
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
    422: {"description": "the alert names a rule that is not in infra/alert-rules.json",
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
                 rules: Callable[[str], AlertRule | None] = rule_by_id) -> APIRouter:
    """`POST /api/alerts/relay`. `deliverer_factory` is called per request and should return
    a long-lived Deliverer (duplicates are recognised by the instance); `rules` finds a rule
    by id. ALERT_RELAY_SECRET is read on every request."""
    router = APIRouter(tags=["alerts"])

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
            return _reject(503, "relay_not_configured",
                           f"{SECRET_SETTING} is not set, so the relay accepts no alerts; set it "
                           "and put it in the action group's webhook URL",
                           headers={"Retry-After": "60"})
        given = request.headers.get(SECRET_HEADER) or request.query_params.get(SECRET_QUERY)
        if not given:
            return _reject(401, "missing_secret",
                           f"send the relay secret as the {SECRET_HEADER} header or the "
                           f"{SECRET_QUERY} query parameter", SECRET_QUERY)
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return _reject(401, "wrong_secret", "the relay secret does not match", SECRET_QUERY)

        raw = await request.body()
        if len(raw) > MAX_BODY:
            return _reject(400, "invalid_body", f"the body is over {MAX_BODY} bytes")
        if not raw.strip():
            return _reject(400, "invalid_body",
                           "the body is empty; expected an Azure Monitor common alert schema "
                           "JSON object")
        try:
            body = json.loads(raw)
            # Lone surrogates decode from \u escapes but cannot be sent on as UTF-8.
            json.dumps(body, ensure_ascii=False).encode("utf-8")
        except (UnicodeError, json.JSONDecodeError) as exc:
            return _reject(400, "invalid_body", f"the body is not JSON: {exc}")
        except RecursionError:
            return _reject(400, "invalid_body", "the body is nested too deeply")
        try:
            notice = parse_alert(body)
        except PayloadError as exc:
            return _reject(400, "invalid_alert", str(exc), exc.field)

        rule = rules(notice.rule_id)
        if rule is None:
            known = ", ".join(r.id for r in load_rules())
            return _reject(422, "unknown_rule",
                           f"no alert rule {notice.rule_id!r} in infra/alert-rules.json "
                           f"(known: {known})", "data.customProperties.ruleId")
        deliverer = deliverer_factory()
        report = await run_in_threadpool(deliverer.deliver, notice, rule)
        return JSONResponse(report.summary(), status_code=202)

    return router


def _reject(status: int, code: str, message: str, parameter: str | None = None,
            headers: dict[str, str] | None = None) -> JSONResponse:
    """The app's error shape, `{"error": {"code", "message", "parameter"?}}`, and an event."""
    from ..admin._routes import error_response

    log.warn("alert.relay_rejected", status=status, code=code, reason=message,
             parameter=parameter)
    return error_response(status, code, message, parameter, headers)
