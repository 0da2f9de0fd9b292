"""Open311 partners' API keys: an admin issues one for a named partner app (a city's
FixMyStreet, say) with its own daily limit of reports, lists them and revokes them; issuing and
revoking are entries in the audit chain naming who and why.

The secret is shown once, when it is issued, and only its SHA-256 is kept. A partner's server
posts for many citizens from one address, which the public per-address ``REPORT_RATE_LIMIT``
would hold to one report a day: a post with a valid key is counted against the key's own
limit instead (its reports of the last 24 hours), in the transaction that stores the report,
under the audit chain's lock, so two posts at once cannot both take the last place.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.actions.evidence import check_reason
from server.actions.staff_sessions import StaffContext
from server.core.errors import AppError, ErrorCode
from server.core.services import Services
from server.db.models import Open311Key, ThreatReport
from server.security.tokens import new_token, token_hash

DAY = timedelta(days=1)
MAX_PARTNER_CHARS = 80
MAX_DAILY_LIMIT = 100_000
# A secret we issue is 43 characters; anything much longer is not one of ours.
MAX_SECRET_CHARS = 200
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class IssuedKey:
    key: Open311Key
    secret: str  # shown this once; only its hash is stored


@dataclass(frozen=True)
class KeyListing:
    key: Open311Key
    reports_today: int  # stored in the last 24 hours: what its limit counts


def check_partner(name: str) -> str:
    """The partner's name as the admin list shows it: one line of 1 to 80 characters."""
    text = " ".join(name.split())
    if not text or len(text) > MAX_PARTNER_CHARS or _CONTROL_RE.search(text):
        raise AppError(
            ErrorCode.INVALID_PARTNER,
            f"Name the partner app in 1 to {MAX_PARTNER_CHARS} characters",
        )
    return text


def check_daily_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_DAILY_LIMIT:
        raise AppError(
            ErrorCode.INVALID_DAILY_LIMIT,
            f"A key's daily limit is 1 to {MAX_DAILY_LIMIT} reports",
        )
    return limit


async def do_issue_key(
    services: Services, staff: StaffContext, *, partner: str, daily_limit: int, reason: str
) -> IssuedKey:
    """A new key for ``partner``; the secret comes back this once."""
    name = check_partner(partner)
    limit = check_daily_limit(daily_limit)
    why = check_reason(reason)
    secret = new_token()
    key = Open311Key(
        partner=name,
        secret_hash=token_hash(secret),
        daily_limit=limit,
        reason=why,
        created_by=staff.username,
        created_at=services.clock.now(),
    )
    async with services.audit.transaction() as session:
        session.add(key)
        await session.flush()
        await services.audit.record(
            session,
            actor=staff.username,
            action="open311_key_issued",
            subject=f"open311_key:{key.id}",
            data={"partner": name, "daily_limit": limit, "reason": why},
        )
    return IssuedKey(key, secret)


async def do_revoke_key(
    services: Services, staff: StaffContext, key_id: int, reason: str
) -> Open311Key:
    """Revoke a key: its next post is refused (``invalid_api_key``). The row stays, for the
    reports it brought and the list's history.

    Raises:
        AppError: ``API_KEY_NOT_FOUND`` (404); ``API_KEY_REVOKED`` (409), revoked already.
    """
    why = check_reason(reason)
    now = services.clock.now()
    async with services.audit.transaction() as session:
        key = await session.get(Open311Key, key_id)
        if key is None:
            raise AppError(ErrorCode.API_KEY_NOT_FOUND, "No such API key")
        if key.revoked_at is not None:
            raise AppError(ErrorCode.API_KEY_REVOKED, "This API key is revoked already")
        key.revoked_at = now
        key.revoked_by = staff.username
        key.revoke_reason = why
        session.add(key)
        await services.audit.record(
            session,
            actor=staff.username,
            action="open311_key_revoked",
            subject=f"open311_key:{key.id}",
            data={"partner": key.partner, "reason": why},
        )
    return key


async def list_keys(services: Services) -> list[KeyListing]:
    """Every key, revoked ones too, newest first, with its reports of the last 24 hours."""
    since = services.clock.now() - DAY
    async with services.db.session() as session:
        keys = list(
            (
                await session.exec(
                    select(Open311Key).order_by(
                        col(Open311Key.created_at).desc(), col(Open311Key.id).desc()
                    )
                )
            ).all()
        )
        rows = (
            await session.exec(
                select(col(ThreatReport.open311_key_id), func.count())
                .where(
                    col(ThreatReport.open311_key_id).is_not(None),
                    col(ThreatReport.created_at) > since,
                )
                .group_by(col(ThreatReport.open311_key_id))
            )
        ).all()
    counts = {key_id: int(count) for key_id, count in rows}
    return [KeyListing(key, counts.get(key.id, 0)) for key in keys]


async def check_api_key(services: Services, secret: str) -> Open311Key:
    """The key a post names, if it is one of ours and not revoked.

    Raises:
        AppError: ``INVALID_API_KEY`` (403) for an unknown or revoked key (GeoReport v2: an
            invalid key is an error, not a public post).
    """
    key = None
    if len(secret) <= MAX_SECRET_CHARS:
        async with services.db.session() as session:
            key = (
                await session.exec(
                    select(Open311Key).where(col(Open311Key.secret_hash) == token_hash(secret))
                )
            ).first()
    if key is None or key.revoked_at is not None:
        raise _invalid_key()
    return key


def _invalid_key() -> AppError:
    return AppError(
        ErrorCode.INVALID_API_KEY,
        "This api_key is unknown or revoked: ask the operations centre for a key, or post "
        "without one",
    )


async def _window(session: AsyncSession, key: Open311Key, now: datetime) -> tuple[int, datetime]:
    """The key's reports of the last 24 hours and the oldest one's time (``now`` if none)."""
    count, oldest = (
        await session.exec(
            select(func.count(), func.min(col(ThreatReport.created_at))).where(
                col(ThreatReport.open311_key_id) == key.id,
                col(ThreatReport.created_at) > now - DAY,
            )
        )
    ).one()
    return int(count), oldest or now


def _over_limit(key: Open311Key, oldest: datetime, now: datetime) -> AppError:
    wait = max(1, math.ceil((oldest + DAY - now).total_seconds()))
    return AppError(
        ErrorCode.RATE_LIMITED,
        f"Too many: this API key sends at most {key.daily_limit} reports a day; the next place "
        f"frees in {wait} s. Call 112 if this is an emergency.",
        data={"headers": {"Retry-After": str(wait)}},
    )


async def reports_today(services: Services, key: Open311Key) -> int:
    """The key's reports of the last 24 hours."""
    async with services.db.session() as session:
        count, _oldest = await _window(session, key, services.clock.now())
    return count


async def check_key_room(services: Services, key: Open311Key) -> None:
    """Refuse (429) a post over the key's limit before its photos are read; the count that
    holds is ``take_key_room``'s, in the report's own transaction."""
    now = services.clock.now()
    async with services.db.session() as session:
        count, oldest = await _window(session, key, now)
    if count >= key.daily_limit:
        raise _over_limit(key, oldest, now)


async def take_key_room(session: AsyncSession, key: Open311Key, now: datetime) -> None:
    """Inside the transaction that stores the report (under the audit chain's lock, as a
    revocation is): refuse a key revoked since it was checked (403) or one that has used its
    day (429), else mark it used now."""
    current = await session.get(Open311Key, key.id)
    if current is None or current.revoked_at is not None:
        raise _invalid_key()
    count, oldest = await _window(session, current, now)
    if count >= current.daily_limit:
        raise _over_limit(current, oldest, now)
    current.last_used_at = now
    session.add(current)
