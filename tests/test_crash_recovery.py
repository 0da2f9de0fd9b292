"""``kill -9`` during a recorded call: a real ``python -m server run`` with a media worker, a
real aiortc phone sending video and audio, answered by an operator who talks back; the node and
its worker are killed outright, as a whole process group, mid-segment. Started again, its new
worker finds the segment the dead one left open, keeps its bytes as they were, hashes it,
writes a playable copy beside it, and the node stores it in the recordings table and the audit
chain as recovered after a crash; the next ``evidence verify`` passes. (A node's own media
recovering at its start-up: tests/test_segment_claims.py, in process.)
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import av
import pyotp
import pytest
from sqlmodel import col, select

from config import Settings
from media.recovery import count_frames
from server.actions.users import Actor, do_create_user
from server.core.clock import SystemClock
from server.core.storage import OPEN_SEGMENTS, FileStorage
from server.db.audit import AuditLog
from server.db.engine import Database
from server.db.models import AuditEntry, Recording
from tests.browser.conftest import RunningServer, start_server, stop_server
from tests.browser.staff import STAFF_PASSWORD
from tests.media_peers import MediaPeer, citizen_peer, subscriber_peer, wait_until
from tests.sockets import answer_via, connect
from tests.staff import csrf_of

MEDIA_TIMEOUT_SECS = 20.0
RECOVERY_TIMEOUT_SECS = 30.0
RECORDED_VIDEO_FRAMES = 75  # whole clusters of about 2.5 s of 30 fps video on disk


def _cli(server: RunningServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class Store:
    """The deployment's database and files, read (and an account made) from the test, as the
    nodes' settings name them."""

    def __init__(self, data_dir: Path) -> None:
        settings = Settings(DATA_DIR=data_dir)
        self.db = Database(settings.database_url)
        self.files = FileStorage(settings.storage_dir)
        self.claims = settings.storage_dir / OPEN_SEGMENTS

    async def add_operator(self, name: str) -> str:
        """``users add`` as the command line does it; returns the TOTP secret."""
        created = await do_create_user(
            AuditLog(self.db, SystemClock()),
            SystemClock(),
            actor=Actor.command_line("test"),
            username=name,
            role="operator",
            password=STAFF_PASSWORD,
            with_totp_secret=True,
        )
        assert created.user.totp_secret
        return created.user.totp_secret

    async def recordings(self, call_id: str) -> list[Recording]:
        async with self.db.session() as session:
            rows = await session.exec(
                select(Recording)
                .where(col(Recording.call_id) == call_id)
                .order_by(col(Recording.segment))
            )
            return list(rows.all())

    async def audit(self, call_id: str) -> list[AuditEntry]:
        async with self.db.session() as session:
            rows = await session.exec(
                select(AuditEntry)
                .where(col(AuditEntry.subject) == f"call:{call_id}")
                .order_by(col(AuditEntry.seq))
            )
            return list(rows.all())


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def servers() -> Iterator[list[RunningServer]]:
    started: list[RunningServer] = []
    yield started
    for server in started:
        if server.process.poll() is None:
            stop_server(server)
        if group_alive(server.process.pid):
            os.killpg(server.process.pid, signal.SIGKILL)
        if server.process.stdout is not None:
            server.process.stdout.close()


async def _sign_in(http: aiohttp.ClientSession, base: str, name: str, secret: str) -> str:
    """The operator's session cookie, signed in through /login as a browser is."""
    async with http.get(f"{base}/login") as page:
        csrf = csrf_of(await page.text())
    form = {
        "username": name,
        "password": STAFF_PASSWORD,
        "totp": pyotp.TOTP(secret).now(),
        "csrf_token": csrf,
        "next": "",
    }
    async with http.post(f"{base}/login", data=form, allow_redirects=False) as response:
        assert response.status == 303, await response.text()
        cookie = response.cookies["lifeline_session"].value
    return cookie


async def _recorded_call_killed(
    server: RunningServer, store: Store, secret: str
) -> tuple[str, Path]:
    """A call recorded for a few seconds, answered and talked to; then the node's whole
    process group is killed. Returns the call's id and its open segment's file."""
    base = server.urls["citizen"].rstrip("/")
    peers: list[MediaPeer] = []
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        body = {"channel": "police", "language": "en", "mode": "video"}
        async with http.post(f"{base}/api/calls", json=body) as response:
            assert response.status == 201, await response.text()
            started = await response.json()
        call_id = started["call_id"]
        cookie = await _sign_in(http, base, "olga", secret)
    auth = {"token": started["token"], "last_seq": 0}
    headers = {"Cookie": f"lifeline_session={cookie}"}
    try:
        async with (
            connect(base, "/citizen", auth=auth) as phone,
            connect(base, "/console", headers=headers) as desk,
        ):
            phone_peer = await citizen_peer(answer_via(phone))
            peers.append(phone_peer)
            await wait_until(
                lambda: phone_peer.pc.connectionState == "connected",
                MEDIA_TIMEOUT_SECS,
                "the phone's media",
            )
            assert (await desk.call("accept", {"call_id": call_id}))["ok"]
            desk_peer = await subscriber_peer(answer_via(desk, call_id=call_id), talk=True)
            peers.append(desk_peer)
            await wait_until(
                lambda: (
                    desk_peer.received.video_frames > 30 and phone_peer.received.audio_frames > 0
                ),
                MEDIA_TIMEOUT_SECS,
                "video at the operator and the operator's voice at the phone",
            )
            assert await store.recordings(call_id) == []  # nothing stored: the segment is open
            files = list(store.files.path(f"recordings/{call_id}").glob("segment-*.mkv"))
            assert len(files) == 1, files
            segment = files[0]
            await wait_until(
                lambda: _video_on_disk(segment) >= RECORDED_VIDEO_FRAMES,
                MEDIA_TIMEOUT_SECS,
                "seconds of the call in the open segment",
            )
            os.killpg(server.process.pid, signal.SIGKILL)
            await asyncio.to_thread(server.process.wait, 30)
            await wait_until(
                lambda: not group_alive(server.process.pid), 10.0, "the node's workers to die"
            )
    finally:
        for peer in peers:
            await peer.close()
    return call_id, segment


def _decoded(path: Path) -> dict[str, int]:
    """Frames PyAV decodes per kind (the caller's video; all audio tracks)."""
    frames = {"video": 0, "audio": 0}
    for kind in frames:
        with av.open(str(path)) as container:
            for stream in [s for s in container.streams if s.type == kind]:
                try:
                    for _ in container.decode(stream):
                        frames[kind] += 1
                except av.error.FFmpegError:
                    pass  # where the writer was cut off
    return frames


def _video_on_disk(path: Path) -> int:
    try:
        return count_frames(path)["video"]
    except av.error.FFmpegError:
        return 0  # not even its header yet


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_kill_9_mid_call_then_restart_recovers_the_open_segment(
    data_dir: Path, servers: list[RunningServer]
) -> None:
    env = {"LIFELINE_MEDIA_WORKERS": "1", "LIFELINE_LOG_LEVEL": "WARNING"}
    first = start_server(data_dir, env, own_group=True)
    servers.append(first)
    store = Store(data_dir)
    try:
        await _crash_and_recover(first, store, data_dir, env, servers)
    finally:
        await store.db.close()


async def _crash_and_recover(
    first: RunningServer,
    store: Store,
    data_dir: Path,
    env: dict[str, str],
    servers: list[RunningServer],
) -> None:
    secret = await store.add_operator("olga")
    call_id, segment = await _recorded_call_killed(first, store, secret)

    # What the crash left: the open segment, its claim, and nothing stored.
    as_left = _sha256(segment)
    claims = list(store.claims.glob("*.claim"))
    assert [claim.name for claim in claims] == [f"{call_id}.0001.claim"], claims
    writer = json.loads(claims[0].read_text())["writer"]
    assert await store.recordings(call_id) == []

    restarted = time.monotonic()
    again = start_server(data_dir, env, fresh_stores=False, own_group=True)
    servers.append(again)
    deadline = time.monotonic() + RECOVERY_TIMEOUT_SECS
    while not (rows := await store.recordings(call_id)):
        assert time.monotonic() < deadline, "the open segment was not recovered"
        await asyncio.sleep(0.2)
    recovered_secs = time.monotonic() - restarted

    [row] = rows
    assert row.segment == 1 and row.recovered is True, row
    assert row.media_node == writer  # the node that wrote it, not the one that found it
    # The evidence is the file as the dead writer left it: not a byte changed.
    assert store.files.path(row.path) == segment
    assert row.sha256 == _sha256(segment) == as_left
    assert row.size_bytes == segment.stat().st_size
    original = _decoded(segment)
    assert original["video"] >= RECORDED_VIDEO_FRAMES, original
    # ... and beside it a copy that players can seek in: the same frames, with a duration.
    assert row.playable_path is not None
    playable = store.files.path(row.playable_path)
    assert playable.parent == segment.parent and playable != segment
    assert row.playable_sha256 == _sha256(playable)
    copy = _decoded(playable)
    assert copy["video"] == original["video"] and copy["audio"] > 0, (copy, original)
    with av.open(str(playable)) as container:
        assert (container.duration or 0) / av.time_base >= RECORDED_VIDEO_FRAMES / 30 - 0.5
        titles = {stream.metadata.get("title") for stream in container.streams}
    assert titles == {"video", "audio", "operator_audio"}, titles
    # The claim is given up once the segment is stored.
    await wait_until(
        lambda: not list(store.claims.glob("*.claim")), 10.0, "the claim to be given up"
    )

    entries = [e for e in await store.audit(call_id) if e.action.startswith("recording_")]
    assert [e.action for e in entries] == ["recording_segment_recovered"], entries
    data = json.loads(entries[0].data)
    assert data["sha256"] == as_left and data["recovered_after"] == "a crash", data
    assert data["playable_sha256"] == row.playable_sha256
    assert data["video_frames"] == original["video"], data
    assert data["writer"] == writer

    verified = _cli(again, "-m", "server", "evidence", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "intact" in verified.stdout
    print(
        f"segment recovered {recovered_secs:.1f} s after the restart (its start included): "
        f"{row.size_bytes} bytes, {original['video']} video frames; its copy "
        f"{row.playable_size_bytes} bytes"
    )
