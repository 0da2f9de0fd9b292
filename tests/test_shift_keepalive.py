"""An on-shift console keeps its session alive however quiet the queue is; the idle lock still
closes a console left open off shift. The clock is frozen and moved in the sockets' re-check
steps, as real time would pass, with no event from the console in between."""

from __future__ import annotations

import math

from server.core.clock import FrozenClock
from server.core.services import Services
from signaling.namespace import RECHECK_SECS
from tests.sockets import Peer, console, start_call
from tests.staff import Client, add_account, another_browser, services_of, sign_in


async def _pass_quietly(services: Services, clock: FrozenClock, secs: float) -> None:
    """Let ``secs`` go by on the node's clock, one re-check at a time."""
    for _ in range(math.ceil(secs / RECHECK_SECS)):
        clock.advance(RECHECK_SECS)
        await services.background.drain()


async def _shift(desk: Peer, on: bool) -> None:
    reply = await desk.call("shift", {"on": on})
    assert reply == {"ok": True, "on": on}


async def test_an_on_shift_console_idle_past_the_limit_still_accepts_a_call(
    client: Client, operator: Client, clock: FrozenClock
) -> None:
    services = services_of(client)
    idle = services.settings.SESSION_IDLE_SECS
    async with console(operator) as desk:
        await _shift(desk, True)
        await _pass_quietly(services, clock, idle * 2)
        assert desk.received("session.ended") == []
        call = await start_call(client)
        accepted = await desk.call("accept", {"call_id": call["call_id"]})
        assert accepted["ok"], accepted
        assert accepted["call"]["operator"] == "olga"
    # The page's HTTP requests ride on the same session: still signed in.
    assert (await operator.get("/console", allow_redirects=False)).status == 200


async def test_an_off_shift_console_is_locked_when_idle(
    client: Client, operator: Client, clock: FrozenClock
) -> None:
    services = services_of(client)
    async with console(operator) as desk:
        await _pass_quietly(services, clock, services.settings.SESSION_IDLE_SECS + RECHECK_SECS)
        assert (await desk.next_event("session.ended"))["reason"] == "expired"
        await desk.until_closed()
    assert (await operator.get("/console", allow_redirects=False)).status == 303


async def test_ending_the_shift_lets_the_idle_lock_apply_again(
    client: Client, operator: Client, clock: FrozenClock
) -> None:
    services = services_of(client)
    idle = services.settings.SESSION_IDLE_SECS
    async with console(operator) as desk:
        await _shift(desk, True)
        await _pass_quietly(services, clock, idle * 2)
        assert desk.received("session.ended") == []
        await _shift(desk, False)
        await _pass_quietly(services, clock, idle + RECHECK_SECS)
        assert (await desk.next_event("session.ended"))["reason"] == "expired"
        await desk.until_closed()


async def test_the_shift_takes_a_boolean(operator: Client) -> None:
    async with console(operator) as desk:
        refused = await desk.call("shift", {"on": "maybe"})
        assert refused["ok"] is False
        assert refused["error"]["code"] == "invalid"
        assert (await desk.call("shift", {}))["error"]["code"] == "invalid"


async def test_an_open_wall_stays_signed_in_however_long_nobody_touches_it(
    client: Client, clock: FrozenClock
) -> None:
    """The room's wall is watched, not clicked: the idle lock must not end it."""
    services = services_of(client)
    room = await another_browser(client)
    try:
        await sign_in(room, await add_account(client, "sonia", "supervisor"), clock)
        async with console(room) as wall:
            opened = await wall.call("wall", {})
            assert opened["ok"], opened
            await _pass_quietly(services, clock, services.settings.SESSION_IDLE_SECS * 2)
            assert wall.received("session.ended") == []
            assert (await wall.call("wall", {}))["ok"]
    finally:
        await room.close()
