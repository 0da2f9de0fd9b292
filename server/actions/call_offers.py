"""The offers table's own operations, shared by the transfer rules (server/actions/transfers.py)
and by a call's end (server/actions/calls.py), which settles whatever was still offered."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.db.models import CallOffer, OfferState

# An offer still to be settled: waiting for its target, or (warm) the target joined and the
# first operator has still to complete or cancel.
OPEN_OFFER_STATES = (OfferState.OFFERED, OfferState.ACCEPTED)


async def settle(
    session: AsyncSession,
    offer_id: int,
    new: OfferState,
    now: datetime,
    *,
    was: Sequence[OfferState] = (OfferState.OFFERED,),
    to_user_id: int | None = None,
) -> bool:
    """One conditional UPDATE: True for the one caller that moved it, whichever node."""
    query = (
        update(CallOffer)
        .where(col(CallOffer.id) == offer_id, col(CallOffer.state).in_(list(was)))
        .values(state=new, settled_at=now)
    )
    if to_user_id is not None:
        query = query.where(col(CallOffer.to_user_id) == to_user_id)
    result = await session.exec(query)
    return bool(result.rowcount == 1)


async def open_offer_of(session: AsyncSession, call_id: str) -> CallOffer | None:
    """The call's offer still open (at most one at a time)."""
    return (
        await session.exec(
            select(CallOffer)
            .where(
                col(CallOffer.call_id) == call_id,
                col(CallOffer.state).in_(list(OPEN_OFFER_STATES)),
            )
            .order_by(col(CallOffer.id).desc())
            .limit(1)
        )
    ).first()


async def cancel_all(session: AsyncSession, call_id: str, now: datetime) -> list[CallOffer]:
    """The call ended: its open offers are cancelled; the ones that were open, for telling."""
    offers = list(
        (
            await session.exec(
                select(CallOffer).where(
                    col(CallOffer.call_id) == call_id,
                    col(CallOffer.state).in_(list(OPEN_OFFER_STATES)),
                )
            )
        ).all()
    )
    for offer in offers:
        assert offer.id is not None
        await settle(session, offer.id, OfferState.CANCELLED, now, was=OPEN_OFFER_STATES)
    return offers
