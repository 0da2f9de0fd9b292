"""Test storage chosen by settings: embedded (SQLite, in-process) or scale-out (PostgreSQL, Redis).

``make test`` runs every suite twice, both passes at once; the scale-out pass sets
``LIFELINE_DATABASE_URL`` and ``LIFELINE_REDIS_URL``. The test code is the same (a ``one_pass``
test, the same in either mode, runs in the embedded pass only: tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import redis

from server.db.migrate import upgrade

DATABASE_URL = os.environ.get("LIFELINE_DATABASE_URL", "")
REDIS_URL = os.environ.get("LIFELINE_REDIS_URL", "")
SCALE_OUT = DATABASE_URL.startswith("postgresql")
# `make test` runs both passes at once: a fixed UDP range a test binds is its pass's own.
PORT_OFFSET = 500 if SCALE_OUT else 0

# report_categories is left out: the migration seeds it and the tests expect the seed.
TABLES = (
    "report_confirmations",
    "report_history",
    "report_photos",
    "threat_reports",
    "open311_keys",
    "audit_checkpoints",
    "audit_log",
    "redactions",
    "record_plays",
    "record_views",
    "call_photos",
    "snapshots",
    "recordings",
    "chat_messages",
    "location_samples",
    "call_transitions",
    "calls",
    "staff_sessions",
    "login_failures",
    "users",
)


def _pg_dsn() -> str:
    return DATABASE_URL.replace("postgresql+asyncpg://", "postgresql://")


async def _pg(*statements: str) -> None:
    conn = await asyncpg.connect(_pg_dsn())
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def _run(*statements: str) -> None:
    """Run in a thread of its own: callers may sit on a running loop (sync Playwright's)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, _pg(*statements)).result()


def reset_postgres_schema() -> None:
    """An empty ``public`` schema: what a new deployment starts from."""
    _run("DROP SCHEMA IF EXISTS public CASCADE", "CREATE SCHEMA public")


def truncate_postgres() -> None:
    _run(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")


def flush_redis(url: str = REDIS_URL) -> None:
    if url:
        client = redis.Redis.from_url(url)
        try:
            client.flushdb()
        finally:
            client.close()


def migrated_template(directory: Path) -> str:
    """Migrate once per test session: a SQLite file to copy, or the PostgreSQL schema."""
    if SCALE_OUT:
        reset_postgres_schema()
        upgrade(DATABASE_URL)
        return DATABASE_URL
    path = directory / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return str(path)


def fresh_database(template: str, directory: Path) -> str:
    """A migrated, empty database for one test (or one module's server)."""
    flush_redis()
    if SCALE_OUT:
        truncate_postgres()
        return DATABASE_URL
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "lifeline.db"
    shutil.copyfile(template, target)
    return f"sqlite+aiosqlite:///{target}"
