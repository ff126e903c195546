"""What every HTTP answer of the app shares, whichever router gives it: the JSON error body
and the baseline headers. The admin API, the dashboard routes, the relay and the local server
all answer through these, so an error looks the same wherever it comes from."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

#: What every answer says (BaselineHeaders adds it to the rest). Error answers carry it
#: themselves: the handler for unexpected exceptions answers outside every middleware.
BASELINE_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                    "Cache-Control": "no-store"}


def error_response(status: int, code: str, message: str, parameter: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """`{"error": {"code", "message"[, "parameter"]}}` with the baseline headers."""
    detail = {"code": code, "message": message}
    if parameter:
        detail["parameter"] = parameter
    return JSONResponse({"error": detail}, status_code=status,
                        headers={**BASELINE_HEADERS, **(headers or {})})


class BaselineHeaders:
    """Headers every answer carries: no MIME sniffing, no referrer, and no caching of what a
    route did not say may be cached (answers hold tenants' data, so shared caches and the
    browser's disk must not keep them). A HEAD answer keeps GET's headers and loses its
    body here, whichever server runs the app. A plain ASGI wrapper: streams pass straight
    through."""

    HEADERS = tuple((name.lower().encode(), value.encode())
                    for name, value in BASELINE_HEADERS.items() if name != "Cache-Control")

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        head = scope.get("method") == "HEAD"

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(n, v) for n, v in self.HEADERS if n not in present]
                if b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and head:
                message = {**message, "body": b""}
            await send(message)

        await self.app(scope, receive, send_with_headers)
