"""Who may see and do what: the few rules every path (HTTP, Socket.IO, CLI) calls.

The internal-security channel is enforced here, in the queries that use ``channels_for``, not
only hidden in the UI: for every other role its calls do not exist.
"""

from __future__ import annotations

from server.core.errors import AppError, ErrorCode
from server.db.models import Channel, Role

CONSOLE_ROLES = frozenset({Role.OPERATOR, Role.SUPERVISOR, Role.INTERNAL_SECURITY})
WALL_ROLES = frozenset({Role.SUPERVISOR, Role.INTERNAL_SECURITY})
ADMIN_ROLES = frozenset({Role.ADMIN})
# Roles whose consoles see the threat reports list.
REPORT_DESK_ROLES = frozenset({Role.OPERATOR, Role.SUPERVISOR})

# Which channels each role may see: the internal-security channel is nobody else's.
CHANNELS_BY_ROLE: dict[str, frozenset[str]] = {
    Role.OPERATOR: frozenset({Channel.POLICE}),
    Role.SUPERVISOR: frozenset({Channel.POLICE}),
    Role.INTERNAL_SECURITY: frozenset({Channel.INTERNAL_SECURITY}),
    Role.ADMIN: frozenset(),
}


def channels_for(role: str) -> frozenset[str]:
    return CHANNELS_BY_ROLE.get(role, frozenset())


def check_may_answer(role: str) -> None:
    if role == Role.SUPERVISOR:
        raise AppError(ErrorCode.ROLE_FORBIDDEN, "Supervisors monitor calls; operators answer them")


def check_sees_wall(role: str) -> str:
    """The role whose operators this wall role watches."""
    if role not in WALL_ROLES:
        raise AppError(ErrorCode.ROLE_FORBIDDEN, "Only the wall's roles see operator states")
    return Role.INTERNAL_SECURITY if role == Role.INTERNAL_SECURITY else Role.OPERATOR
