"""Silent monitor and barge-in refused where they must be (issue 13, "Bad input"), over real
Socket.IO: an operator may not monitor; a supervisor's media offer or barge-in needs a monitor
first; an internal-security call does not exist for a supervisor; a waiting call cannot be
monitored. The caller's page is told of a supervisor before any media, and when they leave;
each start and end is in the audit chain; a closed wall stops counting."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlmodel import col, select

from server.core.clock import FrozenClock
from server.db.models import AuditEntry
from server.http.keys import SERVICES_KEY
from tests.sockets import EVENT_TIMEOUT_SECS, citizen, console, start_call
from tests.staff import Client, add_account, another_browser, sign_in


async def _audit_actions(client: Client, call_id: str) -> list[str]:
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        rows = (
            await session.exec(
                select(AuditEntry.action)
                .where(col(AuditEntry.subject) == f"call:{call_id}")
                .order_by(col(AuditEntry.seq))
            )
        ).all()
    return list(rows)


async def test_monitoring_is_told_refused_and_audited(
    client: Client, operator: Client, clock: FrozenClock
) -> None:
    supervisor = await another_browser(client)
    await sign_in(supervisor, await add_account(client, "sara", "supervisor"), clock)
    try:
        started = await start_call(client)
        call_id = started["call_id"]
        hidden = await start_call(client, channel="internal_security")
        async with (
            citizen(client, started["token"]) as phone,
            console(operator) as desk,
            console(supervisor) as wall,
        ):
            waiting = await wall.call("monitor", {"call_id": call_id, "on": True})
            assert waiting["error"]["code"] == "call_not_live"
            assert (await desk.call("accept", {"call_id": call_id}))["ok"]
            answered = await phone.next_event("call.people", call_id=call_id)
            assert answered["roles"] == ["operator"]

            refused = await desk.call("monitor", {"call_id": call_id, "on": True})
            assert refused["error"]["code"] == "role_forbidden"
            offer = {"call_id": call_id, "type": "offer", "sdp": "v=0\r\ns=-\r\nt=0 0\r\n"}
            early = await wall.call("media_offer", offer)
            assert early["error"]["code"] == "not_monitoring"
            barge = await wall.call("barge", {"call_id": call_id, "on": True})
            assert barge["error"]["code"] == "not_monitoring"
            secret = await wall.call("monitor", {"call_id": hidden["call_id"], "on": True})
            assert secret["error"]["code"] == "call_not_found"

            watching = await wall.call("monitor", {"call_id": call_id, "on": True})
            assert watching == {"ok": True, "roles": ["operator", "supervisor"], "speaking": []}
            told = await phone.next_event("call.people", call_id=call_id)
            assert told["roles"] == ["operator", "supervisor"]
            # A bad offer from a monitor gets past the monitor check to the media's refusal.
            unusable = await wall.call("media_offer", offer)
            assert unusable["error"]["code"] in {"invalid_sdp", "no_media"}
        # The wall closed without saying stop: it stops counting, and the caller is told.
        assert client.app is not None
        presence = client.app[SERVICES_KEY].presence
        await wait_until(
            lambda: presence.count(f"monitor:{call_id}"), 0, "the closed wall stops counting"
        )
        left = await phone_told_after_close(client, started["token"], call_id)
        assert left == ["operator"]
        actions = await _audit_actions(client, call_id)
        assert actions.count("call_monitor_started") == 1
        assert actions.count("call_monitor_ended") == 1
    finally:
        await supervisor.close()


async def wait_until(read: Any, value: Any, what: str) -> None:
    """Poll an async reading until it equals ``value`` (the server handles a disconnect after
    the client has gone), for at most EVENT_TIMEOUT_SECS."""
    deadline = asyncio.get_running_loop().time() + EVENT_TIMEOUT_SECS
    while await read() != value:
        assert asyncio.get_running_loop().time() < deadline, f"timed out: {what}"
        await asyncio.sleep(0.05)


async def phone_told_after_close(client: Client, token: str, call_id: str) -> list[str]:
    """A page that connects now is told who is on the call (with its resume)."""
    async with citizen(client, token) as phone:
        assert (await phone.call("resume", {"last_seq": 0}))["ok"]
        people = await phone.next_event("call.people", call_id=call_id)
    roles: list[str] = people["roles"]
    return roles
