"""What a citizen may do on the threat map, with no account: report a threat, ask what is
already reported near a point, and say "me too".

A citizen is known only by an address and a cookie (``Reporter``); the day's limits count both,
and a refused request counts against neither.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from server.actions.threats.categories import check_category
from server.actions.threats.fields import (
    check_address,
    check_point,
    check_report_fields,
    parse_coordinate,
)
from server.actions.threats.lifecycle import OPEN_STATUSES
from server.actions.threats.open311_keys import check_key_room
from server.actions.threats.photos import prepare_photos
from server.actions.threats.queries import get_public_report, has_confirmed, nearby_open
from server.actions.threats.reports import NewReport, do_create_report
from server.actions.threats.views import nearby_item
from server.core.errors import AppError, ErrorCode
from server.core.services import Services
from server.db.models import Open311Key, ReportConfirmation, ThreatReport
from server.security.tokens import token_hash
from server.state.ratelimit import parse_rules


@dataclass(frozen=True)
class Reporter:
    """Who is asking, as far as a service without accounts can tell: the address and a cookie
    (``minted``: made for this request, so the answer must set it)."""

    remote: str
    cookie: str
    minted: bool

    @property
    def cookie_key(self) -> str:
        """The cookie as stored: a hash, never the cookie itself."""
        return f"c:{token_hash(self.cookie)[:40]}"

    @property
    def keys(self) -> tuple[str, str]:
        """What the limits count: a new cookie does not escape the address's limit."""
        return f"ip:{self.remote}", self.cookie_key


@dataclass(frozen=True)
class PossibleDuplicates:
    """Not stored: open reports of the kind are this near; the citizen may confirm one, or
    send again insisting."""

    nearby: list[dict[str, Any]]


async def check_room(services: Services, setting: str, scope: str, keys: Iterable[str]) -> None:
    """Refuse (429) if any key is over the limit, without counting this request: a refused
    report must not use up the day's one report."""
    for rule in parse_rules(setting):
        for key in keys:
            if not await services.limits.has_room(rule, scope, key):
                raise AppError(
                    ErrorCode.RATE_LIMITED,
                    f"Too many: at most {rule} from one client. Call 112 if this is an emergency.",
                    data={"headers": {"Retry-After": str(rule.get_expiry())}},
                )


async def count_request(services: Services, setting: str, scope: str, keys: Iterable[str]) -> None:
    """Count an accepted request against every key (and refuse it if a race used the room)."""
    rules = parse_rules(setting)
    for key in keys:
        await services.limits.hit(rules, scope, key)


async def do_submit_report(
    services: Services,
    *,
    reporter: Reporter,
    fields: Mapping[str, str],
    photos: Sequence[bytes] = (),
    source: str,
    check_duplicates: bool,
    address: str = "",
    open311_key: Open311Key | None = None,
) -> NewReport | PossibleDuplicates:
    """Everything between a parsed form and a stored report: the fields, the category, the
    day's limit, the photos, nearby duplicates (returned instead of storing), then store (and
    ``report.new``).

    The day's limit is the client's (``REPORT_RATE_LIMIT``, by address and cookie), or, for a
    partner app's post with its API key, the key's own (``open311_keys``). ``address`` is
    Open311's ``address_string``, kept beside the point."""
    settings = services.settings
    report = replace(
        check_report_fields(fields, settings.report_area), address=check_address(address)
    )
    await check_category(services, report.category)
    if open311_key is not None:
        await check_key_room(services, open311_key)
    else:
        await check_room(services, settings.REPORT_RATE_LIMIT, "reports", reporter.keys)
    prepared = await prepare_photos(services, photos)
    if check_duplicates:
        nearby = await nearby_open(services, report.category, report.lat, report.lon)
        if nearby:
            return PossibleDuplicates([nearby_item(n) for n in nearby])
    if open311_key is None:
        await count_request(services, settings.REPORT_RATE_LIMIT, "reports", reporter.keys)
    return await do_create_report(
        services,
        report=report,
        photos=prepared,
        source=source,
        remote=reporter.remote,
        client_key=reporter.cookie_key,
        open311_key=open311_key,
    )


async def find_nearby(
    services: Services, *, lat: str, lon: str, category: str
) -> list[dict[str, Any]]:
    """The open reports of a kind near a point, as the form asks before it sends one."""
    point_lat = parse_coordinate(lat, "lat")
    point_lon = parse_coordinate(lon, "lon")
    check_point(point_lat, point_lon, services.settings.report_area)
    code = await check_category(services, category)
    found = await nearby_open(services, code, point_lat, point_lon)
    return [nearby_item(n) for n in found]


async def do_confirm(services: Services, *, report_id: int, reporter: Reporter) -> int:
    """One "me too" per client per report, while it is open; returns the new count."""
    report = await get_public_report(services, report_id)
    if await has_confirmed(services, report_id, reporter.cookie_key):
        raise AppError(ErrorCode.ALREADY_CONFIRMED, "You have confirmed this report already")
    if report.status not in OPEN_STATUSES:
        raise AppError(ErrorCode.REPORT_CLOSED, "This report is closed")
    limit = services.settings.CONFIRM_RATE_LIMIT
    await check_room(services, limit, "confirmations", reporter.keys)
    await count_request(services, limit, "confirmations", reporter.keys)
    return await _store_confirmation(services, report_id, reporter.cookie_key)


async def _store_confirmation(services: Services, report_id: int, client_key: str) -> int:
    """The confirmation row (unique per client and report) and the count, in one transaction:
    two clicks at once count once."""
    now = services.clock.now()
    async with services.db.session() as session:
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
