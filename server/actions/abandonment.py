"""Queued calls whose caller has gone, abandoned by whichever node is alive.

A caller's page that leaves starts a timer on its node (server/actions/calls.py:
do_citizen_left). That timer lives in one node's memory: a node that restarts or dies loses
it, and a call whose page never connected (``POST /api/calls`` and nothing else) never starts
one. So the call carries ``caller_away_since`` in the database, and every node sweeps each
ABANDON_SWEEP_SECS of its clock: a queued call whose caller has had no page connected, on any
node, for ABANDON_GRACE_SECS is abandoned, and leaves every console and the wall. A call whose
page went with a dead node (no leave was ever handled) is noticed away at the first sweep.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlmodel import col, select

from server.actions.calls import do_finish
from server.actions.queue import citizen_presence
from server.core.errors import AppError
from server.core.services import Services
from server.db.models import Call, CallState

log = logging.getLogger("lifeline.abandonment")

SYSTEM_CALLER_AWAY = "system:caller-away"
ABANDONMENT_TIMER = "abandonment-sweep"


def schedule_abandonment(services: Services) -> None:
    """The node's sweep, each ABANDON_SWEEP_SECS of its clock, from its start."""

    async def round_() -> None:
        try:
            await do_sweep_abandoned(services)
        except Exception:
            log.exception("abandonment sweep failed")  # tried again at the next round
        schedule_abandonment(services)

    services.background.later(
        services.clock, services.settings.ABANDON_SWEEP_SECS, round_, name=ABANDONMENT_TIMER
    )


async def do_sweep_abandoned(services: Services) -> list[str]:
    """One round: queued calls with no page connected anywhere are noted away (if no node had
    noted it), and those away past the grace are abandoned. Returns the abandoned calls' ids."""
    now = services.clock.now()
    due = now - timedelta(seconds=services.settings.ABANDON_GRACE_SECS)
    async with services.db.session() as session:
        queued = (
            await session.exec(
                select(Call.id, Call.caller_away_since).where(col(Call.state) == CallState.QUEUED)
            )
        ).all()
    abandoned: list[str] = []
    for call_id, away_since in queued:
        if await services.presence.count(citizen_presence(call_id)) > 0:
            continue
        if away_since is None:
            await _note_away(services, call_id, now)
        elif _aware(away_since) <= due and await _abandon(services, call_id):
            abandoned.append(call_id)
    return abandoned


async def _note_away(services: Services, call_id: str, now: datetime) -> None:
    """A queued call shown connected with no page anywhere: its node died under it."""
    async with services.db.session() as session:
        await session.exec(
            update(Call)
            .where(col(Call.id) == call_id, col(Call.caller_away_since).is_(None))
            .values(caller_away_since=now)
        )
        await session.commit()


async def _abandon(services: Services, call_id: str) -> bool:
    """End it as a caller who left, unless it changed meanwhile (answered, ended, its page back
    a moment ago): another node's sweep, or an operator, got there first."""
    try:
        state = await do_finish(
            services, call_id=call_id, actor=SYSTEM_CALLER_AWAY, only_from=CallState.QUEUED
        )
    except AppError:  # it changed between the read and the write
        return False
    if state != CallState.ABANDONED:
        return False
    log.info("call abandoned: its caller stayed away past the grace")
    return True


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
