"""The seal of a call whose media is at a media node of its own (a worker): the node's answer
to the end comes once the call's last segment is stored, so the seal made on that answer
covers it (media/agent.py). Real MediaAgent and MediaHub, a real aiortc caller."""

from __future__ import annotations

import json

import pytest
from sqlmodel import col, select

from config import Settings
from server.actions import call_seal
from server.db.models import AuditEntry
from server.http.keys import SERVICES_KEY
from tests.evidence_calls import stored_segments
from tests.media_peers import MediaPeer, citizen_peer, wait_until
from tests.sockets import answer_via, citizen, start_call
from tests.staff import Client
from tests.test_media_nodes import MEDIA_TIMEOUT_SECS, media_node


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A node whose media is all in media nodes of their own (MEDIA_WORKERS > 0)."""
    return settings.model_copy(update={"MEDIA_WORKERS": 1})


async def test_the_end_is_answered_after_the_last_segment_is_stored(client: Client) -> None:
    assert client.app is not None
    services = client.app[SERVICES_KEY]
    started = await start_call(client)
    call_id = started["call_id"]
    peers: list[MediaPeer] = []
    async with media_node(client, "test.m1") as node:
        try:
            async with citizen(client, started["token"]) as phone:
                peers.append(await citizen_peer(answer_via(phone)))
                await wait_until(
                    lambda: node.hub.stats(call_id)["citizen"]["video_received"] > 30,
                    MEDIA_TIMEOUT_SECS,
                    "the citizen's video at the media node",
                )
                assert await stored_segments(client, call_id) == []
                assert (await phone.call("end_call", {}))["state"] == "abandoned"
                # No waiting here: the answer to the end came after the report was stored.
                stored = await stored_segments(client, call_id)
        finally:
            for peer in peers:
                await peer.close()
    assert [row.segment for row in stored] == [1]
    async with services.db.session() as session:
        entry = await call_seal.sealed_entry(session, call_id)
        assert entry is not None
        closed = (
            await session.exec(
                select(AuditEntry).where(
                    col(AuditEntry.subject) == f"call:{call_id}",
                    col(AuditEntry.action) == "recording_segment_closed",
                )
            )
        ).one()
        assert await call_seal.recompute(session, entry) == call_seal.seal_in(entry)
    assert closed.seq < entry.seq
    assert json.loads(entry.data)["segments"] == [1]
    assert json.loads(entry.data)["media"] == "closed"
