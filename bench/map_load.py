"""The public map with 10,000 and 100,000 reports, clustered on the server: its first view and
a zoom's redraw in Chromium, beside the same page with no reports."""

from __future__ import annotations

import asyncio
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import pct
from server.db.migrate import upgrade
from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.map_reports import HEIGHT, SOUTH, WEST, WIDTH, fill_reports

START_TIMEOUT_SECS = 60
LOAD_TIMEOUT_MS = 60_000

# Milliseconds from navigation start until the page has drawn its reports: ready, the count
# shown, and (with reports) the view it moved to, to show where they are, drawn (its second).
LOADED_JS = """(expected) => {
  const count = document.querySelector('[data-testid=report-count]');
  if (document.body.dataset.ready !== 'true' || !count) return false;
  if (Number(count.dataset.count || count.textContent) !== expected) return false;
  const views = Number(document.getElementById('map').dataset.viewSeq || 0);
  if (views < (expected > 0 ? 2 : 1)) return false;
  const drawn = document.querySelector('.threat-cluster, [data-testid=map-report]');
  if (expected > 0 && !drawn) return false;
  return performance.now();
}"""


def _serve(data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "LIFELINE_DATA_DIR": str(data_dir),
        "LIFELINE_LOG_LEVEL": "WARNING",
        "LIFELINE_LOG_FORMAT": "text",
        "PYTHONUNBUFFERED": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "server", "run", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("map: "):
            return process, line.split(" ", 1)[1].strip()
    process.kill()
    raise RuntimeError("the server did not start")


# After a zoom: the new view asked for and drawn (its sequence number moved on).
REDRAWN_JS = """(before) => {
  const map = document.getElementById('map');
  return Number(map.dataset.viewSeq || 0) > before ? performance.now() : false;
}"""


def _zoom_ms(page: Any) -> float:
    """One zoom in from the keyboard ("+", Leaflet's own binding; a headless mouse drag does
    not pan Leaflet); ms from the key to the new view drawn."""
    before = int(page.locator("#map").get_attribute("data-view-seq") or 0)
    page.locator("#map").focus()
    pressed = float(page.evaluate("performance.now()"))
    page.keyboard.press("+")
    handle = page.wait_for_function(REDRAWN_JS, arg=before, polling="raf", timeout=LOAD_TIMEOUT_MS)
    return float(handle.json_value()) - pressed


def _median_load_ms(url: str, expected: int, runs: int) -> tuple[float, float]:
    """Median ms to the first clustered view, and median ms of a zoom's redraw."""
    from playwright.sync_api import sync_playwright

    loads, pans = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for run in range(runs + 1):  # the first load warms caches and is not counted
                context = browser.new_context(viewport={"width": 1280, "height": 800})
                page = context.new_page()
                page.goto(url, wait_until="commit")
                handle = page.wait_for_function(
                    LOADED_JS, arg=expected, polling="raf", timeout=LOAD_TIMEOUT_MS
                )
                if run:
                    loads.append(float(handle.json_value()))
                    pans.append(_zoom_ms(page))
                context.close()
        finally:
            browser.close()
    return statistics.median(loads), statistics.median(pans)


PANNERS = 8


async def _healthz_p99(base: str, secs: float, panners: int) -> float:
    """/healthz every 20 ms for ``secs``, while ``panners`` clients ask the map's views one
    after another (random pans and zooms over the city): its p99 in ms."""
    rng = random.Random(3)
    done = asyncio.Event()

    async def pan(session: aiohttp.ClientSession) -> None:
        while not done.is_set():
            zoom = rng.randint(8, 18)
            half = 180 / 2**zoom * 2
            lat = SOUTH + rng.random() * HEIGHT
            lon = WEST + rng.random() * WIDTH
            bbox = f"{lon - half:.6f},{lat - half / 2:.6f},{lon + half:.6f},{lat + half / 2:.6f}"
            async with session.get(f"{base}/api/reports/clusters?zoom={zoom}&bbox={bbox}") as r:
                await r.read()

    samples: list[float] = []
    async with aiohttp.ClientSession() as session:
        tasks = [asyncio.create_task(pan(session)) for _ in range(panners)]
        deadline = time.monotonic() + secs
        while time.monotonic() < deadline:
            started = time.perf_counter()
            async with session.get(f"{base}/healthz") as response:
                await response.read()
            samples.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.02)
        done.set()
        await asyncio.gather(*tasks)
    return pct(samples, 99)


def map_load_rows(quick: bool) -> list[dict[str, Any]]:
    """The first clustered view of /map and a zoom's redraw, with 10,000 and 100,000 reports,
    each beside the empty map (what the page costs before any data)."""
    counts, runs = ((500,), 1) if quick else ((10_000, 100_000), 3)
    results: dict[int, tuple[float, float]] = {}
    healthz: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for reports in (*counts, 0):
            data_dir = Path(tmp) / f"data-{reports}"
            data_dir.mkdir()
            url = f"sqlite+aiosqlite:///{data_dir / 'lifeline.db'}"
            upgrade(url)
            asyncio.run(fill_reports(url, reports))
            process, map_url = _serve(data_dir)
            try:
                results[reports] = _median_load_ms(map_url, reports, runs)
                if reports == max(counts):
                    origin = map_url.rsplit("/map", 1)[0]
                    secs = 2.0 if quick else 15.0
                    healthz[0] = asyncio.run(_healthz_p99(origin, secs, 0))
                    healthz[PANNERS] = asyncio.run(_healthz_p99(origin, secs, PANNERS))
            finally:
                process.terminate()
                process.wait(timeout=START_TIMEOUT_SECS)
                if process.stdout is not None:
                    process.stdout.close()
    rows = []
    (base_load, base_pan) = results[0]
    for count in counts:
        load, pan = results[count]
        for what, ours, base in (
            ("first clustered view", load, base_load),
            ("zoom-in redraw", pan, base_pan),
        ):
            rows.append(
                {
                    "metric": f"/map with {count:,} reports: {what} (median)",
                    "ours": round(ours, 1),
                    "baseline": round(base, 1),
                    "unit": "ms",
                    "ratio": round(ours / base, 2) if base else None,
                    "baseline_is": "the same page with no reports",
                }
            )
    busy, idle = healthz[PANNERS], healthz[0]
    rows.append(
        {
            "metric": f"/map with {max(counts):,} reports: GET /healthz p99, {PANNERS} panning",
            "ours": round(busy, 2),
            "baseline": round(idle, 2),
            "unit": "ms",
            "ratio": round(busy / idle, 2) if idle else None,
            "baseline_is": "the same server with nobody on the map",
        }
    )
    return rows


if __name__ == "__main__":
    for row in map_load_rows("--quick" in sys.argv):
        print(row)
