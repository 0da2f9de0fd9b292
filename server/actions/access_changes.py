"""What the internal-security unit reviews: every change to who holds its role, and every
refused attempt at one, read from the audit chain.

Nobody else may make, re-role or re-enable an internal-security account
(``access.check_account_change``); an admin who tries is refused, and the attempt is recorded
and listed here, so it does not stay known to the audit log alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlmodel import col, select

from server.actions.account_admin import ATTEMPTS as RECOVERY_ATTEMPTS
from server.db.engine import Database
from server.db.models import AuditEntry, Role

# The audit actions of account changes; the subject of each is "user:<name>".
ACCOUNT_ACTIONS = (
    "user_created",
    "user_role_changed",
    "user_disabled",
    "user_enabled",
    "account_change_refused",
    # Account recovery: a reset hands over a one-time password that signs in as the account,
    # so the unit sees each of its own (their entries keep the account's role as "role").
    *RECOVERY_ATTEMPTS,
)
SHOWN = 200


@dataclass(frozen=True)
class AccessChange:
    """One entry of the list: who did (or tried) what to which account, from which role to
    which (``before`` None: a new account)."""

    seq: int
    at: datetime
    actor: str
    action: str
    attempt: str
    username: str
    before: str | None
    after: str | None
    outcome: Literal["done", "refused"]
    code: str | None


def _change(entry: AuditEntry) -> AccessChange:
    data = json.loads(entry.data)
    before: str | None
    after: str | None
    if entry.action == "user_created":
        attempt, before, after = "create", None, data.get("role")
    elif entry.action == "user_role_changed":
        attempt, before, after = "role", data.get("from"), data.get("to")
    elif entry.action == "account_change_refused":
        attempt, before, after = data.get("attempt", ""), data.get("from"), data.get("to")
    elif entry.action in RECOVERY_ATTEMPTS:
        attempt = RECOVERY_ATTEMPTS[entry.action]
        before = after = data.get("role")
    else:
        attempt = "disable" if entry.action == "user_disabled" else "enable"
        before = after = data.get("role")
    refused = entry.action == "account_change_refused"
    return AccessChange(
        seq=entry.seq,
        at=entry.at,
        actor=entry.actor,
        action=entry.action,
        attempt=attempt,
        username=entry.subject.removeprefix("user:"),
        before=before,
        after=after,
        outcome="refused" if refused else "done",
        code=data.get("code") if refused else None,
    )


async def internal_security_access_changes(db: Database) -> list[AccessChange]:
    """The newest changes and attempts touching the internal-security role, newest first."""
    async with db.session() as session:
        entries = (
            await session.exec(
                select(AuditEntry)
                .where(
                    col(AuditEntry.action).in_(ACCOUNT_ACTIONS),
                    # A coarse filter in the query (the role's name in the entry's JSON), the
                    # exact one below.
                    col(AuditEntry.data).contains(f'"{Role.INTERNAL_SECURITY.value}"'),
                )
                .order_by(col(AuditEntry.seq).desc())
                .limit(SHOWN)
            )
        ).all()
    changes = [_change(entry) for entry in entries]
    return [c for c in changes if Role.INTERNAL_SECURITY in (c.before, c.after)]
