"""Platform benchmarks. Each row: our figure, its baseline measured in the same run, the ratio.

- audit appends/s: the hash-chained, serialised append vs a plain INSERT of the same row,
  on SQLite and on PostgreSQL;
- HTTP latency: GET /healthz and GET /login through the whole middleware stack vs a bare
  aiohttp handler returning the same body.

Writes ``bench/results/<date>.json``. ``--quick`` runs tiny counts (a smoke test runs it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import text

from config import Settings
from server.app import create_app
from server.audit import AuditLog
from server.clock import SystemClock
from server.db.engine import Database
from server.db.migrate import upgrade_async

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# A server where the bench may create (and drop) a database of its own, `lifeline_bench`.
POSTGRES_SERVER_URL = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
BENCH_DATABASE = "lifeline_bench"
Row = dict[str, Any]


async def _bench_database(create: bool) -> str:
    """Create (or drop) the bench's own database, so no test or deployment data is touched."""
    engine = Database(POSTGRES_SERVER_URL).engine.execution_options(isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f"DROP DATABASE IF EXISTS {BENCH_DATABASE}"))
            if create:
                await conn.execute(text(f"CREATE DATABASE {BENCH_DATABASE}"))
    finally:
        await engine.dispose()
    return POSTGRES_SERVER_URL.rsplit("/", 1)[0] + f"/{BENCH_DATABASE}"


async def _appends(url: str, count: int, concurrency: int) -> tuple[float, float]:
    """(chained appends/s, plain inserts/s) with ``concurrency`` writers."""
    db = Database(url)
    audit = AuditLog(db, SystemClock())
    try:

        async def chained(i: int) -> None:
            await audit.append(actor="bench", action="bench", data={"i": i})

        async def plain(i: int) -> None:
            async with db.engine.begin() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO call_transitions (call_id, from_state, to_state, actor, "
                        "reason, at) VALUES (:c, NULL, 'queued', 'bench', '', :at)"
                    ),
                    {"c": "bench-call", "at": datetime.now(UTC)},
                )

        async with db.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO calls (id, channel, mode, language, state, token_hash, last_seq,"
                    " created_at) VALUES ('bench-call', 'police', 'video', 'en', 'queued', "
                    "'bench', 0, :at)"
                ),
                {"at": datetime.now(UTC)},
            )
        ours = await _rate(chained, count, concurrency)
        base = await _rate(plain, count, concurrency)
        report = await audit.verify()
        if not report.ok or report.entries != count:
            raise RuntimeError(f"the chain the bench wrote does not verify: {report}")
        return ours, base
    finally:
        await db.close()


async def _rate(op: Callable[[int], Awaitable[None]], count: int, concurrency: int) -> float:
    queue = iter(range(count))

    async def worker() -> None:
        for i in queue:
            await op(i)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - started)


async def _latencies(url: str, count: int, concurrency: int) -> list[float]:
    samples: list[float] = []
    queue = iter(range(count))
    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            for _ in queue:
                started = time.perf_counter()
                async with session.get(url) as response:
                    await response.read()
                    assert response.status == 200
                samples.append((time.perf_counter() - started) * 1000)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return samples


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


async def _http_rows(data_dir: Path, count: int, concurrency: int) -> list[Row]:
    settings = Settings(DATA_DIR=data_dir, LOG_FORMAT="text", LOG_LEVEL="WARNING")
    await upgrade_async(settings.database_url)
    ours, ours_url = await _serve(create_app(settings))
    login_body = b""
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
            for pct, name in ((50, "p50"), (99, "p99")):
                ours_ms, base_ms = _pct(mine, pct), _pct(base, pct)
                rows.append(
                    _row(
                        f"GET {path} {name} (c={concurrency})",
                        ours_ms,
                        base_ms,
                        "ms",
                        "bare aiohttp handler, same body",
                    )
                )
    finally:
        await ours.cleanup()
        await bare.cleanup()
    return rows


def _pct(samples: list[float], pct: int) -> float:
    return statistics.quantiles(samples, n=100)[pct - 1] if len(samples) > 1 else samples[0]


def _row(name: str, ours: float, base: float, unit: str, baseline: str) -> Row:
    return {
        "metric": name,
        "ours": round(ours, 2),
        "baseline": round(base, 2),
        "unit": unit,
        "ratio": round(ours / base, 2) if base else None,
        "baseline_is": baseline,
    }


async def _main(quick: bool) -> list[Row]:
    appends, concurrency = (40, 4) if quick else (2000, 8)
    requests = 100 if quick else 4000
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        await upgrade_async(sqlite_url)
        ours, base = await _appends(sqlite_url, appends, concurrency)
        rows.append(_row("audit appends/s, SQLite", ours, base, "1/s", "plain INSERT"))
        postgres_url = await _bench_database(create=True)
        try:
            await upgrade_async(postgres_url)
            ours, base = await _appends(postgres_url, appends, concurrency)
        finally:
            await _bench_database(create=False)
        rows.append(_row("audit appends/s, PostgreSQL", ours, base, "1/s", "plain INSERT"))
        rows += await _http_rows(Path(tmp) / "http", requests, 20)
    return rows


def _print(rows: list[Row]) -> None:
    header = f"{'metric':36} {'ours':>10} {'baseline':>10} {'ratio':>7}  unit  baseline is"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['metric']:36} {r['ours']:>10} {r['baseline']:>10} {r['ratio']:>7}  "
            f"{r['unit']:5} {r['baseline_is']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="tiny counts: a smoke run")
    parser.add_argument("--out", type=Path, help="where to write the JSON results")
    args = parser.parse_args()
    rows = asyncio.run(_main(args.quick))
    _print(rows)
    out = args.out or RESULTS_DIR / f"{datetime.now(UTC):%Y-%m-%d}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "when": datetime.now(UTC).isoformat(),
                "quick": args.quick,
                "cpus": os.cpu_count(),
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwritten: {out}")


main()
