"""Issue 11, item 1: a ghost call (created, its page never connected) is abandoned after the
grace by whichever node is alive, on a node restarted in between, and leaves the consoles and
the wall. The grace and the sweep run on the frozen clock: no sleeping."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import col, select

from config import Settings
from server.actions.abandonment import SYSTEM_CALLER_AWAY, do_sweep_abandoned
from server.app import create_app
from server.core.clock import FrozenClock
from server.db.models import Call, CallState
from tests.conftest import ClientFactory
from tests.records import transitions_of
from tests.sockets import Peer, citizen, console, start_call
from tests.staff import Client, add_account, another_browser, services_of, sign_in

RESTART_SECS = 10.0  # how long the node was down


async def _pass(client: Client, clock: FrozenClock, secs: float) -> None:
    """Let ``secs`` go by on the node's clock, a sweep at a time, and its work finish."""
    services = services_of(client)
    step = services.settings.ABANDON_SWEEP_SECS
    while secs > 0:
        clock.advance(min(step, secs))
        secs -= step
        await services.background.drain()


async def _transitions(client: Client, call_id: str) -> list[tuple[str | None, str, str]]:
    return [(r.from_state, r.to_state, r.actor) for r in await transitions_of(client, call_id)]


async def _staff(client: Client, clock: FrozenClock, name: str, role: str) -> Client:
    browser = await another_browser(client)
    await sign_in(browser, await add_account(client, name, role), clock)
    return browser


async def _wall_calls(wall: Peer) -> list[str]:
    reply = await wall.call("wall", {})
    assert reply["ok"], reply
    return [c["call_id"] for c in reply["calls"]]


async def test_a_ghost_call_is_abandoned_after_the_grace_by_a_node_restarted_meanwhile(
    client: Client, settings: Settings, clock: FrozenClock, aiohttp_client: ClientFactory
) -> None:
    grace = settings.ABANDON_GRACE_SECS
    ghost = await start_call(client)  # POST /api/calls, and the page never connects
    real = await start_call(client)
    await client.close()  # the node stops before any timer of its own could fire

    later = FrozenClock(clock.now() + timedelta(seconds=RESTART_SECS))
    node = await aiohttp_client(create_app(settings, later))
    operator = await _staff(node, later, "olga", "operator")
    supervisor = await _staff(node, later, "sam", "supervisor")
    async with (
        console(operator) as desk,
        console(supervisor) as wall,
        citizen(node, real["token"]) as phone,
    ):
        queue = (await desk.call("queue", {}))["calls"]
        shown = {c["call_id"]: c["caller_connected"] for c in queue}
        assert shown == {ghost["call_id"]: False, real["call_id"]: True}
        assert set(await _wall_calls(wall)) == {ghost["call_id"], real["call_id"]}

        # Up to a second before the grace (counted from the call's creation, on the old node):
        # still waiting; the sweeps of the new node looked at it and left it.
        await _pass(node, later, grace - RESTART_SECS - 1)
        assert await _transitions(node, ghost["call_id"]) == [(None, "queued", "citizen")]

        await _pass(node, later, 1 + settings.ABANDON_SWEEP_SECS)
        removed = await desk.next_event("queue.call_removed", call_id=ghost["call_id"])
        assert removed["reason"] == "abandoned"
        assert await _wall_calls(wall) == [real["call_id"]]
        queue = (await desk.call("queue", {}))["calls"]
        assert [c["call_id"] for c in queue] == [real["call_id"]]
        # The caller who is there stays, however long the wait.
        assert (await phone.call("resume", {}))["call"]["state"] == "queued"
    await operator.close()
    await supervisor.close()
    assert await _transitions(node, ghost["call_id"]) == [
        (None, "queued", "citizen"),
        ("queued", "abandoned", SYSTEM_CALLER_AWAY),
    ]


async def test_a_call_whose_node_died_under_its_page_is_noticed_away_then_abandoned(
    client: Client, settings: Settings, clock: FrozenClock
) -> None:
    """No leave was ever handled for it (its node died): the database says the caller is there.
    The sweep finds no page on any node, notes the caller away, and abandons after the grace."""
    services = services_of(client)
    started = await start_call(client)
    async with services.db.session() as session:
        call = await session.get(Call, started["call_id"])
        assert call is not None
        call.caller_away_since = None  # what a page that connected and then lost its node leaves
        session.add(call)
        await session.commit()
    assert await do_sweep_abandoned(services) == []
    async with services.db.session() as session:
        call = await session.get(Call, started["call_id"])
        assert call is not None and call.caller_away_since is not None
        noticed = call.caller_away_since
    assert noticed == clock.now()
    clock.advance(settings.ABANDON_GRACE_SECS)
    assert await do_sweep_abandoned(services) == [started["call_id"]]
    async with services.db.session() as session:
        call = await session.get(Call, started["call_id"])
        assert call is not None and call.state == CallState.ABANDONED


async def test_a_sweep_leaves_a_connected_caller_and_an_answered_call(
    client: Client, operator: Client, settings: Settings, clock: FrozenClock
) -> None:
    services = services_of(client)
    waiting, answered = await start_call(client), await start_call(client)
    async with console(operator) as desk:
        assert (await desk.call("accept", {"call_id": answered["call_id"]}))["ok"]
        async with citizen(client, waiting["token"]):
            clock.advance(settings.ABANDON_GRACE_SECS * 3)
            assert await do_sweep_abandoned(services) == []
        async with services.db.session() as session:
            states = {
                c.id: c.state
                for c in (
                    await session.exec(
                        select(Call).where(
                            col(Call.id).in_([waiting["call_id"], answered["call_id"]])
                        )
                    )
                ).all()
            }
    assert states == {waiting["call_id"]: "queued", answered["call_id"]: "answered"}
