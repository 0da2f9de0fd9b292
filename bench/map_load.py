"""Issue 5: the public map with 10,000 reports loads and clusters in Chromium, beside the same
page with no reports (what the page costs before any data)."""

from __future__ import annotations

import asyncio
import random
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from server.db.engine import Database
from server.db.migrate import upgrade
from server.db.models import ThreatReport
from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS

STATUSES = ("new", "verifying", "confirmed", "not_confirmed", "eliminated")
CATEGORIES = ("vandalism", "illegal_dumping", "speeding", "stray_dogs", "illegal_parking")
START_TIMEOUT_SECS = 60
LOAD_TIMEOUT_MS = 60_000

# Milliseconds from navigation start until the page has drawn its reports: ready, the count
# shown, and (with reports) clusters on the map.
LOADED_JS = """(expected) => {
  const count = document.querySelector('[data-testid=report-count]');
  if (document.body.dataset.ready !== 'true' || !count) return false;
  if (Number(count.dataset.count || count.textContent) !== expected) return false;
  const drawn = document.querySelector('.threat-cluster, [data-testid=map-report]');
  if (expected > 0 && !drawn) return false;
  return performance.now();
}"""


async def _fill(url: str, count: int) -> None:
    """``count`` reports around Almaty, written in one go (the bench measures the page)."""
    now = datetime.now(UTC)
    rng = random.Random(7)
    rows: list[dict[str, Any]] = [
        {
            "category": rng.choice(CATEGORIES),
            "status": rng.choice(STATUSES),
            "lat": 43.2 + rng.random() * 0.1,
            "lon": 76.85 + rng.random() * 0.15,
            "description": f"bench report {i}",
            "days": "",
            "time_of_day": "any",
            "sensitive": False,
            "confirmations": 0,
            "source": "web",
            "remote": "",
            "created_at": now - timedelta(minutes=i),
            "updated_at": now - timedelta(minutes=i),
        }
        for i in range(count)
    ]
    db = Database(url)
    try:
        async with db.engine.begin() as conn:
            if rows:
                await conn.execute(ThreatReport.__table__.insert(), rows)  # type: ignore[attr-defined]
    finally:
        await db.close()


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


def _median_load_ms(url: str, expected: int, runs: int) -> float:
    from playwright.sync_api import sync_playwright

    samples = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for _ in range(runs + 1):  # the first load warms caches and is not counted
                context = browser.new_context(viewport={"width": 1280, "height": 800})
                page = context.new_page()
                page.goto(url, wait_until="commit")
                handle = page.wait_for_function(
                    LOADED_JS, arg=expected, polling="raf", timeout=LOAD_TIMEOUT_MS
                )
                samples.append(float(handle.json_value()))
                context.close()
        finally:
            browser.close()
    return statistics.median(samples[1:])


def map_load_row(quick: bool) -> dict[str, Any]:
    """Median load-and-cluster time of /map with N reports, beside the empty map."""
    count, runs = (500, 1) if quick else (10_000, 5)
    results: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for reports in (count, 0):
            data_dir = Path(tmp) / f"data-{reports}"
            data_dir.mkdir()
            url = f"sqlite+aiosqlite:///{data_dir / 'lifeline.db'}"
            upgrade(url)
            asyncio.run(_fill(url, reports))
            process, map_url = _serve(data_dir)
            try:
                results[reports] = _median_load_ms(map_url, reports, runs)
            finally:
                process.terminate()
                process.wait(timeout=START_TIMEOUT_SECS)
                if process.stdout is not None:
                    process.stdout.close()
    ours, base = results[count], results[0]
    return {
        "metric": f"/map with {count} reports: load+cluster (median)",
        "ours": round(ours, 1),
        "baseline": round(base, 1),
        "unit": "ms",
        "ratio": round(ours / base, 2) if base else None,
        "baseline_is": "the same page with no reports",
    }


if __name__ == "__main__":
    print(map_load_row("--quick" in sys.argv))
