"""Retention: a call's stored files go when its channel's retention has passed, unless the call
is under a legal hold; each deletion is an entry in the audit chain.

What goes: the files of recordings (with the playable copy of one recovered after a crash),
snapshots, caller photos and redacted copies (and threat reports' photos, originals and public
copies). What stays: every row, with its hash and the
moment it was purged, the call's metadata, chat and track, and the audit chain, which must still
verify; its entries name the hashes of the files it no longer has, and ``evidence_purged`` says
why each is gone.

The order of one deletion: the row is marked purged and the chain entry written in one
transaction, and only then is the file removed. A node that dies between the two leaves a file
the row calls purged, which the next purge removes (``SWEEP_DAYS``); the other way round it would
leave a row whose file is missing with nothing in the chain to say why.

A daily purge runs on every node's clock; in scale-out one node at a time does the work (a
PostgreSQL advisory lock, server/db/locks.py), and every step re-checks the row and the hold in
its own write transaction, so two purgers (a node and ``python -m server evidence purge``)
never delete one thing twice nor anything held.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, exists, func, or_, update
from sqlmodel import col, select

from config import Settings
from server.actions.queue import LIVE_STATES
from server.core.clock import Clock
from server.core.services import Services
from server.core.storage import Storage
from server.db.audit import AuditLog
from server.db.locks import PURGE_LOCK_ID, exclusive
from server.db.models import (
    Call,
    CallPhoto,
    Channel,
    Recording,
    Redaction,
    RedactionState,
    ReportPhoto,
    ReportStatus,
    Snapshot,
    ThreatReport,
)

log = logging.getLogger("lifeline.retention")

PURGE_ACTOR = "system:retention"
PURGE_TIMER = "retention:purge"
# A node's first purge comes this long after it starts (not at once: a fleet restarting
# together would all look at once), then every RETENTION_PURGE_INTERVAL_SECS.
FIRST_PURGE_DELAY_SECS = 300.0
# Files of rows purged this recently are looked for again (a node that died between marking a
# row and removing its file).
SWEEP_DAYS = 7
BATCH = 200
# Verdicts after which a report's photos are kept only RETENTION_UNCONFIRMED_REPORT_DAYS.
UNCONFIRMED = (ReportStatus.NOT_CONFIRMED, ReportStatus.JOKE_OR_MISTAKE)

Kind = Literal["recording", "snapshot", "call_photo", "redaction", "report_photo"]
EvidenceRow = Recording | Snapshot | CallPhoto | Redaction
CallEvidence = type[Recording] | type[Snapshot] | type[CallPhoto] | type[Redaction]
CALL_EVIDENCE: dict[Kind, CallEvidence] = {
    "recording": Recording,
    "snapshot": Snapshot,
    "call_photo": CallPhoto,
    "redaction": Redaction,
}


@dataclass(frozen=True)
class Purged:
    """One stored item whose file retention removed."""

    kind: Kind
    row_id: int
    subject: str
    sha256: str | None


@dataclass
class PurgeReport:
    # False when another node held the purge lock (it was doing the same work).
    ran: bool
    purged: list[Purged] = field(default_factory=list)
    files_deleted: int = 0

    def counts(self) -> dict[str, int]:
        return dict(Counter(item.kind for item in self.purged))


def retention_days(settings: Settings, channel: str) -> int:
    if channel == Channel.INTERNAL_SECURITY:
        return settings.RETENTION_INTERNAL_SECURITY_DAYS
    return settings.RETENTION_POLICE_DAYS


def _call_ended() -> ColumnElement[Any]:
    """When a call's retention starts: its end (a call that failed without one: its start)."""
    return func.coalesce(col(Call.ended_at), col(Call.created_at))


def _call_expired(settings: Settings, now: datetime) -> ColumnElement[bool]:
    """Calls over, not held, and ended longer ago than their channel keeps them."""
    by_channel = [
        and_(
            col(Call.channel) == channel,
            _call_ended() < now - timedelta(days=retention_days(settings, channel)),
        )
        for channel in (Channel.POLICE, Channel.INTERNAL_SECURITY)
    ]
    return and_(
        col(Call.held_at).is_(None),
        col(Call.state).not_in(list(LIVE_STATES)),
        or_(*by_channel),
    )


def _report_expired(settings: Settings, now: datetime) -> ColumnElement[bool]:
    """Reports whose photos have expired: soon after a verdict of "not confirmed", else with
    police calls; a report made from a call under a hold keeps them."""
    unconfirmed = timedelta(days=settings.RETENTION_UNCONFIRMED_REPORT_DAYS)
    held_call = exists().where(
        col(Call.id) == col(ThreatReport.call_id), col(Call.held_at).is_not(None)
    )
    return and_(
        ~held_call,
        or_(
            and_(
                col(ThreatReport.status).in_(list(UNCONFIRMED)),
                col(ThreatReport.verified_at) < now - unconfirmed,
            ),
            col(ThreatReport.created_at) < now - timedelta(days=settings.RETENTION_POLICE_DAYS),
        ),
    )


class Purger:
    """One purge run: what it needs, passed in (the node's services, or the command line's
    database, storage and clock)."""

    def __init__(self, settings: Settings, audit: AuditLog, storage: Storage, clock: Clock) -> None:
        self.settings = settings
        self.audit = audit
        self.db = audit.db
        self.storage = storage
        self.clock = clock

    async def run(self) -> PurgeReport:
        async with exclusive(self.db, PURGE_LOCK_ID) as mine:
            if not mine:
                return PurgeReport(ran=False)
            report = PurgeReport(ran=True)
            now = self.clock.now()
            for kind, table in CALL_EVIDENCE.items():
                await self._purge_call_evidence(kind, table, now, report)
            await self._purge_report_photos(now, report)
            report.files_deleted += await self._sweep(now)
        if report.purged:
            log.info("retention purge", extra={"purged": report.counts()})
        return report

    # -- calls' evidence ---------------------------------------------------------------------

    async def _purge_call_evidence(
        self, kind: Kind, table: CallEvidence, now: datetime, report: PurgeReport
    ) -> None:
        seen: set[int] = set()
        while True:
            query = (
                select(table.id)
                .join(Call, col(Call.id) == col(table.call_id))
                .where(col(table.purged_at).is_(None), _call_expired(self.settings, now))
                .order_by(col(table.id))
                .limit(BATCH)
            )
            if table is Redaction:  # a copy being made is not stored yet
                query = query.where(col(Redaction.state) == RedactionState.DONE)
            async with self.db.session() as session:
                ids = [row for row in (await session.exec(query)).all() if row not in seen]
            if not ids:
                return
            for row_id in ids:
                assert row_id is not None
                seen.add(row_id)
                purged = await self._purge_one(kind, table, row_id, now)
                if purged is not None:
                    report.purged.append(purged[0])
                    report.files_deleted += await self._delete(purged[1])

    async def _purge_one(
        self, kind: Kind, table: CallEvidence, row_id: int, now: datetime
    ) -> tuple[Purged, list[str]] | None:
        """Mark one row purged and enter it in the chain, if it is still due (not purged by
        another purger, its call not held since the query)."""
        async with self.audit.transaction() as session:
            row: EvidenceRow | None = await session.get(table, row_id)
            if row is None or row.purged_at is not None:
                return None
            call = (
                await session.exec(
                    select(Call).where(
                        col(Call.id) == row.call_id, _call_expired(self.settings, now)
                    )
                )
            ).first()
            if call is None:
                return None
            await session.exec(update(table).where(col(table.id) == row_id).values(purged_at=now))
            days = retention_days(self.settings, call.channel)
            ended = call.ended_at or call.created_at
            data: dict[str, Any] = {
                "kind": kind,
                "sha256": row.sha256,
                "size_bytes": row.size_bytes,
                "reason": "retention",
                "retention_days": days,
                "expired_at": (ended + timedelta(days=days)).isoformat(),
            }
            if isinstance(row, Recording | Redaction):
                data["segment"] = row.segment
            if isinstance(row, Recording) and row.playable_path:
                data["playable_sha256"] = row.playable_sha256
            if isinstance(row, CallPhoto):
                data["seq"] = row.seq
            if isinstance(row, Snapshot):
                data["taken_at"] = row.at.isoformat()
            subject = f"call:{call.id}"
            await self.audit.record(
                session, actor=PURGE_ACTOR, action="evidence_purged", subject=subject, data=data
            )
        keys = [key for key in _keys_of(row) if key]
        return Purged(kind, row_id, subject, row.sha256), keys

    # -- threat reports' photos --------------------------------------------------------------

    async def _purge_report_photos(self, now: datetime, report: PurgeReport) -> None:
        seen: set[int] = set()
        while True:
            query = (
                select(ReportPhoto.id)
                .join(ThreatReport, col(ThreatReport.id) == col(ReportPhoto.report_id))
                .where(col(ReportPhoto.purged_at).is_(None), _report_expired(self.settings, now))
                .order_by(col(ReportPhoto.id))
                .limit(BATCH)
            )
            async with self.db.session() as session:
                ids = [row for row in (await session.exec(query)).all() if row not in seen]
            if not ids:
                return
            for row_id in ids:
                assert row_id is not None
                seen.add(row_id)
                purged = await self._purge_report_photo(row_id, now)
                if purged is not None:
                    report.purged.append(purged[0])
                    report.files_deleted += await self._delete(purged[1])

    async def _purge_report_photo(
        self, row_id: int, now: datetime
    ) -> tuple[Purged, list[str]] | None:
        async with self.audit.transaction() as session:
            photo = await session.get(ReportPhoto, row_id)
            if photo is None or photo.purged_at is not None:
                return None
            threat = (
                await session.exec(
                    select(ThreatReport).where(
                        col(ThreatReport.id) == photo.report_id,
                        _report_expired(self.settings, now),
                    )
                )
            ).first()
            if threat is None:
                return None
            await session.exec(
                update(ReportPhoto).where(col(ReportPhoto.id) == row_id).values(purged_at=now)
            )
            unconfirmed = threat.status in UNCONFIRMED and threat.verified_at is not None
            days = (
                self.settings.RETENTION_UNCONFIRMED_REPORT_DAYS
                if unconfirmed
                else self.settings.RETENTION_POLICE_DAYS
            )
            start = threat.verified_at if unconfirmed and threat.verified_at else threat.created_at
            subject = f"report:{threat.id}"
            await self.audit.record(
                session,
                actor=PURGE_ACTOR,
                action="evidence_purged",
                subject=subject,
                data={
                    "kind": "report_photo",
                    "n": photo.n,
                    "sha256": photo.sha256,
                    "public_sha256": photo.public_sha256,
                    "size_bytes": photo.size_bytes,
                    "reason": "retention",
                    "retention_days": days,
                    "expired_at": (start + timedelta(days=days)).isoformat(),
                    "report_status": threat.status,
                },
            )
        return (
            Purged("report_photo", row_id, subject, photo.sha256),
            [photo.original_path, photo.public_path],
        )

    # -- the files ---------------------------------------------------------------------------

    async def _delete(self, keys: list[str]) -> int:
        deleted = 0
        for key in keys:
            try:
                if await asyncio.to_thread(self.storage.delete, key):
                    deleted += 1
            except OSError:
                # Left for the sweep of the next purge; the row already says it is purged.
                log.warning("purged file not deleted", extra={"kind": key.split("/", 1)[0]})
        return deleted

    async def _sweep(self, now: datetime) -> int:
        """Files of rows purged lately that are still there (a purger died in between)."""
        since = now - timedelta(days=SWEEP_DAYS)
        keys: list[str] = []
        async with self.db.session() as session:
            for table in CALL_EVIDENCE.values():
                rows = await session.exec(select(table.path).where(col(table.purged_at) >= since))
                keys.extend(key for key in rows.all() if key)
            copies = await session.exec(  # recovered recordings' playable copies
                select(Recording.playable_path).where(col(Recording.purged_at) >= since)
            )
            keys.extend(key for key in copies.all() if key)
            photos = await session.exec(
                select(ReportPhoto.original_path, ReportPhoto.public_path).where(
                    col(ReportPhoto.purged_at) >= since
                )
            )
            for original, public in photos.all():
                keys.extend((original, public))
        left = [key for key in keys if await asyncio.to_thread(self.storage.exists, key)]
        return await self._delete(left)


async def do_purge(services: Services) -> PurgeReport:
    """Delete what has expired now (the node's daily run, or a test after moving its clock)."""
    return await Purger(services.settings, services.audit, services.storage, services.clock).run()


def schedule_purges(services: Services, delay: float = FIRST_PURGE_DELAY_SECS) -> None:
    """The node's purge: first after ``delay`` seconds of its clock, then every interval."""

    async def purge() -> None:
        try:
            await do_purge(services)
        except Exception:
            log.exception("retention purge failed")  # tried again at the next interval
        schedule_purges(services, services.settings.RETENTION_PURGE_INTERVAL_SECS)

    services.background.later(services.clock, delay, purge, name=PURGE_TIMER)


def _keys_of(row: EvidenceRow) -> list[str | None]:
    """The files of one stored item: a recovered recording's playable copy goes with it."""
    if isinstance(row, Recording):
        return [row.path, row.playable_path]
    return [row.path]
