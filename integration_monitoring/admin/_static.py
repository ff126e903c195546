"""The dashboard's files as a browser should get them.

The page links each asset with its content hash (`dashboard.js?v=<hash>`), so an asset asked
for by that address is cached for a year without revalidation and a new release is simply a
new address; any other address of it is revalidated (`no-cache` with an ETag, 304 when
unchanged). Files are read and gzipped once, on first use, and sent gzipped to a browser that
accepts it. (HEAD loses the body in the app's BaselineHeaders, as every answer does.)
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from ..http import error_response

#: A hashed address never changes its content: keep it a year, never ask again.
IMMUTABLE = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    gzipped: bytes
    media_type: str
    version: str  # the content hash the page puts in the address

    @property
    def etag(self) -> str:
        return f'"{self.version}"'

    @classmethod
    def of(cls, body: bytes, media_type: str) -> StaticFile:
        return cls(body, gzip.compress(body, mtime=0), media_type,
                   hashlib.sha256(body).hexdigest()[:16])


class StaticFiles:
    """The files of `folder` that may be served, by the name in their address."""

    def __init__(self, folder: Path, assets: Mapping[str, str], page: str = "index.html",
                 prefix: str = "/dashboard/static/") -> None:
        self.folder = folder
        self.assets = dict(assets)  # name in the address -> media type
        self.page_name = page
        self.prefix = prefix
        self._loaded: dict[str, StaticFile | None] = {}
        self._lock = threading.RLock()  # the page loads the assets it links while loading

    def asset(self, name: str) -> StaticFile | None:
        """The asset, or None when it is not one of ours or not built (Chart.js comes from
        `make`)."""
        if name not in self.assets:
            return None
        return self._load(name, lambda body: StaticFile.of(body, self.assets[name]))

    def page(self) -> StaticFile | None:
        """The page, with every asset address carrying its content hash."""
        def versioned(body: bytes) -> StaticFile:
            text = body.decode()
            for name in self.assets:
                found = self.asset(name)
                if found is not None:
                    text = text.replace(f'"{self.prefix}{name}"',
                                        f'"{self.prefix}{name}?v={found.version}"')
            return StaticFile.of(text.encode(), "text/html; charset=utf-8")

        return self._load(self.page_name, versioned)

    def _load(self, name: str, make) -> StaticFile | None:
        with self._lock:
            if name not in self._loaded:
                path = self.folder / name
                self._loaded[name] = make(path.read_bytes()) if path.is_file() else None
            return self._loaded[name]


def file_response(request: Request, file: StaticFile | None, headers: Mapping[str, str],
                  missing: str) -> Response:
    """`file` as `request` should get it: 304 when the browser has it, gzipped when it may
    be, and cached for a year when asked for by its hashed address."""
    if file is None:
        return error_response(404, "not_found", missing)
    hashed = request.query_params.get("v") == file.version
    answer = {**headers, "ETag": file.etag, "Vary": "Accept-Encoding",
              "Cache-Control": IMMUTABLE if hashed else "no-cache"}
    if file.etag in _etags(request.headers.get("if-none-match", "")):
        return Response(status_code=304, headers=answer)
    body = file.body
    if _accepts_gzip(request.headers.get("accept-encoding", "")):
        body = file.gzipped
        answer["Content-Encoding"] = "gzip"
    answer["Content-Length"] = str(len(body))
    return Response(body, media_type=file.media_type, headers=answer)


def _accepts_gzip(header: str) -> bool:
    """Whether Accept-Encoding allows gzip (`gzip`, `*`, not with `q=0`)."""
    for part in header.lower().split(","):
        coding, _, parameters = part.partition(";")
        if coding.strip() in ("gzip", "*"):
            weight = parameters.strip()
            if not weight.startswith("q="):
                return True
            try:
                return float(weight[2:]) > 0
            except ValueError:
                return False
    return False


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}
