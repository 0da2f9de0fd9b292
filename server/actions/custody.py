"""``evidence verify`` of the whole store: the chain's entries, its signed checkpoints (in the
database and in the file outside it, which must agree), and every stored file the chain vouches
for, re-hashed. The answer names the first item that does not hold.

What each check catches: an entry edited, deleted or moved breaks its link (or its own hash);
the whole chain recomputed after an edit no longer has the head a checkpoint signed; entries
cut off the end leave a checkpoint beyond the chain's head; a checkpoint row deleted or
changed no longer matches its line in the file (and a forged one has no valid signature); a
file changed on disk no longer has the hash its row and the chain's entry hold. Entries added
after the last checkpoint are anchored by the next one (``CHECKPOINT_EVERY_SECS`` at most).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlmodel import col, select

from server.actions.checkpoints import Custody, checkpoint_fields, signed_message
from server.core.storage import Storage
from server.db.audit import GENESIS_HASH, check_link
from server.db.models import (
    AuditCheckpoint,
    AuditEntry,
    CallPhoto,
    Recording,
    Redaction,
    ReportPhoto,
    Snapshot,
    ThreadMessage,
)

_CHUNK = 1024 * 1024
PURGED_ACTION = "evidence_purged"  # server/actions/retention.py: a file deleted at its end


@dataclass(frozen=True)
class Broken:
    """The first item that does not hold."""

    item: str
    reason: str

    def __str__(self) -> str:
        return f"{self.item}: {self.reason}"


@dataclass(frozen=True)
class CustodyReport:
    entries: int
    checkpoints: int
    files: int
    broken: Broken | None

    @property
    def ok(self) -> bool:
        return self.broken is None


class _Stop(Exception):
    def __init__(self, broken: Broken) -> None:
        self.broken = broken


def _fail(item: str, reason: str) -> _Stop:
    return _Stop(Broken(item, reason))


async def verify_custody(
    custody: Custody, storage: Storage | None, *, snapshot: bool = False
) -> CustodyReport:
    """Check everything, in this order: the checkpoints (file against table, signatures), the
    chain with its checkpoints, then the files (not without ``storage``).

    ``snapshot``: the database is a copy taken earlier (``backup``): the live file's lines past
    the copy's last checkpoint were written after it and are left out."""
    counts = {"entries": 0, "checkpoints": 0, "files": 0}
    try:
        points = await _checkpoints(custody, snapshot)
        counts["checkpoints"] = len(points)
        # The stored files' rows before the walk: each row is committed with its entry, so the
        # walk that follows holds every one of them even while the nodes write.
        stored = await _stored(custody) if storage is not None else []
        vouched = await _chain(custody, points, counts)
        if storage is not None:
            await _files(stored, storage, vouched, counts)
    except _Stop as stop:
        return CustodyReport(**counts, broken=stop.broken)
    return CustodyReport(**counts, broken=None)


# --- checkpoints -------------------------------------------------------------------------------


def _checkpoint_name(seq: int) -> str:
    return f"checkpoint at audit entry {seq}"


def _file_lines(custody: Custody) -> list[dict[str, Any]] | None:
    if not custody.file.exists():
        return None
    lines: list[dict[str, Any]] = []
    with custody.file.open(encoding="utf-8", errors="replace") as handle:
        for number, text in enumerate(handle, start=1):
            try:
                fields = json.loads(text)
                if not isinstance(fields, dict) or not isinstance(fields.get("seq"), int):
                    raise ValueError("no seq")
            except ValueError:
                raise _fail(
                    f"checkpoint file {custody.file} line {number}", "not a checkpoint"
                ) from None
            fields["_line"] = number
            lines.append(fields)
    return lines


async def _checkpoints(custody: Custody, snapshot: bool) -> dict[int, AuditCheckpoint]:
    # The table and the file read under the chain's lock (a moment): a checkpoint made by a
    # running node lands in both or, for now, in neither.
    async with custody.audit.transaction() as session:
        rows = (
            await session.exec(select(AuditCheckpoint).order_by(col(AuditCheckpoint.seq)))
        ).all()
        lines = await asyncio.to_thread(_file_lines, custody)
    if snapshot and lines is not None:
        newest = rows[-1].seq if rows else 0
        lines = [line for line in lines if line["seq"] <= newest]
    if lines is None:
        if rows:
            raise _fail(
                f"checkpoint file {custody.file}",
                f"missing ({len(rows)} checkpoints in the database)",
            )
        lines = []
    by_seq = {row.seq: row for row in rows}
    previous = 0
    for line in lines:
        seq, number = line["seq"], line["_line"]
        where = f"checkpoint file {custody.file} line {number} (audit entry {seq})"
        if seq <= previous:
            raise _fail(where, "out of order: the file's checkpoints were rearranged")
        previous = seq
        row = by_seq.get(seq)
        if row is None:
            raise _fail(where, "no such checkpoint in the database (deleted there)")
        if {k: v for k, v in line.items() if k != "_line"} != checkpoint_fields(row):
            raise _fail(_checkpoint_name(seq), "differs from its line in the checkpoint file")
    in_file = {line["seq"] for line in lines}
    for row in rows:
        if row.seq not in in_file:
            raise _fail(_checkpoint_name(row.seq), "not in the checkpoint file")
        if custody.key is None:
            raise _fail(_checkpoint_name(row.seq), "no deployment key here to check it with")
        if row.key_id != custody.key.key_id or not custody.key.holds(
            signed_message(row), row.signature
        ):
            raise _fail(_checkpoint_name(row.seq), "its signature does not verify")
    return by_seq


# --- the chain ---------------------------------------------------------------------------------


def _purged_hashes(entry: AuditEntry) -> Iterator[str]:
    """The SHA-256 values of the files an ``evidence_purged`` entry says were deleted."""
    if entry.action != PURGED_ACTION:
        return
    try:
        data = json.loads(entry.data)
    except ValueError:
        return
    for field in ("sha256", "public_sha256", "playable_sha256"):
        if isinstance(data, dict) and isinstance(data.get(field), str):
            yield data[field]


def _vouched_hashes(entry: AuditEntry) -> Iterator[str]:
    """The SHA-256 values of stored files an entry vouches for (a segment, a snapshot, a
    photo: ``sha256``; a report's photos: ``photos``)."""
    try:
        data = json.loads(entry.data)
    except ValueError:
        return
    if not isinstance(data, dict):
        return
    for field in ("sha256", "playable_sha256"):  # a recovered segment: its playable copy too
        if isinstance(data.get(field), str):
            yield data[field]
    photos = data.get("photos")
    if isinstance(photos, list):
        yield from (p for p in photos if isinstance(p, str))


@dataclass
class _Vouched:
    """What the chain says of the stored files: the hashes it recorded, and those it says
    were deleted (retention)."""

    stored: set[str]
    purged: set[str]


async def _chain(
    custody: Custody, points: dict[int, AuditCheckpoint], counts: dict[str, int]
) -> _Vouched:
    expected_seq, prev_hash = 1, GENESIS_HASH
    vouched = _Vouched(set(), set())
    async for batch in custody.audit.batches():
        for entry in batch:
            broken = check_link(entry, expected_seq, prev_hash)
            if broken is not None:
                raise _fail(f"audit entry {broken.seq}", broken.reason)
            point = points.get(entry.seq)
            if point is not None and point.head_hash != entry.hash:
                raise _fail(
                    _checkpoint_name(entry.seq),
                    "the chain there is not the one it signed (rewritten up to that entry)",
                )
            vouched.stored.update(_vouched_hashes(entry))
            vouched.purged.update(_purged_hashes(entry))
            counts["entries"] += 1
            expected_seq, prev_hash = entry.seq + 1, entry.hash
    beyond = [seq for seq in points if seq >= expected_seq]
    if beyond:
        raise _fail(
            f"audit entry {expected_seq}",
            f"missing: entries cut off the chain's end (the checkpoint at entry {max(beyond)} "
            "signed a longer chain)",
        )
    return vouched


# --- the files ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Stored:
    name: str
    key: str
    sha256: str
    in_chain: bool  # whether the chain must hold this hash (a report's public copy: not)
    purged: bool  # deleted when its retention ended: the chain must say so


async def _stored(custody: Custody) -> list[_Stored]:
    found: list[_Stored] = []

    def add(name: str, key: str, sha256: str, purged: object, *, in_chain: bool = True) -> None:
        found.append(_Stored(name, key, sha256, in_chain, purged is not None))

    async with custody.db.session() as session:
        for rec in (
            await session.exec(
                select(Recording).order_by(col(Recording.call_id), col(Recording.segment))
            )
        ).all():
            name = f"recording of call {rec.call_id} segment {rec.segment}"
            if rec.sha256:
                add(name, rec.path, rec.sha256, rec.purged_at)
            if rec.playable_path and rec.playable_sha256:
                playable = f"{name} (playable copy)"
                add(playable, rec.playable_path, rec.playable_sha256, rec.purged_at)
        for shot in (await session.exec(select(Snapshot).order_by(col(Snapshot.id)))).all():
            add(
                f"snapshot {shot.id} of call {shot.call_id}", shot.path, shot.sha256, shot.purged_at
            )
        for photo in (await session.exec(select(CallPhoto).order_by(col(CallPhoto.id)))).all():
            name = f"photo {photo.seq} of call {photo.call_id}"
            add(name, photo.path, photo.sha256, photo.purged_at)
        for copy in (await session.exec(select(Redaction).order_by(col(Redaction.id)))).all():
            if copy.path and copy.sha256:
                # Its own entry is the redaction's business; the copy is checked against its row.
                name = f"redacted copy {copy.id} of call {copy.call_id} segment {copy.segment}"
                add(name, copy.path, copy.sha256, copy.purged_at, in_chain=False)
        for rp in (await session.exec(select(ReportPhoto).order_by(col(ReportPhoto.id)))).all():
            name = f"photo {rp.n} of report {rp.report_id}"
            add(name, rp.original_path, rp.sha256, rp.purged_at)
            public = f"{name} (public copy)"
            add(public, rp.public_path, rp.public_sha256, rp.purged_at, in_chain=False)
        # A message thread's photos and clips (server/actions/threads.py): evidence as a call's.
        for message in (
            await session.exec(
                select(ThreadMessage)
                .where(col(ThreadMessage.path).is_not(None))
                .order_by(col(ThreadMessage.id))
            )
        ).all():
            if message.path and message.sha256:
                name = f"{message.kind} {message.seq} of thread {message.thread_id}"
                add(name, message.path, message.sha256, None)
    return found


def _hash_file(storage: Storage, key: str) -> str | None:
    try:
        with storage.open(key) as handle:
            digest = hashlib.sha256()
            for chunk in iter(lambda: handle.read(_CHUNK), b""):
                digest.update(chunk)
    except (FileNotFoundError, IsADirectoryError):
        return None
    return digest.hexdigest()


async def _files(
    stored: list[_Stored], storage: Storage, vouched: _Vouched, counts: dict[str, int]
) -> None:
    for item in stored:
        where = f"{item.name} ({item.key})"
        if item.in_chain and item.sha256 not in vouched.stored:
            raise _fail(where, "its hash in the database is not the one the audit chain holds")
        if item.purged:
            if item.in_chain and item.sha256 not in vouched.purged:
                raise _fail(where, "marked deleted, but the audit chain records no deletion")
            continue  # deleted when its retention ended, and the chain says so
        try:
            actual = await asyncio.to_thread(_hash_file, storage, item.key)
        except ValueError:
            raise _fail(where, "not a storage key (a path that leaves the storage)") from None
        if actual is None:
            raise _fail(where, "the file is missing")
        if actual != item.sha256:
            raise _fail(where, "the file was changed (its SHA-256 is not the recorded one)")
        counts["files"] += 1
