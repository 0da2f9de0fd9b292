"""The supervisor's wall follows the queue live: a new call counts as waiting, an answered one
moves to the live calls, operators show as available or in a call (pushed, not polled), an
internal-security call never shows on a supervisor's wall, and today's figures equal those worked
out here from the call transitions in the database (issue 13, item 6)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import RunningServer, start_server, stop_server
from tests.browser.staff import add_staff, sign_in

pytestmark = pytest.mark.browser

TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def wall_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start_server(
        tmp_path_factory.mktemp("wall"), {"LIFELINE_CALL_RATE_LIMIT": "100/minute"}
    )
    yield server
    stop_server(server)


@pytest.fixture(scope="module", autouse=True)
def _server_before_browser(wall_server: RunningServer) -> None:
    """Start the server before Chromium (scale-out start-up resets PostgreSQL)."""


@pytest.fixture(scope="module")
def wall(browser: Browser, wall_server: RunningServer, page_errors: list[str]) -> Iterator[Page]:
    secret = add_staff(wall_server, "sup1", "supervisor")
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.on("pageerror", lambda error: page_errors.append(f"wall: {error}"))
    sign_in(page, wall_server.base, "sup1", secret, "/wall")
    expect(page.locator("body")).to_have_attribute("data-live", "true")
    yield page
    context.close()


def _call(page: Page, base: str, channel: str) -> dict[str, str]:
    """A citizen's call, made over HTTP from a page of the same origin."""
    reply: dict[str, str] = page.evaluate(
        """async ([base, channel]) => {
          const response = await fetch(`${base}/api/calls`, {method: 'POST',
            headers: {'Content-Type': 'application/json'},
            body: JSON.stringify({channel, language: 'en', mode: 'text'})});
          return response.json();
        }""",
        [base, channel],
    )
    return reply


def test_the_wall_follows_the_queue(
    browser: Browser, wall: Page, wall_server: RunningServer, artifacts: Path
) -> None:
    police = wall.locator("[data-testid=queue-count][data-channel=police]")
    expect(police).to_have_text("0")
    expect(wall.locator("[data-testid=queue-count][data-channel=internal_security]")).to_have_count(
        0
    )

    helper = browser.new_page()
    helper.goto(f"{wall_server.base}/healthz")
    first = _call(helper, wall_server.base, "police")
    hidden = _call(helper, wall_server.base, "internal_security")
    expect(police).to_have_text("1")
    item = wall.locator(f"[data-testid=wall-call][data-call-id='{first['call_id']}']")
    expect(item).to_have_attribute("data-state", "queued")
    expect(wall.locator(f"[data-call-id='{hidden['call_id']}']")).to_have_count(0)

    # An operator answers on the console: the wall shows it live, no longer waiting.
    secret = add_staff(wall_server, "op9", "operator")
    operator = browser.new_page()
    sign_in(operator, wall_server.base, "op9", secret, "/console")
    state = wall.locator("[data-testid=operator-state][data-user=op9]")
    # Pushed when the console connects: well within expect's default 5 s.
    expect(state).to_have_attribute("data-state", "available", timeout=5_000)
    free = wall.locator("[data-testid=operators-available][data-channel=police]")
    expect(free).to_have_text("1", timeout=TIMEOUT_MS)
    operator.locator(f"[data-testid=queue-item][data-call-id='{first['call_id']}']").click()
    operator.get_by_test_id("accept-call").click()
    expect(item).to_have_attribute("data-state", "answered")
    expect(item).to_contain_text("op9")
    expect(police).to_have_text("0")
    expect(state).to_have_attribute("data-state", "in_call", timeout=TIMEOUT_MS)
    expect(free).to_have_text("0", timeout=TIMEOUT_MS)
    wall.screenshot(path=str(artifacts / "wall-live-1920.png"))
    operator.close()
    expect(state).to_have_attribute("data-state", "in_call")  # still holds the call
    helper.close()


def test_signing_out_in_another_tab_takes_the_wall_to_the_sign_in_page(
    browser: Browser, wall_server: RunningServer
) -> None:
    """The server closes a revoked session's socket and says why: the page goes to the sign-in
    page instead of sitting on a dead feed."""
    secret = add_staff(wall_server, "sup2", "supervisor")
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    try:
        wall = context.new_page()
        sign_in(wall, wall_server.base, "sup2", secret, "/wall")
        expect(wall.locator("body")).to_have_attribute("data-live", "true")
        other = context.new_page()  # the same session, in a second tab
        other.goto(f"{wall_server.base}/wall")
        other.get_by_test_id("logout").click()
        other.wait_for_url(f"{wall_server.base}/login**")
        wall.wait_for_url(f"{wall_server.base}/login?expired=1&next=%2Fwall")
    finally:
        context.close()


def test_a_flooding_callers_call_is_marked_and_listed_last(
    browser: Browser, wall: Page, wall_server: RunningServer, artifacts: Path
) -> None:
    """A caller's page that floods its socket keeps its call, marked and behind the others, on
    the wall and on an operator's console."""
    helper = browser.new_page()
    helper.goto(f"{wall_server.base}/healthz")
    flooder = _call(helper, wall_server.base, "police")
    calm = _call(helper, wall_server.base, "police")
    secret = add_staff(wall_server, "op10", "operator")
    operator = browser.new_page(viewport={"width": 1920, "height": 1080})
    sign_in(operator, wall_server.base, "op10", secret, "/console")
    # The console has its queue before the flood: the mark must reach it as an update.
    expect(operator.get_by_test_id("connection-state")).to_have_attribute("data-state", "connected")
    for call in (flooder, calm):
        queued_call = f"[data-testid=queue-item][data-call-id='{call['call_id']}']"
        expect(operator.locator(queued_call)).to_have_count(1)
    refused = helper.evaluate(
        """async ([base, token]) => {
          const { io } = await import('/static/vendor/socket.io-client/socket.io.esm.min.js');
          const socket = io(`${base}/citizen`, {transports: ['websocket'],
                                                 auth: {token, last_seq: 0}});
          await new Promise((resolve) => socket.on('connect', resolve));
          const chat = (n) => ({client_id: `flood-${String(n).padStart(4, '0')}`, body: 'x'});
          // All at once, as a flooding page does: far past the burst the allowance allows.
          const replies = await Promise.all(
            [...Array(80).keys()].map((n) => socket.emitWithAck('chat', chat(n))));
          return replies.filter((r) => !r.ok).map((r) => r.error.code);
        }""",
        [wall_server.base, flooder["token"]],
    )
    assert refused and set(refused) == {"rate_limited"}
    on_wall = wall.locator(f"[data-testid=wall-call][data-call-id='{flooder['call_id']}']")
    expect(on_wall).to_have_attribute("data-marks", "flooding")
    expect(on_wall.get_by_test_id("wall-call-marks")).to_be_visible()
    last_on_wall = wall.locator("[data-testid=wall-call]").last
    expect(last_on_wall).to_have_attribute("data-call-id", flooder["call_id"])
    queued = operator.locator("[data-testid=queue-item]")
    expect(queued.last).to_have_attribute("data-call-id", flooder["call_id"])
    expect(queued.last).to_have_attribute("data-marks", "flooding")
    expect(queued.last.get_by_test_id("queue-item-marks")).to_be_visible()
    expect(
        operator.locator(f"[data-testid=queue-item][data-call-id='{calm['call_id']}']")
    ).to_have_attribute("data-marks", "")
    operator.screenshot(path=str(artifacts / "console-marked-call-1920.png"))
    wall.screenshot(path=str(artifacts / "wall-marked-call-1920.png"))
    operator.close()
    helper.close()


# Every transition of the police calls in the server's database, read with its own settings.
TRANSITIONS_PY = """
import asyncio, json
from sqlmodel import col, select
from config import load_settings
from server.db.engine import Database
from server.db.models import Call, CallTransition

async def main() -> None:
    db = Database(load_settings().database_url)
    async with db.session() as session:
        rows = (await session.exec(select(CallTransition).join(Call,
                col(Call.id) == col(CallTransition.call_id)).where(col(Call.channel) == "police")
                .order_by(col(CallTransition.id)))).all()
    await db.close()
    print(json.dumps([[r.call_id, r.from_state, r.to_state, r.at.isoformat()] for r in rows]))

asyncio.run(main())
"""


def _expected_figures(server: RunningServer, target: float) -> dict[str, Any]:
    """Today's (UTC) figures worked out here from the transitions, not by the server's code."""
    out = subprocess.run(
        [sys.executable, "-c", TRANSITIONS_PY],
        env=server.env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    today = datetime.now(UTC).date()
    offered: dict[str, datetime] = {}
    answered: dict[str, datetime] = {}
    abandoned: dict[str, datetime] = {}
    for call_id, old, new, at in json.loads(out):
        moment = datetime.fromisoformat(at)
        if old is None and moment.astimezone(UTC).date() == today:
            offered[call_id] = moment
        elif call_id in offered and new == "answered" and call_id not in answered:
            answered[call_id] = moment
        elif call_id in offered and new == "abandoned" and call_id not in answered:
            abandoned[call_id] = moment
    waits = [(answered[c] - offered[c]).total_seconds() for c in answered]
    in_target = sum(1 for wait in waits if wait <= target)
    finished = len(waits) + len(abandoned)
    return {
        "offered": len(offered),
        "answered": len(answered),
        "abandoned": len(abandoned),
        "percent": round(100 * in_target / finished, 1) if finished else None,
        "avg_wait": round(sum(waits) / len(waits), 1) if waits else None,
    }


def test_todays_figures_equal_those_worked_out_from_the_transitions(
    browser: Browser, wall: Page, wall_server: RunningServer
) -> None:
    helper = browser.new_page()
    helper.goto(f"{wall_server.base}/healthz")
    secret = add_staff(wall_server, "op11", "operator")
    operator = browser.new_page()
    sign_in(operator, wall_server.base, "op11", secret, "/console")
    # Answered at once: within the target (the first test's call waited past it).
    quick = _call(helper, wall_server.base, "police")
    late = _call(helper, wall_server.base, "police")
    gone = _call(helper, wall_server.base, "police")
    accepted = operator.evaluate(
        """async (callId) => {
          const { io } = await import('/static/vendor/socket.io-client/socket.io.esm.min.js');
          const socket = io('/console', {transports: ['websocket']});
          await new Promise((resolve) => socket.on('connect', resolve));
          const reply = await socket.emitWithAck('accept', {call_id: callId});
          socket.disconnect();
          return reply.ok;
        }""",
        quick["call_id"],
    )
    assert accepted
    # The caller of the third call hangs up before anyone answers: abandoned.
    ended = helper.evaluate(
        """async (token) => {
          const { io } = await import('/static/vendor/socket.io-client/socket.io.esm.min.js');
          const socket = io('/citizen', {transports: ['websocket'], auth: {token, last_seq: 0}});
          await new Promise((resolve) => socket.on('connect', resolve));
          const reply = await socket.emitWithAck('end_call', {});
          socket.disconnect();
          return reply.state;
        }""",
        gone["token"],
    )
    assert ended == "abandoned"
    assert late["call_id"]  # still waiting: offered only

    expected = _expected_figures(wall_server, 10.0)
    assert expected["abandoned"] >= 1 and expected["answered"] >= 1
    police = "[data-channel=police]"
    for testid in ("offered", "answered", "abandoned"):
        hook = wall.locator(f"[data-testid=figure-{testid}]{police}")
        expect(hook).to_have_text(str(expected[testid]))
    assert 0 < expected["percent"] < 100  # calls on both sides of the target
    in_target = wall.locator(f"[data-testid=figure-in-target]{police}")
    avg_wait = wall.locator(f"[data-testid=figure-avg-wait]{police}")
    expect(in_target).to_have_attribute("data-percent", re.compile(r"\d"))
    assert float(in_target.get_attribute("data-percent") or "nan") == expected["percent"]
    assert float(avg_wait.get_attribute("data-secs") or "nan") == expected["avg_wait"]
    # The hour chart is drawn (Chart.js on a canvas).
    expect(wall.locator(f"[data-testid=figure-hours]{police} canvas")).to_have_count(1)
    # The call still waiting is amber or red by its wait, against the 10 s target.
    waiting = wall.locator(f"[data-testid=wall-call][data-call-id='{late['call_id']}']")
    expect(waiting).to_have_attribute("data-wait", "absent")  # its page never connected
    operator.close()
    helper.close()
