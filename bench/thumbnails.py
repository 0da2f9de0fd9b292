"""What the wall's live thumbnails cost a media node: CPU per thumbnail (one VP8 keyframe decoded,
resized to 320 px, JPEG-encoded: media/snapshot.py), and what that makes for 16 calls every
THUMBNAIL_INTERVAL_SECS. Keyframes are real VP8 encodes of a natural picture (scikit-image's
astronaut, as tests/test_redaction.py uses) at the sizes a phone sends.

    python -m bench.thumbnails [--calls 16] [--interval 2] [--rounds 200]
"""

from __future__ import annotations

import argparse
import fractions
import time

import av
import cv2
import numpy as np
from av import VideoFrame
from skimage import data

from media.snapshot import vp8_keyframe_to_thumbnail

SIZES = ((640, 480), (1280, 720))


def keyframes(width: int, height: int, count: int) -> list[bytes]:
    """``count`` different VP8 keyframes of the picture, each shifted a little (a moving scene)."""
    picture = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (width + count, height))
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.bit_rate = 1_000_000
    codec.time_base = fractions.Fraction(1, 30)
    codec.options = {"deadline": "realtime", "cpu-used": "8", "g": "1"}  # every frame a keyframe
    out: list[bytes] = []
    for index in range(count):
        image = np.ascontiguousarray(picture[:, index : index + width])
        frame = VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")
        frame.pts = index
        out += [bytes(packet) for packet in codec.encode(frame)]
    out += [bytes(packet) for packet in codec.encode(None)]
    return out[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=16)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    cv2.setNumThreads(1)  # as on a busy node: one core's worth, measured as such
    for width, height in SIZES:
        frames = keyframes(width, height, 20)
        size = sum(len(f) for f in frames) / len(frames)
        vp8_keyframe_to_thumbnail(frames[0])  # warm up
        started_cpu, started = time.process_time(), time.perf_counter()
        for index in range(args.rounds):
            vp8_keyframe_to_thumbnail(frames[index % len(frames)])
        cpu_ms = (time.process_time() - started_cpu) / args.rounds * 1000
        wall_ms = (time.perf_counter() - started) / args.rounds * 1000
        share = cpu_ms / 1000 * args.calls / args.interval * 100
        print(
            f"{width}x{height} keyframe ({size / 1024:.0f} KiB): {cpu_ms:.1f} ms CPU per "
            f"thumbnail ({wall_ms:.1f} ms elapsed); {args.calls} calls every "
            f"{args.interval:g} s: {share:.1f} % of one core"
        )


if __name__ == "__main__":
    main()
