"""The dashboard's page, assets and runbooks without a function key.

A browser cannot send a key when it opens a page, and these hold no data; every API call
the page then makes carries the key in a header. Used only when the host checks function
keys: behind Entra ID sign-in the whole app is one function.
"""

import json
import re
from urllib.parse import unquote, urlsplit

import azure.functions as func

#: The only paths served here; anything else is the keyed app's business.
PUBLIC = re.compile(r"^/(dashboard(/(access|filters)\.json"
                    r"|/static(/[A-Za-z0-9_-][A-Za-z0-9_.-]*)+)?"
                    r"|docs/runbooks/[A-Za-z0-9_-][A-Za-z0-9_.-]*)$")


def blueprint(asgi_app) -> func.Blueprint:
    """Anonymous GET functions for the dashboard's shell, answered by `asgi_app`."""
    bp = func.Blueprint()
    middleware = func.AsgiMiddleware(asgi_app)

    async def serve(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        path = unquote(urlsplit(req.url).path).rstrip("/")
        if not PUBLIC.fullmatch(path) or "/." in path:
            return func.HttpResponse(json.dumps({"error": {
                "code": "not_found", "message": "not a dashboard file"}}), status_code=404,
                mimetype="application/json")
        return await middleware.handle_async(req, context)

    @bp.function_name("dashboard_shell")
    @bp.route(route="dashboard/{*path}", methods=["GET", "HEAD"],
              auth_level=func.AuthLevel.ANONYMOUS)
    async def dashboard_shell(req: func.HttpRequest,
                              context: func.Context) -> func.HttpResponse:
        return await serve(req, context)

    @bp.function_name("runbooks")
    @bp.route(route="docs/runbooks/{name}", methods=["GET", "HEAD"],
              auth_level=func.AuthLevel.ANONYMOUS)
    async def runbooks(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        return await serve(req, context)

    return bp
