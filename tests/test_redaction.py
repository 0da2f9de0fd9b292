"""Redacted copies for disclosure (media/redaction.py, server/actions/redactions.py).

The clip is made from a real face, scikit-image's ``astronaut`` photograph (shipped inside
the package), as the recorder stores a segment: Matroska, VP8 video and Opus audio tracks
titled as the recorder titles them. It is entered as a real call's recording through the
recorder's own action (``record_segment``), a supervisor asks for a redacted copy over HTTP,
and the node makes it in the background on its redaction pool. The face box OpenCV's bundled
detector finds on the original must differ strongly in the copy, the rest barely; the audio
packets are the original's, byte for byte; the original's file and hash are untouched; the
chain has the request (with its reason) and the copy's hash, and still verifies.
"""

from __future__ import annotations

import asyncio
import fractions
import hashlib
import json
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
from skimage import data as skimage_data
from sqlmodel import col, select

from config import Settings
from media.redaction import MARGIN, face_detector, find_faces
from server.actions.recordings import record_segment
from server.core.clock import FrozenClock
from server.core.media_rpc import ClosedSegment
from server.core.storage import recording_key
from server.db.models import AuditEntry, Recording, Redaction
from server.http.keys import SERVICES_KEY
from tests.sockets import citizen, start_call
from tests.staff import Client, add_account, another_browser, sign_in

REPO = Path(__file__).resolve().parents[1]
CLIP_FPS = 10
CLIP_SECS = 1.0
# What "differs strongly" and "barely differs" mean here, in mean absolute difference per
# channel (0-255) between the original's decoded frames and the copy's. Measured: ~36 inside
# the face box, ~2 outside the blurred area (VP8 re-encoding's own loss).
FACE_MIN_DIFF = 20.0
REST_MAX_DIFF = 4.0


def make_clip(path: Path) -> None:
    """A segment as the recorder writes one: the astronaut's face for CLIP_SECS, VP8, with
    two Opus tracks (a 440 Hz tone as the caller, silence as the operator)."""
    face = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)
    with av.open(str(path), "w", format="matroska") as out:
        video = out.add_stream("libvpx", rate=CLIP_FPS)
        video.width, video.height, video.pix_fmt = face.shape[1], face.shape[0], "yuv420p"
        video.bit_rate = 2_000_000
        video.options = {"deadline": "realtime", "cpu-used": "8"}
        video.metadata["title"] = "video"
        tracks = []
        for title in ("audio", "operator_audio"):
            track = out.add_stream("libopus", rate=48000, layout="stereo")
            track.metadata["title"] = title
            tracks.append(track)
        for i in range(int(CLIP_SECS * CLIP_FPS)):
            frame = av.VideoFrame.from_ndarray(face, format="bgr24").reformat(format="yuv420p")
            frame.pts, frame.time_base = i, fractions.Fraction(1, CLIP_FPS)
            for packet in video.encode(frame):
                out.mux(packet)
        samples = 960
        for n, track in enumerate(tracks):
            for start in range(0, int(CLIP_SECS * 48000), samples):
                t = np.arange(start, start + samples)
                tone = (np.sin(2 * np.pi * 440 * t / 48000) * 8000 * (1 - n)).astype(np.int16)
                sound = av.AudioFrame.from_ndarray(
                    np.stack([tone, tone]).T.reshape(1, -1), format="s16", layout="stereo"
                )
                sound.sample_rate, sound.pts = 48000, start
                for packet in track.encode(sound):
                    out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        for track in tracks:
            for packet in track.encode(None):
                out.mux(packet)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("clip") / "astronaut.mkv"
    make_clip(path)
    return path.read_bytes()


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="bgr24") for frame in container.decode(video=0)]


def _audio(path: Path) -> dict[str, list[bytes]]:
    with av.open(str(path)) as container:
        titles = {s.index: s.metadata.get("title", "") for s in container.streams.audio}
        packets: dict[str, list[bytes]] = {title: [] for title in titles.values()}
        for packet in container.demux(*container.streams.audio):
            if packet.size:
                packets[titles[packet.stream.index]].append(bytes(packet))
    return packets


async def _recorded_call(client: Client, clip: bytes, channel: str = "police") -> str:
    """A real call, ended, with the clip stored as its first segment by the recorder's own
    action (as the media node reports a closed segment)."""
    call = await start_call(client, channel=channel, mode="text")
    async with citizen(client, call["token"]) as phone:
        assert (await phone.call("end_call", {}))["ok"]
    assert client.app is not None
    services = client.app[SERVICES_KEY]
    key = recording_key(call["call_id"], 1)
    await asyncio.to_thread(services.storage.put, key, clip)
    now = services.clock.now()
    assert await record_segment(
        services,
        ClosedSegment(
            call_id=call["call_id"],
            segment=1,
            key=key,
            path=services.storage.path(key),
            started_at=now - timedelta(seconds=CLIP_SECS),
            ended_at=now,
            size_bytes=len(clip),
            sha256=hashlib.sha256(clip).hexdigest(),
            video_frames=int(CLIP_SECS * CLIP_FPS),
            audio_frames=int(CLIP_SECS * 50),
        ),
    )
    return str(call["call_id"])


async def _ask(browser: Client, csrf: str, call_id: str, reason: str) -> Any:
    return await browser.post(
        f"/api/calls/{call_id}/redactions", json={"reason": reason}, headers={"X-CSRF-Token": csrf}
    )


async def _refused(response: Any, status: int, code: str) -> None:
    body = await response.json()
    assert response.status == status, body
    assert body["error"]["code"] == code, body


async def test_the_redacted_copy_blurs_the_face_keeps_the_rest_and_the_audio(
    client: Client, clock: FrozenClock, settings: Settings, clip: bytes
) -> None:
    call_id = await _recorded_call(client, clip)
    assert client.app is not None
    services = client.app[SERVICES_KEY]
    async with services.db.session() as session:
        original_row = (await session.exec(select(Recording))).one()
    original = settings.storage_dir / original_row.path
    supervisor = await another_browser(client)
    try:
        csrf = await sign_in(supervisor, await add_account(client, "sam", "supervisor"), clock)
        asked = await _ask(supervisor, csrf, call_id, "Disclosure to the defence, case 9/2026")
        assert asked.status == 202, await asked.text()
        [pending] = (await asked.json())["redactions"]
        assert pending["state"] == "pending" and pending["segment"] == 1
        await services.background.drain()  # the copy is made on the redaction pool

        listed = await (await supervisor.get(f"/api/calls/{call_id}/redactions")).json()
        [done] = listed["redactions"]
        assert done["state"] == "done", done
        assert done["source_sha256"] == original_row.sha256
        download = await supervisor.get(done["url"])
        assert download.status == 200, await download.text()
        copy_bytes = await download.read()
        assert hashlib.sha256(copy_bytes).hexdigest() == done["sha256"]
        assert download.headers["X-Content-SHA256"] == done["sha256"]
        assert download.content_type == "video/x-matroska"
    finally:
        await supervisor.close()
    copy = settings.storage_dir / "copy.mkv"
    copy.write_bytes(copy_bytes)

    # The face (as OpenCV's bundled detector finds it on the original) is gone from the copy;
    # everything outside the blurred area is what it was, up to re-encoding.
    before, after = _frames(original), _frames(copy)
    assert len(before) == len(after) == done["frames"] == int(CLIP_SECS * CLIP_FPS)
    assert done["frames_with_faces"] == done["frames"]
    [(x, y, w, h)] = find_faces(face_detector(), before[0])
    face = np.zeros(before[0].shape[:2], bool)
    face[y : y + h, x : x + w] = True
    blurred = np.zeros_like(face)
    dx, dy = round(w * MARGIN) + 2, round(h * MARGIN) + 2
    blurred[max(0, y - dy) : y + h + dy, max(0, x - dx) : x + w + dx] = True
    diffs = [
        np.abs(a.astype(np.int16) - b.astype(np.int16)) for a, b in zip(before, after, strict=True)
    ]
    inside = float(np.mean([d[face].mean() for d in diffs]))
    outside = float(np.mean([d[~blurred].mean() for d in diffs]))
    print(f"mean abs diff: face box {inside:.1f}, outside the blurred area {outside:.2f}")
    assert inside > FACE_MIN_DIFF, inside
    assert outside < REST_MAX_DIFF, outside
    assert not find_faces(face_detector(), after[0])  # nobody's face is left to find

    # The audio is kept: every packet of both tracks, byte for byte.
    assert _audio(copy) == _audio(original)
    assert all(_audio(original).values())

    # The original is untouched: its bytes, its row, its hash.
    assert original.read_bytes() == clip
    async with services.db.session() as session:
        assert (await session.exec(select(Recording))).one() == original_row
        [row] = (await session.exec(select(Redaction))).all()
        entries = (await session.exec(select(AuditEntry).order_by(col(AuditEntry.seq)))).all()
    assert row.path is not None and row.path.startswith(f"redactions/{call_id}/")
    assert row.path != original_row.path
    by_action = {entry.action: entry for entry in entries}
    requested = json.loads(by_action["redaction_requested"].data)
    assert by_action["redaction_requested"].actor == "sam"
    assert requested["reason"] == "Disclosure to the defence, case 9/2026"
    made = json.loads(by_action["redaction_made"].data)
    assert made["sha256"] == row.sha256 and made["source_sha256"] == original_row.sha256
    assert by_action["redaction_viewed"].actor == "sam"
    assert (await services.audit.verify()).ok


async def test_only_evidence_roles_ask_with_a_reason_for_a_call_with_a_recording(
    client: Client, clock: FrozenClock, clip: bytes
) -> None:
    police = await _recorded_call(client, clip)
    hidden = await _recorded_call(client, clip, "internal_security")
    unrecorded = await start_call(client, mode="text")
    browsers = []
    try:
        accounts = {}
        for name, role in (
            ("olga", "operator"),
            ("sam", "supervisor"),
            ("ivan", "internal_security"),
        ):
            browser = await another_browser(client)
            browsers.append(browser)
            accounts[role] = (
                browser,
                await sign_in(browser, await add_account(client, name, role), clock),
            )
        operator, op_csrf = accounts["operator"]
        supervisor, sup_csrf = accounts["supervisor"]
        unit, unit_csrf = accounts["internal_security"]
        await _refused(await _ask(operator, op_csrf, police, "curious"), 403, "role_forbidden")
        await _refused(await _ask(supervisor, sup_csrf, hidden, "look"), 404, "call_not_found")
        await _refused(await _ask(unit, unit_csrf, police, "look"), 404, "call_not_found")
        await _refused(await _ask(supervisor, sup_csrf, police, " "), 400, "reason_required")
        await _refused(
            await _ask(supervisor, sup_csrf, unrecorded["call_id"], "x"), 409, "nothing_to_redact"
        )
        no_csrf = await supervisor.post(f"/api/calls/{police}/redactions", json={"reason": "x"})
        await _refused(no_csrf, 403, "csrf_failed")
        await _refused(
            await supervisor.get(f"/api/calls/{police}/redactions/999/file"),
            404,
            "redaction_not_found",
        )
        asked = await _ask(unit, unit_csrf, hidden, "Complaint 3/2026, for the prosecutor")
        assert asked.status == 202, await asked.text()
        [pending] = (await asked.json())["redactions"]
        # Not ready while it is being made; a supervisor never sees the hidden call's copy.
        early = await unit.get(pending["url"])
        assert early.status in (200, 409)
        await _refused(await supervisor.get(pending["url"]), 404, "call_not_found")
        await _refused(
            await supervisor.get(f"/api/calls/{hidden}/redactions"), 404, "call_not_found"
        )
    finally:
        for browser in browsers:
            await browser.close()
    assert client.app is not None
    await client.app[SERVICES_KEY].background.drain()


async def test_an_altered_original_is_not_redacted(
    client: Client, clock: FrozenClock, settings: Settings, clip: bytes
) -> None:
    """A copy of a file that no longer matches the hash in the chain would launder it."""
    call_id = await _recorded_call(client, clip)
    assert client.app is not None
    services = client.app[SERVICES_KEY]
    key = recording_key(call_id, 1)
    tampered = bytearray(clip)
    tampered[len(clip) // 2] ^= 0xFF
    services.storage.path(key).write_bytes(bytes(tampered))
    supervisor = await another_browser(client)
    try:
        csrf = await sign_in(supervisor, await add_account(client, "sam", "supervisor"), clock)
        assert (await _ask(supervisor, csrf, call_id, "Disclosure")).status == 202
        await services.background.drain()
        [row] = (await (await supervisor.get(f"/api/calls/{call_id}/redactions")).json())[
            "redactions"
        ]
        assert row["state"] == "failed" and row["sha256"] is None
        await _refused(await supervisor.get(row["url"]), 409, "redaction_not_ready")
    finally:
        await supervisor.close()
    async with services.db.session() as session:
        failed = (
            await session.exec(
                select(AuditEntry).where(col(AuditEntry.action) == "redaction_failed")
            )
        ).one()
    assert "original altered" in json.loads(failed.data)["reason"]
    assert not (settings.storage_dir / "redactions").exists()


async def test_the_command_line_makes_a_redacted_copy(
    client: Client, settings: Settings, clip: bytes
) -> None:
    call_id = await _recorded_call(client, clip)
    env = {
        **os.environ,
        "LIFELINE_DATABASE_URL": settings.database_url,
        "LIFELINE_DATA_DIR": str(settings.DATA_DIR),
        "LIFELINE_STORAGE_DIR": str(settings.storage_dir),
        "LIFELINE_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(REPO),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        "evidence",
        "redact",
        call_id,
        "--reason",
        "Case 5/2026",
        env=env,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, out.decode()
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        [row] = (await session.exec(select(Redaction))).all()
        requested = (
            await session.exec(
                select(AuditEntry).where(col(AuditEntry.action) == "redaction_requested")
            )
        ).one()
    assert row.state == "done" and row.sha256 and row.sha256 in out.decode()
    assert requested.actor == "cli"
    assert (settings.storage_dir / (row.path or "")).is_file()
