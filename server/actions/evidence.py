"""Reaching a call as an evidence officer (a legal hold, a redacted copy): who may, and the
reason they must give, which the audit chain keeps with what they did (EU directive 2016/680
art. 25: who, when, what, why)."""

from __future__ import annotations

from sqlmodel import col, select

from server.actions.access import evidence_channels_for
from server.actions.calls import about
from server.actions.staff_sessions import StaffContext
from server.core.errors import AppError, ErrorCode
from server.core.services import Services
from server.db.models import Call

MAX_REASON_CHARS = 500


def check_reason(reason: str) -> str:
    """A reason (free text or a case number), trimmed; none, or too long, is refused."""
    reason = reason.strip()
    if not reason:
        raise AppError(ErrorCode.REASON_REQUIRED, "Give a reason (free text or a case number)")
    if len(reason) > MAX_REASON_CHARS:
        raise AppError(
            ErrorCode.REASON_TOO_LONG, f"A reason is at most {MAX_REASON_CHARS} characters"
        )
    return reason


async def check_call_for_evidence(services: Services, call_id: str, staff: StaffContext) -> Call:
    """The call, if this staff member may hold it or have it redacted.

    As with ``check_call_for_staff``, the channel filter is in the query: a call of a channel
    the role may not reach is "not found", the same as one that never was.
    """
    allowed = evidence_channels_for(staff.role)
    if not allowed:
        raise AppError(ErrorCode.ROLE_FORBIDDEN, "Your role may not do this")
    async with services.db.session() as session:
        call = (
            await session.exec(
                select(Call).where(col(Call.id) == call_id, col(Call.channel).in_(allowed))
            )
        ).first()
    if call is None:
        raise AppError(ErrorCode.CALL_NOT_FOUND, "No such call")
    about(services, call.channel, call.id)
    return call
