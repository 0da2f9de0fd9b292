"""PostgreSQL restarted under a live call: what the caller sends while it is away is refused
with an error acknowledgement (the socket stays), kept by the page and sent again with the same
client id (stored once), nothing acknowledged is lost, the call's video and recording go on, and
the console is told the database is away and back (``node.degraded``).

The PostgreSQL here is the test's own (tests/own_postgres.py), stopped and started by the test;
Redis is not used (the node's own view), so the test is the same in either pass.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlmodel import col, select

from config import Settings
from server.actions.database_watch import DATABASE_WATCH_SECS
from server.core.clock import FrozenClock
from server.db.models import ChatMessage, LocationSample
from server.http.keys import SERVICES_KEY
from server.node import MEDIA_HUB_KEY
from tests.media_peers import citizen_peer, wait_until
from tests.own_postgres import OwnPostgres
from tests.sockets import answer_via, citizen, console, start_call
from tests.staff import Client

pytestmark = pytest.mark.one_pass  # its own PostgreSQL, no Redis: the same in either pass

MEDIA_TIMEOUT_SECS = 20.0
BANNER_WITHIN_SECS = 5.0


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    server = OwnPostgres()
    try:
        server.start()
        server.migrate()
        yield server
    finally:
        server.remove()


@pytest.fixture
def settings(settings: Settings, own_postgres: OwnPostgres) -> Settings:
    return settings.model_copy(update={"DATABASE_URL": own_postgres.url, "REDIS_URL": ""})


def fix(n: int) -> dict[str, float]:
    return {"lat": 52.2297 + n * 1e-4, "lon": 21.0122, "accuracy": 8.0, "timestamp": 1.7e12 + n}


async def test_a_postgres_restart_under_a_live_call_loses_nothing_and_doubles_nothing(
    client: Client,
    operator: Client,
    own_postgres: OwnPostgres,
    clock: FrozenClock,
    settings: Settings,
) -> None:
    assert client.app is not None
    hub = client.app[MEDIA_HUB_KEY]
    assert hub is not None
    started = await start_call(client)
    call_id = started["call_id"]
    segment = settings.storage_dir / "recordings" / call_id / "segment-0001.mkv"
    async with console(operator) as desk, citizen(client, started["token"]) as phone:
        assert (await desk.call("accept", {"call_id": call_id}))["ok"]
        peer = await citizen_peer(answer_via(phone))
        try:
            await wait_until(
                lambda: hub.stats(call_id)["citizen"]["video_received"] > 10 and segment.exists(),
                MEDIA_TIMEOUT_SECS,
                "the citizen's video at the server, recorded",
            )
            acknowledged = []
            for n, body in enumerate(("one", "two")):
                said = await phone.call("chat", {"client_id": f"chat-before-{n}", "body": body})
                assert said["ok"], said
                acknowledged.append(body)
                assert (await phone.call("location", fix(n)))["ok"]

            stopped = time.monotonic()
            own_postgres.stop()
            clock.advance(DATABASE_WATCH_SECS)
            away = await desk.next_event("node.degraded")
            banner_secs = time.monotonic() - stopped
            assert "database" in away["stores"]
            print(f"\nFIGURE database_degraded_event_secs {banner_secs:.2f}")
            assert banner_secs < BANNER_WITHIN_SECS
            ready = await client.get("/readyz")
            assert ready.status == 503
            metrics = await (await client.get("/metrics")).text()
            assert 'lifeline_degraded{store="database"} 1.0' in metrics

            # What the caller sends now is refused, plainly; the page keeps it.
            frames, size = hub.stats(call_id)["citizen"]["video_received"], segment.stat().st_size
            unsent = {"client_id": "chat-while-away", "body": "three"}
            refused = await phone.call("chat", unsent)
            assert refused["error"]["code"] == "database_unavailable", refused
            refused = await phone.call("location", fix(2))
            assert refused["error"]["code"] == "database_unavailable", refused
            refused = await desk.call("chat", {"call_id": call_id, "client_id": "desk-away-1",
                                               "body": "stay on the line"})  # fmt: skip
            assert refused["error"]["code"] == "database_unavailable", refused
            # ... while the video still arrives and is still written to the recording.
            await wait_until(
                lambda: (
                    hub.stats(call_id)["citizen"]["video_received"] > frames + 30
                    and segment.stat().st_size > size
                ),
                MEDIA_TIMEOUT_SECS,
                "video received and recorded with the database away",
            )
            assert not phone.closed.is_set() and not desk.closed.is_set()

            own_postgres.start()
            clock.advance(DATABASE_WATCH_SECS)
            back = await desk.next_event("node.degraded")
            assert back["stores"] == []
            # The page sends again what was not acknowledged, twice as a flaky link may.
            for _ in range(2):
                said = await phone.call("chat", unsent)
                assert said["ok"], said
                assert (await phone.call("location", fix(2)))["ok"]
            acknowledged.append("three")
            said = await desk.call("chat", {"call_id": call_id, "client_id": "desk-away-1",
                                            "body": "stay on the line"})  # fmt: skip
            assert said["ok"], said
            assert (await client.get("/readyz")).status == 200
        finally:
            await peer.close()

    async with client.app[SERVICES_KEY].db.session() as session:
        chats = (await session.exec(select(ChatMessage).order_by(col(ChatMessage.seq)))).all()
        fixes = (await session.exec(select(LocationSample).order_by(col(LocationSample.seq)))).all()
    assert [m.body for m in chats if m.sender == "citizen"] == acknowledged  # lost 0, doubled 0
    assert [m.body for m in chats if m.sender != "citizen"] == ["stay on the line"]
    assert [round(f.lat, 4) for f in fixes] == [52.2297, 52.2298, 52.2299]
    print(f"FIGURE pg_restart lost 0 doubled 0 chats {len(chats)} fixes {len(fixes)}")
