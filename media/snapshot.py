"""Decode one VP8 keyframe into a JPEG (a snapshot, or the wall's small thumbnail): the only
decoding the media node does.

Runs in a worker thread (``asyncio.to_thread``): a 640x480 decode and JPEG encode take a few
milliseconds of CPU that the event loop must not spend.
"""

from __future__ import annotations

from typing import Any

import av
import cv2

JPEG_QUALITY = 85
THUMBNAIL_WIDTH = 320
THUMBNAIL_QUALITY = 70


def _decode(keyframe: bytes) -> Any:
    """A keyframe decodes on its own, so no decoder state is kept between pictures."""
    codec = av.CodecContext.create("vp8", "r")
    frames = list(codec.decode(av.Packet(keyframe)))
    frames += list(codec.decode(None))
    if not frames:
        raise ValueError("the keyframe did not decode")
    image: Any = frames[-1].to_ndarray(format="bgr24")
    return image


def _jpeg(image: Any, quality: int) -> bytes:
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(buffer.tobytes())


def vp8_keyframe_to_jpeg(keyframe: bytes) -> bytes:
    """The full picture, for a snapshot kept as evidence.

    Raises:
        ValueError: the frame does not decode to a picture.
    """
    return _jpeg(_decode(keyframe), JPEG_QUALITY)


def vp8_keyframe_to_thumbnail(keyframe: bytes, width: int = THUMBNAIL_WIDTH) -> bytes:
    """A small JPEG for the wall: ``width`` pixels wide (never enlarged), area-averaged.

    Raises:
        ValueError: the frame does not decode to a picture.
    """
    image = _decode(keyframe)
    height, wide = image.shape[:2]
    if wide > width:
        size = (width, max(1, round(height * width / wide)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return _jpeg(image, THUMBNAIL_QUALITY)
