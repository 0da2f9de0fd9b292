"""The street basemap: the deployment's one PMTiles file (MAP_PMTILES), served whole or in byte
ranges, as the pages' ``pmtiles`` library reads it (a header, a directory, then each tile it
draws). Public, like the maps that draw it, and cacheable: it changes only when an operator
puts a new file in place, and then its ETag changes with it (docs/map.md)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.web_request import BaseRequest

from server.core.errors import AppError, ErrorCode
from server.http.keys import SERVICES_KEY
from server.http.openapi import File, documented

routes = web.RouteTableDef()

BASEMAP_PATH = "/api/map/basemap.pmtiles"
# The one PMTiles file, whole or a byte range of it.
PMTILES = File(("application/octet-stream",))
# A day in a browser's cache; the ETag says when the file was replaced.
CACHE_CONTROL = "public, max-age=86400"


def _etag(st: os.stat_result) -> str:
    """The strong validator aiohttp's FileResponse sends for the file as it is now."""
    return f'"{st.st_mtime_ns:x}-{st.st_size:x}"'


def _range_ignored(request: BaseRequest, st: os.stat_result) -> bool:
    """A Range that must not be applied, so the whole file goes: in a unit other than bytes, or
    with an If-Range naming another version of the file, by its ETag (a weak one never matches)
    or by a date older than the file (RFC 9110, 14.2 and 13.1.5)."""
    if not request.headers.get(hdrs.RANGE, "").strip().lower().startswith("bytes="):
        return True
    if_range = request.headers.get(hdrs.IF_RANGE, "").strip()
    if not if_range:
        return False
    if if_range.startswith(('"', "W/")):
        return if_range != _etag(st)
    since = request.if_range  # HTTP dates have whole seconds, as Last-Modified gave them
    return since is not None and int(st.st_mtime) > since.timestamp()


class _BasemapFile(web.FileResponse):
    """aiohttp's FileResponse (Range, ETag, If-None-Match, Last-Modified), with If-Range judged
    here: aiohttp reads only a date there (and compares it below the second), and answers a
    range of another unit with 416. It sees the request with If-Range taken off, and without
    the Range too when the whole file is to go."""

    def __init__(self, path: Path, st: os.stat_result) -> None:
        super().__init__(
            path,
            headers={
                hdrs.CONTENT_TYPE: "application/octet-stream",
                hdrs.CACHE_CONTROL: CACHE_CONTROL,
            },
        )
        self._stat = st

    async def prepare(self, request: BaseRequest) -> AbstractStreamWriter | None:
        if hdrs.RANGE in request.headers:
            judged = request.headers.copy()
            judged.popall(hdrs.IF_RANGE, None)
            if _range_ignored(request, self._stat):
                judged.popall(hdrs.RANGE, None)
            request = request.clone(headers=judged)
        return await super().prepare(request)


def _unsatisfiable(request: web.Request, size: int) -> bool:
    """A Range that cannot be served: malformed, or starting past the end of the file."""
    try:
        wanted = request.http_range
    except ValueError:
        return True
    return wanted.start is not None and wanted.start >= 0 and wanted.start >= size


@routes.get(BASEMAP_PATH)
@documented(replies={200: PMTILES, 206: PMTILES, 304: PMTILES})
async def basemap(request: web.Request) -> web.StreamResponse:
    path = request.app[SERVICES_KEY].settings.MAP_PMTILES
    if path is None:
        raise AppError(ErrorCode.NOT_FOUND, "No street basemap is configured (MAP_PMTILES)")
    try:
        st = await asyncio.get_running_loop().run_in_executor(None, path.stat)
    except OSError:
        # Checked at start-up; moved away since. The maps fall back to what they have.
        raise AppError(ErrorCode.BASEMAP_UNAVAILABLE, "The street basemap cannot be read") from None
    size = st.st_size
    if (
        hdrs.RANGE in request.headers
        and not _range_ignored(request, st)
        and _unsatisfiable(request, size)
    ):
        raise AppError(
            ErrorCode.RANGE_NOT_SATISFIABLE,
            f"The basemap has {size} bytes; ask for a range inside them (bytes=0-{size - 1})",
            data={"headers": {hdrs.CONTENT_RANGE: f"bytes */{size}"}},
        )
    return _BasemapFile(path, st)
