"""The synthetic caller's media: VP8 640x480 30 fps + Opus, encoded once to a file.

Every frame carries its index painted as 16 black/white blocks along the top edge (10 bits of
index, 6 check bits), so a receiver that decodes (the probe) can tell which frame it sees,
even after the naive relay has decoded and re-encoded it. A keyframe every second, as a
camera that is never asked for one would send; the loop repeats every ``LOOP_FRAMES``.
"""

from __future__ import annotations

import fractions
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av import AudioFrame, VideoFrame

from bench.common import CACHE_DIR

WIDTH, HEIGHT = 640, 480
FPS = 30
LOOP_FRAMES = 300  # 10 s
KEYFRAME_EVERY_FRAMES = 30
VIDEO_BITRATE = 1_000_000  # docs/media.md: ~1 Mbit/s per call
AUDIO_SAMPLE_RATE = 48_000
AUDIO_FRAME_SAMPLES = 960  # 20 ms
AUDIO_LOOP_FRAMES = LOOP_FRAMES * 50 // FPS  # the same 10 s
INDEX_BITS = 10
CHECK_BITS = 6
BLOCK_PX = WIDTH // (INDEX_BITS + CHECK_BITS)  # 40
DARK, LIGHT = 16, 235
FORMAT_VERSION = b"LLBENCH1"
FILE_NAME = f"vp8-opus-{WIDTH}x{HEIGHT}-{FPS}fps-v1.bin"


@dataclass(frozen=True)
class EncodedMedia:
    """One loop of pre-encoded video frames and Opus packets, in sending order."""

    video: list[bytes]
    video_keyframe: list[bool]
    audio: list[bytes]


def _bits(index: int) -> list[int]:
    value = index & ((1 << INDEX_BITS) - 1)
    check = ~value & ((1 << CHECK_BITS) - 1)
    word = value | (check << INDEX_BITS)
    return [(word >> bit) & 1 for bit in range(INDEX_BITS + CHECK_BITS)]


def paint(index: int) -> np.ndarray:
    """The luma plane of frame ``index``: a moving diagonal pattern and the index blocks."""
    rows = np.arange(HEIGHT, dtype=np.int32)[:, None]
    cols = np.arange(WIDTH, dtype=np.int32)[None, :]
    luma = ((rows + cols + index * 4) % 200 + 28).astype(np.uint8)
    for bit, value in enumerate(_bits(index)):
        luma[:BLOCK_PX, bit * BLOCK_PX : (bit + 1) * BLOCK_PX] = LIGHT if value else DARK
    return luma


def read_index(luma: np.ndarray) -> int | None:
    """The index painted in a decoded picture's luma plane; None when the check bits disagree."""
    margin = BLOCK_PX // 4
    word = 0
    for bit in range(INDEX_BITS + CHECK_BITS):
        block = luma[
            margin : BLOCK_PX - margin, bit * BLOCK_PX + margin : (bit + 1) * BLOCK_PX - margin
        ]
        if float(block.mean()) > (DARK + LIGHT) / 2:
            word |= 1 << bit
    value = word & ((1 << INDEX_BITS) - 1)
    if (word >> INDEX_BITS) != (~value & ((1 << CHECK_BITS) - 1)):
        return None
    return value


def _encode_video() -> tuple[list[bytes], list[bool]]:
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width = WIDTH
    encoder.height = HEIGHT
    encoder.pix_fmt = "yuv420p"
    encoder.bit_rate = VIDEO_BITRATE
    encoder.framerate = fractions.Fraction(FPS, 1)
    encoder.time_base = fractions.Fraction(1, FPS)
    encoder.gop_size = KEYFRAME_EVERY_FRAMES
    encoder.options = {
        "deadline": "realtime",
        "cpu-used": "8",
        "lag-in-frames": "0",
        "keyint_min": str(KEYFRAME_EVERY_FRAMES),
    }
    chroma = np.full((HEIGHT // 2, WIDTH // 2), 128, dtype=np.uint8)
    frames: list[bytes] = []
    for index in range(LOOP_FRAMES):
        planes = np.concatenate([paint(index).ravel(), chroma.ravel(), chroma.ravel()])
        frame = VideoFrame.from_ndarray(planes.reshape(HEIGHT * 3 // 2, WIDTH), format="yuv420p")
        frame.pts = index
        # A keyframe at every loop start too, so the loop can restart anywhere safely.
        if index % KEYFRAME_EVERY_FRAMES == 0:
            frame.pict_type = av.video.frame.PictureType.I
        packets = encoder.encode(frame)
        frames.append(b"".join(bytes(p) for p in packets))
    if any(not data for data in frames):
        raise RuntimeError("the VP8 encoder held frames back (lag-in-frames must be 0)")
    keyframes = [(data[0] & 1) == 0 for data in frames]
    if not keyframes[0]:
        raise RuntimeError("the first VP8 frame is not a keyframe")
    return frames, keyframes


def _encode_audio() -> list[bytes]:
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = AUDIO_SAMPLE_RATE
    encoder.layout = "stereo"
    encoder.format = "s16"
    encoder.bit_rate = 32_000
    encoder.time_base = fractions.Fraction(1, AUDIO_SAMPLE_RATE)
    packets: list[bytes] = []
    for index in range(AUDIO_LOOP_FRAMES + 10):
        start = index * AUDIO_FRAME_SAMPLES
        t = (np.arange(AUDIO_FRAME_SAMPLES) + start) / AUDIO_SAMPLE_RATE
        tone = (np.sin(2 * math.pi * 440.0 * t) * 8000).astype(np.int16)
        frame = AudioFrame.from_ndarray(
            np.repeat(tone, 2).reshape(1, -1), format="s16", layout="stereo"
        )
        frame.sample_rate = AUDIO_SAMPLE_RATE
        frame.pts = start
        packets += [bytes(p) for p in encoder.encode(frame)]
    if len(packets) < AUDIO_LOOP_FRAMES:
        raise RuntimeError(f"the Opus encoder gave {len(packets)} packets")
    return packets[:AUDIO_LOOP_FRAMES]


def _write(path: Path, media: EncodedMedia) -> None:
    part = path.with_name(f"{path.name}.{os.getpid()}.part")
    with part.open("wb") as out:
        out.write(FORMAT_VERSION)
        out.write(struct.pack("<II", len(media.video), len(media.audio)))
        for data, key in zip(media.video, media.video_keyframe, strict=True):
            out.write(struct.pack("<?I", key, len(data)))
            out.write(data)
        for data in media.audio:
            out.write(struct.pack("<I", len(data)))
            out.write(data)
    part.replace(path)  # atomic: a concurrent reader sees the whole file or none


def load(path: Path) -> EncodedMedia:
    raw = path.read_bytes()
    if raw[: len(FORMAT_VERSION)] != FORMAT_VERSION:
        raise ValueError(f"{path} is not a bench media file")
    pos = len(FORMAT_VERSION)
    videos, audios = struct.unpack_from("<II", raw, pos)
    pos += 8
    video: list[bytes] = []
    keys: list[bool] = []
    for _ in range(videos):
        key, size = struct.unpack_from("<?I", raw, pos)
        pos += struct.calcsize("<?I")
        video.append(raw[pos : pos + size])
        keys.append(bool(key))
        pos += size
    audio: list[bytes] = []
    for _ in range(audios):
        (size,) = struct.unpack_from("<I", raw, pos)
        pos += 4
        audio.append(raw[pos : pos + size])
        pos += size
    return EncodedMedia(video, keys, audio)


def ensure_media_file(directory: Path = CACHE_DIR) -> Path:
    """The media file, encoded on first use and reused after (it is not committed)."""
    path = directory / FILE_NAME
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        video, keys = _encode_video()
        _write(path, EncodedMedia(video, keys, _encode_audio()))
    return path
