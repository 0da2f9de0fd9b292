"""Namespace ``/console``: operators, supervisors and internal security, by staff session.

The session is re-read from the database on every event, so a logout, a disabled account or a
role change stops a connected console at its next event, as it does the HTTP pages.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

import socketio
from aiohttp import web
from sqlmodel import col, select

from server.actions.calls import (
    channels_for,
    chat_event,
    chat_since,
    check_call_for_staff,
    do_accept,
    do_store_chat,
    do_transfer,
    live_calls,
    location_event,
    locations_since,
    summary_of,
)
from server.core.errors import AppError, ErrorCode
from server.db.models import Call, CallState, Role, Snapshot, User
from server.http.auth.access import CONSOLE_ROLES, WALL_ROLES
from server.http.auth.sessions import SESSION_COOKIE, StaffContext, resolve_session
from server.http.keys import (
    AUDIT_KEY,
    CLOCK_KEY,
    DB_KEY,
    MEDIA_KEY,
    PRESENCE_KEY,
    SETTINGS_KEY,
    SIO_KEY,
)
from server.http.photos import photo_event, photos_since
from signaling.base import Ack, LifelineNamespace, dump, event
from signaling.citizen import finish_call
from signaling.events import (
    CallEnd,
    CallJoin,
    CallRef,
    CallStateEvent,
    CallTransfer,
    ConsoleChatSend,
    ConsoleIceCandidate,
    ConsoleOffer,
    QueueCallAdded,
    QueueCallRemoved,
    Strict,
)
from signaling.fanout import (
    CONSOLE_NS,
    call_room,
    queue_room,
    to_call_watchers,
    to_citizen,
    to_queue,
)

log = logging.getLogger("lifeline.signaling.console")


class ConsoleNamespace(LifelineNamespace):
    def __init__(self, app: web.Application) -> None:
        super().__init__(CONSOLE_NS, app)

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        self.check_origin(environ)
        request = environ.get("aiohttp.request")
        token = request.cookies.get(SESSION_COOKIE, "") if request is not None else ""
        staff, _expired = await resolve_session(self.app, token)
        if staff is None or not staff.active or staff.role not in CONSOLE_ROLES:
            raise socketio.exceptions.ConnectionRefusedError(
                {"code": "unauthorized", "message": "Sign in to the console first"}
            )
        await self.save_session(sid, {"token": token, "user_id": staff.user_id})
        await self.app[PRESENCE_KEY].join(console_presence(staff.user_id), sid)
        for channel in channels_for(staff.role):
            await self.enter_room(sid, queue_room(channel))
        if staff.role in (Role.OPERATOR, Role.SUPERVISOR):
            await self.enter_room(sid, "reports")

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        session = await self.get_session(sid)
        if "user_id" in session:
            await self.app[PRESENCE_KEY].leave(console_presence(session["user_id"]), sid)

    async def staff(self, sid: str) -> StaffContext:
        """The console's staff member as of now; a dead session disconnects the socket."""
        session = await self.get_session(sid)
        staff, _expired = await resolve_session(self.app, session.get("token", ""))
        if staff is None or not staff.active or staff.role not in CONSOLE_ROLES:
            await self.disconnect(sid)
            raise AppError(ErrorCode.SESSION_EXPIRED, "Your session has ended: sign in again")
        return staff

    async def own_call(self, sid: str, call_id: str) -> tuple[StaffContext, Call]:
        """The staff member and the call they act on: theirs, or any their role may watch."""
        staff = await self.staff(sid)
        call = await check_call_for_staff(
            self.app[DB_KEY], call_id, staff.role, staff.user_id, must_own=True
        )
        return staff, call

    @event(Strict)
    async def on_operators(self, sid: str, payload: Strict) -> Ack:
        """For the wall: the operators of this role's channels, and what each is doing."""
        staff = await self.staff(sid)
        if staff.role not in WALL_ROLES:
            raise AppError(ErrorCode.ROLE_FORBIDDEN, "Only the wall's roles see operator states")
        watched = Role.INTERNAL_SECURITY if staff.role == Role.INTERNAL_SECURITY else Role.OPERATOR
        states = await operator_states(self.app, watched)
        return {"ok": True, "operators": states}

    @event(Strict)
    async def on_queue(self, sid: str, payload: Strict) -> Ack:
        staff = await self.staff(sid)
        calls = await live_calls(self.app[DB_KEY], staff.role)
        return {"ok": True, "calls": [dump(c) for c in calls], "me": staff.username}

    @event(CallRef)
    async def on_accept(self, sid: str, payload: CallRef) -> Ack:
        staff = await self.staff(sid)
        if staff.role == Role.SUPERVISOR:
            raise AppError(
                ErrorCode.ROLE_FORBIDDEN, "Supervisors monitor calls; operators answer them"
            )
        async with self.app[DB_KEY].session() as session:
            user = await session.get(User, staff.user_id)
        assert user is not None
        call = await do_accept(
            self.app[AUDIT_KEY], self.app[CLOCK_KEY], call_id=payload.call_id, user=user
        )
        await self.enter_room(sid, call_room(call.id))
        sio = self.app[SIO_KEY]
        await to_queue(
            sio,
            call.channel,
            QueueCallRemoved(call_id=call.id, reason="answered", by=staff.username),
        )
        state = CallStateEvent(
            call_id=call.id,
            state=CallState.ANSWERED,
            operator=staff.username,
            at=self.app[CLOCK_KEY].now(),
        )
        await to_citizen(sio, call.id, state)
        await to_call_watchers(sio, call.id, state)
        return {"ok": True, "call": dump(await summary_of(self.app[DB_KEY], call))}

    @event(CallTransfer)
    async def on_transfer(self, sid: str, payload: CallTransfer) -> Ack:
        """Back to the queue for another operator; the caller waits again, media and recording
        go on, and this operator's media leaves the call."""
        staff = await self.staff(sid)
        async with self.app[DB_KEY].session() as session:
            user = await session.get(User, staff.user_id)
        assert user is not None
        call = await do_transfer(
            self.app[AUDIT_KEY],
            self.app[CLOCK_KEY],
            call_id=payload.call_id,
            user=user,
            note=payload.note,
        )
        await self.leave_room(sid, call_room(call.id))
        sio = self.app[SIO_KEY]
        state = CallStateEvent(
            call_id=call.id, state=CallState.TRANSFERRED, at=self.app[CLOCK_KEY].now()
        )
        await to_citizen(sio, call.id, state)
        await to_call_watchers(sio, call.id, state)
        summary = await summary_of(self.app[DB_KEY], call)
        await to_queue(sio, call.channel, QueueCallAdded(call=summary))
        await self.app[MEDIA_KEY].remove_subscriber(call.id, f"staff-{staff.user_id}")
        return {"ok": True, "call": dump(summary)}

    @event(CallJoin)
    async def on_join(self, sid: str, payload: CallJoin) -> Ack:
        """Open a call (its operator after a reload, or a supervisor) and catch up from seq."""
        _staff, call = await self.own_call(sid, payload.call_id)
        db = self.app[DB_KEY]
        await self.enter_room(sid, call_room(call.id))
        chats = await chat_since(db, call.id, payload.last_seq)
        places = await locations_since(db, call.id, payload.last_seq)
        photos = await photos_since(self.app, call.id, payload.last_seq)
        events = sorted(
            [dump(chat_event(m)) for m in chats]
            + [dump(location_event(p)) for p in places]
            + [dump(photo_event(p)) for p in photos],
            key=lambda e: int(e["seq"]),
        )
        return {"ok": True, "call": dump(await summary_of(db, call)), "events": events}

    @event(ConsoleChatSend)
    async def on_chat(self, sid: str, payload: ConsoleChatSend) -> Ack:
        staff, call = await self.own_call(sid, payload.call_id)
        stored = await do_store_chat(
            self.app[DB_KEY],
            self.app[CLOCK_KEY],
            call_id=call.id,
            sender="operator",
            sender_user_id=staff.user_id,
            client_id=payload.client_id,
            body=payload.body,
        )
        if not stored.duplicate:
            message = chat_event(stored.message, staff.username)
            sio = self.app[SIO_KEY]
            await to_call_watchers(sio, call.id, message)
            await to_citizen(sio, call.id, message)
        return {"ok": True, "seq": stored.message.seq, "duplicate": stored.duplicate}

    @event(ConsoleOffer)
    async def on_media_offer(self, sid: str, payload: ConsoleOffer) -> Ack:
        staff, call = await self.own_call(sid, payload.call_id)
        if call.state != CallState.ANSWERED:
            raise AppError(ErrorCode.CALL_NOT_LIVE, "The call is not live")
        talk = call.operator_id == staff.user_id
        try:
            answer = await self.app[MEDIA_KEY].subscriber_offer(
                call.id, f"staff-{staff.user_id}", payload.sdp, talk=talk
            )
        except LookupError:
            raise AppError(ErrorCode.NO_MEDIA, "No media from the caller yet") from None
        except ValueError as exc:
            raise AppError(ErrorCode.INVALID_SDP, f"Unusable offer: {exc}") from None
        return {"ok": True, "type": "answer", "sdp": answer}

    @event(ConsoleIceCandidate)
    async def on_media_ice(self, sid: str, payload: ConsoleIceCandidate) -> Ack:
        staff, call = await self.own_call(sid, payload.call_id)
        try:
            await self.app[MEDIA_KEY].add_candidate(
                call.id,
                f"staff-{staff.user_id}",
                payload.candidate,
                payload.sdpMid,
                payload.sdpMLineIndex,
            )
        except LookupError:
            raise AppError(ErrorCode.NO_MEDIA, "Send the offer first") from None
        except ValueError as exc:
            raise AppError(ErrorCode.INVALID_CANDIDATE, f"Unusable candidate: {exc}") from None
        return {"ok": True}

    @event(CallRef)
    async def on_snapshot(self, sid: str, payload: CallRef) -> Ack:
        staff, call = await self.own_call(sid, payload.call_id)
        try:
            jpeg = await self.app[MEDIA_KEY].snapshot(call.id)
        except LookupError:
            raise AppError(ErrorCode.NO_VIDEO, "No picture from the caller yet") from None
        snapshot = await store_snapshot(self.app, call.id, staff, jpeg)
        return {
            "ok": True,
            "snapshot_id": snapshot.id,
            "sha256": snapshot.sha256,
            "url": f"/api/calls/{call.id}/snapshots/{snapshot.id}",
        }

    @event(CallEnd)
    async def on_end_call(self, sid: str, payload: CallEnd) -> Ack:
        staff, call = await self.own_call(sid, payload.call_id)
        state = await finish_call(
            self.app,
            call.id,
            call.channel,
            actor=staff.username,
            disposition=payload.disposition,
            note=payload.note,
        )
        await self.leave_room(sid, call_room(call.id))
        return {"ok": True, "state": state}


def console_presence(user_id: int) -> str:
    return f"console:{user_id}"


async def operator_states(app: web.Application, role: str) -> list[dict[str, str]]:
    """Each active account of ``role``: ``in_call`` (answering one), ``available`` (a console
    open, on any node), or ``offline``."""
    async with app[DB_KEY].session() as session:
        users = (
            await session.exec(
                select(User)
                .where(col(User.role) == role, col(User.disabled).is_(False))
                .order_by(col(User.username))
            )
        ).all()
        busy = set(
            (
                await session.exec(
                    select(Call.operator_id).where(col(Call.state) == CallState.ANSWERED)
                )
            ).all()
        )
    presence = app[PRESENCE_KEY]
    states = []
    for user in users:
        if user.id in busy:
            state = "in_call"
        elif await presence.count(console_presence(user.id or 0)) > 0:
            state = "available"
        else:
            state = "offline"
        states.append({"username": user.username, "state": state})
    return states


async def store_snapshot(
    app: web.Application, call_id: str, staff: StaffContext, jpeg: bytes
) -> Snapshot:
    """Write the JPEG, hash it, and record it (row + audit entry) in one transaction."""
    clock = app[CLOCK_KEY]
    now = clock.now()
    digest = hashlib.sha256(jpeg).hexdigest()
    directory = app[SETTINGS_KEY].DATA_DIR / "snapshots" / call_id
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{now:%Y%m%dT%H%M%S%f}-{digest[:12]}.jpg"
    await asyncio.to_thread(path.write_bytes, jpeg)
    audit = app[AUDIT_KEY]
    async with audit.transaction() as session:
        snapshot = Snapshot(
            call_id=call_id,
            taken_by=staff.user_id,
            path=str(path),
            sha256=digest,
            size_bytes=len(jpeg),
            at=now,
        )
        session.add(snapshot)
        await session.flush()
        await audit.record(
            session,
            actor=staff.username,
            action="snapshot_taken",
            subject=f"call:{call_id}",
            data={"sha256": digest, "snapshot_id": snapshot.id},
        )
    return snapshot
