""" "What is happening?": the situation a caller names with one optional tap (a threat to life,
a drunk driver, violence, cruelty to animals, a suspicious person, something else).

It never holds a call up: the page creates the call at once, with the situation if one was
tapped, and a situation tapped later follows as an update. Each setting is audited; the queue,
the wall and the call's console see it at once; the public statistics count calls by it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlmodel import col, func, select

from server.actions.queue import SITUATIONS, summary_of
from server.core.events import CallSituationEvent, QueueCallUpdated, SituationName
from server.core.services import Services
from server.db.models import Call, Channel


async def do_set_situation(
    services: Services, call: Call, situation: SituationName, *, actor: str = "citizen"
) -> None:
    """The caller names (or changes) what is happening on a live call."""
    async with services.audit.transaction() as session:
        await session.exec(update(Call).where(col(Call.id) == call.id).values(situation=situation))
        await services.audit.record(
            session,
            actor=actor,
            action="call_situation_set",
            subject=f"call:{call.id}",
            data={"situation": situation, "was": call.situation},
        )
        fresh = await session.get(Call, call.id)
        assert fresh is not None
        await session.refresh(fresh)
    summary = await summary_of(services, fresh)
    # The queue's consoles and the wall update the call's line; the consoles on the call (an
    # answered call is no longer in their queue) show it in the call's header.
    await services.notifier.to_queue(fresh.channel, QueueCallUpdated(call=summary))
    await services.notifier.to_call_watchers(
        fresh.id, CallSituationEvent(call_id=fresh.id, situation=situation)
    )


async def situation_counts(
    services: Services, *, since: datetime | None = None
) -> dict[SituationName | None, int]:
    """Police calls by situation (None: not said), for the public statistics. Internal
    security's calls are not counted in public."""
    query = (
        select(Call.situation, func.count())
        .where(col(Call.channel) == Channel.POLICE)
        .group_by(col(Call.situation))
    )
    if since is not None:
        query = query.where(col(Call.created_at) >= since)
    async with services.db.session() as session:
        rows = (await session.exec(query)).all()
    counts: dict[SituationName | None, int] = {situation: 0 for situation in SITUATIONS}
    counts[None] = 0
    for situation, count in rows:
        key = situation if situation in SITUATIONS else None
        counts[key] = counts.get(key, 0) + int(count)
    return counts
