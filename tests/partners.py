"""Open311 partners' API keys in the tests: an admin signed in over real HTTP, issuing and
revoking keys through /api/admin/open311-keys as the /admin page does, and the audit chain's
entries about a key."""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import col, select

from server.core.clock import FrozenClock
from server.db.models import AuditEntry
from tests.staff import Client, add_account, another_browser, services_of, sign_in

KEYS = "/api/admin/open311-keys"


async def admin_desk(client: Client, clock: FrozenClock, name: str = "ada") -> tuple[Client, str]:
    """A second browser on ``client``'s server, signed in as admin ``name``, and its CSRF
    token. Close it after use."""
    browser = await another_browser(client)
    csrf = await sign_in(browser, await add_account(client, name, "admin"), clock)
    return browser, csrf


async def issue_key(
    admin: Client,
    csrf: str,
    partner: str = "City FixMyStreet",
    daily_limit: int = 50,
    reason: str = "Pilot agreed with the city council",
) -> dict[str, Any]:
    """Issue a key; the answer's ``key`` and its one-time ``api_key``."""
    response = await admin.post(
        KEYS,
        json={"partner": partner, "daily_limit": daily_limit, "reason": reason},
        headers={"X-CSRF-Token": csrf},
    )
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def revoke_key(admin: Client, csrf: str, key_id: int, reason: str) -> dict[str, Any]:
    response = await admin.delete(
        f"{KEYS}/{key_id}", json={"reason": reason}, headers={"X-CSRF-Token": csrf}
    )
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def key_audit(client: Client, key_id: int) -> list[dict[str, Any]]:
    """The chain's entries about one key, oldest first."""
    async with services_of(client).db.session() as session:
        rows = (
            await session.exec(
                select(AuditEntry)
                .where(col(AuditEntry.subject) == f"open311_key:{key_id}")
                .order_by(col(AuditEntry.seq))
            )
        ).all()
    return [{"actor": r.actor, "action": r.action, "data": json.loads(r.data)} for r in rows]
