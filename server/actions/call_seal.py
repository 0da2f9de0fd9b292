"""A call's seal: one SHA-256 over a canonical form of its whole record, entered in the audit
chain (``call_sealed``) when the call ends. The caller's receipt carries it; the public check
page and the export bundle compare against it.

The canonical form is the one definition of "the call's record" (docs/receipt.md): the call
(id, channel, mode, language, its times and final state), every transition, chat message,
location sample, stored recording segment (number, times, size, SHA-256), caller photo and
snapshot (their SHA-256), each list in a fixed order, as JSON with sorted keys, no spaces,
UTF-8, times as UTC ISO 8601 with microseconds. What the operator writes after the end (the
disposition, the note) is not the caller's record and is not in it.

When the seal is made: at the end of the call, after its media node has answered the end. A
media node answers once every segment it closed is stored (in process: stored before the
recorder's close returns; a worker: its reports acknowledged, waited for at most
``media/agent.py: END_CALL_REPORT_WAIT_SECS``), so the seal covers the last segment that
closes "a moment after" the end. The wait is bounded: a segment still not stored then, or one
a media node that died leaves behind (recovered later), is not in the seal; the
``call_sealed`` entry lists the segment numbers it covers and says ``"media"``:
``"closed"`` (and ``"unreported": n`` where n segments were not stored yet),
``"unanswered"`` (a call with recordings whose media node did not answer the end) or
``"none"``; a later segment gets its own ``recording_segment_closed`` entry in the chain (one
recovered after a crash ``recording_segment_recovered``, server/actions/recordings.py). A
record is sealed once: its seal never changes, so the receipt a caller took home stays good. A
call the node that ended it did not seal (it stopped first) is sealed, marked ``late``, when its
receipt is asked for ``LATE_SEAL_AFTER_SECS`` after its end.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.actions.call_limits import network_of
from server.actions.queue import LIVE_STATES
from server.core.errors import AppError, ErrorCode
from server.core.media_rpc import CallEnded
from server.core.services import Services
from server.db.models import (
    AuditEntry,
    Call,
    CallPhoto,
    CallTransition,
    ChatMessage,
    LocationSample,
    Recording,
    Snapshot,
)
from server.security.tokens import token_hash
from server.state.ratelimit import parse_rules

log = logging.getLogger("lifeline.calls")

FORM = "lifeline-call-record/1"
SEALED = "call_sealed"
SEAL_ACTOR = "system:seal"
# An ended call still unsealed this long after its end is sealed when its receipt is asked for
# (the node's wait for its media node's answer, signaling/media_bus.py END_CALL_TIMEOUT_SECS,
# is 8 s).
LATE_SEAL_AFTER_SECS = 30.0
# Compared against when there is no seal, so that a call that does not exist, has not ended or
# is hidden costs the same compare as a wrong seal.
_NO_SEAL = "0" * 64


def _when(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat(timespec="microseconds")


def canonical_json(record: dict[str, Any]) -> bytes:
    """The bytes the seal is the hash of."""
    return json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def seal_of(record: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(record)).hexdigest()


async def call_record(
    session: AsyncSession, call_id: str, *, segments: list[int] | None = None
) -> dict[str, Any] | None:
    """The call's record in its canonical form, read from the database; None: no such call.
    ``segments``: only these recording segments (a seal's own list, to recompute it after
    later segments were stored)."""
    call = await session.get(Call, call_id)
    if call is None:
        return None
    transitions = (
        await session.exec(
            select(CallTransition)
            .where(col(CallTransition.call_id) == call_id)
            .order_by(col(CallTransition.at), col(CallTransition.id))
        )
    ).all()
    chat = (
        await session.exec(
            select(ChatMessage)
            .where(col(ChatMessage.call_id) == call_id)
            .order_by(col(ChatMessage.seq))
        )
    ).all()
    locations = (
        await session.exec(
            select(LocationSample)
            .where(col(LocationSample.call_id) == call_id)
            .order_by(col(LocationSample.seq))
        )
    ).all()
    recordings = [
        row
        for row in (
            await session.exec(
                select(Recording)
                .where(col(Recording.call_id) == call_id)
                .order_by(col(Recording.segment))
            )
        ).all()
        if segments is None or row.segment in segments
    ]
    photos = (
        await session.exec(
            select(CallPhoto).where(col(CallPhoto.call_id) == call_id).order_by(col(CallPhoto.seq))
        )
    ).all()
    snapshots = (
        await session.exec(
            select(Snapshot)
            .where(col(Snapshot.call_id) == call_id)
            .order_by(col(Snapshot.at), col(Snapshot.id))
        )
    ).all()
    return {
        "form": FORM,
        "call": {
            "id": call.id,
            "channel": call.channel,
            "mode": call.mode,
            "language": call.language,
            "state": call.state,
            "created_at": _when(call.created_at),
            "answered_at": _when(call.answered_at),
            "ended_at": _when(call.ended_at),
        },
        "transitions": [
            {
                "at": _when(t.at),
                "from": t.from_state,
                "to": t.to_state,
                "actor": t.actor,
                "reason": t.reason,
            }
            for t in transitions
        ],
        "chat": [
            {"seq": m.seq, "at": _when(m.at), "sender": m.sender, "body": m.body} for m in chat
        ],
        "locations": [
            {
                "seq": s.seq,
                "measured_at": _when(s.measured_at),
                "lat": s.lat,
                "lon": s.lon,
                "accuracy_m": s.accuracy_m,
                "heading_deg": s.heading_deg,
                "speed_mps": s.speed_mps,
            }
            for s in locations
        ],
        "recordings": [
            {
                "segment": r.segment,
                "started_at": _when(r.started_at),
                "ended_at": _when(r.ended_at),
                "size_bytes": r.size_bytes,
                "sha256": r.sha256,
            }
            for r in recordings
        ],
        "photos": [
            {
                "seq": p.seq,
                "at": _when(p.at),
                "content_type": p.content_type,
                "size_bytes": p.size_bytes,
                "sha256": p.sha256,
            }
            for p in photos
        ],
        "snapshots": [
            {"at": _when(s.at), "size_bytes": s.size_bytes, "sha256": s.sha256} for s in snapshots
        ],
    }


async def sealed_entry(session: AsyncSession, call_id: str) -> AuditEntry | None:
    """The call's ``call_sealed`` entry in the chain, if it was sealed."""
    return (
        await session.exec(
            select(AuditEntry)
            .where(col(AuditEntry.subject) == f"call:{call_id}", col(AuditEntry.action) == SEALED)
            .order_by(col(AuditEntry.seq))
            .limit(1)
        )
    ).first()


def seal_in(entry: AuditEntry) -> str:
    """The seal a ``call_sealed`` entry holds."""
    return str(json.loads(entry.data)["seal"])


async def recompute(session: AsyncSession, entry: AuditEntry) -> str | None:
    """The seal of the call's record as stored now, over the segments the seal covered: equal
    to ``seal_in(entry)`` while nothing in the record was changed."""
    call_id = entry.subject.removeprefix("call:")
    segments = [int(n) for n in json.loads(entry.data).get("segments", [])]
    record = await call_record(session, call_id, segments=segments)
    return None if record is None else seal_of(record)


def _media_note(media: CallEnded | None, recordings: int) -> dict[str, Any]:
    if media is not None:
        return {"media": "closed", **({"unreported": media.unreported} if media.unreported else {})}
    return {"media": "unanswered" if recordings else "none"}


async def do_seal(
    services: Services, call_id: str, media: CallEnded | None, *, late: bool = False
) -> AuditEntry | None:
    """Seal an ended call's record (once: a sealed call keeps its seal). ``media``: what its
    media node answered to the end (None: none answered); ``late``: sealed when its receipt
    was asked for, the node that ended it having not (it stopped first). None when the call
    is not over."""
    audit = services.audit
    async with audit.transaction() as session:
        sealed = await sealed_entry(session, call_id)
        if sealed is not None:
            return sealed
        call = await session.get(Call, call_id)
        if call is None or call.state in LIVE_STATES:
            return None
        record = await call_record(session, call_id)
        assert record is not None
        segments = [row["segment"] for row in record["recordings"]]
        entry = await audit.record(
            session,
            actor=SEAL_ACTOR,
            action=SEALED,
            subject=f"call:{call_id}",
            data={
                "seal": seal_of(record),
                "form": FORM,
                "segments": segments,
                **_media_note(media, len(segments)),
                **({"late": True} if late else {}),
            },
        )
    if media is not None and media.unreported:
        log.warning(
            "call sealed before its last segments were stored",
            extra={"unreported": media.unreported},
        )
    return entry


# --- the caller's receipt, and anyone's check of one -------------------------------------------


@dataclass(frozen=True)
class Receipt:
    call_id: str
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    sealed_at: datetime
    seal: str

    def as_json(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "started_at": _when(self.started_at),
            "answered_at": _when(self.answered_at),
            "ended_at": _when(self.ended_at),
            "sealed_at": _when(self.sealed_at),
            "seal": self.seal,
            "form": FORM,
        }


async def citizen_receipt(services: Services, token: str, call_id: str) -> Receipt:
    """The receipt of the call this citizen token opens, once the call is sealed.

    Raises:
        AppError: ``BAD_CALL_TOKEN``, not this call's token; ``RECEIPT_PENDING``, the call
            is live or its seal is being made (ask again in a moment).
    """
    async with services.db.session() as session:
        call = (
            (
                await session.exec(select(Call).where(col(Call.token_hash) == token_hash(token)))
            ).first()
            if token
            else None
        )
        if call is None or call.id != call_id:
            raise AppError(ErrorCode.BAD_CALL_TOKEN, "This call's token is needed")
        entry = await sealed_entry(session, call.id)
    if entry is None and _left_unsealed(services, call):
        entry = await do_seal(services, call.id, None, late=True)
    if entry is None:
        raise AppError(
            ErrorCode.RECEIPT_PENDING,
            "The call's record is sealed when the call ends: ask again in a moment",
            data={"headers": {"Retry-After": "1"}},
        )
    return Receipt(
        call_id=call.id,
        started_at=call.created_at,
        answered_at=call.answered_at,
        ended_at=call.ended_at,
        sealed_at=entry.at,
        seal=seal_in(entry),
    )


def _left_unsealed(services: Services, call: Call) -> bool:
    """Ended longer ago than any end takes to be answered and sealed: the node that ended it
    stopped first (or failed to seal), and nobody else will."""
    if call.state in LIVE_STATES or call.ended_at is None:
        return False
    waited = (services.clock.now() - call.ended_at).total_seconds()
    return waited > LATE_SEAL_AFTER_SECS


async def check_receipt(services: Services, *, call_id: str, seal: str, address: str) -> bool:
    """Whether ``seal`` is the seal of call ``call_id``; nothing else is told. A call that does
    not exist or is not sealed yet is "does not match" like a wrong seal, after the same one
    indexed look-up and the same constant-time compare; the channel is never read, so an
    internal-security call is told apart from no call only by whoever holds its receipt.

    Raises:
        AppError: ``RATE_LIMITED``, the client's network (an IPv6 /64) checked too often.
    """
    rules = parse_rules(services.settings.RECEIPT_CHECK_RATE_LIMIT)
    await services.limits.hit(rules, "receipt_checks", network_of(address))
    async with services.db.session() as session:
        entry = await sealed_entry(session, call_id)
    stored = seal_in(entry) if entry is not None else _NO_SEAL
    matches = hmac.compare_digest(stored.encode(), seal.encode())
    return matches and entry is not None
