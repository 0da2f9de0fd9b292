"""A redacted copy of a recording segment for disclosure: faces blurred, audio kept.

The video is decoded and re-encoded (VP8, as the recorder stores it) with every face that
OpenCV's bundled Haar cascade finds blurred past recognition; the audio tracks (Opus, the
caller's and the operator's) are copied packet for packet, untouched. Nothing is downloaded:
the cascade ships inside ``opencv-python-headless`` (``cv2.data.haarcascades``; OpenCV 5 no
longer ships it, which is why the pin is 4.x).

A face the detector misses in one frame is still covered: each box is kept for
``HOLD_FRAMES`` frames after it was last seen and grown by ``MARGIN``, so a face turning
for a moment stays blurred. Detection runs on every ``DETECT_EVERY_FRAMES``th frame, on a
copy scaled to ``DETECT_WIDTH_PX`` wide: on 512x512 that is ~5x faster than full size
(measured 1.2 s -> 0.22 s a frame on this project's loaded 2-core test machine), and a face
under ~16 px there is nobody's face that could be recognised anyway.

This blocks for seconds to minutes: the node calls it on a thread of its own pool.
"""

from __future__ import annotations

import fractions
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from server.core.ports import RedactionOutcome

CASCADE = "haarcascade_frontalface_default.xml"
DETECT_WIDTH_PX = 320
DETECT_EVERY_FRAMES = 2
MIN_FACE_PX = 16  # at the detection scale
MARGIN = 0.25  # of the box's size, on each side
HOLD_FRAMES = 8
BLUR_DOWNSCALE = 12  # a face box is shrunk this much and scaled back: no detail survives
VIDEO_BITRATE = 1_500_000
MS_TIME_BASE = fractions.Fraction(1, 1000)

Box = tuple[int, int, int, int]  # x, y, width, height in full-size pixels


def face_detector() -> cv2.CascadeClassifier:
    # cv2.data (where the wheel keeps its cascades) is missing from its type stubs.
    detector = cv2.CascadeClassifier(cv2.data.haarcascades + CASCADE)  # type: ignore[attr-defined]
    if detector.empty():  # the package lost its data: refuse rather than "redact" nothing
        raise RuntimeError(f"OpenCV's {CASCADE} is not where cv2.data says")
    return detector


def find_faces(detector: cv2.CascadeClassifier, image: np.ndarray) -> list[Box]:
    """Faces in a BGR image, in its own pixels."""
    height, width = image.shape[:2]
    scale = min(1.0, DETECT_WIDTH_PX / width)
    small = cv2.resize(image, (round(width * scale), round(height * scale))) if scale < 1 else image
    grey = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
    found = detector.detectMultiScale(
        grey, scaleFactor=1.2, minNeighbors=4, minSize=(MIN_FACE_PX, MIN_FACE_PX)
    )
    return [
        (round(x / scale), round(y / scale), round(w / scale), round(h / scale))
        for x, y, w, h in found
    ]


def blur_boxes(image: np.ndarray, boxes: list[Box]) -> np.ndarray:
    """``image`` with each box (grown by MARGIN) pixelated and smoothed beyond recognition."""
    height, width = image.shape[:2]
    out = image.copy()
    for x, y, w, h in boxes:
        dx, dy = round(w * MARGIN), round(h * MARGIN)
        left, top = max(0, x - dx), max(0, y - dy)
        right, bottom = min(width, x + w + dx), min(height, y + h + dy)
        if right <= left or bottom <= top:
            continue
        region = out[top:bottom, left:right]
        tiny = cv2.resize(
            region,
            (max(1, (right - left) // BLUR_DOWNSCALE), max(1, (bottom - top) // BLUR_DOWNSCALE)),
            interpolation=cv2.INTER_AREA,
        )
        coarse = cv2.resize(tiny, (right - left, bottom - top), interpolation=cv2.INTER_LINEAR)
        out[top:bottom, left:right] = cv2.GaussianBlur(coarse, (0, 0), max(2.0, w / 10))
    return out


@dataclass
class _Held:
    box: Box
    left: int  # frames it is kept after it was last seen


class FaceBlur:
    """The node's redactor (server/core/ports.py: Redactor)."""

    def redact(self, source: Path, target: Path) -> RedactionOutcome:
        detector = face_detector()
        frames = with_faces = 0
        held: list[_Held] = []
        with av.open(str(source)) as original, av.open(str(target), "w", format="matroska") as copy:
            video_in = next(iter(original.streams.video), None)
            outputs: dict[int, av.stream.Stream] = {}
            video_out = None
            if video_in is not None:
                video_out = copy.add_stream("libvpx", rate=30)
                video_out.width = video_in.codec_context.width
                video_out.height = video_in.codec_context.height
                video_out.pix_fmt = "yuv420p"
                video_out.bit_rate = VIDEO_BITRATE
                # libvpx's default (cpu-used 0) took longer to encode than to detect.
                video_out.options = {"deadline": "good", "cpu-used": "4"}
                video_out.time_base = MS_TIME_BASE
                video_out.codec_context.time_base = MS_TIME_BASE
                if "title" in video_in.metadata:
                    video_out.metadata["title"] = video_in.metadata["title"]
            for stream in original.streams.audio:
                out = copy.add_stream_from_template(stream)
                if "title" in stream.metadata:
                    out.metadata["title"] = stream.metadata["title"]
                outputs[stream.index] = out
            for packet in original.demux():
                if packet.dts is None:
                    continue  # the flush packet at the end of a stream
                if packet.stream.type == "audio":
                    packet.stream = outputs[packet.stream.index]
                    copy.mux(packet)
                    continue
                if video_in is None or video_out is None or packet.stream.index != video_in.index:
                    continue
                for frame in packet.decode():
                    if not isinstance(frame, av.VideoFrame):
                        continue
                    image = frame.to_ndarray(format="bgr24")
                    held = [_Held(h.box, h.left - 1) for h in held if h.left > 1]
                    if frames % DETECT_EVERY_FRAMES == 0:
                        held += [_Held(box, HOLD_FRAMES) for box in find_faces(detector, image)]
                    frames += 1
                    if held:
                        with_faces += 1
                        image = blur_boxes(image, [h.box for h in held])
                    out_frame = av.VideoFrame.from_ndarray(image, format="bgr24")
                    if frame.pts is not None and frame.time_base is not None:
                        out_frame.pts = round(frame.pts * frame.time_base / MS_TIME_BASE)
                    out_frame.time_base = MS_TIME_BASE
                    for encoded in video_out.encode(out_frame.reformat(format="yuv420p")):
                        copy.mux(encoded)
            if video_out is not None:
                for encoded in video_out.encode(None):
                    copy.mux(encoded)
        return RedactionOutcome(frames=frames, frames_with_faces=with_faces)
