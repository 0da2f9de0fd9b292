"""Uploaded images: sniffed by content (Pillow), never trusted by name or by Content-Type."""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Sequence
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

NOT_OURS = "Not an image this server accepts (JPEG, PNG, WebP)"

# Pillow holds a decoded image in blocks of at most this many bytes (16 MB by its default).
# Once glibc has freed one block that large it serves the next from its heaps (its mmap
# threshold rises with each free, up to 32 MB) and keeps that memory after the image is
# closed: a node that had decoded a few big photos stayed hundreds of megabytes larger.
# Blocks above 32 MB are always mapped on their own and unmapped when the image is closed.
DECODED_BLOCK_BYTES = 64 * 1_048_576


def return_decoded_memory() -> None:
    """Make decoded images' memory go back to the system when they are closed. For the whole
    process (Pillow's allocator is global): the composition root calls it once."""
    Image.core.set_block_size(DECODED_BLOCK_BYTES)


@dataclass(frozen=True)
class ImageHeader:
    """What an image declares before any of its pixels is decoded."""

    format: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def read_header(data: bytes) -> ImageHeader:
    """The format and size an image declares, read without decoding it; a clear 4xx for
    anything but a JPEG/PNG/WebP of at most ``MAX_IMAGE_PIXELS``. Cheap: no pixel is decoded."""
    try:
        with warnings.catch_warnings():
            # Pillow only warns between 1x and 2x its pixel limit: treat that as a bomb too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                header = ImageHeader(str(image.format), image.size[0], image.size[1])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise AppError(ErrorCode.IMAGE_TOO_LARGE, "The image is too large to open") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise AppError(ErrorCode.NOT_AN_IMAGE, NOT_OURS) from None
    if header.format not in IMAGE_FORMATS:
        raise AppError(ErrorCode.NOT_AN_IMAGE, NOT_OURS)
    if header.pixels > MAX_IMAGE_PIXELS:
        raise AppError(ErrorCode.IMAGE_TOO_LARGE, "The image is too large to open")
    return header


def check_pixels_together(headers: Sequence[ImageHeader], limit: int) -> None:
    """All images of one request together, as declared: what decoding them would cost is
    known before any is decoded, so a request of several huge images is refused at once."""
    total = sum(header.pixels for header in headers)
    if total > limit:
        raise AppError(
            ErrorCode.PHOTOS_TOO_MANY_PIXELS,
            f"The photos are {total / 1e6:.0f} megapixels together; at most "
            f"{limit / 1e6:.0f} are accepted: send fewer or smaller ones",
        )


def decode_image(data: bytes, *, at_least_px: int = 1) -> tuple[SniffedImage, Image.Image]:
    """Decode a whole, real JPEG/PNG/WebP of sane dimensions (otherwise a clear 4xx), with the
    decoded picture. A JPEG is decoded at the smallest scale (down to 1/8) that keeps both
    sides at least ``at_least_px``: every byte of it is still read, so a truncated file fails,
    at up to 64 times less memory. Blocking and heavy: run it on the node's image pool."""
    header = read_header(data)
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
        image = Image.open(io.BytesIO(data))
        try:
            image.draft(None, (at_least_px, at_least_px))
            image.load()  # verify() does not decode; a truncated file fails here
        except BaseException:
            image.close()
            raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise AppError(ErrorCode.NOT_AN_IMAGE, NOT_OURS) from None
    content_type, extension = IMAGE_FORMATS[header.format]
    sniffed = SniffedImage(
        data,
        header.format,
        content_type,
        extension,
        header.width,
        header.height,
        hashlib.sha256(data).hexdigest(),
    )
    return sniffed, image


def sniff_image(data: bytes) -> SniffedImage:
    """Accept only a whole, real JPEG/PNG/WebP of sane dimensions; otherwise a clear 4xx.
    Blocking and heavy: run it on the node's image pool."""
    sniffed, image = decode_image(data)
    image.close()
    return sniffed
