"""The seed's admin endpoints on a FastAPI router, with errors as JSON that name the cause."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from ..http import error_response
from . import _models as m
from ._access import AccessDenied, Principal, scope
from ._backends import BackendUnavailable, QueryFailed
from ._fairness import Busy, caller_key
from ._filters import FilterError, Filters, openapi_parameters
from ._service import AdminService

PREFIX = "/api/admin/integrations"
_MODELS = {"stats": m.Stats, "health": m.Health, "sync-activity": m.SyncActivity,
           "errors": m.Errors, "performance": m.Performance}
ERRORS = {400: {"model": m.ErrorBody, "description": "a parameter is wrong; the body names it"},
          401: {"model": m.ErrorBody, "description": "credentials are missing or wrong"},
          403: {"model": m.ErrorBody,
                "description": "the caller may not read this (another tenant, no role)"},
          429: {"model": m.ErrorBody,
                "description": "the caller has too many questions or streams open at once; "
                               "Retry-After says when to ask again"},
          502: {"model": m.ErrorBody, "description": "the query engine rejected a query"},
          503: {"model": m.ErrorBody,
                "description": "the query engine is unavailable or throttled; see Retry-After"}}


def caller(request: Request) -> Principal:
    """The authenticated caller (a dependency of every route that reads or changes data);
    AccessDenied becomes a 401 or 403."""
    principal = getattr(request.state, "principal", None)
    if principal is None:
        principal = request.app.state.access.authenticate(request.headers)
        request.state.principal = principal
    return principal


Caller = Annotated[Principal, Depends(caller)]


def scoped(request: Request, filters: Filters) -> Filters:
    """The filters narrowed to the caller's tenants, carrying whose allowance they use."""
    principal = caller(request)
    return replace(scope(filters, principal), caller=caller_key(principal))


async def parsed(request: Request, service: AdminService, endpoint: str, params: Any,
                 now: Any = None) -> Filters:
    """An endpoint's filters in the caller's scope. They are parsed on a worker thread:
    parsing asks the backend where the latest restatement is (every ten minutes), and on
    Log Analytics that question must not hold up every other request on the event loop."""
    return scoped(request, await run_in_threadpool(service.parse, endpoint, params, now))


def install_error_handlers(app: FastAPI) -> None:
    """Every failure is JSON `{"error": {...}}`; nothing leaks a stack trace."""

    @app.exception_handler(AccessDenied)
    async def denied(_: Request, exc: AccessDenied) -> JSONResponse:
        return error_response(exc.status, exc.code, str(exc), exc.parameter, exc.headers)

    @app.exception_handler(FilterError)
    async def bad_filter(_: Request, exc: FilterError) -> JSONResponse:
        return error_response(400, exc.code, str(exc), exc.parameter)

    @app.exception_handler(Busy)
    async def busy(_: Request, exc: Busy) -> JSONResponse:
        return error_response(429, "too_many_requests", str(exc),
                              headers={"Retry-After": str(exc.retry_after)})

    @app.exception_handler(BackendUnavailable)
    async def unavailable(_: Request, exc: BackendUnavailable) -> JSONResponse:
        return error_response(503, "backend_unavailable", str(exc),
                              headers={"Retry-After": str(exc.retry_after)})

    @app.exception_handler(QueryFailed)
    async def query_failed(_: Request, exc: QueryFailed) -> JSONResponse:
        logging.getLogger("integration_monitoring.internal").error("query failed: %s", exc)
        return error_response(502, "query_failed", "the query engine rejected a query")

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        location = first.get("loc", ())
        return error_response(400, "invalid_parameter", str(first.get("msg", "invalid request")),
                              str(location[-1]) if location else None)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        logging.getLogger("integration_monitoring.internal").exception("unexpected error")
        return error_response(500, "internal_error", "unexpected error; it has been logged")


def admin_router(service_factory: Callable[[], AdminService]) -> APIRouter:
    """The five endpoints and the alerts. `service_factory` is called per request."""
    router = APIRouter(tags=["admin"], dependencies=[Depends(caller)])
    integrations = APIRouter(prefix=PREFIX, tags=["admin"], responses=ERRORS)

    async def answer(request: Request, endpoint: str,
                     method: Callable[[AdminService, Any], dict[str, Any]]) -> Any:
        service = service_factory()
        filters = await parsed(request, service, endpoint, request.query_params)
        model = _MODELS.get(endpoint)
        if model is None:  # the alerts: an acknowledgement changes them at once
            return await run_in_threadpool(method, service, filters)

        def build() -> tuple[bytes, bool]:
            result = method(service, filters)
            return model.model_validate(result).model_dump_json().encode(), not result[
                "partial"]

        # who asks is not part of the answer: identical requests share it
        key = (endpoint, replace(filters, caller=""))
        body = await run_in_threadpool(service.rendered.get, key, build)
        return Response(body, media_type="application/json")

    @integrations.get("/stats", response_model=m.Stats, openapi_extra={
        "parameters": openapi_parameters("stats")})
    async def stats(request: Request) -> Response:
        """System overview: integrations by status, jobs by status, top integrations by sync
        volume, and the failure-rate trend."""
        return await answer(request, "stats", AdminService.stats)

    @integrations.get("/health", response_model=m.Health, openapi_extra={
        "parameters": openapi_parameters("health")})
    async def health(request: Request) -> Response:
        """Per integration: status, last successful sync, sync frequency, error count,
        connection status, and a health verdict (healthy, degraded, failing, stale,
        paused)."""
        return await answer(request, "health", AdminService.health)

    @integrations.get("/sync-activity", response_model=m.SyncActivity, openapi_extra={
        "parameters": openapi_parameters("sync-activity")})
    async def sync_activity(request: Request) -> Response:
        """Jobs running now, the last `limit` jobs, records created/updated/failed, and the
        sync duration trend."""
        return await answer(request, "sync-activity", AdminService.sync_activity)

    @integrations.get("/errors", response_model=m.Errors, openapi_extra={
        "parameters": openapi_parameters("errors")})
    async def errors(request: Request) -> Response:
        """Recent errors by integration, the failure-rate trend, top error types, and failed
        jobs."""
        return await answer(request, "errors", AdminService.errors)

    @integrations.get("/performance", response_model=m.Performance, openapi_extra={
        "parameters": openapi_parameters("performance")})
    async def performance(request: Request) -> Response:
        """Average sync duration by integration, records per second, queue depth trend, and
        API latency by adapter."""
        return await answer(request, "performance", AdminService.performance)

    router.include_router(integrations)

    @router.get("/api/admin/me", response_model=m.Me, responses=ERRORS)
    async def me(request: Request, principal: Caller) -> dict[str, Any]:
        """Who the caller is, and which tenants they may read (null: every tenant)."""
        return {**principal.describe(), "mode": request.app.state.access.mode}

    alerts = APIRouter(prefix="/api/admin/alerts", tags=["alerts"], responses=ERRORS)

    @alerts.get("", response_model=m.Alerts, openapi_extra={
        "parameters": openapi_parameters("alerts")})
    async def list_alerts(request: Request) -> dict[str, Any]:
        """Active alerts and alert history (from the relay's alert.fired / alert.resolved
        events), with acknowledgements; `status` is active or resolved."""
        return await answer(request, "alerts", AdminService.alerts)

    @alerts.post("/{alert_id}/ack", response_model=m.Acknowledged, responses={
        404: {"model": m.ErrorBody, "description": "no such alert"},
        415: {"model": m.ErrorBody, "description": "the request is not application/json"}})
    async def acknowledge(alert_id: str, request: Request,
                          principal: Caller) -> Any:
        """Acknowledge an alert; recorded as an `alert.acknowledged` event. Admins only; a
        signed-in admin is recorded by name, whatever the body's `by` says."""
        if not principal.is_admin:
            raise AccessDenied(403, "read_only", "tenant-scoped readers cannot acknowledge "
                               "alerts; ask a Monitoring.Admin")
        if not _ALERT_ID.fullmatch(alert_id):
            raise FilterError("alert_id", "not an alert id")
        refused = json_only(request, "the body may be {}")
        if refused is not None:
            return refused
        body = await _json_body(request)
        try:
            ack = (m.Acknowledgement() if body is None
                   else m.Acknowledgement.model_validate(body))
        except ValidationError as error:
            first = error.errors()[0]
            raise FilterError(".".join(map(str, first["loc"])) or "body",
                              first["msg"]) from None
        if len(ack.by) > 100 or len(ack.note) > 500:
            raise FilterError("note" if len(ack.note) > 500 else "by", "too long")
        by = principal.name if principal.via == "entra" else ack.by
        done = await run_in_threadpool(service_factory().acknowledge, alert_id, by, ack.note)
        if done is None:
            return error_response(404, "not_found", f"no alert {alert_id!r}", "alert_id")
        return done

    router.include_router(alerts)
    return router


_ALERT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,200}$")


def json_only(request: Request, note: str = "") -> JSONResponse | None:
    """A 415 unless the request says it is JSON: a form or text/plain POST from another site
    needs no preflight, so a route that changes something takes JSON only."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "application/json":
        return None
    return error_response(415, "unsupported_media_type", "send Content-Type: application/json"
                          + (f" ({note})" if note else ""))


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        body = json.loads(raw)
        json.dumps(body, ensure_ascii=False).encode("utf-8")  # no lone surrogates
        return body
    except (ValueError, RecursionError):  # UnicodeError is a ValueError
        raise FilterError("body", "the body must be JSON text, not nested too deeply") from None
