"""A recording that fails is never silent: it is entered in the audit chain as
``recording_failed`` with its cause (NENA i3's RecordingFailed), logged as such and counted.

The failures are real: a recorder whose call directory cannot be made (a file stands where it
goes, as a broken mount or a full inode table leaves one) with a real aiortc phone sending
video, and a segment report the node refuses for good (its number stored with another hash).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from config import Settings
from server.actions.recordings import record_segment
from server.core.errors import AppError, ErrorCode
from server.core.media_rpc import ClosedSegment
from server.db.models import AuditEntry, Recording
from server.http.keys import SERVICES_KEY
from server.node import MEDIA_HUB_KEY
from tests.media_peers import MediaPeer, citizen_peer, wait_until
from tests.sockets import answer_via, citizen, start_call
from tests.staff import Client

TIMEOUT_SECS = 20.0


async def _entries(client: Client, call_id: str, action: str) -> list[AuditEntry]:
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        rows = await session.exec(
            select(AuditEntry).where(
                col(AuditEntry.subject) == f"call:{call_id}", col(AuditEntry.action) == action
            )
        )
        return list(rows.all())


async def _wait_for_entry(client: Client, call_id: str, action: str) -> AuditEntry:
    deadline = time.monotonic() + TIMEOUT_SECS
    while not (entries := await _entries(client, call_id, action)):
        assert time.monotonic() < deadline, f"no {action} entry"
        await asyncio.sleep(0.05)
    [entry] = entries
    return entry


async def _metric(client: Client, line_start: str) -> str:
    text = await (await client.get("/metrics")).text()
    lines = [line for line in text.splitlines() if line.startswith(line_start)]
    assert len(lines) == 1, (line_start, lines)
    return lines[0]


async def test_a_writer_that_fails_is_chained_logged_and_counted(
    client: Client, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """On the internal-security channel, so the logs must not name the call either."""
    assert client.app is not None
    hub = client.app[MEDIA_HUB_KEY]
    assert hub is not None
    started = await start_call(client, channel="internal_security")
    call_id = started["call_id"]
    blocker = Path(settings.storage_dir) / "recordings" / call_id
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_bytes(b"not a directory")  # the call's recordings cannot go here
    peer: MediaPeer | None = None
    caplog.set_level(logging.INFO)
    try:
        async with citizen(client, started["token"]) as phone:
            peer = await citizen_peer(answer_via(phone))
            entry = await _wait_for_entry(client, call_id, "recording_failed")
            # The call goes on: its media still flows, the frames that cannot be recorded are
            # counted as such.
            await wait_until(
                lambda: hub.stats(call_id)["recording"]["lost_writer_failed"] > 10,
                TIMEOUT_SECS,
                "frames counted as lost to the failed writer",
            )
    finally:
        if peer is not None:
            await peer.close()
    data = json.loads(entry.data)
    assert data == {
        "segment": 1,
        "stage": "writing",
        "cause": "FileExistsError: File exists (errno 17)",
        "media_node": settings.NODE_ID,
    }
    assert entry.actor == "system:recorder"
    failed = [r for r in caplog.records if r.getMessage() == "recording failed"]
    assert len(failed) == 1 and failed[0].levelno == logging.ERROR
    assert getattr(failed[0], "stage", None) == "writing"
    assert getattr(failed[0], "call_id", "").startswith("is-")
    assert not [r for r in caplog.records if call_id in r.getMessage()]
    assert await _metric(client, 'lifeline_recording_failures_total{stage="writing"}') == (
        'lifeline_recording_failures_total{stage="writing"} 1.0'
    )
    async with client.app[SERVICES_KEY].db.session() as session:
        rows = (
            await session.exec(select(Recording).where(col(Recording.call_id) == call_id))
        ).all()
    assert rows == []
    assert (await client.app[SERVICES_KEY].audit.verify()).ok


async def test_a_segment_refused_for_good_is_chained(client: Client) -> None:
    assert client.app is not None
    services = client.app[SERVICES_KEY]
    call_id = (await start_call(client))["call_id"]
    now = datetime.now(UTC)
    first = ClosedSegment(
        call_id=call_id,
        segment=1,
        key=f"recordings/{call_id}/segment-0001.mkv",
        path=Path("/nowhere/segment-0001.mkv"),
        started_at=now - timedelta(seconds=5),
        ended_at=now,
        size_bytes=1000,
        sha256="a" * 64,
        video_frames=150,
        audio_frames=250,
    )
    assert await record_segment(services, first, media_node="node.m1")
    assert not await _entries(client, call_id, "recording_failed")
    other = first.model_copy(update={"sha256": "b" * 64})
    with pytest.raises(AppError) as refused:
        await record_segment(services, other, media_node="node.m2")
    assert refused.value.code is ErrorCode.SEGMENT_CONFLICT
    [entry] = await _entries(client, call_id, "recording_failed")
    assert json.loads(entry.data) == {
        "segment": 1,
        "stage": "storing",
        "cause": "segment 1 of this call is stored with another hash",
        "media_node": "node.m2",
    }
    assert await _metric(client, 'lifeline_recording_failures_total{stage="storing"}') == (
        'lifeline_recording_failures_total{stage="storing"} 1.0'
    )
    # The same report again is stored once, and is no failure.
    assert not await record_segment(services, first, media_node="node.m1")
    assert len(await _entries(client, call_id, "recording_failed")) == 1
    assert (await services.audit.verify()).ok
