"""Uploaded images: sniffed by content (Pillow), never trusted by name or by Content-Type.

Only the few upload routes may carry a body up to ``MAX_UPLOAD_BYTES``; every other body is
held to ``MAX_BODY_BYTES``.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from PIL import Image, UnidentifiedImageError

from server.errors import AppError, BadRequest, Handler
from server.keys import SETTINGS_KEY

IMAGE_FORMATS = {
    "JPEG": ("image/jpeg", "jpg"),
    "PNG": ("image/png", "png"),
    "WEBP": ("image/webp", "webp"),
}
# Routes whose bodies may be as large as MAX_UPLOAD_BYTES.
UPLOAD_PATHS = re.compile(r"^/api/calls/[^/]+/photos$|^/api/reports$|^/open311/v2/requests\.json$")


@dataclass(frozen=True)
class SniffedImage:
    data: bytes
    format: str
    content_type: str
    extension: str
    width: int
    height: int
    sha256: str


def sniff_image(data: bytes) -> SniffedImage:
    """Accept only a whole, real JPEG/PNG/WebP of sane dimensions; otherwise a clear 4xx."""
    try:
        with warnings.catch_warnings():
            # Pillow only warns between 1x and 2x its pixel limit: treat that as a bomb too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                found, size = image.format, image.size
                image.verify()
            with Image.open(io.BytesIO(data)) as image:
                image.load()  # verify() does not decode; a truncated file fails here
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise AppError(
            "The image is too large to open", status=413, code="image_too_large"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise BadRequest(
            "Not an image this server accepts (JPEG, PNG, WebP)", code="not_an_image"
        ) from None
    if found not in IMAGE_FORMATS:
        raise BadRequest("Not an image this server accepts (JPEG, PNG, WebP)", code="not_an_image")
    content_type, extension = IMAGE_FORMATS[found]
    return SniffedImage(
        data, found, content_type, extension, size[0], size[1], hashlib.sha256(data).hexdigest()
    )


@web.middleware
async def body_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    settings = request.app[SETTINGS_KEY]
    limit = (
        settings.MAX_UPLOAD_BYTES if UPLOAD_PATHS.match(request.path) else settings.MAX_BODY_BYTES
    )
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    return await handler(request)


async def stored_file_response(
    path: str, content_type: str, sha256: str, cache: str = "no-store"
) -> web.Response:
    """A stored image or recording, read off the event loop, with the hash it was stored with."""
    data = await asyncio.to_thread(Path(path).read_bytes)
    return web.Response(
        body=data,
        content_type=content_type,
        headers={"Cache-Control": cache, "X-Content-SHA256": sha256},
    )
