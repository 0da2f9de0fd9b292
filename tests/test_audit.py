"""The audit hash chain: intact after real use, broken (and named) after any direct edit."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from config import Settings
from server.core.clock import FrozenClock
from server.db.audit import AuditLog
from server.db.engine import Database
from server.http.keys import SERVICES_KEY
from tests.staff import Client, add_account, post_login, sign_in


def _cli_verify(settings: Settings) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LIFELINE_DATABASE_URL": settings.database_url,
        "LIFELINE_DATA_DIR": str(settings.DATA_DIR),
        "LIFELINE_LOG_FORMAT": "text",
        "LIFELINE_LOG_LEVEL": "WARNING",
    }
    env.pop("LIFELINE_REDIS_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "server", "evidence", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )


async def _real_use(client: Client, clock: FrozenClock) -> None:
    account = await add_account(client, "ivan", "admin")
    await post_login(client, "ivan", "wrong password here")
    await sign_in(client, account, clock)
    operator = await add_account(client, "jane", "operator")
    assert operator.username == "jane"


async def test_untouched_chain_verifies(
    client: Client, clock: FrozenClock, settings: Settings
) -> None:
    await _real_use(client, clock)
    assert client.app is not None
    report = await client.app[SERVICES_KEY].audit.verify()
    assert report.ok
    assert report.entries == 4
    result = _cli_verify(settings)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "intact: 4 entries" in result.stdout


async def test_an_edited_row_is_named(
    client: Client, clock: FrozenClock, settings: Settings
) -> None:
    await _real_use(client, clock)
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.engine.begin() as conn:
        # Someone with database access rewrites who did it.
        await conn.execute(text("UPDATE audit_log SET actor = 'someone-else' WHERE seq = 3"))
    report = await client.app[SERVICES_KEY].audit.verify()
    assert not report.ok
    assert report.broken is not None
    assert report.broken.seq == 3
    assert report.entries == 2
    result = _cli_verify(settings)
    assert result.returncode == 1
    assert "audit entry 3" in result.stdout
    assert "altered" in result.stdout


async def test_a_deleted_row_and_a_relinked_row_are_named(
    client: Client, clock: FrozenClock, settings: Settings
) -> None:
    await _real_use(client, clock)
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.engine.begin() as conn:
        await conn.execute(text("DELETE FROM audit_log WHERE seq = 2"))
    report = await client.app[SERVICES_KEY].audit.verify()
    assert report.broken is not None
    assert report.broken.seq == 2
    assert "missing" in report.broken.reason
    result = _cli_verify(settings)
    assert result.returncode == 1
    assert "audit entry 2" in result.stdout


async def test_recomputed_hash_still_breaks_the_next_link(
    client: Client, clock: FrozenClock
) -> None:
    """Rewriting an entry and its own hash is caught by the entry after it."""
    await _real_use(client, clock)
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.engine.begin() as conn:
        await conn.execute(text("UPDATE audit_log SET hash = :h WHERE seq = 2"), {"h": "f" * 64})
    report = await client.app[SERVICES_KEY].audit.verify()
    assert report.broken is not None
    assert report.broken.seq == 2


async def test_concurrent_appends_from_two_nodes_keep_one_chain(
    settings: Settings, clock: FrozenClock
) -> None:
    """Two engines on one database (two nodes, or a node and the CLI) append at once."""
    first, second = Database(settings.database_url), Database(settings.database_url)
    try:
        logs = [AuditLog(first, clock), AuditLog(second, clock)]
        await asyncio.gather(
            *(
                logs[i % 2].append(actor=f"node{i % 2}", action="test", data={"i": i})
                for i in range(40)
            )
        )
        report = await logs[0].verify()
        assert report.ok, report.broken
        assert report.entries == 40
    finally:
        await first.close()
        await second.close()
