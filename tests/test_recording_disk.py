"""A full recording disk (issue 11): the calls go on unrecorded, and every screen says so.

The disk is real: a 48 MiB tmpfs mounted as the server's STORAGE_DIR, filled with a file to
below RECORDING_MIN_FREE_MB while a real aiortc caller is in a recorded call with an operator
(Socket.IO console and media) and a wall open. Free space is real, so the media node's check
runs in real time here: the frozen app clock is moved on with the real one while it runs.
Filled to the last byte, the open segment's writer meets a real ENOSPC (its segment is then
recovered as it lay): the call must end the same way, paused, then resumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from config import Settings
from media.recovery import sha256_of
from server.core.clock import FrozenClock
from server.db.models import AuditEntry
from server.http.keys import SERVICES_KEY
from server.node import MEDIA_HUB_KEY
from tests.evidence_calls import stored_segments
from tests.media_peers import MediaPeer, citizen_peer, subscriber_peer, wait_until
from tests.sockets import Peer, answer_via, citizen, console, start_call
from tests.staff import Client, add_account, another_browser, sign_in

MIN_FREE_MB = 16
# What the filler leaves: under the floor; or nothing, so that the writer's next cluster fails
# with a real ENOSPC before (or as) the check sees the disk low: it must end the same way.
BELOW_THE_FLOOR = 8 << 20
FULL = 0
BANNER_BOUND_SECS = 2.0  # the bound: "NOT RECORDING" on every screen within 2 s
TIMEOUT_SECS = 20.0


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[Path]:
    """A small filesystem of its own standing in for the recording disk (we run as root)."""
    where = tmp_path / "volume"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


@pytest.fixture
def settings(settings: Settings, volume: Path) -> Settings:
    return settings.model_copy(update={"STORAGE_DIR": volume, "RECORDING_MIN_FREE_MB": MIN_FREE_MB})


@contextlib.asynccontextmanager
async def real_time(clock: FrozenClock) -> AsyncIterator[None]:
    """The frozen app clock follows the real one (the disk's free space is real)."""

    async def follow() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.05)
            now = time.monotonic()
            clock.advance(now - last)
            last = now

    task = asyncio.create_task(follow())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def recording_update(socket: Peer, call_id: str, *, paused: bool) -> dict[str, Any]:
    """The next update of the call whose summary says it is (not) recorded."""

    async def wait() -> dict[str, Any]:
        while True:
            event = await socket.events.get()
            call = event.get("call") or {}
            if (
                event.get("type") == "queue.call_updated"
                and call.get("call_id") == call_id
                and (call.get("recording_paused_at") is not None) == paused
            ):
                return dict(call)

    return await asyncio.wait_for(wait(), TIMEOUT_SECS)


def fill(volume: Path, leave_bytes: int) -> Path:
    stat = os.statvfs(volume)
    free = stat.f_bavail * stat.f_frsize
    filler = volume / "filler"
    with filler.open("wb") as out:
        os.posix_fallocate(out.fileno(), 0, free - leave_bytes)
    return filler


async def metric(client: Client, name: str) -> float:
    text = await (await client.get("/metrics")).text()
    [line] = [line for line in text.splitlines() if line.startswith(name + "{")]
    return float(line.rsplit(" ", 1)[1])


async def chain(client: Client, call_id: str, action: str) -> list[dict[str, Any]]:
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        rows = await session.exec(
            select(AuditEntry)
            .where(col(AuditEntry.subject) == f"call:{call_id}", col(AuditEntry.action) == action)
            .order_by(col(AuditEntry.seq))
        )
        return [json.loads(entry.data) for entry in rows.all()]


@pytest.mark.parametrize("leave_bytes", [BELOW_THE_FLOOR, FULL], ids=["below-floor", "enospc"])
async def test_a_full_disk_pauses_the_recording_and_space_resumes_it(
    client: Client,
    operator: Client,
    clock: FrozenClock,
    volume: Path,
    settings: Settings,
    leave_bytes: int,
) -> None:
    assert client.app is not None
    hub = client.app[MEDIA_HUB_KEY]
    assert hub is not None
    supervisor = await another_browser(client)
    await sign_in(supervisor, await add_account(client, "sara", "supervisor"), clock)
    started = await start_call(client)
    call_id = started["call_id"]
    calls_dir = volume / "recordings" / call_id
    peers: list[MediaPeer] = []
    try:
        async with (
            real_time(clock),
            citizen(client, started["token"]) as phone,
            console(operator) as desk,
            console(supervisor) as wall,
        ):
            assert (await wall.call("wall", {}))["ok"]
            peers.append(await citizen_peer(answer_via(phone)))
            assert (await desk.call("accept", {"call_id": call_id}))["ok"]
            operator_peer = await subscriber_peer(answer_via(desk, call_id=call_id), talk=True)
            peers.append(operator_peer)
            await wait_until(
                lambda: (
                    (calls_dir / "segment-0001.mkv").exists()
                    and hub.stats(call_id)["recording"]["queued"] > 60
                    and operator_peer.received.video_frames > 30
                ),
                TIMEOUT_SECS,
                "a recorded call, its video at the operator",
            )

            filler = fill(volume, leave_bytes)
            filled_at = time.monotonic()
            at_desk, at_wall = await asyncio.gather(
                recording_update(desk, call_id, paused=True),
                recording_update(wall, call_id, paused=True),
            )
            seen_secs = time.monotonic() - filled_at
            assert seen_secs <= BANNER_BOUND_SECS, seen_secs
            assert at_desk["state"] == at_wall["state"] == "answered"
            # The call goes on: the operator still gets the caller's video.
            before = operator_peer.received.video_frames
            await wait_until(
                lambda: operator_peer.received.video_frames > before + 30,
                TIMEOUT_SECS,
                "video at the operator while nothing is recorded",
            )
            # The open segment was closed, hashed and stored (closed cleanly, or recovered as
            # it lay after its writer's ENOSPC); nothing more is written.
            deadline = time.monotonic() + TIMEOUT_SECS
            while [r.segment for r in await stored_segments(client, call_id)] != [1]:
                assert time.monotonic() < deadline, "the first segment not stored"
                await asyncio.sleep(0.05)
            assert hub.stats(call_id)["recording"]["paused"] is True
            assert not (calls_dir / "segment-0002.mkv").exists()
            media_node = settings.NODE_ID
            label = f'{{media_node="{media_node}"}}'
            assert await metric(client, "lifeline_recording_paused_calls") == 1.0, label
            assert await metric(client, "lifeline_recording_disk_low") == 1.0
            assert await metric(client, "lifeline_recording_disk_free_bytes") < MIN_FREE_MB << 20
            ready = await client.get("/readyz")
            assert ready.status == 200  # calls go on: the node stays in the balancer
            body = await ready.json()
            assert "recording_disk" in body["degraded"], body
            assert body["recording_disk_low"] == [media_node]
            assert body["calls_not_recorded"] == 1
            # A wall opened now shows it too: the state is the call's.
            [shown] = [c for c in (await wall.call("wall", {}))["calls"] if c["call_id"] == call_id]
            assert shown["recording_paused_at"] is not None

            filler.unlink()
            await asyncio.gather(
                recording_update(desk, call_id, paused=False),
                recording_update(wall, call_id, paused=False),
            )
            # Recording resumes as the next segment, which grows.
            second = calls_dir / "segment-0002.mkv"
            await wait_until(second.exists, TIMEOUT_SECS, "the next segment")
            size = second.stat().st_size
            await wait_until(
                lambda: second.stat().st_size > size + 10_000, TIMEOUT_SECS, "it growing"
            )
            assert await metric(client, "lifeline_recording_paused_calls") == 0.0
            assert "degraded" not in await (await client.get("/readyz")).json()
            await hub.end_call(call_id)
    finally:
        for peer in peers:
            await peer.close()
        await supervisor.close()

    # Both segments stored, each file as hashed (the first closed at the pause, intact).
    services = client.app[SERVICES_KEY]
    rows = await stored_segments(client, call_id)
    assert [row.segment for row in rows] == [1, 2]
    for row in rows:
        assert sha256_of(volume / row.path)[0] == row.sha256
        assert row.size_bytes
    # The resumed segment grew. The first holds what reached the disk: all of it below the
    # floor; after a real ENOSPC, only what its writer had flushed (8 KiB once, on CI).
    assert rows[1].size_bytes and rows[1].size_bytes > 10_000
    if leave_bytes == BELOW_THE_FLOOR:
        assert rows[0].size_bytes and rows[0].size_bytes > 10_000
    # The chain says why there is a gap between them.
    [paused] = await chain(client, call_id, "recording_paused")
    [resumed] = await chain(client, call_id, "recording_resumed")
    assert paused["reason"] == resumed["reason"] == "disk_low"
    assert paused["segment"] == 1 and paused["media_node"] == settings.NODE_ID
    assert paused["free_bytes"] < MIN_FREE_MB << 20 <= resumed["free_bytes"]
    assert (await services.audit.verify()).ok
