"""Report photos: sniffed by content, the original kept with its hash, a public copy re-encoded.

The public copy is decoded pixels written anew as a JPEG: no EXIF (so no GPS position, no
camera serial), no comments, and none of the bytes that followed the image in the upload. That
is also our answer to polyglots (a JPEG with a ZIP or an HTML page appended): they are accepted
as the image they are, the original is kept as evidence and never served to the public, and the
public copy carries only the picture.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

from PIL import Image, ImageOps

from server.actions.uploads import (
    SniffedImage,
    check_pixels_together,
    decode_image,
    read_header,
)
from server.core.services import Services
from server.core.storage import Storage, report_photo_key

# The public copy is for a map popup and a phone screen; the original keeps every pixel.
PUBLIC_MAX_SIDE_PX = 2048
PUBLIC_JPEG_QUALITY = 85


@dataclass(frozen=True)
class PreparedPhoto:
    original: SniffedImage
    public: bytes

    @property
    def public_sha256(self) -> str:
        return hashlib.sha256(self.public).hexdigest()


def public_copy(image: Image.Image) -> bytes:
    """Shrink a decoded picture in place, then write it anew as a plain JPEG: turned upright,
    no metadata at all. Shrunk before it is turned, so no second full-size copy is made."""
    image.thumbnail((PUBLIC_MAX_SIDE_PX, PUBLIC_MAX_SIDE_PX))  # a square box: same either way
    upright = ImageOps.exif_transpose(image)
    # A new image holds only pixels: nothing of the original's info (EXIF, XMP, ICC) follows.
    clean = Image.new("RGB", upright.size, "white")
    rgba = upright.convert("RGBA")
    clean.paste(rgba, mask=rgba.getchannel("A"))
    out = io.BytesIO()
    clean.save(out, "JPEG", quality=PUBLIC_JPEG_QUALITY, optimize=True)
    return out.getvalue()


def prepare_photo(data: bytes) -> PreparedPhoto:
    """Sniff (a clear 4xx for anything but a sane JPEG/PNG/WebP) and make the public copy from
    the one decoding (a JPEG decoded no larger than the copy needs). Blocking and heavy: run it
    on the node's image pool."""
    sniffed, image = decode_image(data, at_least_px=PUBLIC_MAX_SIDE_PX)
    with image:
        return PreparedPhoto(sniffed, public_copy(image))


async def prepare_photos(services: Services, files: Sequence[bytes]) -> list[PreparedPhoto]:
    """Every photo of a report: first all their headers (each under the per-image limit, all
    together under ``MAX_REPORT_PIXELS``), so that nothing is decoded for a report refused on
    size; then each decoded on the node's image pool, refused at the first bad one."""
    headers = await asyncio.to_thread(lambda: [read_header(data) for data in files])
    check_pixels_together(headers, services.settings.MAX_REPORT_PIXELS)
    return [await services.image_pool.run(partial(prepare_photo, data)) for data in files]


def store_photos(
    storage: Storage, report_id: int, photos: Sequence[PreparedPhoto]
) -> list[tuple[str, str]]:
    """Each photo's original and public copy, numbered from 1; their keys. Blocking: a
    thread's."""
    keys = []
    for n, photo in enumerate(photos, start=1):
        original = photo.original
        original_key = report_photo_key(
            report_id, n, original.sha256, f"original.{original.extension}"
        )
        public_key = report_photo_key(report_id, n, photo.public_sha256, "public.jpg")
        storage.put(original_key, original.data)
        storage.put(public_key, photo.public)
        keys.append((original_key, public_key))
    return keys
