"""Decode one VP8 keyframe into a JPEG: the only decoding the media node does.

Runs in a worker thread (``asyncio.to_thread``): a 640x480 decode and JPEG encode take a few
milliseconds of CPU that the event loop must not spend.
"""

from __future__ import annotations

import av
import cv2

JPEG_QUALITY = 85


def vp8_keyframe_to_jpeg(keyframe: bytes) -> bytes:
    """A keyframe decodes on its own, so no decoder state is kept between snapshots.

    Raises:
        ValueError: the frame does not decode to a picture.
    """
    codec = av.CodecContext.create("vp8", "r")
    frames = list(codec.decode(av.Packet(keyframe)))
    frames += list(codec.decode(None))
    if not frames:
        raise ValueError("the keyframe did not decode")
    image = frames[-1].to_ndarray(format="bgr24")
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(buffer.tobytes())
