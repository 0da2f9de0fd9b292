"""Today's figures on the wall (issue 13, item 6): computed from the call transitions only, for
the day in the deployment's time zone, equal to the figures this test works out itself from the
calls it makes on a frozen clock; pushed to the wall after each change, rebuilt on reopen."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from config import Settings
from server.actions.wall import seconds_to_next_day
from server.core.clock import FrozenClock
from server.http.keys import SERVICES_KEY
from tests.sockets import Peer, citizen, console, start_call
from tests.staff import Client, add_account, another_browser, sign_in

# 23:50 in Almaty (UTC+5): the first call is yesterday's there, the rest today's, while all of
# them fall on one day in UTC.
ALMATY = "Asia/Almaty"
EVENING = datetime(2026, 3, 10, 18, 50, tzinfo=UTC)
TARGET = 10.0


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(EVENING)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"TIME_ZONE": ALMATY, "ANSWER_TARGET_SECS": TARGET})


async def _supervisor(client: Client, clock: FrozenClock) -> Client:
    browser = await another_browser(client)
    await sign_in(browser, await add_account(client, "sara", "supervisor"), clock)
    return browser


def _police(reply: dict[str, Any]) -> dict[str, Any]:
    [figures] = [f for f in reply["figures"] if f["channel"] == "police"]
    return figures


async def test_todays_figures_equal_those_worked_out_from_the_same_calls(
    client: Client, operator: Client, clock: FrozenClock, tmp_path: Path
) -> None:
    supervisor = await _supervisor(client, clock)
    async with console(operator) as desk, console(supervisor) as wall:
        # Yesterday's call in Almaty (23:50 local), answered at once: not today's.
        old = await start_call(client)
        assert (await desk.call("accept", {"call_id": old["call_id"]}))["ok"]
        clock.advance(11 * 60)  # 00:01 in Almaty (within the sessions' idle time)

        # What this test expects, worked out from what it does: each call's wait and talk.
        waits: list[float] = []
        abandoned_waits: list[float] = []
        talks: list[float] = []

        quick = await start_call(client)  # answered after 4 s, ended after 30 s of talk
        clock.advance(4)
        assert (await desk.call("accept", {"call_id": quick["call_id"]}))["ok"]
        waits.append(4.0)
        clock.advance(30)
        ended = await desk.call("end_call", {"call_id": quick["call_id"], "disposition": "advice"})
        assert ended["ok"], ended
        talks.append(30.0)

        slow = await start_call(client)  # answered after 15 s: past the target
        clock.advance(15)
        assert (await desk.call("accept", {"call_id": slow["call_id"]}))["ok"]
        waits.append(15.0)

        gone = await start_call(client)  # the caller hangs up after 7 s
        clock.advance(7)
        async with citizen(client, gone["token"]) as phone:
            assert (await phone.call("end_call", {}))["state"] == "abandoned"
        abandoned_waits.append(7.0)

        await start_call(client)  # still waiting: offered, nothing else yet
        hidden = await start_call(client, channel="internal_security")  # another channel's
        assert hidden["call_id"]
        clock.advance(3)

        reply = await wall.call("wall", {})
        assert reply["ok"], reply
        figures = _police(reply)
        finished = len(waits) + len(abandoned_waits)
        in_target = [w for w in waits if w <= TARGET]
        expected = {
            "day": "2026-03-11",
            "time_zone": ALMATY,
            "target_secs": TARGET,
            "offered": 4,
            "answered": len(waits),
            "abandoned": len(abandoned_waits),
            "answered_in_target": len(in_target),
            "in_target_percent": round(100 * len(in_target) / finished, 1),
            "avg_wait_secs": round(sum(waits) / len(waits), 1),
            "longest_wait_secs": max(waits + abandoned_waits),
            "avg_talk_secs": round(sum(talks) / len(talks), 1),
            "hours": [{"hour": 0, "offered": 4, "answered": 2, "abandoned": 1}],
        }
        assert {k: figures[k] for k in expected} == expected
        assert figures["in_target_percent"] == 33.3
        # The supervisor's wall has no internal-security figures at all.
        assert [f["channel"] for f in reply["figures"]] == ["police"]
        assert reply["target_secs"] == TARGET

        # The next change is pushed: one more answered, in target.
        waiting = [c for c in reply["calls"] if c["state"] == "queued"]
        assert len(waiting) == 1
        assert (await desk.call("accept", {"call_id": waiting[0]["call_id"]}))["ok"]
        pushed = await _update_where(wall, lambda f: f["answered"] == 3)
        assert pushed["figures"]["answered_in_target"] == 2
        assert pushed["figures"]["avg_wait_secs"] == round((4 + 15 + 3) / 3, 1)
        states = {o["username"]: o for o in pushed["operators"]}
        assert states["olga"]["state"] == "in_call"
        assert states["olga"]["call_id"] == waiting[0]["call_id"]
    await supervisor.close()


async def _update_where(wall: Peer, test: Any) -> dict[str, Any]:
    while True:
        update = await wall.next_event("wall.update", channel="police")
        if test(update["figures"]):
            return update


async def test_only_the_wall_roles_open_the_wall(client: Client, operator: Client) -> None:
    async with console(operator) as desk:
        refused = await desk.call("wall", {})
        assert refused["ok"] is False
        assert refused["error"]["code"] == "role_forbidden"
        # Nothing was pushed to a console that is not a wall.
        await start_call(client)
        await desk.next_event("queue.call_added")
        assert desk.received("wall.update") == []


async def test_at_midnight_the_wall_turns_to_the_new_day_with_no_call_to_push_it(
    client: Client, clock: FrozenClock
) -> None:
    """A quiet night: nothing happens after 23:50 in Almaty, yet at midnight there the open
    wall is sent the new day's figures (empty), not left on yesterday's until the first call."""
    supervisor = await _supervisor(client, clock)
    async with console(supervisor) as wall:
        await start_call(client)
        opened = _police(await wall.call("wall", {}))
        assert (opened["day"], opened["offered"]) == ("2026-03-10", 1)
        clock.advance(10 * 60 - 1)  # 23:59:59 there; the call, never connected, was abandoned
        assert client.app is not None
        await client.app[SERVICES_KEY].background.drain()
        assert all(u["figures"]["day"] == "2026-03-10" for u in wall.received("wall.update"))
        clock.advance(3)  # 00:00:02 there: nothing happened but the day
        pushed = await _update_where(wall, lambda f: f["day"] == "2026-03-11")
        assert pushed["figures"]["offered"] == 0
        assert pushed["figures"]["hours"] == []
    await supervisor.close()


def test_the_next_day_comes_after_a_short_day_too() -> None:
    """The day clocks go forward in Warsaw has 23 hours: 00:30 to the next midnight is 22.5 h."""
    half_past_midnight = datetime(2026, 3, 28, 23, 30, tzinfo=UTC)  # 00:30 CET, 29 March
    assert seconds_to_next_day(half_past_midnight, "Europe/Warsaw") == 22.5 * 3600
    assert seconds_to_next_day(EVENING, ALMATY) == 10 * 60
