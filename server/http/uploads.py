"""Request bodies: only the few upload routes may carry one up to ``MAX_UPLOAD_BYTES``; every
other body is held to ``MAX_BODY_BYTES``. Stored files go back from the storage (any node reads
what another stored) with the hash they were stored with.
"""

from __future__ import annotations

import asyncio
import logging
import re

from aiohttp import web

from server.core.errors import AppError, ErrorCode
from server.core.storage import Storage
from server.http.bodies import read_form
from server.http.keys import SERVICES_KEY, Handler

log = logging.getLogger("lifeline.http")

# Routes whose bodies may be as large as MAX_UPLOAD_BYTES.
UPLOAD_PATHS = re.compile(r"^/api/calls/[^/]+/photos$|^/api/reports$|^/open311/v2/requests\.json$")
# Routes that take a video clip: MAX_CLIP_BYTES and the multipart form around it.
CLIP_PATHS = re.compile(r"^/api/calls/[^/]+/clips$|^/api/threads/[^/]+/attachments$")
MULTIPART_OVERHEAD_BYTES = 64 * 1024


def clip_body_limit(max_clip_bytes: int, max_upload_bytes: int) -> int:
    """The largest body a clip route takes: a clip, or a photo, in its form."""
    return max(max_clip_bytes, max_upload_bytes) + MULTIPART_OVERHEAD_BYTES


@web.middleware
async def body_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    settings = request.app[SERVICES_KEY].settings
    if CLIP_PATHS.match(request.path):
        limit = clip_body_limit(settings.MAX_CLIP_BYTES, settings.MAX_UPLOAD_BYTES)
    elif UPLOAD_PATHS.match(request.path):
        limit = settings.MAX_UPLOAD_BYTES
    else:
        limit = settings.MAX_BODY_BYTES
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    return await handler(request)


async def read_upload(request: web.Request, name: str, missing: ErrorCode) -> bytes:
    """The bytes of the multipart form's file field ``name``, or ``missing`` (a 4xx)."""
    if not request.content_type.startswith("multipart/"):
        raise AppError(missing, f"Send the file as multipart/form-data, field {name!r}")
    form = await read_form(request)
    field = form.get(name)
    if not isinstance(field, web.FileField):
        raise AppError(missing, f"Send the file as multipart/form-data, field {name!r}")
    return field.file.read()


# A stored file is what someone uploaded: were it opened as a page of our origin (a polyglot
# that is also HTML), it must run nothing and reach nothing.
STORED_FILE_CSP = "sandbox; default-src 'none'"


async def stored_file_response(
    storage: Storage,
    key: str,
    content_type: str,
    sha256: str,
    cache: str = "no-store",
    *,
    download_as: str | None = None,
) -> web.StreamResponse:
    """A stored image or recording, streamed from the storage's file, with the hash it was
    stored with; ``download_as`` serves it as an attachment of that name (an original, never
    shown inline).

    Raises:
        AppError: ``FILE_UNAVAILABLE``, the database names a file this node's storage lacks
            (a ``STORAGE_DIR`` not shared by every node, or not mounted).
    """
    path = storage.path(key)
    if not await asyncio.to_thread(path.is_file):
        # Not the key: it holds the call's id, and the call may be a hidden one.
        log.error("stored file missing", extra={"kind": key.split("/", 1)[0]})
        raise AppError(
            ErrorCode.FILE_UNAVAILABLE, "The file is not in this node's storage at the moment"
        )
    headers = {
        "Cache-Control": cache,
        "Content-Type": content_type,
        "X-Content-SHA256": sha256,
        "Content-Security-Policy": STORED_FILE_CSP,
    }
    if download_as is not None:
        headers["Content-Disposition"] = f'attachment; filename="{download_as}"'
    return web.FileResponse(path, headers=headers)
