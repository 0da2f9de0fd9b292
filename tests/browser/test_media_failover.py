"""A media worker dies mid-call, in real Chromium: the call goes on with media.

The server runs two media worker processes (``LIFELINE_MEDIA_WORKERS=2``). The call's worker is
killed outright; the server tells both pages (``media.lost``), the caller's page offers again and
is placed on a live media node, the console follows, and the operator sees the caller again. The
recording goes on in a new segment, numbered past the one that died with the worker. A
supervisor's wall shows the call "reconnecting" meanwhile, and no more once its media is back.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser import test_live_call as live
from tests.browser.conftest import RunningServer, call_media, start_server, stop_server
from tests.browser.staff import add_staff, sign_in
from tests.browser.test_live_call import (
    CONSOLE_SCREEN,
    TIMEOUT_MS,
    accept,
    end_from_console,
    expect_rising,
    start_call,
)
from tests.browser.waiting import wait_true
from tests.test_media_workers import sealed_after_kill, stored_segments, workers_of

pytestmark = pytest.mark.browser

# The live-call module's phone and console, resolved against this module's call_server.
phone = live.phone
console = live.console

# Far below the ~30 s a browser takes to declare a dead peer failed on its own.
RECOVERY_BOUND_SECS = 15.0
VIDEO = "[data-testid=remote-video]"

# Frames decoded by the page's newest peer connection, and how many it has made.
NEWEST_JS = """async () => {
  const peers = window.__peers || [];
  const pc = peers[peers.length - 1];
  let frames = 0, audio = 0;
  if (pc && pc.connectionState !== 'closed') {
    (await pc.getStats()).forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      if (s.kind === 'video') frames += s.framesDecoded || 0;
      if (s.kind === 'audio') audio += s.packetsReceived || 0;
    });
  }
  return { made: peers.length, frames, audio };
}"""


@pytest.fixture(scope="module")
def call_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start_server(
        tmp_path_factory.mktemp("failover"),
        {
            "LIFELINE_MEDIA_WORKERS": "2",
            "LIFELINE_MEDIA_ADDRESSES": "127.0.0.1",
            "LIFELINE_CALL_RATE_LIMIT": "100/minute",
        },
    )
    yield server
    stop_server(server)


@pytest.fixture(scope="module", autouse=True)
def _server_before_browser(call_server: RunningServer) -> None:
    """The server first: in scale-out mode its start resets PostgreSQL with ``asyncio.run()``."""


# Every value a call's tile on the wall has had for data-media, in order (a MutationObserver:
# the "reconnecting" between a kill and the media placed anew may last less than a second).
MEDIA_STATES_JS = """() => {
  window.__mediaStates = {};
  const note = (tile) => {
    const seen = (window.__mediaStates[tile.dataset.callId] ||= []);
    const media = tile.dataset.media;
    if (media && seen[seen.length - 1] !== media) seen.push(media);
  };
  document.querySelectorAll('[data-testid="wall-call"]').forEach(note);
  new MutationObserver((changes) => {
    for (const change of changes) {
      const tile = change.target.closest && change.target.closest('[data-testid="wall-call"]');
      if (tile) note(tile);
      change.addedNodes.forEach((n) => n.dataset && n.dataset.testid === 'wall-call' && note(n));
    }
  }).observe(document.body, { subtree: true, childList: true, attributes: true,
                              attributeFilter: ['data-media'] });
}"""


@pytest.fixture
def wall(browser: Browser, call_server: RunningServer, page_errors: list[str]) -> Iterator[Page]:
    secret = add_staff(call_server, "sup1", "supervisor")
    context = browser.new_context(viewport=CONSOLE_SCREEN, color_scheme="dark")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.on("pageerror", lambda error: page_errors.append(f"wall: {error}"))
    sign_in(page, call_server.base, "sup1", secret, "/wall")
    expect(page.locator("body")).to_have_attribute("data-live", "true")
    yield page
    context.close()


def _newest(page: Page) -> dict[str, int]:
    result: dict[str, int] = page.evaluate(NEWEST_JS)
    return result


def _wait_new_peer_with(page: Page, made_before: int, counter: str, above: int) -> None:
    wait_true(
        page,
        f"async ([made, counter, above]) => {{ const r = await ({NEWEST_JS})();"
        " return r.made > made && r[counter] > above; }",
        [made_before, counter, above],
        RECOVERY_BOUND_SECS * 1000,
        f"a new peer connection with {counter} > {above}",
    )


def test_a_killed_media_worker_costs_seconds_not_the_call(
    phone: BrowserContext, console: Page, wall: Page, call_server: RunningServer, artifacts: Path
) -> None:
    citizen, call_id = start_call(phone, call_server.base)
    accept(console, call_id)
    tile = wall.locator(f'[data-testid="wall-call"][data-call-id="{call_id}"]')
    expect(tile).to_have_attribute("data-state", "answered")
    expect(tile).to_have_attribute("data-media", "ok")
    wall.evaluate(MEDIA_STATES_JS)
    expect(citizen.get_by_test_id("call-state")).to_have_attribute("data-state", "answered")
    expect_rising(console, "framesDecoded", VIDEO)
    expect_rising(citizen, "audioPackets")

    home = call_media(call_server, call_id)["media_node"]
    assert home in workers_of(call_server)
    before = stored_segments(call_server, call_id)
    console_made, citizen_made = _newest(console)["made"], _newest(citizen)["made"]
    killed_at = time.monotonic()
    os.kill(workers_of(call_server)[home], signal.SIGKILL)

    # New peer connections on both pages, the caller's picture and the operator's voice again.
    _wait_new_peer_with(console, console_made, "frames", 30)
    _wait_new_peer_with(citizen, citizen_made, "audio", 30)
    recovered_secs = time.monotonic() - killed_at
    assert recovered_secs < RECOVERY_BOUND_SECS
    console.wait_for_function("(s) => document.querySelector(s).videoWidth > 0", arg=VIDEO)
    expect(citizen.get_by_test_id("call-state")).to_have_attribute("data-state", "answered")
    console.screenshot(path=str(artifacts / "failover-console-1920.png"))
    # The wall said "reconnecting" in between, and says it no more.
    expect(tile).to_have_attribute("data-media", "ok")
    expect(tile.get_by_test_id("wall-reconnecting")).to_be_hidden()
    states = wall.evaluate("(id) => window.__mediaStates[id] || []", call_id)
    assert states == ["ok", "reconnecting", "ok"], states
    print(f"media back at the console {recovered_secs:.1f} s after its worker was killed")

    end_from_console(console, citizen)
    sealed_after_kill(call_server, call_id, before)
