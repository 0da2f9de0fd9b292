"""The video sniffer: ``server.actions.video_clips.container_of`` on the first bytes, then
``media.clips.PyAVClipProbe`` reading the clip through. Refusal: ``AppError`` (a 4xx)."""

from __future__ import annotations

from media.clips import PyAVClipProbe
from server.actions.video_clips import container_of
from server.core.errors import AppError
from tests.clips import fake_ftyp_mp4, make_clip, truncated_mp4
from tests.fuzz.harness import Target

PROBE_SECS = 2.0


def one_input(data: bytes) -> None:
    try:
        PyAVClipProbe().probe(data, container_of(data), PROBE_SECS)
    except AppError:
        return


def _seeds() -> list[bytes]:
    return [
        make_clip("mp4", frames=3, size=(32, 24)),
        make_clip("webm", frames=3, size=(32, 24)),
        truncated_mp4(),
        fake_ftyp_mp4(),
    ]


TARGET = Target("clips", one_input, tuple(_seeds()))
