"""The admin ASGI application, served by uvicorn locally and by the Functions host in Azure."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from .admin import (
    Access,
    AccessDenied,
    AdminService,
    Backend,
    Caller,
    SharedQueries,
    admin_router,
    backend_from_settings,
    dashboard_router,
    install_error_handlers,
    routes_router,
    silences_router,
)
from .alerts import Deliverer, ProcessingRules, Silencer, default_deliverer, relay_router
from .http import BaselineHeaders
from .telemetry import configured, current

#: Seconds a server keeps an idle connection: beyond the stream's 5 s poll, so a dashboard's
#: next fetch never races the server closing it (uvicorn's default is 5 s).
KEEP_ALIVE_S = 65


def create_app(on_shutdown: Callable[[], None] | None = None,
               host_status: Callable[[], dict[str, object]] | None = None,
               backend: Backend | None = None,
               deliverer_factory: Callable[[], Deliverer] | None = None,
               stream_options: dict[str, float] | None = None,
               access: Access | None = None,
               allowed_hosts: list[str] | None = None,
               cache: SharedQueries | None = None,
               restatements: bool = True) -> FastAPI:
    """Build the admin app; telemetry should be configured before (see `__main__`).

    `on_shutdown` runs when the server stops gracefully (uvicorn re-raises SIGTERM after
    its shutdown, so `finally` blocks and atexit hooks would not run). `host_status` adds
    the local host's background work to /api/health. The admin queries run on `backend`,
    by default Log Analytics when LOG_ANALYTICS_WORKSPACE_ID is set, else the local store.
    The alert relay delivers through `deliverer_factory` (default: from the environment).
    `access` decides who may call (default: the local server's, from ADMIN_API_TOKEN); the
    relay authenticates with its own secret. `allowed_hosts` refuses requests naming any
    other Host (a web page that rebinds its own name to 127.0.0.1 must not read the API).
    `cache` shares answers between identical questions (default: the backend's freshness;
    partial ones 2 s). With `restatements`, status questions read back only to the latest
    daily restatement, found by a question every ten minutes.
    """
    services: list[AdminService] = []
    silencers: list[Silencer] = []

    def service() -> AdminService:
        if not services:  # first request: the local store opens only when it is needed
            services.append(AdminService(backend or backend_from_settings(), cache,
                                         restatements=restatements))
        return services[0]

    def silencer() -> Silencer:
        if not silencers:
            silencers.append(Silencer((deliverer_factory or default_deliverer)(),
                                      ProcessingRules.from_env()))
        return silencers[0]

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if on_shutdown is not None:
            on_shutdown()

    app = FastAPI(
        lifespan=lifespan,
        title="Integration monitoring admin API",
        version="0.1.0",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )
    app.state.access = access or Access.for_local()
    if allowed_hosts:
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)
    app.add_middleware(BaselineHeaders)  # added last: outside the rest, so on their answers too
    install_error_handlers(app)
    app.include_router(admin_router(service))
    app.include_router(relay_router(deliverer_factory or default_deliverer))
    app.include_router(silences_router(silencer))
    app.include_router(routes_router(lambda: (deliverer_factory or default_deliverer)().routes))
    app.include_router(dashboard_router(service, **(stream_options or {})))

    @app.get("/api/health", tags=["operations"])
    def health(principal: Caller) -> dict[str, object]:
        """Liveness: the process answers; for admins also what telemetry has dropped, the
        alerts waiting for redelivery and the host's background work."""
        if not principal.is_admin:  # the rest is shared infrastructure
            return {"status": "ok"}
        config = configured()
        health: dict[str, object] = {
            "status": "ok",
            "telemetry": config.mode if config else "unconfigured",
            "dropped": current().stats(),
        }
        health["alertOutbox"] = _outbox_summary(deliverer_factory or default_deliverer)
        if host_status is not None:
            health["host"] = host_status()
        return health

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    def prometheus_metrics(principal: Caller) -> Response:
        """The seed's metrics in Prometheus text format, for a scrape (admins only: the
        series carry every tenant's labels)."""
        if not principal.is_admin:
            raise AccessDenied(403, "admins_only", "metrics carry every tenant's labels; "
                               "they are for Monitoring.Admin callers")
        config = configured()
        if config is None or config.prometheus is None:
            return JSONResponse(status_code=404, content={"error": {
                "code": "prometheus_off",
                "message": "Prometheus export is off in this process: configure telemetry "
                           "with prometheus=True or set TELEMETRY_PROMETHEUS=true."}})
        return Response(config.prometheus.exposition(), media_type=config.prometheus.content_type)

    return app


def _outbox_summary(deliverer_factory: Callable[[], Deliverer]) -> dict[str, object]:
    """Alert notifications waiting for redelivery, by channel, and since when."""
    try:
        outbox = getattr(deliverer_factory(), "outbox", None)
        entries = [] if outbox is None else outbox.entries()
    except Exception as error:  # health must answer even when the outbox cannot
        return {"error": f"{type(error).__name__}: {error}"}
    by_channel: dict[str, int] = {}
    for entry in entries:
        by_channel[entry.channel] = by_channel.get(entry.channel, 0) + 1
    oldest = min((entry.queued_at for entry in entries), default=None)
    return {"pending": len(entries), "byChannel": by_channel,
            "oldestQueuedAt": oldest.isoformat() if oldest else None}
