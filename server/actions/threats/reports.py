"""Threat reports: ``check_*`` validates and authorises, ``do_*`` writes (the caller emits).

A status change is one conditional UPDATE (``WHERE status = <the state it left>``) plus a
history row and an audit entry in the same transaction, so two officers acting at once leave one
winner and a history that agrees with the report.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.actions.threats.photos import PreparedPhoto
from server.core.clock import Clock
from server.core.errors import AppError, ErrorCode
from server.db.audit import AuditLog
from server.db.engine import Database
from server.db.models import (
    ReportConfirmation,
    ReportHistory,
    ReportPhoto,
    ReportStatus,
    ThreatReport,
)
from server.security.tokens import new_token, token_hash

MAX_DESCRIPTION_CHARS = 500
MAX_CONTACT_CHARS = 200
MAX_PUBLIC_NOTE_CHARS = 1000
MAX_INTERNAL_NOTE_CHARS = 4000
MAX_PHOTOS = 3
DUPLICATE_RADIUS_M = 50.0
NEARBY_LIMIT = 20
EARTH_RADIUS_M = 6_371_008.8
METRES_PER_DEGREE_LAT = 111_320.0
# KMZB's targets: a report is read within 2 days and verified within 5.
READ_TARGET_SECS = 2 * 86_400
VERIFY_TARGET_SECS = 5 * 86_400
# Three decimals of a degree: ~111 m of latitude, less of longitude away from the equator.
SENSITIVE_DECIMALS = 3

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TIMES_OF_DAY = ("morning", "afternoon", "evening", "night", "any")
FORWARD_TARGETS = ("road_authority", "city_guard", "other")
OPEN_STATUSES = (ReportStatus.NEW, ReportStatus.VERIFYING, ReportStatus.CONFIRMED)
VERDICTS = (ReportStatus.CONFIRMED, ReportStatus.NOT_CONFIRMED, ReportStatus.JOKE_OR_MISTAKE)
TRANSITIONS: dict[str, frozenset[str]] = {
    ReportStatus.NEW: frozenset({ReportStatus.VERIFYING}),
    ReportStatus.VERIFYING: frozenset(VERDICTS),
    ReportStatus.CONFIRMED: frozenset({ReportStatus.ELIMINATED}),
}
# Control characters other than tab and newline have no business in a description.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class ReportInput:
    """A citizen's report, validated (the category is checked against the database apart)."""

    category: str
    lat: float
    lon: float
    description: str
    days: tuple[str, ...] = ()
    time_of_day: str = "any"
    contact: str | None = None


@dataclass(frozen=True)
class NewReport:
    report: ThreatReport
    token: str | None


@dataclass(frozen=True)
class Nearby:
    report: ThreatReport
    distance_m: float


def check_point(lat: float, lon: float, area: tuple[float, float, float, float]) -> None:
    """A point on Earth, and inside the deployment's area."""
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise AppError(
            ErrorCode.INVALID_POINT, "The point is not on Earth: lat -90..90, lon -180..180"
        )
    min_lon, min_lat, max_lon, max_lat = area
    if not (min_lat <= lat <= max_lat and min_lon <= lon <= max_lon):
        raise AppError(ErrorCode.OUTSIDE_AREA, "The point is outside the area this service covers")


def parse_coordinate(value: str, name: str) -> float:
    try:
        number = float(value.strip())
    except ValueError:
        raise AppError(ErrorCode.INVALID_POINT, f"{name} must be a number") from None
    if not math.isfinite(number):
        raise AppError(ErrorCode.INVALID_POINT, f"{name} must be a finite number")
    return number


def check_text(value: str, name: str, limit: int) -> str:
    """Plain text of at most ``limit`` characters. HTML is not refused: it is kept and always
    returned as text (the pages set it with textContent, the templates escape it)."""
    text = value.replace("\r\n", "\n").replace("\r", "\n").strip()
    if len(text) > limit:
        raise AppError(
            ErrorCode[f"{name.upper()}_TOO_LONG"], f"{name} is longer than {limit} characters"
        )
    if _CONTROL_RE.search(text):
        raise AppError(ErrorCode[f"INVALID_{name.upper()}"], f"{name} contains control characters")
    return text


def check_days(value: str) -> tuple[str, ...]:
    days = tuple(dict.fromkeys(part.strip().lower() for part in value.split(",") if part.strip()))
    unknown = [d for d in days if d not in DAYS]
    if unknown:
        raise AppError(ErrorCode.INVALID_DAYS, f"days: use {', '.join(DAYS)}")
    return tuple(d for d in DAYS if d in days)  # in the week's order


def check_report_fields(
    fields: dict[str, str], area: tuple[float, float, float, float]
) -> ReportInput:
    """The form's fields as a ``ReportInput``; a 422 naming the first problem."""
    if "lat" not in fields or "lon" not in fields:
        raise AppError(ErrorCode.INVALID_POINT, "lat and lon are required")
    lat = parse_coordinate(fields["lat"], "lat")
    lon = parse_coordinate(fields["lon"], "lon")
    check_point(lat, lon, area)
    category = fields.get("category", "").strip()
    if not category:
        raise AppError(ErrorCode.UNKNOWN_CATEGORY, "category is required")
    time_of_day = fields.get("time_of_day", "").strip() or "any"
    if time_of_day not in TIMES_OF_DAY:
        raise AppError(ErrorCode.INVALID_TIME_OF_DAY, f"time_of_day: use {', '.join(TIMES_OF_DAY)}")
    contact = check_text(fields.get("contact", ""), "contact", MAX_CONTACT_CHARS) or None
    return ReportInput(
        category=category,
        lat=lat,
        lon=lon,
        description=check_text(fields.get("description", ""), "description", MAX_DESCRIPTION_CHARS),
        days=check_days(fields.get("days", "")),
        time_of_day=time_of_day,
        contact=contact,
    )


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


async def nearby_open(
    db: Database, category: str, lat: float, lon: float, radius_m: float = DUPLICATE_RADIUS_M
) -> list[Nearby]:
    """Open reports of ``category`` within ``radius_m``, nearest first: a bounding box in SQL,
    the exact distance in Python."""
    dlat = radius_m / METRES_PER_DEGREE_LAT
    dlon = dlat / max(math.cos(math.radians(lat)), 0.01)
    async with db.session() as session:
        rows = (
            await session.exec(
                select(ThreatReport).where(
                    col(ThreatReport.category) == category,
                    col(ThreatReport.status).in_(OPEN_STATUSES),
                    col(ThreatReport.lat).between(lat - dlat, lat + dlat),
                    col(ThreatReport.lon).between(lon - dlon, lon + dlon),
                )
            )
        ).all()
    found = [Nearby(r, haversine_m(lat, lon, r.lat, r.lon)) for r in rows]
    found = [n for n in found if n.distance_m <= radius_m]
    found.sort(key=lambda n: n.distance_m)
    return found[:NEARBY_LIMIT]


def report_dir(data_dir: Path, report_id: int) -> Path:
    return data_dir / "reports" / str(report_id)


def _write_photos(directory: Path, photos: Sequence[PreparedPhoto]) -> list[tuple[Path, Path]]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, photo in enumerate(photos, start=1):
        original = directory / f"{n}-original.{photo.original.extension}"
        public = directory / f"{n}-public.jpg"
        original.write_bytes(photo.original.data)
        public.write_bytes(photo.public)
        paths.append((original, public))
    return paths


async def do_create_report(
    audit: AuditLog,
    clock: Clock,
    data_dir: Path,
    *,
    report: ReportInput,
    photos: Sequence[PreparedPhoto] = (),
    source: str = "web",
    remote: str = "",
    client_key: str | None = None,
    actor: str = "citizen",
    call_id: str | None = None,
    created_by: int | None = None,
    with_token: bool = True,
    sensitive: bool = False,
) -> NewReport:
    """Store a report, its photos and its first history row, and audit it, in one transaction.

    The reporter's own client key is recorded as a confirmation, so "me too" on one's own
    report does not count.
    """
    now = clock.now()
    token = new_token() if with_token else None
    row = ThreatReport(
        category=report.category,
        status=ReportStatus.NEW,
        lat=report.lat,
        lon=report.lon,
        description=report.description,
        days=",".join(report.days),
        time_of_day=report.time_of_day,
        contact=report.contact,
        sensitive=sensitive,
        source=source,
        call_id=call_id,
        created_by=created_by,
        follow_token_hash=token_hash(token) if token else None,
        remote=remote[:64],
        created_at=now,
        updated_at=now,
        # An officer who makes a report from a call has read it.
        read_at=now if created_by is not None else None,
    )
    async with audit.transaction() as session:
        session.add(row)
        await session.flush()
        assert row.id is not None
        paths = await asyncio.to_thread(_write_photos, report_dir(data_dir, row.id), photos)
        for n, (photo, (original, public)) in enumerate(zip(photos, paths, strict=True), 1):
            session.add(
                ReportPhoto(
                    report_id=row.id,
                    n=n,
                    original_path=str(original),
                    content_type=photo.original.content_type,
                    sha256=photo.original.sha256,
                    size_bytes=len(photo.original.data),
                    public_path=str(public),
                    public_sha256=photo.public_sha256,
                    width=photo.original.width,
                    height=photo.original.height,
                    at=now,
                )
            )
        session.add(
            ReportHistory(
                report_id=row.id,
                kind="created",
                actor=actor,
                to_status=ReportStatus.NEW,
                at=now,
            )
        )
        if client_key:
            session.add(ReportConfirmation(report_id=row.id, client_key=client_key, at=now))
        await audit.record(
            session,
            actor=actor,
            action="report_created",
            subject=f"report:{row.id}",
            data={
                "category": row.category,
                "source": source,
                "remote": remote,
                "call_id": call_id,
                "photos": [p.original.sha256 for p in photos],
            },
        )
    return NewReport(row, token)


async def get_report(db: Database, report_id: int) -> ThreatReport:
    async with db.session() as session:
        report = await session.get(ThreatReport, report_id)
    if report is None:
        raise AppError(ErrorCode.REPORT_NOT_FOUND, "No such report")
    return report


async def report_by_token(db: Database, token: str) -> ThreatReport:
    async with db.session() as session:
        report = (
            await session.exec(
                select(ThreatReport).where(col(ThreatReport.follow_token_hash) == token_hash(token))
            )
        ).first()
    if report is None:
        raise AppError(ErrorCode.REPORT_NOT_FOUND, "No such report")
    return report


async def do_confirm(db: Database, clock: Clock, *, report_id: int, client_key: str) -> int:
    """One "me too" per client per report; returns the new count."""
    now = clock.now()
    async with db.session() as session:
        report = await session.get(ThreatReport, report_id)
        if report is None:
            raise AppError(ErrorCode.REPORT_NOT_FOUND, "No such report")
        if report.status not in OPEN_STATUSES:
            raise AppError(ErrorCode.REPORT_CLOSED, "This report is closed")
        session.add(ReportConfirmation(report_id=report_id, client_key=client_key, at=now))
        try:
            await session.flush()
        except IntegrityError:
            await session.rollback()
            raise AppError(
                ErrorCode.ALREADY_CONFIRMED, "You have confirmed this report already"
            ) from None
        result = await session.exec(
            update(ThreatReport)
            .where(col(ThreatReport.id) == report_id)
            .values(confirmations=col(ThreatReport.confirmations) + 1)
            .returning(col(ThreatReport.confirmations))
        )
        count = int(result.scalar_one())
        await session.commit()
    return count


async def has_confirmed(db: Database, report_id: int, client_key: str) -> bool:
    async with db.session() as session:
        found = (
            await session.exec(
                select(ReportConfirmation).where(
                    col(ReportConfirmation.report_id) == report_id,
                    col(ReportConfirmation.client_key) == client_key,
                )
            )
        ).first()
    return found is not None


def check_transition(old: str, new: str) -> None:
    if new not in ReportStatus.__members__.values():
        raise AppError(ErrorCode.INVALID_STATUS, f"Unknown status {new!r}")
    if new not in TRANSITIONS.get(old, frozenset()):
        raise AppError(ErrorCode.ILLEGAL_TRANSITION, f"A report cannot go from {old} to {new}")


async def do_change_status(
    audit: AuditLog,
    clock: Clock,
    *,
    report_id: int,
    actor: str,
    new: str,
    public_note: str,
    internal_note: str,
    sensitive: bool | None = None,
) -> ThreatReport:
    now = clock.now()
    async with audit.transaction() as session:
        report = await session.get(ThreatReport, report_id)
        if report is None:
            raise AppError(ErrorCode.REPORT_NOT_FOUND, "No such report")
        old = report.status
        check_transition(old, new)
        values: dict[str, object] = {"status": new, "updated_at": now}
        if public_note:
            values["public_note"] = public_note
        if sensitive is not None:
            values["sensitive"] = sensitive
        if report.read_at is None:
            values["read_at"] = now
        if new in VERDICTS:
            values["verified_at"] = now
        result = await session.exec(
            update(ThreatReport)
            .where(col(ThreatReport.id) == report_id, col(ThreatReport.status) == old)
            .values(**values)
        )
        if result.rowcount != 1:
            raise AppError(ErrorCode.REPORT_CHANGED, "The report changed meanwhile; reload it")
        session.add(
            ReportHistory(
                report_id=report_id,
                kind="status",
                actor=actor,
                from_status=old,
                to_status=new,
                public_note=public_note or None,
                internal_note=internal_note or None,
                at=now,
            )
        )
        await audit.record(
            session,
            actor=actor,
            action="report_status",
            subject=f"report:{report_id}",
            data={"from": old, "to": new, "sensitive": sensitive},
        )
        await session.refresh(report)
    return report


async def do_forward(
    audit: AuditLog, clock: Clock, *, report_id: int, actor: str, to: str, note: str
) -> ThreatReport:
    if to not in FORWARD_TARGETS:
        raise AppError(ErrorCode.INVALID_FORWARD_TARGET, f"to: use {', '.join(FORWARD_TARGETS)}")
    now = clock.now()
    async with audit.transaction() as session:
        report = await session.get(ThreatReport, report_id)
        if report is None:
            raise AppError(ErrorCode.REPORT_NOT_FOUND, "No such report")
        values: dict[str, object] = {"updated_at": now}
        if report.read_at is None:
            values["read_at"] = now
        await session.exec(
            update(ThreatReport).where(col(ThreatReport.id) == report_id).values(**values)
        )
        session.add(
            ReportHistory(
                report_id=report_id,
                kind="forward",
                actor=actor,
                forwarded_to=to,
                internal_note=note or None,
                at=now,
            )
        )
        await audit.record(
            session,
            actor=actor,
            action="report_forwarded",
            subject=f"report:{report_id}",
            data={"to": to},
        )
        await session.refresh(report)
    return report


def check_invitable(report: ThreatReport) -> None:
    """Only the author sees an invitation, on the follow page: a report made by an officer from
    a call has no follow link, so nobody would see it."""
    if report.follow_token_hash is None:
        raise AppError(
            ErrorCode.NO_FOLLOW_LINK,
            "This report has no author's follow link to show an invitation on",
        )


async def do_invite(audit: AuditLog, clock: Clock, *, report_id: int, actor: str) -> ThreatReport:
    """Invite the author to a video call: stamp ``invited_at``, a history row, an audit entry.

    Inviting again is allowed (the author may have missed it) and moves ``invited_at`` on.
    """
    now = clock.now()
    async with audit.transaction() as session:
        report = await session.get(ThreatReport, report_id)
        if report is None:
            raise AppError(ErrorCode.REPORT_NOT_FOUND, "No such report")
        check_invitable(report)
        values: dict[str, object] = {"invited_at": now, "updated_at": now}
        if report.read_at is None:
            values["read_at"] = now
        await session.exec(
            update(ThreatReport).where(col(ThreatReport.id) == report_id).values(**values)
        )
        session.add(ReportHistory(report_id=report_id, kind="invite", actor=actor, at=now))
        await audit.record(
            session, actor=actor, action="report_author_invited", subject=f"report:{report_id}"
        )
        await session.refresh(report)
    return report


async def do_mark_read(audit: AuditLog, clock: Clock, *, report_id: int, actor: str) -> bool:
    """The first officer to open a report marks it read (KMZB's 2-day target)."""
    async with audit.transaction() as session:
        result = await session.exec(
            update(ThreatReport)
            .where(col(ThreatReport.id) == report_id, col(ThreatReport.read_at).is_(None))
            .values(read_at=clock.now())
        )
        if result.rowcount != 1:
            return False
        await audit.record(
            session, actor=actor, action="report_read", subject=f"report:{report_id}"
        )
    return True


def overdue_read(report: ThreatReport, now: datetime) -> bool:
    """Not read by anyone and older than the 2-day target."""
    return report.read_at is None and now - report.created_at > timedelta(seconds=READ_TARGET_SECS)


def overdue_verify(report: ThreatReport, now: datetime) -> bool:
    """Still waiting for a verdict and older than the 5-day target."""
    return (
        report.verified_at is None
        and report.status in (ReportStatus.NEW, ReportStatus.VERIFYING)
        and now - report.created_at > timedelta(seconds=VERIFY_TARGET_SECS)
    )


async def photos_of(session: AsyncSession, report_ids: Sequence[int]) -> dict[int, list[int]]:
    """Photo numbers per report, for many reports in one query."""
    found: dict[int, list[int]] = {}
    if not report_ids:
        return found
    ids = list(report_ids)
    for start in range(0, len(ids), 1000):
        rows = (
            await session.exec(
                select(ReportPhoto.report_id, ReportPhoto.n)
                .where(col(ReportPhoto.report_id).in_(ids[start : start + 1000]))
                .order_by(col(ReportPhoto.report_id), col(ReportPhoto.n))
            )
        ).all()
        for report_id, n in rows:
            found.setdefault(report_id, []).append(n)
    return found


async def history_of(
    session: AsyncSession, report_ids: Sequence[int]
) -> dict[int, list[ReportHistory]]:
    found: dict[int, list[ReportHistory]] = {}
    ids = list(report_ids)
    for start in range(0, len(ids), 1000):
        rows = (
            await session.exec(
                select(ReportHistory)
                .where(col(ReportHistory.report_id).in_(ids[start : start + 1000]))
                .order_by(col(ReportHistory.id))
            )
        ).all()
        for row in rows:
            found.setdefault(row.report_id, []).append(row)
    return found


async def photo_row(db: Database, report_id: int, n: int) -> ReportPhoto:
    async with db.session() as session:
        photo = (
            await session.exec(
                select(ReportPhoto).where(
                    col(ReportPhoto.report_id) == report_id, col(ReportPhoto.n) == n
                )
            )
        ).first()
    if photo is None:
        raise AppError(ErrorCode.PHOTO_NOT_FOUND, "No such photo")
    return photo
