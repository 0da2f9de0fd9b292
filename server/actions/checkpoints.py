"""Signed checkpoints of the audit chain's head: the anchor that keeps anyone with write access
to the database from rewriting the chain, or cutting entries off its end, unseen.

Every ``CHECKPOINT_EVERY_ENTRIES`` entries, at least every ``CHECKPOINT_EVERY_SECS`` while
entries come (the app's clock), when a node stops, and before an export, the head (its seq and
hash) is signed with the deployment's Ed25519 key and kept three ways: a row of
``audit_checkpoints``, a JSON line appended to the checkpoint file outside the database, and a
syslog line where ``CHECKPOINT_SYSLOG`` says. A checkpoint is made under the chain's own lock
(the advisory lock every node takes to append), so two nodes never sign two heads for one seq,
and the file's lines come in the chain's order. The file line is written before the row
commits: a row is never without its line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from dataclasses import dataclass
from logging.handlers import SysLogHandler
from pathlib import Path
from typing import Any

from sqlmodel import col, select

from server.core.clock import Clock
from server.core.services import Services
from server.db.audit import AuditLog
from server.db.engine import Database
from server.db.models import AuditCheckpoint, AuditEntry
from server.evidence.verify_bundle import checkpoint_message
from server.security.evidence_key import EvidenceKey

log = logging.getLogger("lifeline.checkpoints")
TIMER_NAME = "audit checkpoint"


@dataclass(frozen=True)
class Custody:
    """What making and checking checkpoints needs: the services' parts, or the command line's
    (which checks on a machine that may not hold the key: ``key`` None)."""

    audit: AuditLog
    clock: Clock
    key: EvidenceKey | None
    file: Path
    syslog: str = ""

    @classmethod
    def of(cls, services: Services) -> Custody:
        settings = services.settings
        return cls(
            audit=services.audit,
            clock=services.clock,
            key=services.evidence_key,
            file=settings.checkpoint_file,
            syslog=settings.CHECKPOINT_SYSLOG,
        )

    @property
    def db(self) -> Database:
        return self.audit.db


def checkpoint_fields(point: AuditCheckpoint) -> dict[str, Any]:
    """A checkpoint as the file, the bundles and the verifiers have it."""
    return {
        "seq": point.seq,
        "head_hash": point.head_hash,
        "at": point.at.isoformat(timespec="microseconds"),
        "key_id": point.key_id,
        "signature": point.signature,
    }


def checkpoint_line(point: AuditCheckpoint) -> str:
    return json.dumps(checkpoint_fields(point), sort_keys=True, separators=(",", ":"))


def signed_message(point: AuditCheckpoint) -> bytes:
    fields = checkpoint_fields(point)
    return checkpoint_message(
        seq=fields["seq"], head_hash=fields["head_hash"], at=fields["at"], key_id=fields["key_id"]
    )


async def last_checkpoint(db: Database) -> AuditCheckpoint | None:
    async with db.session() as session:
        return (
            await session.exec(
                select(AuditCheckpoint).order_by(col(AuditCheckpoint.seq).desc()).limit(1)
            )
        ).first()


async def make_checkpoint(custody: Custody, *, min_new_entries: int = 1) -> AuditCheckpoint | None:
    """Sign the chain's head if at least ``min_new_entries`` came since the last checkpoint;
    the new checkpoint, or None when there was nothing (enough) to sign."""
    key = custody.key
    if key is None:
        raise RuntimeError("no evidence key on this node: checkpoints cannot be signed")
    async with custody.audit.transaction() as session:  # the chain's lock, held to the commit
        head = (
            await session.exec(select(AuditEntry).order_by(col(AuditEntry.seq).desc()).limit(1))
        ).first()
        last = (
            await session.exec(
                select(AuditCheckpoint).order_by(col(AuditCheckpoint.seq).desc()).limit(1)
            )
        ).first()
        last_seq = last.seq if last is not None else 0
        if head is None or head.seq - last_seq < max(1, min_new_entries):
            return None
        point = AuditCheckpoint(
            seq=head.seq,
            head_hash=head.hash,
            at=custody.clock.now(),
            key_id=key.key_id,
            signature="",
        )
        point.signature = key.sign(signed_message(point))
        session.add(point)
        await session.flush()
        line = checkpoint_line(point)
        await asyncio.to_thread(_append_line, custody.file, line)
    if custody.syslog:
        await asyncio.to_thread(_send_syslog, custody.syslog, line)
    return point


def _append_line(path: Path, line: str) -> None:
    """One line at the end of the file, on disk before the row commits."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _send_syslog(address: str, line: str) -> None:
    """The line to syslog (facility auth-priv: it is a security record); a syslog that does not
    answer costs a warning, never the checkpoint."""
    target: str | tuple[str, int]
    if address.startswith("/"):
        target = address
    else:
        host, _, port = address.rpartition(":")
        target = (host.strip("[]"), int(port))
    try:
        handler = SysLogHandler(
            address=target, facility=SysLogHandler.LOG_AUTHPRIV, socktype=socket.SOCK_DGRAM
        )
    except OSError as exc:
        log.warning("checkpoint not sent to syslog: %s", exc)
        return
    try:
        handler.ident = "lifeline-checkpoint: "
        handler.emit(
            logging.makeLogRecord({"msg": line, "levelno": logging.INFO, "levelname": "INFO"})
        )
    finally:
        handler.close()


class CheckpointSchedule:
    """One node's checkpoints: after every ``CHECKPOINT_EVERY_ENTRIES`` entries it appended, on
    a timer of the app's clock, and at its stop. Every node runs one; the lock and the count
    read under it keep them from signing the same head twice."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.custody = Custody.of(services)
        self._every = services.settings.CHECKPOINT_EVERY_ENTRIES
        self._last_seq = 0
        self._running = False

    def start(self) -> None:
        """Count and time from now. Nothing is read yet: a node starts without its database
        (``/readyz`` says so); the first run reads where the checkpoints really are."""
        self.services.audit.on_appended(self._appended)
        self._schedule()

    async def stop(self) -> None:
        """The last checkpoint of this node's run: what it appended is anchored as it stops."""
        try:
            await make_checkpoint(self.custody)
        except Exception:
            log.exception("the checkpoint at stop failed")

    def _appended(self, seq: int) -> None:
        if seq - self._last_seq >= self._every and not self._running:
            self._running = True
            self.services.background.spawn(self._run(self._every), name=TIMER_NAME)

    def _schedule(self) -> None:
        settings = self.services.settings
        self.services.background.later(
            self.services.clock, settings.CHECKPOINT_EVERY_SECS, self._tick, name=TIMER_NAME
        )

    async def _tick(self) -> None:
        try:
            await self._run(1)
        finally:
            self._schedule()

    async def _run(self, min_new_entries: int) -> None:
        try:
            made = await make_checkpoint(self.custody, min_new_entries=min_new_entries)
            if made is not None:
                self._last_seq = made.seq
            else:
                last = await last_checkpoint(self.custody.db)
                self._last_seq = last.seq if last is not None else 0
        finally:
            self._running = False
