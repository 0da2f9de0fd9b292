"""A call with something of every kind in its record (chat, a location track, recording
segments, a snapshot, a caller's photo), made through the actions a live call runs, for the
export and tamper tests."""

from __future__ import annotations

import asyncio
import hashlib
import io
import random
from datetime import timedelta

from PIL import Image
from sqlmodel import col, select

from server.actions.call_events import do_send_chat, do_send_location, do_store_photo
from server.actions.recordings import record_segment
from server.core.clock import FrozenClock
from server.core.media_rpc import ClosedSegment
from server.core.services import Services
from server.core.storage import recording_key, snapshot_key
from server.db.models import Call, Recording, Snapshot
from server.http.keys import SERVICES_KEY
from tests.sockets import start_call
from tests.staff import Client


def jpeg(rng: random.Random, size: int = 24) -> bytes:
    image = Image.new("RGB", (size, size), tuple(rng.randrange(256) for _ in range(3)))
    out = io.BytesIO()
    image.save(out, "JPEG")
    return out.getvalue()


async def stored_segments(client: Client, call_id: str) -> list[Recording]:
    """The call's recording segments as stored, in their order."""
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        rows = await session.exec(
            select(Recording)
            .where(col(Recording.call_id) == call_id)
            .order_by(col(Recording.segment))
        )
        return list(rows.all())


async def store_segment(
    services: Services, clock: FrozenClock, call_id: str, segment: int, data: bytes
) -> None:
    """A closed segment as the recorder reports it: the file in the storage, then the row and
    its entry."""
    key = recording_key(call_id, segment)
    await asyncio.to_thread(services.storage.put, key, data)
    await record_segment(
        services,
        ClosedSegment(
            call_id=call_id,
            segment=segment,
            key=key,
            path=services.storage.path(key),
            started_at=clock.now() - timedelta(seconds=4),
            ended_at=clock.now(),
            size_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            video_frames=40,
            audio_frames=200,
        ),
    )


async def store_snapshot(services: Services, call_id: str, taken_by: int, data: bytes) -> None:
    """A still as ``do_take_snapshot`` stores one (the live video it grabs from is not here)."""
    now = services.clock.now()
    digest = hashlib.sha256(data).hexdigest()
    key = snapshot_key(call_id, now, digest)
    await asyncio.to_thread(services.storage.put, key, data)
    async with services.audit.transaction() as session:
        shot = Snapshot(
            call_id=call_id,
            taken_by=taken_by,
            path=key,
            sha256=digest,
            size_bytes=len(data),
            at=now,
        )
        session.add(shot)
        await session.flush()
        await services.audit.record(
            session,
            actor="olga",
            action="snapshot_taken",
            subject=f"call:{call_id}",
            data={"sha256": digest, "snapshot_id": shot.id},
        )


async def recorded_call(
    client: Client,
    services: Services,
    clock: FrozenClock,
    *,
    channel: str = "police",
    seed: int = 0,
    segments: int = 2,
    taken_by: int | None = None,
) -> str:
    """A call with chat, a track, ``segments`` segments, a snapshot (when ``taken_by``, a
    user id) and a photo; its id."""
    rng = random.Random(seed)
    call_id: str = (await start_call(client, channel=channel))["call_id"]
    for n in range(3):
        await do_send_chat(
            services, call_id=call_id, client_id=f"c{seed}-{n}", body=f"help {seed} message {n}"
        )
        clock.advance(1)
        await do_send_location(
            services,
            call_id=call_id,
            channel=channel,
            lat=52.2 + rng.random() / 100,
            lon=21.0 + rng.random() / 100,
            accuracy=10.0,
            heading=None,
            speed=None,
            measured_ms=clock.now().timestamp() * 1000,
        )
    for segment in range(1, segments + 1):
        await store_segment(services, clock, call_id, segment, rng.randbytes(2048 + 97 * segment))
    if taken_by is not None:
        await store_snapshot(services, call_id, taken_by, jpeg(rng))
    async with services.db.session() as session:
        call = await session.get(Call, call_id)
    assert call is not None
    await do_store_photo(services, call, jpeg(rng, 32))
    return call_id
