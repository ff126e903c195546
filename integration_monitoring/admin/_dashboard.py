"""The dashboard page, its assets, the runbooks it links to, and the live event stream."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from ..alerts import RUNBOOKS, UNKNOWN_RULE_RUNBOOK, load_rules
from ._backends import BackendUnavailable, QueryFailed
from ._filters import FilterError, Filters, definitions, openapi_parameters
from ._routes import ERRORS, PREFIX, Caller, parsed
from ._service import AdminService
from ._static import StaticFiles, file_response

DASHBOARD = Path(__file__).resolve().parent / "dashboard"
#: The only files served from dashboard/ (package files and node_modules stay private).
ASSETS = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "vendor/chart.umd.js": "text/javascript; charset=utf-8",
}
#: Routes a browser may also ask with HEAD (the page, its files, the runbooks).
GET_OR_HEAD = ["GET", "HEAD"]
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def dashboard_router(service_factory: Callable[[], AdminService], *, poll_s: float = 5.0,
                     stream_s: float = 55.0, retry_ms: int = 3000) -> APIRouter:
    router = APIRouter()
    files = StaticFiles(DASHBOARD, ASSETS)
    runbooks = StaticFiles(RUNBOOKS, {Path(page).name: "text/markdown; charset=utf-8"
                                      for page in [*(r.runbook for r in load_rules()),
                                                   UNKNOWN_RULE_RUNBOOK]})

    @router.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/dashboard")

    @router.api_route("/dashboard", methods=GET_OR_HEAD, include_in_schema=False)
    def page(request: Request) -> Response:
        return file_response(request, files.page(), SECURITY_HEADERS, "no dashboard page")

    @router.api_route("/dashboard/access.json", methods=GET_OR_HEAD, include_in_schema=False)
    def access(request: Request) -> dict[str, str]:
        """How the page must sign its API calls; public, like the page (it holds no data)."""
        return request.app.state.access.public()

    @router.api_route("/dashboard/filters.json", methods=GET_OR_HEAD, include_in_schema=False)
    def filters() -> dict[str, Any]:
        """Which filters each endpoint takes, with their rules and defaults, from the
        definitions the API itself parses and documents; public, like access.json."""
        return definitions()

    @router.api_route("/dashboard/static/{path:path}", methods=GET_OR_HEAD,
                      include_in_schema=False)
    def asset(request: Request, path: str) -> Response:
        return file_response(request, files.asset(path), SECURITY_HEADERS,
                             f"no asset {path!r}")

    @router.api_route("/docs/runbooks/{name}", methods=GET_OR_HEAD, include_in_schema=False)
    def runbook(request: Request, name: str) -> Response:
        return file_response(request, runbooks.asset(name), {}, f"no runbook {name!r}")

    @router.get(f"{PREFIX}/stream", tags=["admin"], openapi_extra={
        "parameters": openapi_parameters("stream")},
        responses={**ERRORS, 200: {"content": {"text/event-stream": {}},
                                    "description": "Server-Sent Events: `snapshot` when "
                                                   "data changes"}})
    async def stream(request: Request,
                     principal: Caller) -> StreamingResponse:
        """Server-Sent Events: a `snapshot` (the overview, with a fingerprint of the data in
        view) whenever new telemetry arrives, keep-alive comments otherwise. Each stream ends
        after about a minute with a `retry:` hint, so it also works where the host buffers
        responses; EventSource reconnects by itself."""
        service = service_factory()
        filters = await parsed(request, service, "stream", request.query_params)  # 400, 403
        params = dict(request.query_params)
        held = contextlib.ExitStack()
        held.enter_context(service.fairness.stream(filters.caller))  # 429 beyond the share
        return StreamingResponse(_events(request, service, params, poll_s, stream_s, retry_ms,
                                         held),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache",
                                          "X-Accel-Buffering": "no"},
                                 background=BackgroundTask(held.close))

    return router


async def _events(request: Request, service: AdminService, params: dict[str, str],
                  poll_s: float, stream_s: float, retry_ms: int,
                  held: contextlib.ExitStack) -> AsyncIterator[str]:
    """The stream's events; `held` (the caller's stream allowance) is let go at the end."""
    with held:
        async for event in _polls(request, service, params, poll_s, stream_s, retry_ms):
            yield event


async def _polls(request: Request, service: AdminService, params: dict[str, str],
                 poll_s: float, stream_s: float, retry_ms: int) -> AsyncIterator[str]:
    yield f"retry: {retry_ms}\n\n"
    deadline = time.monotonic() + stream_s
    last = None
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        if await request.is_disconnected():
            return
        try:
            # `until` moves with the clock; the caller's scope applies to every poll. Both
            # questions share one `until`: stats cached for a later one could predate the
            # data the fingerprint saw, and the snapshot would show the old numbers.
            now = dt.datetime.now(dt.UTC)
            filters = _windowed(await parsed(request, service, "stream", params, now), params)
            answer = await run_in_threadpool(service.run, "stream_fingerprint", filters)
            row = answer.rows[0] if answer.rows else {"events": 0, "latest": None}
            fingerprint = f"{row['events']}@{row['latest']}"
            stats = None
            if fingerprint != last:
                stats = await run_in_threadpool(
                    service.stats,
                    _windowed(await parsed(request, service, "stats", params, now), params))
        except (BackendUnavailable, QueryFailed) as error:
            yield "event: unavailable\ndata: " + json.dumps({"message": str(error)}) + "\n\n"
            return  # EventSource reconnects after the retry hint
        except FilterError as error:  # e.g. a fixed `since` now more than 31 days back
            yield "event: error\ndata: " + json.dumps(
                {"parameter": error.parameter, "message": str(error)}) + "\n\n"
            return
        if stats is not None:
            last = fingerprint
            yield "event: snapshot\ndata: " + json.dumps(
                {"fingerprint": fingerprint, "stats": stats}) + "\n\n"
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 15:
            yield ": still here\n\n"
            quiet_since = time.monotonic()
        await asyncio.sleep(poll_s)
    yield "event: bye\ndata: {}\n\n"


def _windowed(filters: Filters, params: dict[str, str]) -> Filters:
    """A window that starts at a chosen `since` starts on its bucket instead, so streams
    whose windows start anywhere in one bucket ask the same questions and share the
    answers (a default window ends on the same 5 s for every stream already)."""
    return filters.aligned() if "since" in params else filters
