"""The call archive: which past calls a staff member may find, and the search over them.

Who sees what is decided in the query itself (``scope``), the same way ``channels_for`` keeps
the internal-security channel out of every other role's queries: supervisors and admins find
every police call, internal security only its own channel's calls, an operator only the calls
they answered in the last ``ARCHIVE_SHIFT_HOURS``. A call outside that scope does not exist for
the searcher: the search never lists it and the record's routes answer "no such call".
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, or_
from sqlmodel import col, select

from server.actions.access import archive_channels_for
from server.actions.staff_sessions import StaffContext
from server.core.errors import AppError, ErrorCode
from server.core.services import Services
from server.db.models import (
    Call,
    CallState,
    CallTransition,
    Channel,
    ChatMessage,
    LocationSample,
    Recording,
    Role,
    User,
)
from server.db.search import folded

# What the console's end-of-call dialog offers (console_ui/templates/console.html).
DISPOSITIONS = (
    "dispatched",
    "advice_given",
    "false_alarm",
    "prank",
    "duplicate",
    "transferred",
    "no_response",
)
MAX_WORDS = 8
MAX_WORD_CHARS = 64
MIN_AREA_POINTS = 3
MAX_AREA_POINTS = 64
MAX_PAGE = 10_000
_CODE_RE = re.compile(r"^[a-z_]{1,64}$")
_USERNAME_RE = re.compile(r"^[\w.@-]{1,64}$")


@dataclass(frozen=True)
class ArchiveSearch:
    """A validated search: every filter optional, ``page`` from 1."""

    since: datetime | None = None
    until: datetime | None = None
    operator: str | None = None
    channel: str | None = None
    disposition: str | None = None
    words: tuple[str, ...] = ()
    area: tuple[tuple[float, float], ...] = ()  # (lat, lon) vertices of a polygon
    page: int = 1

    def audited(self) -> dict[str, Any]:
        """The filters as the audit chain keeps them (only those given)."""
        shown: dict[str, Any] = {
            "from": self.since.isoformat() if self.since else None,
            "to": self.until.isoformat() if self.until else None,
            "operator": self.operator,
            "channel": self.channel,
            "disposition": self.disposition,
            "words": list(self.words) or None,
            "area": [list(p) for p in self.area] or None,
            "page": self.page,
        }
        return {k: v for k, v in shown.items() if v is not None}


@dataclass(frozen=True)
class ArchiveResult:
    call_id: str
    channel: str
    mode: str
    state: str
    operator: str | None
    disposition: str | None
    marks: str
    created_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    segments: int

    def as_json(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "channel": self.channel,
            "mode": self.mode,
            "state": self.state,
            "operator": self.operator,
            "disposition": self.disposition,
            "marks": [m for m in self.marks.split(",") if m],
            "created_at": self.created_at.isoformat(),
            "answered_at": self.answered_at.isoformat() if self.answered_at else None,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "segments": self.segments,
        }


@dataclass(frozen=True)
class ArchivePage:
    results: list[ArchiveResult]
    total: int
    page: int
    per_page: int


# --- the query string ----------------------------------------------------------------------------


def _time(query: Mapping[str, str], name: str) -> datetime | None:
    raw = query.get(name, "").strip()
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise AppError(ErrorCode.INVALID_DATE, f"{name}: not an ISO 8601 time") from None
    if value.tzinfo is None:
        raise AppError(ErrorCode.INVALID_DATE, f"{name}: give the time zone (Z or +01:00)")
    return value


def _area(raw: str) -> tuple[tuple[float, float], ...]:
    """``lat,lon;lat,lon;...``: the polygon drawn on the map."""
    points: list[tuple[float, float]] = []
    for pair in raw.split(";"):
        try:
            lat_text, lon_text = pair.split(",")
            lat, lon = float(lat_text), float(lon_text)
        except ValueError:
            raise AppError(ErrorCode.INVALID_AREA, "area: give lat,lon;lat,lon;...") from None
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise AppError(ErrorCode.INVALID_AREA, "area: a point lies off the globe")
        points.append((lat, lon))
    if not MIN_AREA_POINTS <= len(points) <= MAX_AREA_POINTS:
        raise AppError(
            ErrorCode.INVALID_AREA,
            f"area: between {MIN_AREA_POINTS} and {MAX_AREA_POINTS} points",
        )
    return tuple(points)


def parse_search(query: Mapping[str, str]) -> ArchiveSearch:
    """The search a query string asks for; a bad filter is a 4xx naming it."""
    since, until = _time(query, "from"), _time(query, "to")
    if since and until and since > until:
        raise AppError(ErrorCode.INVALID_DATE, "from: after to")
    operator = query.get("operator", "").strip() or None
    if operator is not None and not _USERNAME_RE.match(operator):
        raise AppError(ErrorCode.INVALID_USERNAME, "operator: not a username")
    channel = query.get("channel", "").strip() or None
    if channel is not None and channel not in set(Channel):
        raise AppError(ErrorCode.INVALID_CHANNEL, "channel: police or internal_security")
    disposition = query.get("disposition", "").strip() or None
    if disposition is not None and not _CODE_RE.match(disposition):
        raise AppError(ErrorCode.INVALID_DISPOSITION, "disposition: not a disposition code")
    words = tuple(dict.fromkeys(w.lower() for w in query.get("q", "").split()))
    if len(words) > MAX_WORDS or any(len(w) > MAX_WORD_CHARS for w in words):
        raise AppError(
            ErrorCode.INVALID_WORDS,
            f"q: at most {MAX_WORDS} words of {MAX_WORD_CHARS} characters",
        )
    area = _area(query["area"]) if query.get("area", "").strip() else ()
    raw_page = query.get("page", "1").strip() or "1"
    if not raw_page.isdigit() or not 1 <= int(raw_page) <= MAX_PAGE:
        raise AppError(ErrorCode.INVALID_PAGE, f"page: a number from 1 to {MAX_PAGE}")
    return ArchiveSearch(
        since=since,
        until=until,
        operator=operator,
        channel=channel,
        disposition=disposition,
        words=words,
        area=area,
        page=int(raw_page),
    )


# --- who sees which calls ----------------------------------------------------------------------


def shift_start(services: Services) -> datetime:
    return services.clock.now() - timedelta(hours=services.settings.ARCHIVE_SHIFT_HOURS)


def scope(services: Services, staff: StaffContext) -> list[ColumnElement[bool]]:
    """The conditions every archive query of this staff member carries: the rights, in SQL."""
    conditions: list[ColumnElement[bool]] = [
        col(Call.channel).in_(archive_channels_for(staff.role))
    ]
    if staff.role == Role.OPERATOR:
        answered_by_them = exists().where(
            col(CallTransition.call_id) == col(Call.id),
            col(CallTransition.to_state) == CallState.ANSWERED,
            col(CallTransition.actor) == staff.username,
        )
        conditions.append(col(Call.created_at) >= shift_start(services))
        conditions.append(or_(col(Call.operator_id) == staff.user_id, answered_by_them))
    return conditions


async def check_archive_call(services: Services, staff: StaffContext, call_id: str) -> Call:
    """The call, if it lies within this staff member's archive; else "no such call" (the same
    answer as for a call that never was: a hidden call is not confirmed to exist)."""
    async with services.db.session() as session:
        call = (
            await session.exec(select(Call).where(col(Call.id) == call_id, *scope(services, staff)))
        ).first()
    if call is None:
        raise AppError(ErrorCode.CALL_NOT_FOUND, "No such call in your archive")
    return call


# --- the search --------------------------------------------------------------------------------


def _inside(lat: float, lon: float, polygon: Sequence[tuple[float, float]]) -> bool:
    """Even-odd rule: is the point inside the polygon (small areas: lat/lon as a plane)."""
    inside = False
    j = len(polygon) - 1
    for i, (lat_i, lon_i) in enumerate(polygon):
        lat_j, lon_j = polygon[j]
        if (lat_i > lat) != (lat_j > lat):
            crossing = lon_i + (lat - lat_i) * (lon_j - lon_i) / (lat_j - lat_i)
            if lon < crossing:
                inside = not inside
        j = i
    return inside


async def _calls_in_area(
    services: Services, conditions: list[ColumnElement[bool]], area: Sequence[tuple[float, float]]
) -> set[str]:
    """Calls (within the other filters) with a location sample inside the drawn polygon: the
    samples inside its bounding box come from the database, the exact test is done here."""
    lats, lons = [p[0] for p in area], [p[1] for p in area]
    statement = (
        select(LocationSample.call_id, LocationSample.lat, LocationSample.lon)
        .join(Call, col(Call.id) == col(LocationSample.call_id))
        .where(
            *conditions,
            col(LocationSample.lat).between(min(lats), max(lats)),
            col(LocationSample.lon).between(min(lons), max(lons)),
        )
    )
    found: set[str] = set()
    async with services.db.session() as session:
        for call_id, lat, lon in (await session.exec(statement)).all():
            if call_id not in found and _inside(lat, lon, area):
                found.add(call_id)
    return found


def _like(word: str) -> str:
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _filters(services: Services, search: ArchiveSearch) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if search.since is not None:
        conditions.append(col(Call.created_at) >= search.since)
    if search.until is not None:
        conditions.append(col(Call.created_at) <= search.until)
    if search.channel is not None:
        conditions.append(col(Call.channel) == search.channel)
    if search.disposition is not None:
        conditions.append(col(Call.disposition) == search.disposition)
    if search.operator is not None:
        conditions.append(
            or_(
                exists().where(
                    col(User.id) == col(Call.operator_id), col(User.username) == search.operator
                ),
                exists().where(
                    col(CallTransition.call_id) == col(Call.id),
                    col(CallTransition.to_state) == CallState.ANSWERED,
                    col(CallTransition.actor) == search.operator,
                ),
            )
        )
    postgres = services.db.is_postgres
    for word in search.words:
        pattern = _like(word)
        in_chat = exists().where(
            col(ChatMessage.call_id) == col(Call.id),
            folded(col(ChatMessage.body), postgres=postgres).like(pattern, escape="\\"),
        )
        in_note = folded(col(Call.note), postgres=postgres).like(pattern, escape="\\")
        conditions.append(or_(in_chat, and_(col(Call.note).is_not(None), in_note)))
    return conditions


async def search(services: Services, staff: StaffContext, search: ArchiveSearch) -> ArchivePage:
    """One page of the calls this staff member may find, newest first; the search itself is
    entered in the audit chain (who looked for what)."""
    conditions = [*scope(services, staff), *_filters(services, search)]
    per_page = services.settings.ARCHIVE_PAGE_SIZE
    await services.audit.append(
        actor=staff.username,
        action="archive_searched",
        data=_audited_search(services, staff, search),
    )
    if search.area:
        in_area = await _calls_in_area(services, conditions, search.area)
        if not in_area:
            return ArchivePage([], 0, search.page, per_page)
        conditions.append(col(Call.id).in_(sorted(in_area)))
    segments = (
        select(func.count())
        .select_from(Recording)
        .where(col(Recording.call_id) == col(Call.id))
        .scalar_subquery()
    )
    operator = select(User.username).where(col(User.id) == col(Call.operator_id)).scalar_subquery()
    async with services.db.session() as session:
        total = (
            await session.exec(select(func.count()).select_from(Call).where(*conditions))
        ).one()
        rows = (
            await session.exec(
                select(Call, operator, segments)
                .where(*conditions)
                .order_by(col(Call.created_at).desc(), col(Call.id))
                .offset((search.page - 1) * per_page)
                .limit(per_page)
            )
        ).all()
    results = [
        ArchiveResult(
            call_id=call.id,
            channel=call.channel,
            mode=call.mode,
            state=call.state,
            operator=name,
            disposition=call.disposition,
            marks=call.marks,
            created_at=call.created_at,
            answered_at=call.answered_at,
            ended_at=call.ended_at,
            segments=count,
        )
        for call, name, count in rows
    ]
    return ArchivePage(results, total, search.page, per_page)


def _audited_search(
    services: Services, staff: StaffContext, search: ArchiveSearch
) -> dict[str, Any]:
    """The search as the shared chain keeps it. Internal security's words and area could tell
    whoever reads the chain what a misconduct case is about: those are kept as keyed hashes."""
    data = {"role": staff.role, **search.audited()}
    if staff.role == Role.INTERNAL_SECURITY:
        for name in ("words", "area"):
            if name in data:
                data[f"{name}_hash"] = services.pseudonyms.of(f"archive_{name}", str(data[name]))
                del data[name]
        if "operator" in data:
            data["operator_hash"] = services.pseudonyms.of("archive_operator", data["operator"])
            del data["operator"]
    return data
