"""Message threads without a call ("102"): a citizen writes, with photos and video clips, and an
operator of the channel claims the thread and answers in it.

A thread is opened by its capability token (kept on the citizen's device, stored here only as
its hash), as a call is. Every message takes the thread's next sequence number in the same
transaction that stores it and is sent only after: a page that reloads asks for what follows
the last number it saw. A resend carries its client id and is stored once. Claiming is one
conditional UPDATE (``open`` -> ``claimed``), so two operators never hold one thread. The
internal-security channel's threads exist only for its own role: ``channels_for`` is in every
query. Photos and clips are evidence, kept as sent with their hash and entered in the chain,
as a call's; text is not, as call chat is not.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal

from sqlalchemy import ColumnElement, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from server.actions.access import caller_address, channels_for, check_may_answer
from server.actions.archive import DISPOSITIONS
from server.actions.call_limits import Caller
from server.actions.calls import check_language
from server.actions.queue import CALL_MARKS
from server.actions.staff_sessions import StaffContext
from server.actions.uploads import sniff_image
from server.actions.video_clips import MEGABYTE, container_of, sniff_clip
from server.core.errors import AppError, ErrorCode
from server.core.events import (
    CallMark,
    ThreadMessageEvent,
    ThreadStateEvent,
    ThreadSummary,
    ThreadUpdatedEvent,
)
from server.core.services import Services
from server.core.storage import thread_file_key
from server.db.models import MessageThread, ThreadMessage, ThreadState, User
from server.security.tokens import new_token, token_hash
from server.state.ratelimit import Exceeded, parse_rules

log = logging.getLogger("lifeline.threads")

MAX_BODY_CHARS = 2000
MAX_CONTACT_CHARS = 200
MAX_NOTE_CHARS = 2000
PREVIEW_CHARS = 120
REPLAY_LIMIT = 500
# Closed threads stay on the Messages tab this long (the operator sees what they closed).
LISTED_THREADS = 200

Sender = Literal["citizen", "operator"]


@dataclass(frozen=True)
class NewThread:
    thread: MessageThread
    token: str


@dataclass(frozen=True)
class Attachment:
    """A photo or clip, already sniffed: what is stored of it."""

    kind: Literal["photo", "video"]
    data: bytes
    content_type: str
    extension: str
    width: int
    height: int
    sha256: str


@dataclass(frozen=True)
class StoredMessage:
    message: ThreadMessage
    duplicate: bool


def marks_of(thread: MessageThread) -> list[CallMark]:
    return [mark for mark in CALL_MARKS if mark in thread.marks.split(",")]


# --- what the pages receive --------------------------------------------------------------------


def message_event(message: ThreadMessage, sender_name: str | None = None) -> ThreadMessageEvent:
    kind: Literal["photo", "video"] | None = (
        "video" if message.kind == "video" else "photo" if message.kind == "photo" else None
    )
    return ThreadMessageEvent(
        thread_id=message.thread_id,
        seq=message.seq,
        sender="operator" if message.sender == "operator" else "citizen",
        sender_name=sender_name,
        client_id=message.client_id,
        body=message.body,
        kind=kind,
        url=(
            f"/api/threads/{message.thread_id}/attachments/{message.seq}"
            if kind is not None
            else None
        ),
        sha256=message.sha256,
        at=message.at,
    )


async def summary_of(session: AsyncSession, thread: MessageThread) -> ThreadSummary:
    last = (
        await session.exec(
            select(ThreadMessage)
            .where(col(ThreadMessage.thread_id) == thread.id)
            .order_by(col(ThreadMessage.seq).desc())
            .limit(1)
        )
    ).first()
    claimed_by = None
    if thread.claimed_by is not None:
        user = await session.get(User, thread.claimed_by)
        claimed_by = user.username if user is not None else None
    preview = ""
    if last is not None:
        preview = last.body[:PREVIEW_CHARS] or (last.kind or "")
    state: Literal["open", "claimed", "closed"] = (
        "closed"
        if thread.state == ThreadState.CLOSED
        else "claimed"
        if thread.state == ThreadState.CLAIMED
        else "open"
    )
    return ThreadSummary(
        thread_id=thread.id,
        channel="internal_security" if thread.channel == "internal_security" else "police",
        language=thread.language,
        state=state,
        claimed_by=claimed_by,
        unread=thread.unread,
        last_seq=thread.last_seq,
        marks=marks_of(thread),
        preview=preview,
        contact=thread.contact,
        lat=thread.lat,
        lon=thread.lon,
        accuracy=thread.accuracy_m,
        disposition=thread.disposition,
        report_id=thread.report_id,
        created_at=thread.created_at,
        last_at=thread.last_at,
    )


async def _tell_desks(services: Services, thread_id: str) -> ThreadSummary:
    """The channel's consoles get the thread as it is now (read back: one source of truth)."""
    async with services.db.session() as session:
        thread = await session.get(MessageThread, thread_id)
        assert thread is not None
        summary = await summary_of(session, thread)
    await services.notifier.to_queue(thread.channel, ThreadUpdatedEvent(thread=summary))
    return summary


# --- the citizen's side ------------------------------------------------------------------------


def _check_text(value: str | None, name: str, limit: int) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if len(value) > limit:
        raise AppError(ErrorCode.INVALID, f"{name}: at most {limit} characters")
    if any(ord(c) < 32 and c not in "\n\t" for c in value):
        raise AppError(ErrorCode.INVALID, f"{name}: control characters are not allowed")
    return value or None


async def over_thread_limit(services: Services, caller: Caller) -> bool:
    """Count one new thread of ``caller``; True when it went over (marked, never refused)."""
    key = f"device:{caller.device}" if caller.device else f"network:{caller.network}"
    try:
        await services.limits.hit(parse_rules(services.settings.THREAD_RATE_LIMIT), "threads", key)
    except AppError as exc:
        if exc.code is not ErrorCode.RATE_LIMITED:
            raise
        log.warning("thread over the rate limit: marked", extra={"by": key.split(":")[0]})
        return True
    return False


async def do_create_thread(
    services: Services,
    *,
    channel: str,
    language: str,
    contact: str | None,
    location: tuple[float, float, float | None] | None,
    remote: str,
    marks: Sequence[CallMark] = (),
) -> NewThread:
    """A citizen's new thread, open on its channel's Messages tab, with its token."""
    token = new_token()
    now = services.clock.now()
    lat, lon, accuracy = location if location is not None else (None, None, None)
    thread = MessageThread(
        id=str(uuid.uuid4()),
        channel=channel,
        language=check_language(language),
        state=ThreadState.OPEN,
        token_hash=token_hash(token),
        marks=",".join(marks),
        contact=_check_text(contact, "contact", MAX_CONTACT_CHARS),
        lat=lat,
        lon=lon,
        accuracy_m=accuracy,
        created_at=now,
        last_at=now,
    )
    audit = services.audit
    async with audit.transaction() as session:
        session.add(thread)
        await audit.record(
            session,
            actor="citizen",
            action="thread_created",
            subject=f"thread:{thread.id}",
            data={
                "channel": channel,
                **caller_address(services.pseudonyms, channel, remote),
                **({"marks": list(marks)} if marks else {}),
            },
        )
    await _tell_desks(services, thread.id)
    return NewThread(thread, token)


async def thread_by_token(services: Services, token: str) -> MessageThread | None:
    if not token:
        return None
    async with services.db.session() as session:
        return (
            await session.exec(
                select(MessageThread).where(col(MessageThread.token_hash) == token_hash(token))
            )
        ).first()


async def check_citizen_thread(services: Services, token: str, thread_id: str) -> MessageThread:
    """The thread this token opens, and that it is ``thread_id`` (closed threads too: they
    are read; ``do_post`` refuses writing to them)."""
    thread = await thread_by_token(services, token)
    if thread is None or thread.id != thread_id:
        raise AppError(ErrorCode.BAD_THREAD_TOKEN, "This thread's own token is needed")
    return thread


def _message_limit(reason: str, over: Exceeded) -> AppError:
    return AppError(
        ErrorCode.MESSAGE_LIMIT,
        f"{reason}: send it again in {over.retry_after_secs} s. Your messages so far are kept.",
        data={"headers": {"Retry-After": str(over.retry_after_secs)}},
    )


async def _mark(services: Services, thread_id: str, mark: CallMark, reason: str) -> None:
    """Add ``mark`` once, audited, and shown on the channel's Messages tab."""
    async with services.audit.transaction() as session:
        thread = await session.get(MessageThread, thread_id)
        if thread is None or mark in marks_of(thread):
            return
        thread.marks = ",".join([*marks_of(thread), mark])
        session.add(thread)
        await services.audit.record(
            session,
            actor="system",
            action="thread_marked",
            subject=f"thread:{thread_id}",
            data={"mark": mark, "reason": reason},
        )
    log.warning("thread marked", extra={"mark": mark})
    await _tell_desks(services, thread_id)


async def check_citizen_quota(services: Services, thread: MessageThread, size: int) -> None:
    """The citizen's messages per window, and megabytes of photos and clips, per thread. The
    one over is refused (429); the thread is marked ``flooding``, and goes on."""
    settings = services.settings
    over = await services.limits.take(
        parse_rules(settings.THREAD_MESSAGE_RATE_LIMIT), "thread_messages", thread.id
    )
    if over is None and size:
        megabytes = parse_rules(settings.THREAD_UPLOAD_MEGABYTES_LIMIT)
        in_bytes = [type(r)(r.amount * MEGABYTE, r.multiples, r.namespace) for r in megabytes]
        over_bytes = await services.limits.take_amount(
            in_bytes, "thread_upload_bytes", thread.id, size
        )
        if over_bytes is not None:
            rule = megabytes[in_bytes.index(over_bytes.rule)]
            await _mark(services, thread.id, "flooding", f"over {rule} of uploads")
            raise _message_limit(f"Too many megabytes in this thread: at most {rule}", over_bytes)
    if over is not None:
        await _mark(services, thread.id, "flooding", f"over {over.rule} messages")
        raise _message_limit(f"Too many messages: at most {over.rule}", over)


async def sniff_attachment(services: Services, data: bytes) -> Attachment:
    """A photo (JPEG/PNG/WebP) or a video clip (MP4/WebM), told apart by its bytes."""
    try:
        container_of(data)
    except AppError:
        image = await services.image_pool.run(partial(sniff_image, data), urgent=True)
        return Attachment(
            "photo",
            image.data,
            image.content_type,
            image.extension,
            image.width,
            image.height,
            image.sha256,
        )
    clip = await sniff_clip(services, data)
    return Attachment(
        "video", clip.data, clip.content_type, clip.extension, clip.width, clip.height, clip.sha256
    )


# --- storing a message -------------------------------------------------------------------------


async def do_post(
    services: Services,
    thread: MessageThread,
    *,
    client_id: str,
    body: str,
    attachment: Attachment | None = None,
    staff: StaffContext | None = None,
) -> StoredMessage:
    """Store one message (the citizen's, or ``staff``'s, who holds the thread) and only then
    send it to both sides; a resend (same client id) returns the stored one and sends nothing.
    A closed thread takes nothing more."""
    text = (body or "").strip()
    if len(text) > MAX_BODY_CHARS:
        raise AppError(ErrorCode.INVALID, f"body: at most {MAX_BODY_CHARS} characters")
    if not text and attachment is None:
        raise AppError(ErrorCode.MESSAGE_EMPTY, "Write something, or attach a photo or clip")
    sender: Sender = "citizen" if staff is None else "operator"
    audit = services.audit
    for _attempt in range(2):
        # Photos and clips are evidence, in the chain (under its lock); text is not.
        writing = audit.transaction() if attachment is not None else services.db.session()
        async with writing as session:
            existing = (
                await session.exec(
                    select(ThreadMessage).where(
                        col(ThreadMessage.thread_id) == thread.id,
                        col(ThreadMessage.client_id) == client_id,
                    )
                )
            ).first()
            if existing is not None:
                return StoredMessage(existing, duplicate=True)
            now = services.clock.now()
            # The citizen's message counts as unread; the operator's answer reads them all.
            values = {"unread": col(MessageThread.unread) + 1} if staff is None else {"unread": 0}
            conditions = [
                col(MessageThread.id) == thread.id,
                col(MessageThread.state) != ThreadState.CLOSED,
            ]
            if staff is not None:
                conditions += [
                    col(MessageThread.state) == ThreadState.CLAIMED,
                    col(MessageThread.claimed_by) == staff.user_id,
                ]
            row = (
                await session.exec(
                    update(MessageThread)
                    .where(*conditions)
                    .values(last_seq=col(MessageThread.last_seq) + 1, last_at=now, **values)
                    .returning(col(MessageThread.last_seq))
                )
            ).one_or_none()
            if row is None:
                await session.rollback()
                raise await _why_not_postable(services, thread.id, staff)
            seq = int(row[0])
            message = ThreadMessage(
                thread_id=thread.id,
                seq=seq,
                sender=sender,
                sender_user_id=None if staff is None else staff.user_id,
                client_id=client_id,
                body=text,
                at=now,
            )
            if attachment is not None:
                key = thread_file_key(thread.id, seq, attachment.sha256, attachment.extension)
                await asyncio.to_thread(services.storage.put, key, attachment.data)
                message.kind = attachment.kind
                message.path = key
                message.content_type = attachment.content_type
                message.sha256 = attachment.sha256
                message.size_bytes = len(attachment.data)
                message.width = attachment.width
                message.height = attachment.height
            session.add(message)
            if attachment is not None:
                await audit.record(
                    session,
                    actor="citizen" if staff is None else staff.username,
                    action=f"thread_{attachment.kind}_received",
                    subject=f"thread:{thread.id}",
                    data={
                        "seq": seq,
                        "sha256": attachment.sha256,
                        "size_bytes": len(attachment.data),
                    },
                )
            try:
                await session.flush()
                if attachment is None:
                    await session.commit()
            except IntegrityError:  # the same resend raced in on another connection
                await session.rollback()
                continue
        event = message_event(message, None if staff is None else staff.username)
        await services.notifier.to_thread(thread.id, event)
        await _tell_desks(services, thread.id)
        return StoredMessage(message, duplicate=False)
    raise AppError(ErrorCode.THREAD_CONFLICT, "The message could not be stored; send it again")


async def _why_not_postable(
    services: Services, thread_id: str, staff: StaffContext | None
) -> AppError:
    async with services.db.session() as session:
        thread = await session.get(MessageThread, thread_id)
    if thread is None:
        return AppError(ErrorCode.THREAD_NOT_FOUND, "No such thread")
    if thread.state == ThreadState.CLOSED:
        return AppError(ErrorCode.THREAD_CLOSED, "This thread is closed: start a new message")
    assert staff is not None
    return AppError(ErrorCode.THREAD_NOT_YOURS, "Claim the thread before answering in it")


async def messages_since(
    services: Services, thread_id: str, last_seq: int
) -> list[ThreadMessageEvent]:
    """The thread's stored messages after ``last_seq``, in order, as the pages get them live."""
    async with services.db.session() as session:
        rows = (
            await session.exec(
                select(ThreadMessage, User.username)
                .join(User, col(User.id) == col(ThreadMessage.sender_user_id), isouter=True)
                .where(col(ThreadMessage.thread_id) == thread_id, col(ThreadMessage.seq) > last_seq)
                .order_by(col(ThreadMessage.seq))
                .limit(REPLAY_LIMIT)
            )
        ).all()
    return [message_event(message, name) for message, name in rows]


async def state_of(services: Services, thread_id: str) -> Literal["open", "claimed", "closed"]:
    async with services.db.session() as session:
        thread = await session.get(MessageThread, thread_id)
    if thread is None:
        raise AppError(ErrorCode.THREAD_NOT_FOUND, "No such thread")
    state = thread.state
    return "closed" if state == "closed" else "claimed" if state == "claimed" else "open"


async def attachment_of(services: Services, thread_id: str, seq: int) -> ThreadMessage:
    async with services.db.session() as session:
        message = (
            await session.exec(
                select(ThreadMessage).where(
                    col(ThreadMessage.thread_id) == thread_id, col(ThreadMessage.seq) == seq
                )
            )
        ).first()
    if message is None or message.path is None:
        raise AppError(ErrorCode.PHOTO_NOT_FOUND, "No such photo or clip")
    return message


# --- the console's side ------------------------------------------------------------------------


async def check_thread_for_staff(
    services: Services, thread_id: str, staff: StaffContext
) -> MessageThread:
    """The thread, when the staff member's role sees its channel (else it does not exist)."""
    async with services.db.session() as session:
        thread = (
            await session.exec(
                select(MessageThread).where(
                    col(MessageThread.id) == thread_id,
                    col(MessageThread.channel).in_(channels_for(staff.role)),
                )
            )
        ).first()
    if thread is None:
        raise AppError(ErrorCode.THREAD_NOT_FOUND, "No such thread")
    return thread


async def list_one(services: Services, thread: MessageThread) -> ThreadSummary:
    async with services.db.session() as session:
        return await summary_of(session, thread)


async def list_threads(services: Services, staff: StaffContext) -> list[ThreadSummary]:
    """The Messages tab: the channel's threads, open and claimed first, newest last."""
    async with services.db.session() as session:
        threads = (
            await session.exec(
                select(MessageThread)
                .where(col(MessageThread.channel).in_(channels_for(staff.role)))
                .order_by(col(MessageThread.last_at).desc())
                .limit(LISTED_THREADS)
            )
        ).all()
        return [await summary_of(session, thread) for thread in threads]


async def _transition(
    services: Services,
    staff: StaffContext,
    thread_id: str,
    *,
    where: Sequence[ColumnElement[bool]],
    values: Mapping[str, object],
    to: Literal["claimed", "closed"],
    data: Mapping[str, object],
) -> bool:
    """One conditional UPDATE of the thread (``where``), audited and told to the citizen's
    page and the consoles; False, with nothing changed, when no row matched."""
    now = services.clock.now()
    audit = services.audit
    async with audit.transaction() as session:
        result = await session.exec(
            update(MessageThread)
            .where(col(MessageThread.id) == thread_id, *where)
            .values(state=to, **values)
        )
        if result.rowcount != 1:
            await session.rollback()
            return False
        await audit.record(
            session,
            actor=staff.username,
            action=f"thread_{to}",
            subject=f"thread:{thread_id}",
            data=dict(data),
        )
    await services.notifier.to_thread(
        thread_id, ThreadStateEvent(thread_id=thread_id, state=to, at=now)
    )
    return True


async def do_claim(services: Services, *, thread_id: str, staff: StaffContext) -> ThreadSummary:
    """Take an open thread: one conditional UPDATE, so exactly one operator wins."""
    check_may_answer(staff.role)
    taken = await _transition(
        services,
        staff,
        thread_id,
        where=[
            col(MessageThread.state) == ThreadState.OPEN,
            col(MessageThread.channel).in_(channels_for(staff.role)),
        ],
        values={"claimed_by": staff.user_id, "claimed_at": services.clock.now()},
        to="claimed",
        data={},
    )
    if not taken:
        thread = await check_thread_for_staff(services, thread_id, staff)
        if thread.state == ThreadState.CLOSED:
            raise AppError(ErrorCode.THREAD_CLOSED, "This thread is closed")
        raise AppError(ErrorCode.THREAD_TAKEN, "Another operator has this thread")
    return await _tell_desks(services, thread_id)


async def check_holder(services: Services, thread_id: str, staff: StaffContext) -> MessageThread:
    """The thread, when ``staff`` holds it (claimed by them, not closed)."""
    thread = await check_thread_for_staff(services, thread_id, staff)
    if thread.state == ThreadState.CLOSED:
        raise AppError(ErrorCode.THREAD_CLOSED, "This thread is closed")
    if thread.state != ThreadState.CLAIMED or thread.claimed_by != staff.user_id:
        raise AppError(ErrorCode.THREAD_NOT_YOURS, "Claim the thread first")
    return thread


async def do_read(services: Services, *, thread_id: str, staff: StaffContext) -> ThreadSummary:
    """The holder has read the thread: its unread count goes to zero on every console."""
    thread = await check_holder(services, thread_id, staff)
    async with services.db.session() as session:
        await session.exec(
            update(MessageThread).where(col(MessageThread.id) == thread.id).values(unread=0)
        )
        await session.commit()
    return await _tell_desks(services, thread_id)


async def do_close(
    services: Services,
    *,
    thread_id: str,
    staff: StaffContext,
    disposition: str,
    note: str | None,
) -> ThreadSummary:
    """The holder closes the thread with a disposition; the citizen's page says so."""
    if disposition not in DISPOSITIONS:
        raise AppError(ErrorCode.INVALID_DISPOSITION, "Choose a disposition from the list")
    note = _check_text(note, "note", MAX_NOTE_CHARS)
    await check_holder(services, thread_id, staff)
    closed = await _transition(
        services,
        staff,
        thread_id,
        where=[
            col(MessageThread.state) == ThreadState.CLAIMED,
            col(MessageThread.claimed_by) == staff.user_id,
        ],
        values={"closed_at": services.clock.now(), "disposition": disposition, "note": note},
        to="closed",
        data={"disposition": disposition},
    )
    if not closed:
        raise AppError(ErrorCode.THREAD_NOT_YOURS, "The thread changed: reload it")
    return await _tell_desks(services, thread_id)


async def do_link_report(
    services: Services, *, thread_id: str, staff: StaffContext, report_id: int
) -> ThreadSummary:
    """The thread became a threat report: kept with it, in the chain."""
    async with services.audit.transaction() as session:
        await session.exec(
            update(MessageThread)
            .where(col(MessageThread.id) == thread_id)
            .values(report_id=report_id)
        )
        await services.audit.record(
            session,
            actor=staff.username,
            action="thread_reported",
            subject=f"thread:{thread_id}",
            data={"report_id": report_id},
        )
    return await _tell_desks(services, thread_id)
