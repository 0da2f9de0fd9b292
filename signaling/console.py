"""Namespace ``/console``: operators, supervisors and internal security, by staff session.

The session is re-read from the database on every event, so a logout, a disabled account or a
role change stops a connected console at its next event, as it does the HTTP pages. Each
handler parses the payload, calls one action, and shapes the acknowledgement; joining and
leaving rooms is this adapter's own business.
"""

from __future__ import annotations

from typing import Any

from server.actions import call_events, calls, queue
from server.actions.access import (
    CONSOLE_ROLES,
    REPORT_DESK_ROLES,
    channels_for,
    check_sees_wall,
)
from server.actions.staff_sessions import SESSION_COOKIE, StaffContext, resolve_session
from server.core.errors import AppError, ErrorCode
from server.core.events import SessionEndedEvent
from server.core.services import Services
from server.db.models import Call, CallState
from signaling import acks
from signaling.namespace import LifelineNamespace, connection_refused, event
from signaling.notifier import CONSOLE_NS, REPORTS_ROOM, call_room, queue_room
from signaling.payloads import (
    CallEnd,
    CallJoin,
    CallRef,
    CallTransfer,
    ConsoleChatSend,
    ConsoleIceCandidate,
    ConsoleOffer,
    Strict,
)


class ConsoleNamespace(LifelineNamespace):
    def __init__(self, services: Services) -> None:
        super().__init__(CONSOLE_NS, services)

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        self.check_origin(environ)
        request = environ.get("aiohttp.request")
        token = request.cookies.get(SESSION_COOKIE, "") if request is not None else ""
        staff, _expired = await resolve_session(self.services, token)
        if staff is None or not staff.active or staff.role not in CONSOLE_ROLES:
            raise connection_refused(ErrorCode.UNAUTHORIZED, "Sign in to the console first")
        await self.save_session(
            sid, {"token": token, "user_id": staff.user_id, "session_id": staff.session_id}
        )
        await queue.do_console_connected(self.services, staff, sid)
        self.track(sid, token)
        for channel in channels_for(staff.role):
            await self.enter_room(sid, queue_room(channel))
        if staff.role in REPORT_DESK_ROLES:
            await self.enter_room(sid, REPORTS_ROOM)

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        self.untrack(sid)
        session = await self.get_session(sid)
        if "user_id" in session:
            await queue.do_console_left(
                self.services, session["user_id"], session["session_id"], sid
            )

    async def recheck(self, sid: str, what: Any) -> None:
        """A session that ran out (idle, too old, the account gone) closes its socket even if
        the console sends nothing; a live one's presence is renewed."""
        staff, _expired = await resolve_session(self.services, str(what))
        if staff is None or not staff.active or staff.role not in CONSOLE_ROLES:
            ended = SessionEndedEvent(reason="expired")
            await self.emit("event", ended.model_dump(mode="json"), to=sid)
            await self.disconnect(sid)
            return
        await queue.do_console_connected(self.services, staff, sid)

    async def staff(self, sid: str) -> StaffContext:
        """The console's staff member as of now; a dead session disconnects the socket."""
        session = await self.get_session(sid)
        staff, _expired = await resolve_session(self.services, session.get("token", ""))
        if staff is None or not staff.active or staff.role not in CONSOLE_ROLES:
            await self.disconnect(sid)
            raise AppError(ErrorCode.SESSION_EXPIRED, "Your session has ended: sign in again")
        return staff

    async def own_call(self, sid: str, call_id: str) -> tuple[StaffContext, Call]:
        """The staff member and the call they act on: theirs, or any their role may watch."""
        staff = await self.staff(sid)
        call = await calls.check_call_for_staff(self.services, call_id, staff, must_own=True)
        return staff, call

    @event(Strict)
    async def on_operators(self, sid: str, payload: Strict) -> acks.Ack:
        """For the wall: the operators of this role's channels, and what each is doing."""
        staff = await self.staff(sid)
        watched = check_sees_wall(staff.role)
        states = await queue.operator_states(self.services, watched)
        return acks.Operators(operators=states)

    @event(Strict)
    async def on_queue(self, sid: str, payload: Strict) -> acks.Ack:
        staff = await self.staff(sid)
        live = await queue.live_calls(self.services, staff.role)
        return acks.Queue(calls=live, me=staff.username)

    @event(CallRef)
    async def on_accept(self, sid: str, payload: CallRef) -> acks.Ack:
        staff = await self.staff(sid)
        summary = await calls.do_accept(self.services, call_id=payload.call_id, staff=staff)
        await self.enter_room(sid, call_room(summary.call_id))
        return acks.CallAck(call=summary)

    @event(CallTransfer)
    async def on_transfer(self, sid: str, payload: CallTransfer) -> acks.Ack:
        staff = await self.staff(sid)
        summary = await calls.do_transfer(
            self.services, call_id=payload.call_id, staff=staff, note=payload.note
        )
        await self.leave_room(sid, call_room(summary.call_id))
        return acks.CallAck(call=summary)

    @event(CallJoin)
    async def on_join(self, sid: str, payload: CallJoin) -> acks.Ack:
        """Open a call (its operator after a reload, or a supervisor) and catch up from seq."""
        _staff, call = await self.own_call(sid, payload.call_id)
        await self.enter_room(sid, call_room(call.id))
        events = await call_events.events_since(
            self.services, call.id, payload.last_seq, locations=True
        )
        summary = await queue.summary_of(self.services, call)
        return acks.Joined(call=summary, events=events)

    @event(ConsoleChatSend)
    async def on_chat(self, sid: str, payload: ConsoleChatSend) -> acks.Ack:
        staff, call = await self.own_call(sid, payload.call_id)
        stored = await call_events.do_send_chat(
            self.services,
            call_id=call.id,
            client_id=payload.client_id,
            body=payload.body,
            staff=staff,
        )
        return acks.Stored(seq=stored.message.seq, duplicate=stored.duplicate)

    @event(ConsoleOffer)
    async def on_media_offer(self, sid: str, payload: ConsoleOffer) -> acks.Ack:
        staff, call = await self.own_call(sid, payload.call_id)
        if call.state != CallState.ANSWERED:
            raise AppError(ErrorCode.CALL_NOT_LIVE, "The call is not live")
        answer = await self.services.media.subscriber_offer(
            call.id,
            calls.staff_peer(staff.user_id),
            payload.sdp,
            talk=call.operator_id == staff.user_id,
        )
        return acks.Answer(sdp=answer)

    @event(ConsoleIceCandidate)
    async def on_media_ice(self, sid: str, payload: ConsoleIceCandidate) -> acks.Ack:
        staff, call = await self.own_call(sid, payload.call_id)
        await self.services.media.add_candidate(
            call.id,
            calls.staff_peer(staff.user_id),
            payload.candidate,
            payload.sdpMid,
            payload.sdpMLineIndex,
        )
        return acks.Ack()

    @event(CallRef)
    async def on_snapshot(self, sid: str, payload: CallRef) -> acks.Ack:
        staff, call = await self.own_call(sid, payload.call_id)
        snapshot = await call_events.do_take_snapshot(self.services, call, staff)
        assert snapshot.id is not None
        return acks.SnapshotTaken(
            snapshot_id=snapshot.id,
            sha256=snapshot.sha256,
            url=f"/api/calls/{call.id}/snapshots/{snapshot.id}",
        )

    @event(CallEnd)
    async def on_end_call(self, sid: str, payload: CallEnd) -> acks.Ack:
        staff, call = await self.own_call(sid, payload.call_id)
        state = await calls.do_finish(
            self.services,
            call_id=call.id,
            actor=staff.username,
            disposition=payload.disposition,
            note=payload.note,
        )
        await self.leave_room(sid, call_room(call.id))
        return acks.Ended(state=state)
