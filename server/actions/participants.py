"""Who is on a call's media and chat, from when to when: its operator, a warm transfer's
target, a conference's second operator or supervisor. One row per stay, written in the same
transaction as the change that caused it, so the archive record shows who heard what."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict
from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.core.services import Services
from server.db.models import CallParticipant, User


class ParticipantView(BaseModel):
    """One stay on the call, as the archive record shows it."""

    model_config = ConfigDict(extra="forbid")
    username: str
    role: str
    joined_by: str
    joined_at: datetime
    left_at: datetime | None


async def joined(
    session: AsyncSession, call_id: str, user_id: int, role: str, how: str, now: datetime
) -> None:
    """``user_id`` is on the call from ``now`` (an open stay of theirs is kept, not doubled)."""
    if await is_present(session, call_id, user_id):
        return
    session.add(
        CallParticipant(call_id=call_id, user_id=user_id, role=role, joined_by=how, joined_at=now)
    )


async def left(session: AsyncSession, call_id: str, user_id: int, now: datetime) -> None:
    await session.exec(
        update(CallParticipant)
        .where(
            col(CallParticipant.call_id) == call_id,
            col(CallParticipant.user_id) == user_id,
            col(CallParticipant.left_at).is_(None),
        )
        .values(left_at=now)
    )


async def all_left(session: AsyncSession, call_id: str, now: datetime) -> None:
    """The call ended: every stay still open ends with it."""
    await session.exec(
        update(CallParticipant)
        .where(col(CallParticipant.call_id) == call_id, col(CallParticipant.left_at).is_(None))
        .values(left_at=now)
    )


async def is_present(session: AsyncSession, call_id: str, user_id: int) -> bool:
    return (
        await session.exec(
            select(CallParticipant.id).where(
                col(CallParticipant.call_id) == call_id,
                col(CallParticipant.user_id) == user_id,
                col(CallParticipant.left_at).is_(None),
            )
        )
    ).first() is not None


async def present(session: AsyncSession, call_id: str) -> list[CallParticipant]:
    """The open stays, first joined first."""
    return list(
        (
            await session.exec(
                select(CallParticipant)
                .where(
                    col(CallParticipant.call_id) == call_id,
                    col(CallParticipant.left_at).is_(None),
                )
                .order_by(col(CallParticipant.joined_at), col(CallParticipant.id))
            )
        ).all()
    )


async def is_participant(services: Services, call_id: str, user_id: int) -> bool:
    """On the call now (a warm transfer's target, a conference's guest): may chat and talk."""
    async with services.db.session() as session:
        return await is_present(session, call_id, user_id)


async def participants_of(services: Services, call_id: str) -> list[ParticipantView]:
    """Every stay on the call, in the order they began."""
    async with services.db.session() as session:
        rows = (
            await session.exec(
                select(CallParticipant, User.username)
                .join(User, col(User.id) == col(CallParticipant.user_id))
                .where(col(CallParticipant.call_id) == call_id)
                .order_by(col(CallParticipant.joined_at), col(CallParticipant.id))
            )
        ).all()
    return [
        ParticipantView(
            username=username,
            role=row.role,
            joined_by=row.joined_by,
            joined_at=row.joined_at,
            left_at=row.left_at,
        )
        for row, username in rows
    ]
