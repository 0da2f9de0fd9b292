"""Who may see and do what: the few rules every path (HTTP, Socket.IO, CLI) calls.

The internal-security channel is enforced here, in the queries that use ``channels_for``, not
only hidden in the UI: for every other role its calls do not exist. Nor may any other role make,
re-role or unlock an internal-security account (``check_account_change``), which would let it
sign in as one; and the logs and the shared audit chain name the channel's calls and callers
only by keyed hashes.
"""

from __future__ import annotations

from server.core.errors import AppError, ErrorCode
from server.db.models import Channel, Role
from server.security.pseudonyms import Pseudonyms

CONSOLE_ROLES = frozenset({Role.OPERATOR, Role.SUPERVISOR, Role.INTERNAL_SECURITY})
WALL_ROLES = frozenset({Role.SUPERVISOR, Role.INTERNAL_SECURITY})
# The console roles that answer callers (and so invite them, claim their threads):
# supervisors monitor (``check_may_answer``).
ANSWER_ROLES = CONSOLE_ROLES - {Role.SUPERVISOR}
ADMIN_ROLES = frozenset({Role.ADMIN})
# Roles that open /security: the unit's officers and the changes to its access.
SECURITY_ROLES = frozenset({Role.INTERNAL_SECURITY})
# Roles whose consoles see the threat reports list.
REPORT_DESK_ROLES = frozenset({Role.OPERATOR, Role.SUPERVISOR})

# Which channels each role may see: the internal-security channel is nobody else's.
CHANNELS_BY_ROLE: dict[str, frozenset[str]] = {
    Role.OPERATOR: frozenset({Channel.POLICE}),
    Role.SUPERVISOR: frozenset({Channel.POLICE}),
    Role.INTERNAL_SECURITY: frozenset({Channel.INTERNAL_SECURITY}),
    Role.ADMIN: frozenset(),
}

# Who may put a call's evidence under a legal hold, lift it, or have a redacted copy made for
# disclosure: supervisors and admins for police calls; for the misconduct channel only its own
# unit (an admin who could would reach a hidden call's recordings).
EVIDENCE_ROLES_BY_CHANNEL: dict[str, frozenset[str]] = {
    Channel.POLICE: frozenset({Role.SUPERVISOR, Role.ADMIN}),
    Channel.INTERNAL_SECURITY: frozenset({Role.INTERNAL_SECURITY}),
}
EVIDENCE_ROLES = frozenset({Role.SUPERVISOR, Role.ADMIN, Role.INTERNAL_SECURITY})


# Who opens the archive, and which channels' past calls each finds there (an operator only
# their own calls of the last shift: server/actions/archive.py). Admins audit the police's
# work; the internal-security channel stays the unit's alone.
ARCHIVE_ROLES = frozenset({Role.OPERATOR, Role.SUPERVISOR, Role.INTERNAL_SECURITY, Role.ADMIN})
ARCHIVE_CHANNELS_BY_ROLE: dict[str, frozenset[str]] = {
    Role.OPERATOR: frozenset({Channel.POLICE}),
    Role.SUPERVISOR: frozenset({Channel.POLICE}),
    Role.INTERNAL_SECURITY: frozenset({Channel.INTERNAL_SECURITY}),
    Role.ADMIN: frozenset({Channel.POLICE}),
}


# The command line on the server, an authority above the roles: whoever can run it can read the
# database itself. It alone makes the first internal-security account.
COMMAND_LINE = "command_line"


def channels_for(role: str) -> frozenset[str]:
    return CHANNELS_BY_ROLE.get(role, frozenset())


def evidence_channels_for(role: str) -> frozenset[str]:
    """The channels whose calls this role may hold or have redacted."""
    return frozenset(
        channel for channel, roles in EVIDENCE_ROLES_BY_CHANNEL.items() if role in roles
    )


def archive_channels_for(role: str) -> frozenset[str]:
    return ARCHIVE_CHANNELS_BY_ROLE.get(role, frozenset())


def check_may_answer(role: str) -> None:
    if role == Role.SUPERVISOR:
        raise AppError(ErrorCode.ROLE_FORBIDDEN, "Supervisors monitor calls; operators answer them")


def check_sees_wall(role: str) -> str:
    """The role whose operators this wall role watches."""
    if role not in WALL_ROLES:
        raise AppError(ErrorCode.ROLE_FORBIDDEN, "Only the wall's roles see operator states")
    return Role.INTERNAL_SECURITY if role == Role.INTERNAL_SECURITY else Role.OPERATOR


def check_account_change(authority: str, *, before: str | None, after: str) -> None:
    """May ``authority`` (a role, or ``COMMAND_LINE``) turn an account of role ``before`` (None:
    a new one) into one of role ``after`` (for disabling or enabling, its own role)?

    Internal-security accounts are the unit's own business: an admin who could make one, give
    the role, or re-enable one could sign in as it and read the misconduct channel. Between
    internal security and admin only the command line moves an account.
    """
    if authority == COMMAND_LINE:
        return
    roles = {before, after}
    if Role.INTERNAL_SECURITY in roles and authority != Role.INTERNAL_SECURITY:
        raise AppError(
            ErrorCode.INTERNAL_SECURITY_ONLY,
            "Only internal security makes, changes or unlocks internal-security accounts",
        )
    if Role.ADMIN in roles and authority != Role.ADMIN:
        raise AppError(ErrorCode.ROLE_FORBIDDEN, "Only admins make or change admin accounts")
    if Role.INTERNAL_SECURITY not in roles and authority not in ADMIN_ROLES:
        raise AppError(ErrorCode.ROLE_FORBIDDEN, "Only admins manage these accounts")


def call_log_name(pseudonyms: Pseudonyms, channel: str, call_id: str) -> str:
    """How the logs name a call: an internal-security call by a keyed hash, never its id."""
    if channel == Channel.INTERNAL_SECURITY:
        return pseudonyms.call_log_name(call_id)
    return call_id


def caller_address(pseudonyms: Pseudonyms, channel: str, remote: str) -> dict[str, str]:
    """What the shared audit chain keeps of a caller's address: a misconduct caller's only as
    its keyed hash (whoever holds the key can check a suspected address; nobody can read it)."""
    if channel == Channel.INTERNAL_SECURITY:
        return {"remote_hash": pseudonyms.of("remote", remote)}
    return {"remote": remote}
