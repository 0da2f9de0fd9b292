"""The CAD webhook's deliveries: each police call's EIDO document posted when the call is
answered and when it ends, signed, retried with backoff, dead-lettered after the last try.

A delivery is a row (``cad_deliveries``) written in the same transaction as the answer or the
end, so a node that restarts or dies between the two loses none. Whichever node is alive posts
it: at once on the node that wrote it, and every node's sweep (each CAD_WEBHOOK_SWEEP_SECS of
its clock) takes the due ones. A node claims a try with one conditional UPDATE (pending, due,
not leased) that leases it past the post's time-out, so two nodes never post the same try;
one that dies mid-post leaves a lease that runs out, and the next sweep tries again. A try
that fails waits CAD_WEBHOOK_BACKOFF_SECS, doubled after each failure; after
CAD_WEBHOOK_ATTEMPTS tries it is dead, listed on /admin, where "retry now" gives it one more.

The body is the document as first built (server/actions/eido.py), kept on the row, so every
try sends the same bytes; the signature is made anew at each try over its timestamp and the
body: ``X-Lifeline-Signature: sha256=HEX(HMAC-SHA256(secret, "<timestamp>." + body))``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.actions import eido
from server.actions.staff_sessions import StaffContext
from server.core.errors import AppError, ErrorCode
from server.core.ports import CadPostFailed
from server.core.services import Services
from server.db.models import CadDelivery, CadDeliveryState, Call, Channel

log = logging.getLogger("lifeline.cad")

CAD_TIMER = "cad-deliveries-sweep"
SYSTEM_CAD = "system:cad-webhook"
ANSWERED = "answered"
ENDED = "ended"
# A sweep's share of due deliveries (the next sweep takes the rest).
SWEEP_BATCH = 50
# A claim outlives the post's time-out by this much: a live node always settles its own try.
LEASE_MARGIN_SECS = 30.0
SIGNATURE_HEADER = "X-Lifeline-Signature"
TIMESTAMP_HEADER = "X-Lifeline-Timestamp"
EVENT_HEADER = "X-Lifeline-Event"
DELIVERY_HEADER = "X-Lifeline-Delivery"


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """What a receiver recomputes with the shared secret: the header's value."""
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def signed_headers(
    secret: bytes, now: datetime, body: bytes, event: str, delivery_id: int
) -> dict[str, str]:
    timestamp = str(int(now.timestamp()))
    return {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature(secret, timestamp, body),
        EVENT_HEADER: event,
        DELIVERY_HEADER: str(delivery_id),
    }


def backoff_secs(services: Services, attempts: int) -> float:
    """How long after its ``attempts``-th failed try a delivery is due again."""
    return float(services.settings.CAD_WEBHOOK_BACKOFF_SECS * 2 ** max(attempts - 1, 0))


async def queue_post(
    services: Services, session: AsyncSession, call: Call, event: str, now: datetime
) -> int | None:
    """A post of ``call``'s document, in the caller's transaction (the answer's, the end's);
    none without a webhook, and none for an internal-security call, which leaves no system
    but the unit's. Its id, for ``post_soon`` once the transaction is committed."""
    if not services.settings.CAD_WEBHOOK_URL or call.channel != Channel.POLICE:
        return None
    delivery = CadDelivery(
        call_id=call.id,
        event=event,
        state=CadDeliveryState.PENDING,
        next_at=now,
        created_at=now,
    )
    session.add(delivery)
    await session.flush()
    return delivery.id


def post_soon(services: Services, delivery_id: int | None) -> None:
    """The first try at once, on this node (the sweeps are the net under it)."""
    if delivery_id is not None:
        services.background.spawn(_try_logged(services, delivery_id), name="cad-post")


async def _try_logged(services: Services, delivery_id: int) -> None:
    try:
        await do_try(services, delivery_id)
    except Exception:
        log.exception("cad delivery failed")  # its lease runs out; a sweep tries again


def schedule_cad_deliveries(services: Services) -> None:
    """The node's sweep, each CAD_WEBHOOK_SWEEP_SECS of its clock, from its start."""

    async def round_() -> None:
        try:
            await do_sweep(services)
        except Exception:
            log.exception("cad delivery sweep failed")  # tried again at the next round
        schedule_cad_deliveries(services)

    services.background.later(
        services.clock, services.settings.CAD_WEBHOOK_SWEEP_SECS, round_, name=CAD_TIMER
    )


def _due(now: datetime) -> Any:
    return (
        col(CadDelivery.state) == CadDeliveryState.PENDING,
        col(CadDelivery.next_at) <= now,
        or_(col(CadDelivery.claimed_until).is_(None), col(CadDelivery.claimed_until) <= now),
    )


async def do_sweep(services: Services) -> list[int]:
    """One round: every due delivery tried once. Returns those delivered."""
    now = services.clock.now()
    async with services.db.session() as session:
        due = (
            await session.exec(
                select(CadDelivery.id)
                .where(*_due(now))
                .order_by(col(CadDelivery.next_at), col(CadDelivery.id))
                .limit(SWEEP_BATCH)
            )
        ).all()
    delivered: list[int] = []
    for delivery_id in due:
        if delivery_id is not None and await do_try(services, delivery_id):
            delivered.append(delivery_id)
    return delivered


async def _claim(services: Services, delivery_id: int, now: datetime) -> datetime | None:
    """This node's lease on one try of a due delivery, or None when it is not due or another
    node holds it (one conditional UPDATE decides)."""
    lease = now + timedelta(seconds=services.settings.CAD_WEBHOOK_TIMEOUT_SECS + LEASE_MARGIN_SECS)
    async with services.db.session() as session:
        result = await session.exec(
            update(CadDelivery)
            .where(col(CadDelivery.id) == delivery_id, *_due(now))
            .values(claimed_until=lease, attempts=col(CadDelivery.attempts) + 1)
        )
        await session.commit()
    return lease if result.rowcount == 1 else None


async def _body(services: Services, delivery: CadDelivery) -> bytes:
    """The document as first built for this delivery, built and kept now if not yet."""
    if delivery.body is not None:
        return delivery.body.encode()
    async with services.db.session() as session:
        call = await session.get(Call, delivery.call_id)
    assert call is not None
    document = await eido.call_document(services, call)
    async with services.db.session() as session:
        await session.exec(
            update(CadDelivery)
            .where(col(CadDelivery.id) == delivery.id, col(CadDelivery.body).is_(None))
            .values(body=document.body.decode())
        )
        await session.commit()
    return document.body


async def do_try(services: Services, delivery_id: int) -> bool:
    """One try of one delivery, if this node wins its claim: posted, and then delivered (an
    ``eido_posted`` entry in the chain), due again later, or dead. True when delivered."""
    now = services.clock.now()
    lease = await _claim(services, delivery_id, now)
    if lease is None:
        return False
    async with services.db.session() as session:
        delivery = await session.get(CadDelivery, delivery_id)
    assert delivery is not None and delivery.id is not None
    body = await _body(services, delivery)
    headers = signed_headers(
        services.settings.cad_webhook_secret, now, body, delivery.event, delivery.id
    )
    try:
        await services.cad.post(body, headers)
    except CadPostFailed as exc:
        await _failed(services, delivery, lease, exc.detail)
        return False
    mine = (col(CadDelivery.id) == delivery.id, col(CadDelivery.claimed_until) == lease)
    async with services.audit.transaction() as session:
        result = await session.exec(
            update(CadDelivery)
            .where(*mine)
            .values(
                state=CadDeliveryState.DELIVERED,
                delivered_at=services.clock.now(),
                claimed_until=None,
                last_error="",
            )
        )
        if result.rowcount == 1:
            await services.audit.record(
                session,
                actor=SYSTEM_CAD,
                action="eido_posted",
                subject=f"call:{delivery.call_id}",
                data={
                    "delivery": delivery.id,
                    "event": delivery.event,
                    "attempt": delivery.attempts,
                    "sha256": hashlib.sha256(body).hexdigest(),
                },
            )
    return result.rowcount == 1


async def _failed(services: Services, delivery: CadDelivery, lease: datetime, error: str) -> None:
    """Due again after the backoff, or, its last try spent, dead: on /admin's list."""
    now = services.clock.now()
    mine = (col(CadDelivery.id) == delivery.id, col(CadDelivery.claimed_until) == lease)
    if delivery.attempts < services.settings.CAD_WEBHOOK_ATTEMPTS:
        async with services.db.session() as session:
            await session.exec(
                update(CadDelivery)
                .where(*mine)
                .values(
                    next_at=now + timedelta(seconds=backoff_secs(services, delivery.attempts)),
                    claimed_until=None,
                    last_error=error[:255],
                )
            )
            await session.commit()
        return
    async with services.audit.transaction() as session:
        result = await session.exec(
            update(CadDelivery)
            .where(*mine)
            .values(
                state=CadDeliveryState.DEAD, dead_at=now, claimed_until=None, last_error=error[:255]
            )
        )
        if result.rowcount == 1:
            await services.audit.record(
                session,
                actor=SYSTEM_CAD,
                action="eido_post_dead_lettered",
                subject=f"call:{delivery.call_id}",
                data={
                    "delivery": delivery.id,
                    "event": delivery.event,
                    "attempts": delivery.attempts,
                    "error": error[:255],
                },
            )
    log.warning("cad delivery dead-lettered", extra={"attempts": delivery.attempts})


# --- the dead-letter list on /admin --------------------------------------------------------


@dataclass(frozen=True)
class DeadLetter:
    id: int
    call_id: str
    event: str
    attempts: int
    last_error: str
    created_at: datetime
    dead_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "call_id": self.call_id,
            "event": self.event,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "created_at": self.created_at.isoformat(),
            "dead_at": self.dead_at.isoformat() if self.dead_at else None,
        }


def _letter(row: CadDelivery) -> DeadLetter:
    assert row.id is not None
    return DeadLetter(
        id=row.id,
        call_id=row.call_id,
        event=row.event,
        attempts=row.attempts,
        last_error=row.last_error,
        created_at=row.created_at,
        dead_at=row.dead_at,
    )


async def dead_letters(services: Services, limit: int = 200) -> list[DeadLetter]:
    """The deliveries every try of which failed, the last to die first."""
    async with services.db.session() as session:
        rows = (
            await session.exec(
                select(CadDelivery)
                .where(col(CadDelivery.state) == CadDeliveryState.DEAD)
                .order_by(col(CadDelivery.dead_at).desc(), col(CadDelivery.id).desc())
                .limit(limit)
            )
        ).all()
    return [_letter(row) for row in rows]


async def do_retry_now(services: Services, staff: StaffContext, delivery_id: int) -> DeadLetter:
    """An admin's "retry now": a dead delivery is due at once for one more try (one that
    fails goes back on the list), entered in the chain as ``eido_post_retried``."""
    now = services.clock.now()
    async with services.audit.transaction() as session:
        row = await session.get(CadDelivery, delivery_id)
        if row is None:
            raise AppError(ErrorCode.DELIVERY_NOT_FOUND, "No such delivery")
        result = await session.exec(
            update(CadDelivery)
            .where(
                col(CadDelivery.id) == delivery_id,
                col(CadDelivery.state) == CadDeliveryState.DEAD,
            )
            .values(
                state=CadDeliveryState.PENDING,
                next_at=now,
                dead_at=None,
                claimed_until=None,
                # One more try: a failure puts it back on the list at once.
                attempts=max(services.settings.CAD_WEBHOOK_ATTEMPTS - 1, 0),
            )
        )
        if result.rowcount != 1:
            raise AppError(ErrorCode.DELIVERY_NOT_DEAD, "This delivery is not dead-lettered")
        await services.audit.record(
            session,
            actor=staff.username,
            action="eido_post_retried",
            subject=f"call:{row.call_id}",
            data={"delivery": delivery_id, "event": row.event, "role": staff.role},
        )
        await session.refresh(row)
        letter = _letter(row)
    post_soon(services, delivery_id)
    return letter
