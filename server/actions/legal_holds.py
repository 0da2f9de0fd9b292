"""A legal hold on a call: while it is set, retention deletes nothing of the call (its
recordings, snapshots, photos and redacted copies), however old. Set and lifted by an evidence
officer with a reason; each time is an entry in the audit chain.

The hold is read again inside the purge's own write transaction (server/actions/retention.py),
and both write under the audit chain's lock: a hold set while a purge runs stops it for every
item it has not yet deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlmodel import col

from server.actions.evidence import check_call_for_evidence, check_reason
from server.actions.staff_sessions import StaffContext
from server.core.errors import AppError, ErrorCode
from server.core.services import Services
from server.db.models import Call


@dataclass(frozen=True)
class Hold:
    call_id: str
    held: bool
    since: datetime | None
    by: str | None
    reason: str | None

    @classmethod
    def of(cls, call: Call) -> Hold:
        return cls(call.id, call.held_at is not None, call.held_at, call.held_by, call.hold_reason)


async def hold_of(services: Services, call_id: str, staff: StaffContext) -> Hold:
    return Hold.of(await check_call_for_evidence(services, call_id, staff))


async def do_set_hold(services: Services, call_id: str, staff: StaffContext, reason: str) -> Hold:
    """Hold the call's evidence.

    Raises:
        AppError: ``ALREADY_HELD`` (409), the call is held already (lift it first to give
            another reason: the chain keeps each).
    """
    reason = check_reason(reason)
    call = await check_call_for_evidence(services, call_id, staff)
    now = services.clock.now()
    async with services.audit.transaction() as session:
        result = await session.exec(
            update(Call)
            .where(col(Call.id) == call.id, col(Call.held_at).is_(None))
            .values(held_at=now, held_by=staff.username, hold_reason=reason)
        )
        if result.rowcount != 1:
            raise AppError(ErrorCode.ALREADY_HELD, "This call is under a legal hold already")
        await services.audit.record(
            session,
            actor=staff.username,
            action="legal_hold_set",
            subject=f"call:{call.id}",
            data={"reason": reason},
        )
    return Hold(call.id, True, now, staff.username, reason)


async def do_lift_hold(services: Services, call_id: str, staff: StaffContext, reason: str) -> Hold:
    """Lift the hold: the call's evidence is again deleted when its retention ends (at once,
    at the next purge, if it has ended already).

    Raises:
        AppError: ``NOT_HELD`` (409), there is no hold to lift.
    """
    reason = check_reason(reason)
    call = await check_call_for_evidence(services, call_id, staff)
    async with services.audit.transaction() as session:
        held = await session.get(Call, call.id)
        held_since = held.held_at.isoformat() if held and held.held_at else None
        result = await session.exec(
            update(Call)
            .where(col(Call.id) == call.id, col(Call.held_at).is_not(None))
            .values(held_at=None, held_by=None, hold_reason=None)
        )
        if result.rowcount != 1:
            raise AppError(ErrorCode.NOT_HELD, "This call is not under a legal hold")
        await services.audit.record(
            session,
            actor=staff.username,
            action="legal_hold_lifted",
            subject=f"call:{call.id}",
            data={
                "reason": reason,
                "held_since": held_since,
            },
        )
    return Hold(call.id, False, None, None, None)
