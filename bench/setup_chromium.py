"""Row 2, call setup in real Chromium (fake camera) against the real server.

Measured inside the pages (an init script polls ``getStats`` every 10 ms; the pages' own code is
unchanged):

* tap-to-first-frame at the server: from the citizen's tap on "Video call" to the first video
  frame SENT on a connected peer connection (``outbound-rtp.framesSent > 0``). The server has no
  endpoint for its own first-frame time; on loopback the frame is at the server within a
  millisecond of leaving a connected peer, so this is the figure observable from outside;
* accept-to-first-frame at the operator: from the click on "Accept" to the first frame decoded
  (``inbound-rtp.framesDecoded > 0``) on the console's new peer connection.

Baseline: the same pages with ``setLocalDescription`` held until ICE gathering completes, i.e.
an offer that waits for gathering instead of trickling (docs/media.md: ~125 ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

from bench.common import Row, na_row, pct, row
from bench.server_proc import STAFF_PASSWORD, Server, add_staff, running_server
from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS

TIMEOUT_MS = 20_000
FRAME_TIMEOUT_SECS = 20.0
BASELINE = "same pages, offer sent after ICE gathering completes"

TIMING_JS = """(() => {
  const Native = window.RTCPeerConnection;
  window.__peers = [];
  window.RTCPeerConnection = class extends Native {
    constructor(...args) { super(...args); window.__peers.push(this); }
  };
  const t = { tap: null, sent: null, accept: null, acceptPeers: 0, decoded: null, phases: null };
  window.__timing = t;
  // The console's first peer after "Accept": when its offer was made, its answer applied, and
  // its connection up (the phases of accept-to-first-frame).
  const mark = (pc, name) => {
    const index = window.__peers.indexOf(pc);
    if (t.accept !== null && t.phases && index >= t.acceptPeers && t.phases[name] === null) {
      t.phases[name] = performance.now() - t.accept;
    }
  };
  const setLocal = Native.prototype.setLocalDescription;
  Native.prototype.setLocalDescription = async function (...args) {
    mark(this, 'offer');
    return setLocal.apply(this, args);
  };
  const setRemote = Native.prototype.setRemoteDescription;
  Native.prototype.setRemoteDescription = async function (...args) {
    mark(this, 'answer');
    const done = await setRemote.apply(this, args);
    this.addEventListener('connectionstatechange', () => {
      if (this.connectionState === 'connected') mark(this, 'connected');
    });
    return done;
  };
  const tapped = (event) => {
    const el = event.target && event.target.closest;
    if (t.tap === null && el && event.target.closest('[data-testid=start-video-call]')) {
      t.tap = performance.now();
    }
  };
  for (const type of ['touchstart', 'pointerdown', 'click']) {
    document.addEventListener(type, tapped, true);
  }
  document.addEventListener('click', (event) => {
    if (event.target.closest && event.target.closest('[data-testid=accept-call]')) {
      t.accept = performance.now();
      t.acceptPeers = window.__peers.length;
      t.decoded = null;
      t.phases = { offer: null, answer: null, connected: null };
    }
  }, true);
  const poll = async () => {
    const peers = window.__peers.filter((pc) => pc.connectionState === 'connected');
    for (const pc of peers) {
      const index = window.__peers.indexOf(pc);
      (await pc.getStats()).forEach((s) => {
        if (s.kind !== 'video') return;
        if (s.type === 'outbound-rtp' && s.framesSent > 0 && t.tap !== null && t.sent === null) {
          t.sent = performance.now();
        }
        if (s.type === 'inbound-rtp' && s.framesDecoded > 0 && t.accept !== null
            && t.decoded === null && index >= t.acceptPeers) {
          t.decoded = performance.now();
        }
      });
    }
    setTimeout(poll, 10);
  };
  poll();
})();"""

WAIT_GATHERING_JS = """(() => {
  const original = RTCPeerConnection.prototype.setLocalDescription;
  RTCPeerConnection.prototype.setLocalDescription = async function (...args) {
    await original.apply(this, args);
    if (this.iceGatheringState === 'complete') return;
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, 5000);
      this.addEventListener('icegatheringstatechange', () => {
        if (this.iceGatheringState === 'complete') { clearTimeout(timer); resolve(); }
      });
    });
  };
})();"""


def _wait_timing(page: Any, key: str) -> float:
    deadline = time.monotonic() + FRAME_TIMEOUT_SECS
    while time.monotonic() < deadline:
        value = page.evaluate(f"() => window.__timing.{key}")
        if value is not None:
            return float(value)
        page.wait_for_timeout(20)
    raise TimeoutError(f"no {key} within {FRAME_TIMEOUT_SECS} s")


def _run_calls(base: str, operator: str, calls: int, wait_gathering: bool) -> dict[str, list[Any]]:
    """In a worker thread (sync Playwright): ``calls`` calls, one after another."""
    from playwright.sync_api import expect, sync_playwright

    scripts = [TIMING_JS, *([WAIT_GATHERING_JS] if wait_gathering else [])]
    result: dict[str, list[Any]] = {
        "tap_to_server_ms": [],
        "accept_to_operator_ms": [],
        "accept_phases_ms": [],
    }
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            console_ctx = browser.new_context(
                viewport={"width": 1920, "height": 1080}, permissions=["microphone"]
            )
            console_ctx.set_default_timeout(TIMEOUT_MS)
            for script in scripts:
                console_ctx.add_init_script(script)
            console = console_ctx.new_page()
            console.goto(f"{base}/login")
            console.locator("input[name=username]").fill(operator)
            console.locator("input[name=password]").fill(STAFF_PASSWORD)
            console.get_by_test_id("login-submit").click()
            console.wait_for_url(f"{base}/console")
            expect(console.locator("body")).to_have_attribute("data-ready", "true")
            state = console.get_by_test_id("connection-state")
            expect(state).to_have_attribute("data-state", "connected")
            console.get_by_test_id("start-shift").click()
            for _ in range(calls):
                phone = browser.new_context(
                    viewport={"width": 360, "height": 740},
                    is_mobile=True,
                    has_touch=True,
                    permissions=["camera", "microphone", "geolocation"],
                    geolocation={"latitude": 52.2297, "longitude": 21.0122, "accuracy": 15},
                )
                phone.set_default_timeout(TIMEOUT_MS)
                for script in scripts:
                    phone.add_init_script(script)
                try:
                    citizen = phone.new_page()
                    citizen.goto(f"{base}/")
                    expect(citizen.locator("body")).to_have_attribute("data-ready", "true")
                    citizen.get_by_test_id("start-video-call").tap()
                    call_state = citizen.get_by_test_id("call-state")
                    expect(call_state).to_have_attribute("data-state", "queued", timeout=TIMEOUT_MS)
                    stored = json.loads(
                        citizen.evaluate("() => sessionStorage.getItem('lifeline.call')")
                    )
                    sent = _wait_timing(citizen, "sent")
                    tap = float(citizen.evaluate("() => window.__timing.tap"))
                    result["tap_to_server_ms"].append(sent - tap)
                    item = console.locator(
                        f"[data-testid=queue-item][data-call-id='{stored['callId']}']"
                    )
                    item.click()
                    console.get_by_test_id("accept-call").click()
                    decoded = _wait_timing(console, "decoded")
                    accepted = float(console.evaluate("() => window.__timing.accept"))
                    result["accept_to_operator_ms"].append(decoded - accepted)
                    phases = console.evaluate("() => window.__timing.phases")
                    result["accept_phases_ms"].append(phases)
                    console.get_by_test_id("end-call").click()
                    console.get_by_test_id("disposition").select_option("advice_given")
                    console.get_by_test_id("end-note").fill("bench")
                    console.get_by_test_id("end-confirm").click()
                    expect(call_state).to_have_attribute("data-state", "ended", timeout=TIMEOUT_MS)
                finally:
                    phone.close()
            console_ctx.close()
        finally:
            browser.close()
    return result


async def setup_rows(tmp: Path, quick: bool) -> tuple[list[Row], dict[str, Any]]:
    calls = 2 if quick else 20
    if not await asyncio.to_thread(Path(CHROMIUM).exists):
        why = f"{CHROMIUM} is missing"
        return [na_row("setup: tap-to-first-frame p95", "ms", why)], {}
    async with running_server(tmp / "setup") as server:
        names = await _operators(server)
        ours = await asyncio.to_thread(_run_calls, server.base, names[0], calls, False)
        base = await asyncio.to_thread(_run_calls, server.base, names[1], calls, True)
    rows: list[Row] = []
    for key, label in (
        ("tap_to_server_ms", "setup: tap-to-first-frame at server"),
        ("accept_to_operator_ms", "setup: accept-to-first-frame at operator"),
    ):
        for p in (50, 95):
            rows.append(
                row(
                    f"{label} p{p} ({calls} calls)",
                    pct(ours[key], p),
                    pct(base[key], p),
                    "ms",
                    BASELINE,
                )
            )
    return rows, {"ours": ours, "baseline": base}


async def _operators(server: Server) -> list[str]:
    names = ["benchop1", "benchop2"]
    for name in names:
        with contextlib.suppress(RuntimeError):
            await add_staff(server, name, "operator")
    return names
