"""Work that one node at a time does (the retention purge): a PostgreSQL advisory lock.

The lock is session-level, held on a connection of its own for as long as the work runs, and
taken with ``pg_try_advisory_lock``: a node that finds it taken skips its turn instead of
queueing behind the other, which is doing the same work. A node that dies lets go with its
connection. SQLite is one node's database (the embedded mode): there the lock is always free.
The work itself must still be safe to run twice (each step re-checks inside its own write
transaction): the lock saves effort, it does not make a step correct.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text

from server.db.engine import Database

# Lock ids shared by every node: "LIFE" is the audit chain's (server/db/audit.py).
PURGE_LOCK_ID = 0x52455445  # "RETE"


@asynccontextmanager
async def exclusive(db: Database, lock_id: int) -> AsyncIterator[bool]:
    """True inside when this node holds the lock, False when another node does."""
    if not db.is_postgres:
        yield True
        return
    async with db.engine.connect() as connection:
        taken = (
            await connection.execute(text("SELECT pg_try_advisory_lock(:id)"), {"id": lock_id})
        ).scalar_one()
        await connection.commit()
        if not taken:
            yield False
            return
        try:
            yield True
        finally:
            await connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": lock_id})
            await connection.commit()
