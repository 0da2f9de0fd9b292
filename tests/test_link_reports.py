"""The degradation ladder's reports over real Socket.IO (issue 17 item 2): the caller's rung and
quality reach the consoles on the call as ``call.link``, the operator's measured quality reaches
the caller's page; a bad report is refused with an error event and the call goes on; another
operator cannot report on a call that is not theirs; an ended call takes no report."""

from __future__ import annotations

from typing import Any

import pytest

from server.core.clock import FrozenClock
from tests.sockets import citizen, console, start_call
from tests.staff import Client, add_account, another_browser, sign_in


async def test_each_side_is_told_the_others_report(client: Client, operator: Client) -> None:
    started = await start_call(client)
    call_id = started["call_id"]
    async with citizen(client, started["token"]) as phone, console(operator) as desk:
        assert (await desk.call("accept", {"call_id": call_id}))["ok"]
        said = await phone.call("link", {"rung": "audio", "quality": "poor"})
        assert said == {"ok": True}
        told = await desk.next_event("call.link", call_id=call_id)
        assert told == {
            "type": "call.link",
            "call_id": call_id,
            "side": "caller",
            "rung": "audio",
            "quality": "poor",
        }
        measured = await desk.call("link", {"call_id": call_id, "quality": "good"})
        assert measured == {"ok": True}
        back = await phone.next_event("call.link", call_id=call_id)
        assert (back["side"], back["rung"], back["quality"]) == ("operator", None, "good")
        # The caller's page is not sent its own report, nor the console its own.
        assert phone.received("call.link") == [back]
        assert desk.received("call.link") == [told]


BAD_REPORTS: list[Any] = [
    {"rung": "hologram", "quality": "good"},
    {"rung": "video", "quality": "excellent"},
    {"rung": "video"},
    {"rung": "video", "quality": "good", "call_id": "someone-elses"},
    "video",
]


@pytest.mark.parametrize("payload", BAD_REPORTS)
async def test_a_bad_report_is_refused_and_the_call_goes_on(client: Client, payload: Any) -> None:
    started = await start_call(client)
    async with citizen(client, started["token"]) as phone:
        reply = await phone.call("link", payload)
        assert reply["ok"] is False and reply["error"]["code"] == "invalid"
        assert (await phone.next_error())["event"] == "link"
        assert (await phone.call("link", {"rung": "text", "quality": "bad"}))["ok"]
        assert (await phone.call("resume", {}))["call"]["state"] == "queued"


async def test_only_the_calls_operator_reports_and_an_ended_call_takes_none(
    client: Client, operator: Client, clock: FrozenClock
) -> None:
    started = await start_call(client)
    call_id = started["call_id"]
    rival = await another_browser(client)
    await sign_in(rival, await add_account(client, "rita", "operator"), clock)
    try:
        async with (
            citizen(client, started["token"]) as phone,
            console(operator) as desk,
            console(rival) as other_desk,
        ):
            assert (await desk.call("accept", {"call_id": call_id}))["ok"]
            reply = await other_desk.call("link", {"call_id": call_id, "quality": "bad"})
            assert reply["error"]["code"] == "not_your_call"
            assert (await other_desk.next_error())["event"] == "link"
            assert phone.received("call.link") == []
            ended = await desk.call("end_call", {"call_id": call_id, "disposition": "advice_given"})
            assert ended["ok"], ended
            late = await desk.call("link", {"call_id": call_id, "quality": "good"})
            assert late["ok"] is False
    finally:
        await rival.close()
