"""A call's recording in a process of its own, for a test to kill outright.

``python -m tests.dead_writer STORAGE_DIR CALL_ID WRITER_ID [--close]``: the real recorder
(media/recorder.py) with its real segment claims, fed VP8 (libvpx) and Opus (libopus) frames
at 30 and 50 per second, as a caller's phone sends them. It prints ``frames N`` after each
video frame; with ``--close`` it closes its segment after 2 s and prints ``closed SHA256``,
then waits, never reporting it (a media worker that died before its report got through).
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import math
import time
from pathlib import Path

import av
import numpy as np

from media.passthrough import EncodedFrame
from media.recorder import Recording
from media.segment_claims import SegmentClaims
from server.core.clock import SystemClock
from server.core.media_rpc import ClosedSegment
from server.core.storage import OPEN_SEGMENTS, RECORDINGS

WIDTH, HEIGHT = 320, 240
FPS = 30
CLOSE_AFTER_FRAMES = 60


def _video_encoder() -> av.video.codeccontext.VideoCodecContext:
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    encoder.time_base = fractions.Fraction(1, FPS)
    encoder.bit_rate = 300_000
    encoder.options = {"deadline": "realtime", "cpu-used": "-6", "lag-in-frames": "0"}
    return encoder


def _audio_encoder() -> av.audio.codeccontext.AudioCodecContext:
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format = 48_000, "stereo", "s16"
    encoder.time_base = fractions.Fraction(1, 48_000)
    return encoder


async def main(root: Path, call_id: str, writer: str, close: bool) -> None:
    closed: asyncio.Future[ClosedSegment] = asyncio.get_running_loop().create_future()

    async def on_closed(segment: ClosedSegment) -> None:
        closed.set_result(segment)  # and never reported: the claim stays

    recording = Recording(
        call_id=call_id,
        directory=root / RECORDINGS,
        clock=SystemClock(),
        segment_secs=60,
        request_keyframe=lambda: None,
        on_closed=on_closed,
        claims=SegmentClaims(root / OPEN_SEGMENTS, writer=writer),
    )
    recording.start(has_video=True)
    video, audio = _video_encoder(), _audio_encoder()
    start = time.monotonic()
    samples = 0
    for n in range(1_000_000):
        picture = np.full((HEIGHT, WIDTH, 3), (n * 8) % 256, np.uint8)
        picture[: HEIGHT // 2, : WIDTH // 2] = 255 - (n * 8) % 256
        frame = av.VideoFrame.from_ndarray(picture, format="bgr24").reformat(format="yuv420p")
        frame.pts = n
        for packet in video.encode(frame):
            recording.on_frame(
                "video",
                _frame("video", "VP8", bytes(packet), n * 3000, 90_000, bool(packet.is_keyframe)),
            )
        while samples < (n + 1) * 48_000 // FPS:
            t = (np.arange(960) + samples) / 48_000
            tone = (np.sin(2 * math.pi * 440 * t) * 8000).astype(np.int16)
            stereo = np.repeat(tone, 2)[None, :]  # packed: left, right, left, ...
            chunk = av.AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
            chunk.sample_rate, chunk.pts = 48_000, samples
            for packet in audio.encode(chunk):
                recording.on_frame(
                    "audio", _frame("audio", "opus", bytes(packet), samples, 48_000, False)
                )
            samples += 960
        print(f"frames {n + 1}", flush=True)
        if close and n + 1 == CLOSE_AFTER_FRAMES:
            recording.stop()
            print(f"closed {(await closed).sha256}", flush=True)
            await asyncio.Event().wait()
        await asyncio.sleep(max(0.0, start + (n + 1) / FPS - time.monotonic()))


def _frame(
    kind: str, codec: str, data: bytes, timestamp: int, rate: int, key: bool
) -> EncodedFrame:
    return EncodedFrame(
        kind="video" if kind == "video" else "audio",
        codec=codec,
        data=data,
        timestamp=timestamp,
        clock_rate=rate,
        keyframe=key,
        arrival=time.monotonic(),
        source=1,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("call_id")
    parser.add_argument("writer")
    parser.add_argument("--close", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.root, args.call_id, args.writer, args.close))
