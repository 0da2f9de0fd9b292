"""The append-only audit log, a hash chain: each entry holds the hash of the one before.

An entry is written in the same transaction as the change it records, so the log and the data
never disagree. Appends are serialised: on PostgreSQL by a transaction-scoped advisory lock (every
node takes the same one), on SQLite by the single writer lock that ``BEGIN IMMEDIATE`` takes.
Before either, a node's own writers take turns on a lock in the process, and only then take a
pooled connection: queued in the database instead, a flood of them (a spray of failed sign-ins,
each entered) held every connection of the pool while it waited, and every other use of the
database on the node, reads included (a chat message, the queue, a session check), waited
behind them: 16 s behind 600 appends, and the pool gives up at 30 s. Waiting here, they leave
the pool to the others.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.core.clock import Clock
from server.db.engine import Database
from server.db.models import AuditEntry

# One definition of an entry's hash, the one the bundles' standalone verifier uses too.
from server.evidence.verify_bundle import GENESIS_HASH, entry_hash

__all__ = ["GENESIS_HASH", "AuditLog", "ChainBreak", "ChainReport", "check_link", "entry_hash"]

# Any constant shared by every node; "LIFE" in ASCII.
_ADVISORY_LOCK_ID = 0x4C494645
_VERIFY_BATCH = 1000
_HEAD_KEY = "lifeline.audit_head"  # in a session's info: the last entry it appended


def _hash_of(entry: AuditEntry) -> str:
    return entry_hash(
        seq=entry.seq,
        at=entry.at.isoformat(timespec="microseconds"),
        actor=entry.actor,
        action=entry.action,
        subject=entry.subject,
        data=entry.data,
        prev_hash=entry.prev_hash,
    )


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    reason: str

    def __str__(self) -> str:
        return f"audit entry {self.seq}: {self.reason}"


@dataclass(frozen=True)
class ChainReport:
    entries: int
    broken: ChainBreak | None

    @property
    def ok(self) -> bool:
        return self.broken is None


class AuditLog:
    """Appends to and verifies the chain."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        self._writers = asyncio.Lock()  # this node's own appends, one at a time
        self._listeners: list[Callable[[int], None]] = []

    def on_appended(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(seq)`` after each transaction that appended up to entry ``seq``
        commits (the checkpoints count entries so)."""
        self._listeners.append(listener)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A write transaction in which ``record`` may be called; commits on success.

        It holds the chain's lock throughout: nothing else appends, or signs a checkpoint of
        the head, until it ends."""
        async with self._writers, self._transaction() as session:
            yield session
        head = session.info.get(_HEAD_KEY)
        if head is not None:
            for listener in self._listeners:
                listener(head)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncSession]:
        async with self.db.session() as session:
            connection = await session.connection()
            if self.db.is_postgres:
                await connection.execute(
                    text("SELECT pg_advisory_xact_lock(:id)"), {"id": _ADVISORY_LOCK_ID}
                )
            else:
                # Take SQLite's write lock now, so two writers cannot read the same chain head.
                await connection.execute(text("BEGIN IMMEDIATE"))
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    async def record(
        self,
        session: AsyncSession,
        *,
        actor: str,
        action: str,
        subject: str = "",
        data: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """Append one entry inside ``session`` (opened by ``transaction``)."""
        head = (
            await session.exec(select(AuditEntry).order_by(col(AuditEntry.seq).desc()).limit(1))
        ).first()
        entry = AuditEntry(
            seq=(head.seq + 1) if head else 1,
            at=self.clock.now(),
            actor=actor[:80],
            action=action,
            subject=subject[:128],
            data=json.dumps(data or {}, sort_keys=True, ensure_ascii=False),
            prev_hash=head.hash if head else GENESIS_HASH,
            hash="",
        )
        entry.hash = _hash_of(entry)
        session.add(entry)
        await session.flush()
        session.info[_HEAD_KEY] = entry.seq
        return entry

    async def append(
        self, *, actor: str, action: str, subject: str = "", data: dict[str, Any] | None = None
    ) -> AuditEntry:
        """Record one entry in a transaction of its own."""
        async with self.transaction() as session:
            return await self.record(
                session, actor=actor, action=action, subject=subject, data=data
            )

    async def batches(self) -> AsyncIterator[Sequence[AuditEntry]]:
        """Every entry in the order of the chain, a batch at a time."""
        last_seq = 0
        async with self.db.session() as session:
            while True:
                batch = (
                    await session.exec(
                        select(AuditEntry)
                        .where(col(AuditEntry.seq) > last_seq)
                        .order_by(col(AuditEntry.seq))
                        .limit(_VERIFY_BATCH)
                    )
                ).all()
                if not batch:
                    return
                yield batch
                last_seq = batch[-1].seq

    async def verify(self) -> ChainReport:
        """Walk the chain from the first entry; report the first link that does not hold."""
        expected_seq, prev_hash, count = 1, GENESIS_HASH, 0
        async for batch in self.batches():
            for entry in batch:
                broken = check_link(entry, expected_seq, prev_hash)
                if broken:
                    return ChainReport(count, broken)
                count += 1
                expected_seq, prev_hash = entry.seq + 1, entry.hash
        return ChainReport(count, None)


def check_link(entry: AuditEntry, expected_seq: int, prev_hash: str) -> ChainBreak | None:
    """Why ``entry`` does not follow the entry whose hash is ``prev_hash`` (None: it does)."""
    if entry.seq != expected_seq:
        return ChainBreak(expected_seq, f"missing (the chain jumps to entry {entry.seq})")
    if entry.prev_hash != prev_hash:
        return ChainBreak(entry.seq, "does not link to the entry before it")
    if _hash_of(entry) != entry.hash:
        return ChainBreak(entry.seq, f"content altered ({entry.action} by {entry.actor})")
    return None
