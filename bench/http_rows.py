"""HTTP latency: GET /healthz and GET /login through the whole middleware stack vs a bare
aiohttp handler returning the same body."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from bench.common import LOOPBACK, Row, pct, row
from config import Settings
from server.app import create_app
from server.db.migrate import upgrade_async


async def _latencies(url: str, count: int, concurrency: int) -> list[float]:
    samples: list[float] = []
    queue = iter(range(count))
    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            for _ in queue:
                started = time.perf_counter()
                async with session.get(url) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"GET {url}: HTTP {response.status}")
                samples.append((time.perf_counter() - started) * 1000)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return samples


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, LOOPBACK, 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


async def http_rows(data_dir: Path, quick: bool) -> list[Row]:
    count, concurrency = (100, 20) if quick else (4000, 20)
    settings = Settings(DATA_DIR=data_dir, LOG_FORMAT="text", LOG_LEVEL="WARNING")
    await upgrade_async(settings.database_url)
    ours, ours_url = await _serve(create_app(settings))
    async with aiohttp.ClientSession() as session, session.get(f"{ours_url}/login") as page:
        login_body = await page.read()

    async def bare_health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def bare_login(_: web.Request) -> web.Response:
        return web.Response(body=login_body, content_type="text/html")

    bare_app = web.Application()
    bare_app.router.add_get("/healthz", bare_health)
    bare_app.router.add_get("/login", bare_login)
    bare, bare_url = await _serve(bare_app)
    rows = []
    try:
        for path in ("/healthz", "/login"):
            mine = await _latencies(f"{ours_url}{path}", count, concurrency)
            base = await _latencies(f"{bare_url}{path}", count, concurrency)
            for p in (50, 99):
                rows.append(
                    row(
                        f"GET {path} p{p} (c={concurrency})",
                        pct(mine, p),
                        pct(base, p),
                        "ms",
                        "bare aiohttp handler, same body",
                    )
                )
    finally:
        await ours.cleanup()
        await bare.cleanup()
    return rows
