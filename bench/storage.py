"""Storage rows: audit appends/s and location events/s stored, SQLite and PostgreSQL.

The bench makes (and drops) a PostgreSQL database of its own, ``lifeline_bench``: the test
database and any deployment's are never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from bench.common import Row, row
from server.actions.call_events import store_location
from server.core.clock import SystemClock
from server.db.audit import AuditLog
from server.db.engine import Database
from server.db.migrate import upgrade_async

# A server where the bench may create (and drop) a database of its own, `lifeline_bench`.
POSTGRES_SERVER_URL = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
BENCH_DATABASE = "lifeline_bench"
LOCATION_CALLS = 16  # concurrent callers, each sending its own fixes in order


async def _bench_database(create: bool) -> str:
    """Create (or drop) the bench's own database, so no test or deployment data is touched."""
    if BENCH_DATABASE in ("test", ""):
        raise RuntimeError("the bench never uses the test database")
    engine = Database(POSTGRES_SERVER_URL).engine.execution_options(isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)"))
            if create:
                await conn.execute(text(f"CREATE DATABASE {BENCH_DATABASE}"))
    finally:
        await engine.dispose()
    return POSTGRES_SERVER_URL.rsplit("/", 1)[0] + f"/{BENCH_DATABASE}"


@contextlib.asynccontextmanager
async def databases(tmp: Path) -> AsyncIterator[list[tuple[str, str]]]:
    """(name, URL) of a migrated SQLite file and of the bench's own PostgreSQL database."""
    sqlite_url = f"sqlite+aiosqlite:///{tmp}/bench.db"
    await upgrade_async(sqlite_url)
    postgres_url = await _bench_database(create=True)
    try:
        await upgrade_async(postgres_url)
        yield [("SQLite", sqlite_url), ("PostgreSQL", postgres_url)]
    finally:
        await _bench_database(create=False)


async def _rate(op: Callable[[int], Awaitable[None]], count: int, concurrency: int) -> float:
    queue = iter(range(count))

    async def worker() -> None:
        for i in queue:
            await op(i)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - started)


async def _add_call(db: Database, call_id: str) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO calls (id, channel, mode, language, state, token_hash, last_seq,"
                " created_at) VALUES (:id, 'police', 'video', 'en', 'queued', :id, 0, :at)"
            ),
            {"id": call_id, "at": datetime.now(UTC)},
        )


async def audit_appends(url: str, count: int, concurrency: int) -> tuple[float, float]:
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

        await _add_call(db, "bench-call")
        ours = await _rate(chained, count, concurrency)
        base = await _rate(plain, count, concurrency)
        report = await audit.verify()
        if not report.ok or report.entries != count:
            raise RuntimeError(f"the chain the bench wrote does not verify: {report}")
        return ours, base
    finally:
        await db.close()


async def location_events(url: str, per_call: int) -> tuple[float, float]:
    """(store_location events/s, plain INSERTs/s): ``LOCATION_CALLS`` callers at once,
    each storing its fixes one after another (as one citizen's socket does)."""
    db = Database(url)
    clock = SystemClock()
    calls = [f"bench-loc-{i}" for i in range(LOCATION_CALLS)]
    try:
        for call_id in calls:
            await _add_call(db, call_id)

        async def ours_caller(call_id: str) -> None:
            for i in range(per_call):
                await store_location(
                    db,
                    clock,
                    call_id=call_id,
                    lat=52.2297 + i * 1e-6,
                    lon=21.0122,
                    accuracy=15.0,
                    heading=None,
                    speed=None,
                    measured_ms=time.time() * 1000,
                )

        async def plain_caller(call_id: str) -> None:
            for i in range(per_call):
                now = datetime.now(UTC)
                async with db.engine.begin() as conn:
                    await conn.execute(
                        text(
                            "INSERT INTO location_samples (call_id, seq, lat, lon, accuracy_m, "
                            "heading_deg, speed_mps, measured_at, received_at) VALUES "
                            "(:c, :s, :lat, 21.0122, 15.0, NULL, NULL, :at, :at)"
                        ),
                        # Sequence numbers far above ours: the same table, no collisions.
                        {"c": call_id, "s": 1_000_000 + i, "lat": 52.2297 + i * 1e-6, "at": now},
                    )

        total = per_call * len(calls)
        started = time.perf_counter()
        await asyncio.gather(*(ours_caller(c) for c in calls))
        ours = total / (time.perf_counter() - started)
        started = time.perf_counter()
        await asyncio.gather(*(plain_caller(c) for c in calls))
        base = total / (time.perf_counter() - started)
        async with db.engine.connect() as conn:
            gaps = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM calls WHERE id LIKE 'bench-loc-%' AND last_seq != :n"
                    ),
                    {"n": per_call},
                )
            ).scalar_one()
        if gaps:
            raise RuntimeError(f"{gaps} calls do not hold {per_call} sequence numbers")
        return ours, base
    finally:
        await db.close()


async def storage_rows(tmp: Path, quick: bool) -> list[Row]:
    appends, concurrency = (40, 4) if quick else (2000, 8)
    per_call = 5 if quick else 150
    rows: list[Row] = []
    async with databases(tmp) as urls:
        for name, url in urls:
            ours, base = await audit_appends(url, appends, concurrency)
            rows.append(row(f"audit appends/s, {name}", ours, base, "1/s", "plain INSERT"))
        for name, url in urls:
            ours, base = await location_events(url, per_call)
            rows.append(
                row(
                    f"locations stored/s, {name}",
                    ours,
                    base,
                    "1/s",
                    "plain INSERT, seq given",
                    note=f"{LOCATION_CALLS} callers at once, per-call seq via do_store_location",
                )
            )
    return rows
