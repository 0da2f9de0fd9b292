"""Video clips for tests, made with PyAV: a real MP4 and WebM, and the fakes a clip route must
refuse (an HTML page, a zip, a cut MP4)."""

from __future__ import annotations

import io
import zipfile

import av
import numpy as np


def make_clip(
    container: str = "mp4",
    *,
    frames: int = 30,
    size: tuple[int, int] = (160, 120),
    noise: bool = False,
) -> bytes:
    """A short clip of a colour ramp (or of noise, which compresses badly: a large file), H.264
    in MP4 or VP8 in WebM."""
    rng = np.random.default_rng(17)
    buffer = io.BytesIO()
    width, height = size
    with av.open(buffer, "w", format=container) as media:
        stream = media.add_stream("h264" if container == "mp4" else "libvpx", rate=15)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            picture = (
                rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
                if noise
                else np.full((height, width, 3), (index * 8) % 256, np.uint8)
            )
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            for packet in stream.encode(frame):
                media.mux(packet)
        for packet in stream.encode():
            media.mux(packet)
    return buffer.getvalue()


def html_named_mp4() -> bytes:
    return b"<!doctype html><html><body><script>alert(1)</script></body></html>" * 20


def zip_named_mp4() -> bytes:
    """A zip bomb's start: 20 MB of zeros deflated to a few kilobytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("clip.mp4", b"\0" * 20_000_000)
    return buffer.getvalue()


def truncated_mp4() -> bytes:
    clip = make_clip("mp4")
    return clip[: len(clip) // 2]


def fake_ftyp_mp4() -> bytes:
    """An MP4 header with nothing after it."""
    return b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2" + b"\0" * 64
