"""Automatic distribution (docs/routing.md): the longest-idle operator who speaks the caller's
language is rung, a ring that runs out moves on and sets its operator away, wrap-up and away are
never rung, two nodes sweeping ring one operator at a time, and bad input changes nothing.

Every timer is the frozen clock's: the tests move it, never sleep."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import col, select

from config import Settings
from server.actions.queue import operator_states
from server.actions.routing import do_route
from server.actions.users import Actor, do_set_skills
from server.app import create_app
from server.core.clock import FrozenClock
from server.core.events import OperatorState
from server.core.services import Services
from server.db.models import AuditEntry, Call, CallTransition, OperatorStatus, User
from tests.conftest import ClientFactory
from tests.sockets import Peer, console, start_call
from tests.staff import Client, add_account, another_browser, services_of, sign_in

RING_SECS = 15.0
WRAP_UP_SECS = 30.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"ROUTING_MODE": "auto", "RING_SECS": RING_SECS, "WRAP_UP_SECS": WRAP_UP_SECS}
    )


async def settle(*clients: Client) -> None:
    """Let the background work started so far (routing rounds, wall pushes) finish."""
    for _ in range(3):
        for client in clients:
            await services_of(client).background.drain()


async def operator(
    client: Client, clock: FrozenClock, username: str, skills: Sequence[str], node: Client
) -> Client:
    """An operator who speaks ``skills``, signed in now on ``node`` (their idle time starts)."""
    account = await add_account(client, username, "operator")
    services = services_of(client)
    async with services.db.session() as session:
        user = (await session.exec(select(User).where(col(User.username) == username))).one()
    await do_set_skills(
        services.audit,
        services.clock,
        actor=Actor.command_line("test"),
        user_id=user.id or 0,
        languages=skills,
    )
    browser = await another_browser(node)
    await sign_in(browser, account, clock)
    return browser


async def ringing_of(services: Services, call_id: str) -> str | None:
    async with services.db.session() as session:
        call = await session.get(Call, call_id)
        assert call is not None
        if call.ringing_operator_id is None:
            return None
        user = await session.get(User, call.ringing_operator_id)
        assert user is not None
        return user.username


async def states(services: Services) -> dict[str, OperatorState]:
    return {s.username: s for s in await operator_states(services, "operator")}


async def actions_of(services: Services, call_id: str) -> list[tuple[str, str]]:
    async with services.db.session() as session:
        rows = (
            await session.exec(
                select(AuditEntry.action, AuditEntry.data)
                .where(col(AuditEntry.subject) == f"call:{call_id}")
                .order_by(col(AuditEntry.seq))
            )
        ).all()
    return [(action, data) for action, data in rows if action.startswith("call_ring")]


async def open_consoles(stack: AsyncExitStack, browsers: Sequence[Client]) -> list[Peer]:
    return [await stack.enter_async_context(console(browser)) for browser in browsers]


@pytest.fixture
async def closing() -> AsyncIterator[list[Client]]:
    browsers: list[Client] = []
    yield browsers
    for browser in browsers:
        await browser.close()


async def test_a_call_rings_the_longest_idle_speaker_then_the_next(
    client: Client, clock: FrozenClock, closing: list[Client]
) -> None:
    """Issue 13, done-when 3: anna is idle longest but speaks no Kazakh; boris (kk) is next,
    chen (kk) last. A kk call rings boris; unanswered for RING_SECS it rings chen, and boris
    shows away with the note of the missed call."""
    services = services_of(client)
    anna = await operator(client, clock, "anna", ["en", "ru"], client)
    clock.advance(10)
    boris = await operator(client, clock, "boris", ["kk"], client)
    clock.advance(10)
    chen = await operator(client, clock, "chen", ["kk", "ru"], client)
    closing.extend([anna, boris, chen])
    async with AsyncExitStack() as stack:
        desk_anna, desk_boris, desk_chen = await open_consoles(stack, [anna, boris, chen])
        await settle(client)
        idle = await states(services)
        assert [idle[n].state for n in ("anna", "boris", "chen")] == ["available"] * 3
        assert idle["anna"].since < idle["boris"].since < idle["chen"].since  # type: ignore[operator]

        started = await start_call(client, language="kk")
        call_id = started["call_id"]
        await settle(client)
        assert await ringing_of(services, call_id) == "boris"
        rung = await desk_boris.next_event("operator.status")
        assert rung["status"]["state"] == "ringing" and rung["status"]["call_id"] == call_id
        now = await states(services)
        assert now["boris"].state == "ringing" and now["boris"].call_id == call_id
        assert now["anna"].state == "available" and now["chen"].state == "available"
        rang_at = clock.now()

        clock.advance(RING_SECS - 1)
        await settle(client)
        assert await ringing_of(services, call_id) == "boris"  # not yet

        clock.advance(1)
        await settle(client)
        assert await ringing_of(services, call_id) == "chen"
        after = await states(services)
        assert after["boris"].state == "away"
        missed = (rang_at.timestamp() + RING_SECS) // 60 * 60
        hhmm = datetime.fromtimestamp(missed, ZoneInfo(services.settings.TIME_ZONE))
        assert after["boris"].note == f"missed a call at {hhmm:%H:%M}"
        assert after["boris"].missed_at is not None
        assert after["chen"].state == "ringing" and after["chen"].call_id == call_id
        assert after["anna"].state == "available"
        away = await desk_boris.next_event("operator.status")
        while away["status"]["state"] != "away":
            away = await desk_boris.next_event("operator.status")
        assert away["status"]["note"] == after["boris"].note

        assert (await desk_chen.call("accept", {"call_id": call_id}))["ok"]
        answered = await states(services)
        assert answered["chen"].state == "in_call"
        assert [a for a, _ in await actions_of(services, call_id)] == [
            "call_ring_offered",
            "call_ring_missed",
            "call_ring_offered",
        ]
        assert desk_anna.received("operator.status") == []


async def test_wrap_up_and_away_are_never_rung_until_ready(
    client: Client, clock: FrozenClock, closing: list[Client]
) -> None:
    services = services_of(client)
    anna = await operator(client, clock, "anna", ["en"], client)
    boris = await operator(client, clock, "boris", ["en"], client)
    closing.extend([anna, boris])
    async with AsyncExitStack() as stack:
        desk_anna, desk_boris = await open_consoles(stack, [anna, boris])
        away = await desk_boris.call("set_status", {"state": "away", "note": "  coffee  "})
        assert away["status"]["state"] == "away" and away["status"]["note"] == "coffee"
        first = await start_call(client)
        await settle(client)
        assert await ringing_of(services, first["call_id"]) == "anna"
        assert (await desk_anna.call("accept", {"call_id": first["call_id"]}))["ok"]
        ended = await desk_anna.call(
            "end_call", {"call_id": first["call_id"], "disposition": "advice_given"}
        )
        assert ended["ok"]
        await settle(client)
        wrap = (await states(services))["anna"]
        assert wrap.state == "wrap_up" and wrap.until is not None

        second = await start_call(client)
        for _ in range(5):  # within the wrap-up, sweep after sweep: nobody is rung
            clock.advance(2)
            await settle(client)
            assert await ringing_of(services, second["call_id"]) is None
        now = await states(services)
        assert now["anna"].state == "wrap_up" and now["boris"].state == "away"

        ready = await desk_anna.call("set_status", {"state": "ready"})
        assert ready["ok"]
        await settle(client)  # no clock step: Ready rings at once
        assert await ringing_of(services, second["call_id"]) == "anna"

        # Away while rung: the ring passes on; boris, back, takes it.
        await desk_anna.call("set_status", {"state": "away"})
        await settle(client)
        assert await ringing_of(services, second["call_id"]) is None
        assert (await desk_boris.call("set_status", {"state": "available"}))["ok"]
        await settle(client)
        assert await ringing_of(services, second["call_id"]) == "boris"

        # A decline passes it on at once, and not back to the decliner.
        assert (await desk_anna.call("set_status", {"state": "available"}))["ok"]
        declined = await desk_boris.call("decline", {"call_id": second["call_id"]})
        assert declined["ok"]
        await settle(client)
        assert await ringing_of(services, second["call_id"]) == "anna"
        await desk_anna.call("decline", {"call_id": second["call_id"]})
        await settle(client)
        assert await ringing_of(services, second["call_id"]) is None
        async with services.db.session() as session:
            waiting = await session.get(Call, second["call_id"])
        assert waiting is not None and waiting.state == "queued"  # nobody can take it: it waits
        listed = await desk_boris.call("queue", {})
        assert [c["call_id"] for c in listed["calls"]] == [second["call_id"]]
        assert [a for a, _ in await actions_of(services, second["call_id"])][-4:] == [
            "call_ring_offered",
            "call_ring_declined",
            "call_ring_offered",
            "call_ring_declined",
        ]


async def test_wrap_up_ends_by_itself_after_its_time(
    client: Client, clock: FrozenClock, closing: list[Client]
) -> None:
    services = services_of(client)
    anna = await operator(client, clock, "anna", ["en"], client)
    closing.append(anna)
    async with console(anna) as desk:
        first = await start_call(client)
        await settle(client)
        assert (await desk.call("accept", {"call_id": first["call_id"]}))["ok"]
        await desk.call("end_call", {"call_id": first["call_id"], "disposition": "prank"})
        second = await start_call(client)
        clock.advance(WRAP_UP_SECS - 1)
        await settle(client)
        assert await ringing_of(services, second["call_id"]) is None
        clock.advance(1)
        await settle(client)
        assert await ringing_of(services, second["call_id"]) == "anna"


async def test_two_nodes_ring_one_operator_at_a_time_and_answer_once(
    aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock, closing: list[Client]
) -> None:
    """Two apps on one database (and, scale-out, one Redis): both sweep, at once, over several
    ring timeouts; the call rings one operator at a time, each ring ends once, one answer."""
    # The call's page never connects: two apps in one process keep presence apart in embedded
    # mode, so the abandonment sweep is kept out of these minutes of rings.
    settings = settings.model_copy(update={"ABANDON_GRACE_SECS": 3600.0})
    node_a = await aiohttp_client(create_app(settings, clock))
    node_b = await aiohttp_client(
        create_app(settings.model_copy(update={"NODE_ID": "node-b"}), clock)
    )
    a, b = services_of(node_a), services_of(node_b)
    names = ["op1", "op2", "op3", "op4", "op5", "op6"]
    browsers = []
    for index, name in enumerate(names):
        clock.advance(1)
        browsers.append(
            await operator(node_a, clock, name, ["en"], node_a if index % 2 == 0 else node_b)
        )
    closing.extend(browsers)
    async with AsyncExitStack() as stack:
        desks = await open_consoles(stack, browsers)
        started = await start_call(node_a)
        call_id = started["call_id"]
        rung: list[str] = []
        for _ in range(4):
            await asyncio.gather(*(do_route(s) for s in (a, b, a, b)))
            await settle(node_a, node_b)
            ringing = await ringing_of(a, call_id)
            assert ringing is not None
            rung.append(ringing)
            clock.advance(RING_SECS)
            await asyncio.gather(*(do_route(s) for s in (b, a, b, a)))
            await settle(node_a, node_b)
        assert len(set(rung)) == len(rung), rung  # a missed operator is away, not rung again
        log = [action for action, _ in await actions_of(a, call_id)]
        offered = log.count("call_ring_offered")
        assert log[: 2 * len(rung)] == ["call_ring_offered", "call_ring_missed"] * len(rung)
        assert offered == len(rung) + 1  # the fifth ring, now
        last = await ringing_of(a, call_id)
        assert last is not None and last not in rung
        results = await asyncio.gather(*(d.call("accept", {"call_id": call_id}) for d in desks))
        winners = [names[i] for i, r in enumerate(results) if r["ok"]]
        assert winners == [last]
        codes = {r["error"]["code"] for r in results if not r["ok"]}
        assert codes <= {"call_ringing_elsewhere", "call_gone"}
        async with a.db.session() as session:
            answers = (
                await session.exec(
                    select(CallTransition).where(
                        col(CallTransition.call_id) == call_id,
                        col(CallTransition.to_state) == "answered",
                    )
                )
            ).all()
            away = (
                await session.exec(
                    select(OperatorStatus).where(col(OperatorStatus.state) == "away")
                )
            ).all()
        assert len(answers) == 1
        assert len(away) == len(rung)


async def test_bad_input_is_refused_and_changes_nothing(
    client: Client, clock: FrozenClock, closing: list[Client]
) -> None:
    services = services_of(client)
    anna = await operator(client, clock, "anna", ["en"], client)
    clock.advance(5)
    boris = await operator(client, clock, "boris", ["en"], client)
    closing.extend([anna, boris])
    async with AsyncExitStack() as stack:
        _desk_anna, desk_boris = await open_consoles(stack, [anna, boris])
        started = await start_call(client)
        call_id = started["call_id"]
        await settle(client)
        assert await ringing_of(services, call_id) == "anna"

        refused = await desk_boris.call("accept", {"call_id": call_id})
        assert refused["ok"] is False and refused["error"]["code"] == "call_ringing_elsewhere"
        declined = await desk_boris.call("decline", {"call_id": call_id})
        assert declined["error"]["code"] == "not_ringing"
        before = await states(services)
        unknown = await desk_boris.call("set_status", {"state": "asleep"})
        assert unknown["error"]["code"] == "invalid_operator_state"
        noisy = await desk_boris.call("set_status", {"state": "away", "note": "x\u0007"})
        assert noisy["error"]["code"] == "invalid_operator_state"
        assert await states(services) == before
        async with services.db.session() as session:
            call = await session.get(Call, call_id)
            assert call is not None and call.state == "queued"
            statuses = (await session.exec(select(OperatorStatus))).all()
        assert statuses == []
        assert await ringing_of(services, call_id) == "anna"

        # A skill that is not one of the four languages, on /admin: refused, nothing stored.
        admin = await another_browser(client)
        closing.append(admin)
        csrf = await sign_in(admin, await add_account(client, "ada", "admin"), clock)
        async with services.db.session() as session:
            user = (await session.exec(select(User).where(col(User.username) == "boris"))).one()
        response = await admin.post(
            f"/admin/users/{user.id}/skills",
            data=[("csrf_token", csrf), ("skills", "en"), ("skills", "de")],
            allow_redirects=False,
        )
        assert response.status == 400
        assert "invalid_skills" in await response.text()
        async with services.db.session() as session:
            again = await session.get(User, user.id)
        assert again is not None and again.skills == "en"
        done = await admin.post(
            f"/admin/users/{user.id}/skills",
            data=[("csrf_token", csrf), ("skills", "kk"), ("skills", "ru")],
            allow_redirects=False,
        )
        assert done.status == 303
        assert (await states(services))["boris"].skills == ["ru", "kk"]
        async with services.db.session() as session:
            entries = (
                await session.exec(
                    select(AuditEntry.action).where(
                        col(AuditEntry.subject) == "user:boris",
                        col(AuditEntry.action) == "user_skills_changed",
                    )
                )
            ).all()
        assert len(entries) == 2  # the test's own setting, and the admin's


async def test_taking_another_call_by_hand_ends_the_ring(
    client: Client, clock: FrozenClock, closing: list[Client]
) -> None:
    """Rung for one call, the operator picks another from the queue: the first stops ringing
    them (it would otherwise set them away while they talk)."""
    services = services_of(client)
    anna = await operator(client, clock, "anna", ["en"], client)
    closing.append(anna)
    async with console(anna) as desk:
        first = await start_call(client)
        await settle(client)
        second = await start_call(client)
        await settle(client)
        assert await ringing_of(services, first["call_id"]) == "anna"
        assert await ringing_of(services, second["call_id"]) is None
        assert (await desk.call("accept", {"call_id": second["call_id"]}))["ok"]
        await settle(client)
        assert await ringing_of(services, first["call_id"]) is None
        clock.advance(RING_SECS)
        await settle(client)
        now = (await states(services))["anna"]
        assert now.state == "in_call" and now.call_id == second["call_id"]
