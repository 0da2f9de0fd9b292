"""ICE servers: explicit, TURN with time-limited credentials, only for call or staff holders."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

from config import Settings
from server.app import create_app
from server.core.clock import FrozenClock
from server.security.ice import TURN_CREDENTIAL_TTL_SECS, ice_servers_for
from tests.conftest import ClientFactory
from tests.sockets import start_call
from tests.staff import Client, add_account, another_browser, sign_in

SERVERS: list[dict[str, Any]] = [
    {"urls": "stun:stun.example:3478"},
    {"urls": ["turn:turn.example:3478?transport=udp"]},
]


def test_turn_rest_credentials() -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    stun, turn = ice_servers_for(SERVERS, "s3cret", "call-1234", now)
    assert stun == {"urls": ["stun:stun.example:3478"]}
    expiry = int(now.timestamp()) + TURN_CREDENTIAL_TTL_SECS
    assert turn["username"] == f"{expiry}:call-1234"
    expected = base64.b64encode(
        hmac.new(b"s3cret", turn["username"].encode(), hashlib.sha1).digest()
    ).decode()
    assert turn["credential"] == expected


def test_no_servers_is_an_empty_list() -> None:
    assert ice_servers_for([], "", "x", datetime.now(UTC)) == []


async def test_only_holders_get_ice_servers(
    aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock
) -> None:
    configured = settings.model_copy(update={"ICE_SERVERS": SERVERS, "TURN_SECRET": "s3cret"})
    client: Client = await aiohttp_client(create_app(configured, clock))
    anonymous = await client.get("/api/ice-servers")
    assert anonymous.status == 401
    forged = await client.get("/api/ice-servers", headers={"X-Call-Token": "x" * 43})
    assert forged.status == 401
    started = await start_call(client)
    assert started["ice_servers"][1]["username"].endswith(":call-" + started["call_id"][:8])
    by_token = await client.get("/api/ice-servers", headers={"X-Call-Token": started["token"]})
    assert by_token.status == 200
    assert len((await by_token.json())["ice_servers"]) == 2
    staff = await another_browser(client)
    try:
        await sign_in(staff, await add_account(client, "ivy", "operator"), clock)
        by_session = await staff.get("/api/ice-servers")
        assert by_session.status == 200
        assert (await by_session.json())["ice_servers"][1]["credential"]
    finally:
        await staff.close()
