"""`/api/admin/silences`: make, list and end alert silences (see alerts/_silences.py); and
`/api/admin/routes`: where alerts go (alerts/routes.json, or ALERT_ROUTES_FILE).

Admins may silence anything; a tenant reader only alerts of their own tenants (the silence
must carry a tenantId Equals matcher naming only those), and sees and ends only such ones.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from ..alerts import (
    SILENCE_DAYS,
    SILENCE_LABELS,
    SILENCE_OPERATORS,
    SILENCE_STATES,
    NotYours,
    SilenceError,
    Silencer,
    describe_routes,
)
from ..http import error_response
from ..telemetry import get_logger
from ._access import AccessDenied
from ._routes import ERRORS, Caller, _json_body, json_only

PATH = "/api/admin/silences"
log = get_logger("admin-api")
_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_UNAVAILABLE = {"model": None, "description": "the relay's store cannot be reached"}

_MATCHER = {"type": "object", "required": ["label", "values"], "properties": {
    "label": {"type": "string", "enum": list(SILENCE_LABELS)},
    "operator": {"type": "string", "enum": list(SILENCE_OPERATORS), "default": "Equals"},
    "values": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 200},
               "minItems": 1, "maxItems": 50}}}
_REQUEST = {"type": "object", "required": ["matchers", "endsAt", "comment"], "properties": {
    "matchers": {"type": "array", "items": _MATCHER, "minItems": 1, "maxItems": 16},
    "startsAt": {"type": "string", "format": "date-time",
                 "description": "default: now"},
    "endsAt": {"type": "string", "format": "date-time"},
    "timeZone": {"type": "string", "default": "UTC",
                 "description": "IANA name; the weekly window's local times are in it"},
    "weekly": {"type": "object", "nullable": True, "required": ["days", "startTime", "endTime"],
               "properties": {
                   "days": {"type": "array",
                            "items": {"type": "string", "enum": list(SILENCE_DAYS)}},
                   "startTime": {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"},
                   "endTime": {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"}}},
    "comment": {"type": "string", "minLength": 1, "maxLength": 1000},
    "createdBy": {"type": "string", "maxLength": 100,
                  "description": "recorded when the caller is not signed in by Entra ID"}}}


def silences_router(silencer: Callable[[], Silencer]) -> APIRouter:
    router = APIRouter(prefix=PATH, tags=["alerts"], responses=ERRORS)

    @router.get("", openapi_extra={"parameters": [
        {"name": "state", "in": "query", "required": False,
         "schema": {"type": "string", "enum": list(SILENCE_STATES)},
         "description": "only active, pending (not begun, or between weekly windows) or "
                        "expired ones"}]})
    async def list_silences(request: Request, principal: Caller) -> Any:
        """Silences the caller may see, newest first, each with its state, its window in
        force or next, and how many notifications it is holding back."""
        states = request.query_params.getlist("state")
        if len(states) > 1 or (states and states[0] not in SILENCE_STATES):
            return error_response(400, "invalid_parameter",
                                  f"state must be one of {', '.join(SILENCE_STATES)}, once",
                                  "state")
        unknown = sorted(set(request.query_params) - {"state"})
        if unknown:
            return error_response(400, "invalid_parameter",
                                  f"unknown parameter {unknown[0]!r}", unknown[0])
        return await _guarded(lambda: {"silences": silencer().listed(
            tenants=principal.tenants, state=states[0] if states else None)})

    @router.post("", status_code=201, openapi_extra={"requestBody": {
        "required": True, "content": {"application/json": {"schema": _REQUEST}}}},
        responses={415: {"description": "the request is not application/json"}})
    async def create_silence(request: Request, principal: Caller) -> Any:
        """Silence alerts matching every matcher, from startsAt (default now) to endsAt,
        optionally only within a weekly window. Recorded as `alert.silence_created`."""
        refused = json_only(request)
        if refused is not None:
            return refused
        body = await _json_body(request)
        by = principal.name
        if principal.via != "entra" and isinstance(body, dict) and "createdBy" in body:
            given = body["createdBy"]
            if not isinstance(given, str) or not given.strip() or len(given) > 100:
                return error_response(400, "invalid_silence",
                                      "createdBy must be a text of 1 to 100 characters",
                                      "createdBy")
            by = given.strip()
        answer = await _guarded(lambda: silencer().create(body, by=by,
                                                          tenants=principal.tenants))
        if isinstance(answer, JSONResponse):
            return answer
        return JSONResponse(answer, status_code=201)

    @router.post("/{silence_id}/expire", responses={
        404: {"description": "no such silence (or not one the caller may see)"},
        415: {"description": "the request is not application/json"}})
    async def expire_silence(silence_id: str, request: Request, principal: Caller) -> Any:
        """End a silence now (send Content-Type: application/json; the body may be {}).
        What it was holding back, and no other silence holds, is sent at once if the alert
        still fires. Recorded as `alert.silence_expired`."""
        refused = json_only(request, "the body may be {}")
        if refused is not None:
            return refused
        if not _ID.fullmatch(silence_id):
            return error_response(400, "invalid_parameter", "not a silence id", "silence_id")
        answer = await _guarded(lambda: silencer().expire(silence_id, by=principal.name,
                                                          tenants=principal.tenants))
        if answer is None:
            return error_response(404, "not_found", f"no silence {silence_id!r}",
                                  "silence_id")
        return answer

    return router


def routes_router(routes: Callable[[], Any]) -> APIRouter:
    """`routes` returns the relay's route table (the Deliverer's)."""
    router = APIRouter(prefix="/api/admin/routes", tags=["alerts"], responses=ERRORS)

    @router.get("")
    async def list_routes(principal: Caller) -> Any:
        """The alert routes in the order they are tried, and the receivers with whether the
        setting holding each one's secret is set (never the secret). Admins only."""
        if not principal.is_admin:
            raise AccessDenied(403, "admins_only", "the routes name every tenant's receivers; "
                               "they are for Monitoring.Admin callers")
        return await _guarded(lambda: describe_routes(routes(), os.environ))

    return router


async def _guarded(work: Callable[[], Any]) -> Any:
    """Run on a worker thread (the store may be remote); a refusal becomes its 4xx, a store
    that cannot answer a 503."""
    try:
        return await run_in_threadpool(work)
    except SilenceError as error:
        return error_response(400, "invalid_silence", str(error), error.field)
    except NotYours as error:
        raise AccessDenied(403, "outside_tenants", str(error), "matchers") from None
    except Exception as error:  # the outbox's store is down
        log.error("alert.silences_unavailable", error=f"{type(error).__name__}: {error}")
        return error_response(503, "silences_unavailable",
                              f"the relay's store could not be reached: "
                              f"{type(error).__name__}", headers={"Retry-After": "30"})
