"""Redacted copies for disclosure: on request, with a reason, every stored segment of a call is
copied with the faces blurred and the audio kept, stored and hashed beside its original, and
entered in the audit chain. The original is only read: its file, row and hash never change.

A request answers at once (the rows ``pending``); the copies are made in the background on the
node's redaction pool, one segment at a time, each ``done`` (with its hash) or ``failed``. Before
a copy is made the original is hashed again: a file that no longer matches the hash the chain
holds is not redacted (``failed``, "original altered"), as a copy of it would launder it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from sqlalchemy import update
from sqlmodel import col, select

from server.actions.evidence import check_call_for_evidence, check_reason
from server.actions.staff_sessions import StaffContext
from server.core.clock import Clock
from server.core.errors import AppError, ErrorCode
from server.core.ports import RedactionOutcome, Redactor
from server.core.services import Services
from server.core.storage import Storage, redaction_key
from server.db.audit import AuditLog
from server.db.models import Call, Recording, Redaction, RedactionState

log = logging.getLogger("lifeline.redactions")

HASH_CHUNK_BYTES = 1 << 20
ACTOR = "system:redaction"


class Redactions:
    """What making copies needs, passed in: the node's services, or the command line's own
    database, storage and clock (``python -m server evidence redact``)."""

    def __init__(
        self,
        audit: AuditLog,
        storage: Storage,
        clock: Clock,
        redactor: Redactor,
        run: Callable[[Callable[[], RedactionOutcome]], Awaitable[RedactionOutcome]],
    ) -> None:
        self.audit = audit
        self.db = audit.db
        self.storage = storage
        self.clock = clock
        self.redactor = redactor
        self.run = run

    async def request(self, call: Call, actor: str, reason: str) -> list[Redaction]:
        """Rows ``pending`` for every stored segment of the call, and the request in the chain.

        Raises:
            AppError: ``NOTHING_TO_REDACT`` (409), the call has no stored segment (none was
                recorded, or retention deleted them).
        """
        reason = check_reason(reason)
        now = self.clock.now()
        async with self.audit.transaction() as session:
            segments = (
                await session.exec(
                    select(Recording)
                    .where(col(Recording.call_id) == call.id, col(Recording.purged_at).is_(None))
                    .order_by(col(Recording.segment))
                )
            ).all()
            segments = [segment for segment in segments if segment.sha256]
            if not segments:
                raise AppError(ErrorCode.NOTHING_TO_REDACT, "This call has no stored recording")
            rows = [
                Redaction(
                    call_id=call.id,
                    segment=segment.segment,
                    source_sha256=segment.sha256 or "",
                    state=RedactionState.PENDING,
                    requested_by=actor,
                    reason=reason,
                    requested_at=now,
                )
                for segment in segments
            ]
            session.add_all(rows)
            await session.flush()
            await self.audit.record(
                session,
                actor=actor,
                action="redaction_requested",
                subject=f"call:{call.id}",
                data={
                    "reason": reason,
                    "redactions": [row.id for row in rows],
                    "segments": [row.segment for row in rows],
                },
            )
        return rows

    async def make(self, ids: Sequence[int]) -> list[Redaction]:
        """Make the requested copies, one after another; each ends ``done`` or ``failed``."""
        return [await self._make_one(row_id) for row_id in ids]

    async def _make_one(self, row_id: int) -> Redaction:
        async with self.db.session() as session:
            row = await session.get(Redaction, row_id)
            source = (
                await session.exec(
                    select(Recording).where(
                        col(Recording.call_id) == (row.call_id if row else ""),
                        col(Recording.segment) == (row.segment if row else -1),
                    )
                )
            ).first()
        assert row is not None and row.id is not None
        if source is None or source.purged_at is not None:
            return await self._failed(row, "the original was deleted by retention")
        spool = Path(tempfile.mkdtemp(prefix="redaction-"))
        try:
            target = spool / f"{secrets.token_hex(8)}.mkv"
            original = self.storage.path(source.path)
            if await asyncio.to_thread(_sha256, original) != row.source_sha256:
                return await self._failed(row, "original altered: its file does not match its hash")
            try:
                outcome = await self.run(lambda: self.redactor.redact(original, target))
            except Exception as exc:  # a pool too busy (AppError) too: never left pending
                log.exception("redaction failed")
                return await self._failed(row, f"could not be made: {type(exc).__name__}")
            data = await asyncio.to_thread(target.read_bytes)
        finally:
            await asyncio.to_thread(_remove, spool)
        digest = hashlib.sha256(data).hexdigest()
        key = redaction_key(row.call_id, row.segment, digest)
        await asyncio.to_thread(self.storage.put, key, data)
        now = self.clock.now()
        async with self.audit.transaction() as session:
            await session.exec(
                update(Redaction)
                .where(col(Redaction.id) == row.id)
                .values(
                    state=RedactionState.DONE,
                    path=key,
                    sha256=digest,
                    size_bytes=len(data),
                    frames=outcome.frames,
                    frames_with_faces=outcome.frames_with_faces,
                    done_at=now,
                )
            )
            await self.audit.record(
                session,
                actor=ACTOR,
                action="redaction_made",
                subject=f"call:{row.call_id}",
                data={
                    "redaction": row.id,
                    "segment": row.segment,
                    "source_sha256": row.source_sha256,
                    "sha256": digest,
                    "size_bytes": len(data),
                    "frames": outcome.frames,
                    "frames_with_faces": outcome.frames_with_faces,
                },
            )
        async with self.db.session() as session:
            done = await session.get(Redaction, row.id)
        assert done is not None
        return done

    async def _failed(self, row: Redaction, why: str) -> Redaction:
        async with self.audit.transaction() as session:
            await session.exec(
                update(Redaction)
                .where(col(Redaction.id) == row.id)
                .values(state=RedactionState.FAILED, done_at=self.clock.now())
            )
            await self.audit.record(
                session,
                actor=ACTOR,
                action="redaction_failed",
                subject=f"call:{row.call_id}",
                data={"redaction": row.id, "segment": row.segment, "reason": why},
            )
        row.state = RedactionState.FAILED
        return row


def _sha256(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as file:
            while chunk := file.read(HASH_CHUNK_BYTES):
                digest.update(chunk)
    except FileNotFoundError:
        return None
    return digest.hexdigest()


def _remove(spool: Path) -> None:
    for child in spool.iterdir():
        child.unlink(missing_ok=True)
    spool.rmdir()


def of_services(services: Services) -> Redactions:
    return Redactions(
        services.audit,
        services.storage,
        services.clock,
        services.redactor,
        lambda work: services.redaction_pool.run(work),
    )


async def do_request_redaction(
    services: Services, call_id: str, staff: StaffContext, reason: str
) -> list[Redaction]:
    """Ask for a redacted copy of the call's recording; it is made in the background."""
    reason = check_reason(reason)
    call = await check_call_for_evidence(services, call_id, staff)
    desk = of_services(services)
    rows = await desk.request(call, staff.username, reason)

    async def make() -> None:
        await desk.make([row.id for row in rows if row.id is not None])

    services.background.spawn(make(), name=f"redaction:{call.id}")
    return rows


async def redactions_of(services: Services, call_id: str, staff: StaffContext) -> list[Redaction]:
    call = await check_call_for_evidence(services, call_id, staff)
    async with services.db.session() as session:
        return list(
            (
                await session.exec(
                    select(Redaction)
                    .where(col(Redaction.call_id) == call.id)
                    .order_by(col(Redaction.id))
                )
            ).all()
        )


async def view_redaction(
    services: Services, call_id: str, redaction_id: int, staff: StaffContext
) -> Redaction:
    """A finished copy, for download; every look at it is audited, as a recording's is."""
    call = await check_call_for_evidence(services, call_id, staff)
    async with services.db.session() as session:
        row = await session.get(Redaction, redaction_id)
    if row is None or row.call_id != call.id:
        raise AppError(ErrorCode.REDACTION_NOT_FOUND, "No such redacted copy of this call")
    if row.purged_at is not None:
        raise AppError(
            ErrorCode.EVIDENCE_PURGED,
            "Deleted when its retention ended (the audit chain keeps its hash)",
        )
    if row.state != RedactionState.DONE or row.path is None:
        raise AppError(ErrorCode.REDACTION_NOT_READY, f"This copy is {row.state}")
    await services.audit.append(
        actor=staff.username,
        action="redaction_viewed",
        subject=f"call:{call.id}",
        data={"redaction": row.id, "segment": row.segment, "sha256": row.sha256},
    )
    return row
