"""Which segments are open and whose (media/segment_claims.py), and closing those whose writer
died (media/recovery.py): a real recorder in a process of its own (tests/dead_writer.py),
killed with SIGKILL mid-segment.

A live writer's segment is never taken; a dead one's is taken by one sweeper only, its file
kept byte for byte, with a playable copy beside it. A node starting up, and a running node's
periodic sweep, store such a segment as recovered after a crash, in the chain.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import av
import pytest
from sqlmodel import col, select

from config import Settings
from media.hub import RECOVERY_SWEEP_SECS
from media.recovery import count_frames, recover
from media.segment_claims import SegmentClaims
from server.app import create_app
from server.core.clock import FrozenClock
from server.core.media_rpc import ClosedSegment
from server.core.storage import OPEN_SEGMENTS
from server.db.models import AuditEntry, Recording
from server.http.keys import SERVICES_KEY
from tests.conftest import ClientFactory
from tests.media_peers import wait_until
from tests.sockets import start_call
from tests.staff import Client, add_account, another_browser, sign_in

ROOT = Path(__file__).resolve().parent.parent
WRITER = "dead-node.m1"
WRITTEN_FRAMES = 75  # 2.5 s: whole clusters of at least 1 s on disk
TIMEOUT_SECS = 30.0


class DeadWriter:
    """tests/dead_writer.py recording one call under ``root``, until ``kill``ed."""

    def __init__(self, root: Path, call_id: str, *, close: bool = False) -> None:
        self.root = root
        self.call_id = call_id
        args = [sys.executable, "-m", "tests.dead_writer", str(root), call_id, WRITER]
        self.process = subprocess.Popen(
            [*args, "--close"] if close else args,
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )
        self.closed_sha256: str | None = None

    @property
    def segment(self) -> Path:
        return self.root / "recordings" / self.call_id / "segment-0001.mkv"

    @property
    def claim(self) -> Path:
        return self.root / OPEN_SEGMENTS / f"{self.call_id}.0001.claim"

    def wait_for(self, frames: int = WRITTEN_FRAMES, *, closed: bool = False) -> None:
        """Until it has recorded ``frames`` (and closed its segment, ``closed``)."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("closed "):
                self.closed_sha256 = line.split()[1]
            if (closed and self.closed_sha256) or (not closed and line == f"frames {frames}\n"):
                return
        raise AssertionError(f"the writer exited ({self.process.wait()})")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def writers() -> Iterator[list[DeadWriter]]:
    started: list[DeadWriter] = []
    yield started
    for writer in started:
        if writer.process.poll() is None:
            writer.kill()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _video_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_a_live_writers_segment_is_left_alone_and_a_dead_ones_recovered(
    tmp_path: Path, writers: list[DeadWriter]
) -> None:
    writer = DeadWriter(tmp_path, "call-1")
    writers.append(writer)
    writer.wait_for()
    sweeper = SegmentClaims(tmp_path / OPEN_SEGMENTS, writer="sweeper")
    assert list(sweeper.abandoned()) == []  # its writer lives: the lock is held
    assert json.loads(writer.claim.read_text())["state"] == "open"

    writer.kill()
    as_left = _sha256(writer.segment)
    [claim] = list(sweeper.abandoned())
    assert (claim.info.call_id, claim.info.segment, claim.info.writer) == ("call-1", 1, WRITER)
    # One sweeper at a time: another one (another node) finds it held.
    assert list(SegmentClaims(tmp_path / OPEN_SEGMENTS, writer="other").abandoned()) == []

    outcome = recover(claim, root=tmp_path, recovered_by="sweeper")
    assert isinstance(outcome, ClosedSegment) and outcome.recovered is not None
    assert outcome.sha256 == as_left == _sha256(writer.segment)  # not a byte changed
    assert outcome.size_bytes == writer.segment.stat().st_size
    assert outcome.recovered.writer == WRITER and outcome.recovered.recovered_by == "sweeper"
    on_disk = count_frames(writer.segment)
    # Clusters are written whole every second: at most the last 1.5 s is lost.
    assert on_disk["video"] >= WRITTEN_FRAMES - 45 and on_disk["audio"] > 0, on_disk
    assert (outcome.video_frames, outcome.audio_frames) == (on_disk["video"], on_disk["audio"])
    assert outcome.recovered.playable_key == "recordings/call-1/segment-0001.playable.mkv"
    copy = tmp_path / outcome.recovered.playable_key
    assert outcome.recovered.playable_sha256 == _sha256(copy)
    assert _video_frames(copy) == on_disk["video"]
    with av.open(str(copy)) as container:
        assert (container.duration or 0) > 0  # an index and a duration: it seeks

    # Recovering again (the first recoverer died before storing it) writes the same copy.
    again = recover(claim, root=tmp_path, recovered_by="sweeper")
    assert again == outcome

    sweeper.release(claim.info.key)
    assert not writer.claim.exists()
    assert list(SegmentClaims(tmp_path / OPEN_SEGMENTS, writer="other").abandoned()) == []


def test_a_segment_closed_but_never_reported_is_reported_as_closed(
    tmp_path: Path, writers: list[DeadWriter]
) -> None:
    writer = DeadWriter(tmp_path, "call-2", close=True)
    writers.append(writer)
    writer.wait_for(closed=True)
    writer.kill()
    [claim] = list(SegmentClaims(tmp_path / OPEN_SEGMENTS, writer="sweeper").abandoned())
    assert claim.info.state == "closed" and claim.info.sha256 == writer.closed_sha256
    outcome = recover(claim, root=tmp_path, recovered_by="sweeper")
    assert isinstance(outcome, ClosedSegment)
    assert outcome.recovered is None  # its writer closed it: not a crash's leftover
    assert outcome.sha256 == writer.closed_sha256 == _sha256(writer.segment)
    assert outcome.video_frames == count_frames(writer.segment)["video"] > 0
    assert not (tmp_path / "recordings/call-2/segment-0001.playable.mkv").exists()


# -- a node recovers: at its start-up, and in its sweeps ------------------------------------


async def _recovered_row(client: Client, call_id: str) -> Recording:
    assert client.app is not None
    db = client.app[SERVICES_KEY].db
    deadline = time.monotonic() + TIMEOUT_SECS
    while True:
        async with db.session() as session:
            row = (
                await session.exec(select(Recording).where(col(Recording.call_id) == call_id))
            ).first()
        if row is not None:
            return row
        assert time.monotonic() < deadline, "the dead writer's segment was not recovered"
        await asyncio.sleep(0.05)


async def _check_recovered(client: Client, writer: DeadWriter, as_left: str) -> None:
    assert client.app is not None
    services = client.app[SERVICES_KEY]
    row = await _recovered_row(client, writer.call_id)
    assert row.recovered and row.segment == 1 and row.media_node == WRITER
    assert row.sha256 == as_left == _sha256(services.storage.path(row.path))
    assert row.playable_path == "recordings/" + writer.call_id + "/segment-0001.playable.mkv"
    assert row.playable_sha256 == _sha256(services.storage.path(row.playable_path))
    await wait_until(lambda: not writer.claim.exists(), TIMEOUT_SECS, "the claim given up")
    async with services.db.session() as session:
        entries = (
            await session.exec(
                select(AuditEntry).where(col(AuditEntry.subject) == f"call:{writer.call_id}")
            )
        ).all()
    recovered = [e for e in entries if e.action == "recording_segment_recovered"]
    assert len(recovered) == 1, [e.action for e in entries]
    data = json.loads(recovered[0].data)
    assert data["sha256"] == as_left and data["recovered_after"] == "a crash"
    assert data["playable_sha256"] == row.playable_sha256
    assert (await services.audit.verify()).ok
    metrics = await (await client.get("/metrics")).text()
    assert "lifeline_recording_segments_recovered_total 1.0" in metrics


async def test_a_node_starting_up_recovers_what_a_dead_one_left_open(
    client: Client,
    settings: Settings,
    clock: FrozenClock,
    aiohttp_client: ClientFactory,
    writers: list[DeadWriter],
) -> None:
    """The dead writer's segment, found by a node that starts after it died (the same node
    restarted, or another one on the same storage)."""
    call_id = (await start_call(client))["call_id"]
    writer = DeadWriter(settings.storage_dir, call_id)
    writers.append(writer)
    await asyncio.to_thread(writer.wait_for)
    await asyncio.to_thread(writer.kill)
    as_left = _sha256(writer.segment)
    # The running node leaves it until its next sweep; a node starting now takes it at once.
    assert not (await _rows(client, call_id))
    starting = await aiohttp_client(create_app(settings, clock))
    await _check_recovered(starting, writer, as_left)


async def test_a_running_node_sweeps_up_a_dead_nodes_segments(
    client: Client, settings: Settings, clock: FrozenClock, writers: list[DeadWriter]
) -> None:
    """... and the call's record plays it from its playable copy."""
    call_id = (await start_call(client))["call_id"]
    writer = DeadWriter(settings.storage_dir, call_id)
    writers.append(writer)
    await asyncio.to_thread(writer.wait_for)
    await asyncio.to_thread(writer.kill)
    as_left = _sha256(writer.segment)
    assert not (await _rows(client, call_id))
    clock.advance(RECOVERY_SWEEP_SECS)
    await _check_recovered(client, writer, as_left)

    supervisor = await another_browser(client)
    try:
        csrf = await sign_in(supervisor, await add_account(client, "sam", "supervisor"), clock)
        view = await supervisor.post(
            f"/api/archive/calls/{call_id}/views",
            json={"reason": "Case 2026/7: the crashed call"},
            headers={"X-CSRF-Token": csrf},
        )
        assert view.status == 201, await view.text()
        token = (await view.json())["view"]["token"]
        played = await supervisor.get(f"/api/calls/{call_id}/recordings/1", params={"view": token})
        assert played.status == 200, await played.text()
        data = await played.read()
    finally:
        await supervisor.close()
    [row] = await _rows(client, call_id)
    assert row.playable_path is not None
    assert data == (settings.storage_dir / row.playable_path).read_bytes()
    assert played.headers["X-Content-SHA256"] == row.playable_sha256
    assert _sha256(writer.segment) == as_left  # the original untouched


async def _rows(client: Client, call_id: str) -> list[Recording]:
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        rows = await session.exec(select(Recording).where(col(Recording.call_id) == call_id))
        return list(rows.all())
