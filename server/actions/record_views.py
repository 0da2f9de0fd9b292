"""Justified looks at a call's record: nothing of it is shown before a reason is given.

Opening a record from the archive takes a reason (free text or a case number). One transaction
writes the audit chain's ``record_viewed`` entry (who, when, which call, why, from which
address) and a view: a token the page keeps for this one page view (``ARCHIVE_VIEW_SECS``) and
sends with every recording, snapshot and photo it fetches, so each of those requests carries
the reason too. Playing a segment is one more entry, ``recording_played``, the first time that
segment is fetched within the view (a player's many range requests are one playing), pointing
back to the view's entry and repeating its reason: the chain says which segments were played
under which reason without reading any other table. A snapshot or photo shown is one entry
per fetch (``snapshot_viewed``, ``call_photo_viewed``) with the same reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlmodel import col, select

from server.actions import evidence
from server.actions.archive import check_archive_call
from server.actions.staff_sessions import StaffContext
from server.core.errors import AppError, ErrorCode
from server.core.services import Services
from server.db.models import Call, Recording, RecordPlay, RecordView
from server.security.tokens import new_token, token_hash


def check_reason(raw: str | None) -> str:
    """The reason as kept, whitespace collapsed (the rule every evidence reason follows:
    ``evidence.check_reason``, so a record's reason reads like a legal hold's)."""
    return evidence.check_reason(" ".join((raw or "").split()))


@dataclass(frozen=True)
class PlayedFile:
    """What a segment is played from: the file as its writer left it or, for a segment recovered
    after a crash, the remuxed copy players can seek in (docs/media.md); the original stays
    the evidence, hashed in the chain."""

    key: str
    sha256: str
    copy: bool


def played_file(stored: Recording) -> PlayedFile:
    if stored.playable_path and stored.playable_sha256:
        return PlayedFile(stored.playable_path, stored.playable_sha256, True)
    return PlayedFile(stored.path, stored.sha256 or "", False)


@dataclass(frozen=True)
class OpenedView:
    token: str
    view: RecordView
    call: Call


def justified(view: RecordView, remote: str) -> dict[str, Any]:
    """What every entry made under a view repeats: its reason, its entry, the address."""
    return {"reason": view.reason, "view_entry": view.audit_seq, "remote": remote}


async def do_open_view(
    services: Services, staff: StaffContext, call_id: str, reason: str | None, remote: str
) -> OpenedView:
    """Open a call's record for this staff member, for this reason, from this address."""
    checked = check_reason(reason)
    call = await check_archive_call(services, staff, call_id)
    token = new_token()
    now = services.clock.now()
    async with services.audit.transaction() as session:
        entry = await services.audit.record(
            session,
            actor=staff.username,
            action="record_viewed",
            subject=f"call:{call.id}",
            data={"reason": checked, "remote": remote, "role": staff.role},
        )
        view = RecordView(
            token_hash=token_hash(token),
            call_id=call.id,
            user_id=staff.user_id,
            reason=checked,
            remote=remote,
            audit_seq=entry.seq,
            at=now,
            expires_at=now + timedelta(seconds=services.settings.ARCHIVE_VIEW_SECS),
        )
        session.add(view)
        await session.flush()
    return OpenedView(token, view, call)


async def check_view(
    services: Services, staff: StaffContext, call_id: str, token: str | None
) -> tuple[Call, RecordView]:
    """The view a fetch from a record's page names, if it is this staff member's own, of this
    call, not expired, and the call is still within their archive (an operator's shift ends).

    Raises:
        AppError: ``REASON_REQUIRED`` without a view (no reason was given);
            ``VIEW_EXPIRED`` for a token that is unknown, another's, another call's or old;
            ``CALL_NOT_FOUND`` for a call now outside their archive.
    """
    if not token:
        raise AppError(
            ErrorCode.REASON_REQUIRED,
            "Open the call's record with a reason first (the view token goes with this request)",
        )
    async with services.db.session() as session:
        view = (
            await session.exec(
                select(RecordView).where(col(RecordView.token_hash) == token_hash(token))
            )
        ).first()
    if (
        view is None
        or view.user_id != staff.user_id
        or view.call_id != call_id
        or view.expires_at <= services.clock.now()
    ):
        raise AppError(ErrorCode.VIEW_EXPIRED, "This view of the record has ended: open it again")
    call = await check_archive_call(services, staff, call_id)
    return call, view


async def do_play_segment(
    services: Services,
    staff: StaffContext,
    call: Call,
    view: RecordView,
    segment: int,
    remote: str,
) -> Recording:
    """A segment of the call's recording, played within ``view``: its first fetch in the view
    is entered in the chain (with the view's reason), later range requests only read."""
    async with services.db.session() as session:
        stored = (
            await session.exec(
                select(Recording).where(
                    col(Recording.call_id) == call.id, col(Recording.segment) == segment
                )
            )
        ).first()
    if stored is None:
        raise AppError(ErrorCode.RECORDING_NOT_FOUND, "No such segment of this call's recording")
    if stored.purged_at is not None:
        raise AppError(
            ErrorCode.EVIDENCE_PURGED,
            "Deleted when its retention ended (the audit chain keeps its hash)",
        )
    assert view.id is not None
    async with services.db.session() as session:
        if await session.get(RecordPlay, (view.id, segment)) is not None:
            return stored  # a further range request of a segment already entered
    async with services.audit.transaction() as session:
        # Appends are serialised (the chain's lock): two range requests cannot both miss it.
        if await session.get(RecordPlay, (view.id, segment)) is None:
            entry = await services.audit.record(
                session,
                actor=staff.username,
                action="recording_played",
                subject=f"call:{call.id}",
                data={
                    "segment": segment,
                    "sha256": stored.sha256,
                    # A recovered segment plays from its copy: the chain says which was served.
                    **(
                        {"played_copy_sha256": stored.playable_sha256}
                        if played_file(stored).copy
                        else {}
                    ),
                    **justified(view, remote),
                },
            )
            session.add(
                RecordPlay(
                    view_id=view.id, segment=segment, audit_seq=entry.seq, at=services.clock.now()
                )
            )
    return stored
