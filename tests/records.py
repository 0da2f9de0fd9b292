"""What the database holds of a call, read the way the tests compare it."""

from __future__ import annotations

from sqlmodel import col, select

from server.db.models import CallTransition
from server.http.keys import SERVICES_KEY
from tests.staff import Client


async def transitions_of(client: Client, call_id: str) -> list[CallTransition]:
    """The call's transitions, oldest first."""
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        return list(
            (
                await session.exec(
                    select(CallTransition)
                    .where(col(CallTransition.call_id) == call_id)
                    .order_by(col(CallTransition.id))
                )
            ).all()
        )
