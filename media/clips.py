"""Reading an uploaded video clip through with PyAV: the ``ClipProbe`` port.

Only the demuxer of the container its first bytes name opens it (``mp4`` or ``matroska``):
FFmpeg's own probing would also take playlists (HLS, concat) that name other files and URLs.
Every packet is read, within a time bound, and the first video frame decoded, so a truncated
MP4 or a damaged file is refused before anything is stored.
"""

from __future__ import annotations

import io
import time
from typing import Literal

import av
import av.error

from server.core.errors import AppError, ErrorCode
from server.core.ports import ClipFacts

NOT_OURS = "Not a video clip this server accepts (MP4 or WebM)"

# The codecs a phone records (and the pages play): anything else is refused, not transcoded.
VIDEO_CODECS = frozenset({"h264", "hevc", "vp8", "vp9", "av1", "mpeg4"})
AUDIO_CODECS = frozenset({"aac", "opus", "vorbis", "mp3"})

# A clip's picture at most (a 4K phone video passes).
MAX_CLIP_PIXELS = 4096 * 2304


def _damaged() -> AppError:
    return AppError(ErrorCode.NOT_A_VIDEO, "The video is damaged or incomplete")


class PyAVClipProbe:
    """``server.core.ports.ClipProbe`` with PyAV (FFmpeg's demuxers and decoders)."""

    def probe(self, data: bytes, container: Literal["mp4", "webm"], max_secs: float) -> ClipFacts:
        deadline = time.monotonic() + max_secs
        demuxer = "mp4" if container == "mp4" else "matroska"
        try:
            with av.open(io.BytesIO(data), "r", format=demuxer) as media:
                return _read_through(media, container, deadline)
        except (av.error.FFmpegError, ValueError, IndexError, UnicodeDecodeError):
            raise AppError(ErrorCode.NOT_A_VIDEO, NOT_OURS) from None


def _read_through(media: av.container.InputContainer, container: str, deadline: float) -> ClipFacts:
    videos = [stream for stream in media.streams.video]
    if not videos:
        raise AppError(ErrorCode.NOT_A_VIDEO, "The file holds no video")
    video = videos[0]
    # A stream of a codec FFmpeg has no decoder for has no codec context (the fuzzer's find).
    if video.codec_context is None or video.codec_context.name not in VIDEO_CODECS:
        raise AppError(ErrorCode.NOT_A_VIDEO, NOT_OURS)
    if any(
        stream.codec_context is None or stream.codec_context.name not in AUDIO_CODECS
        for stream in media.streams.audio
    ):
        raise AppError(ErrorCode.NOT_A_VIDEO, NOT_OURS)
    width, height = video.codec_context.width, video.codec_context.height
    if width * height > MAX_CLIP_PIXELS:
        raise AppError(ErrorCode.VIDEO_TOO_LARGE, "The video's picture is too large")
    declared = video.frames
    packets = 0
    decoded = False
    for packet in media.demux(video):
        if time.monotonic() > deadline:
            raise AppError(ErrorCode.VIDEO_TOO_LARGE, "The video takes too long to read")
        if packet.size == 0:
            continue
        if packet.is_corrupt:
            raise _damaged()
        packets += 1
        if not decoded:
            decoded = any(True for _frame in packet.decode())
    # An MP4 declares its packets in its index: fewer on the way means a cut file.
    if not decoded or (container == "mp4" and declared and packets < declared):
        raise _damaged()
    duration = float(media.duration) / av.time_base if media.duration is not None else None
    return ClipFacts(width=width, height=height, duration_secs=duration)
