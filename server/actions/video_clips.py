"""Uploaded video clips: sniffed by content, never trusted by name or by Content-Type.

A clip is taken only when its first bytes are an MP4 (``ftyp``) or a Matroska/WebM (EBML)
header, and then read through by the ``ClipProbe`` (media/clips.py, PyAV) on the node's image
pool, within ``MAX_CLIP_BYTES`` and ``CLIP_PROBE_SECS``: an HTML page, a zip or a cut MP4
named ``.mp4`` is refused with a clear 4xx before anything is stored.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import partial
from typing import Literal

from server.core.errors import AppError, ErrorCode
from server.core.services import Services

MEGABYTE = 1_048_576
NOT_OURS = "Not a video clip this server accepts (MP4 or WebM)"


@dataclass(frozen=True)
class SniffedClip:
    data: bytes
    content_type: str
    extension: str
    width: int
    height: int
    duration_secs: float | None
    sha256: str


def container_of(data: bytes) -> Literal["mp4", "webm"]:
    """``mp4`` or ``webm`` from the first bytes, or a refusal."""
    if len(data) >= 12 and data[4:8] == b"ftyp":
        return "mp4"
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    raise AppError(ErrorCode.NOT_A_VIDEO, NOT_OURS)


async def sniff_clip(services: Services, data: bytes) -> SniffedClip:
    """A whole, real MP4/WebM clip within the size and time bounds, with its hash."""
    settings = services.settings
    if len(data) > settings.MAX_CLIP_BYTES:
        raise AppError(
            ErrorCode.VIDEO_TOO_LARGE,
            f"The video is larger than {settings.MAX_CLIP_BYTES / MEGABYTE:.1f} MB: send a "
            "shorter one",
        )
    container = container_of(data)
    facts = await services.image_pool.run(
        partial(services.clip_probe.probe, data, container, settings.CLIP_PROBE_SECS),
        urgent=True,
    )
    return SniffedClip(
        data,
        f"video/{container}",
        container,
        facts.width,
        facts.height,
        facts.duration_secs,
        hashlib.sha256(data).hexdigest(),
    )
