"""Uploaded images: sniffed by content (Pillow), never trusted by name or by Content-Type."""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from server.core.errors import AppError, ErrorCode

IMAGE_FORMATS = {
    "JPEG": ("image/jpeg", "jpg"),
    "PNG": ("image/png", "png"),
    "WEBP": ("image/webp", "webp"),
}


@dataclass(frozen=True)
class SniffedImage:
    data: bytes
    format: str
    content_type: str
    extension: str
    width: int
    height: int
    sha256: str


# The most pixels an uploaded image may declare, read from its header before anything is
# decoded: a 50-megapixel phone photo passes; an 88-megapixel PNG of 277 KB (Pillow's own limit
# lets it through) would take ~350 MB to decode, and a few at once took a node to 4 GB.
MAX_IMAGE_PIXELS = 52_000_000


def sniff_image(data: bytes) -> SniffedImage:
    """Accept only a whole, real JPEG/PNG/WebP of sane dimensions; otherwise a clear 4xx."""
    try:
        with warnings.catch_warnings():
            # Pillow only warns between 1x and 2x its pixel limit: treat that as a bomb too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                found, size = image.format, image.size
                if size[0] * size[1] > MAX_IMAGE_PIXELS:
                    raise Image.DecompressionBombError(f"{size[0]}x{size[1]} pixels")
                image.verify()
            with Image.open(io.BytesIO(data)) as image:
                image.load()  # verify() does not decode; a truncated file fails here
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise AppError(ErrorCode.IMAGE_TOO_LARGE, "The image is too large to open") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise AppError(
            ErrorCode.NOT_AN_IMAGE, "Not an image this server accepts (JPEG, PNG, WebP)"
        ) from None
    if found not in IMAGE_FORMATS:
        raise AppError(ErrorCode.NOT_AN_IMAGE, "Not an image this server accepts (JPEG, PNG, WebP)")
    content_type, extension = IMAGE_FORMATS[found]
    return SniffedImage(
        data, found, content_type, extension, size[0], size[1], hashlib.sha256(data).hexdigest()
    )
