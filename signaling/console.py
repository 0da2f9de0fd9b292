"""Namespace ``/console``: operators, supervisors and internal security, by staff session.

The session is re-read from the database on every event, so a logout, a disabled account or a
role change stops a connected console at its next event, as it does the HTTP pages. Each
handler parses the payload, calls one action, and shapes the acknowledgement; joining and
leaving rooms is this adapter's own business.
"""

from __future__ import annotations

from typing import Any

from server.actions import (
    call_events,
    calls,
    link_quality,
    monitoring,
    participants,
    queue,
    routing,
    transfers,
    wall,
)
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
from server.db.models import Call, CallState, OfferKind, Role
from signaling import acks
from signaling.namespace import LifelineNamespace, connection_refused, event
from signaling.notifier import (
    CONSOLE_NS,
    REPORTS_ROOM,
    call_room,
    queue_room,
    staff_room,
    wall_room,
)
from signaling.payloads import (
    CallEnd,
    CallJoin,
    CallMonitor,
    CallRef,
    CallTransfer,
    ConsoleChatSend,
    ConsoleIceCandidate,
    ConsoleLinkReport,
    ConsoleOffer,
    OfferRef,
    ShiftSet,
    StatusSet,
    Strict,
)


class ConsoleNamespace(LifelineNamespace):
    def __init__(self, services: Services) -> None:
        super().__init__(CONSOLE_NS, services)
        # The sockets whose operator is on shift: waiting for calls is work, so the re-check
        # keeps their session alive however quiet the queue is (not an open screen's).
        self._on_shift: set[str] = set()

    def untrack(self, sid: str) -> Any:
        self._on_shift.discard(sid)
        return super().untrack(sid)

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        self.check_origin(environ)
        request = environ.get("aiohttp.request")
        token = request.cookies.get(SESSION_COOKIE, "") if request is not None else ""
        staff, _expired = await resolve_session(self.services, token)
        if staff is None or not staff.active or staff.role not in CONSOLE_ROLES:
            raise connection_refused(ErrorCode.UNAUTHORIZED, "Sign in to the console first")
        await self.save_session(
            sid,
            {
                "token": token,
                "user_id": staff.user_id,
                "session_id": staff.session_id,
                "role": staff.role,
                "username": staff.username,
            },
        )
        await queue.do_console_connected(self.services, staff, sid)
        self.track(sid, token)
        for channel in wall.channels_of_role(staff.role):
            wall.wall_changed(self.services, channel)
        for channel in channels_for(staff.role):
            await self.enter_room(sid, queue_room(channel))
        await self.enter_room(sid, staff_room(staff.user_id))
        if staff.role in REPORT_DESK_ROLES:
            await self.enter_room(sid, REPORTS_ROOM)
        routing.route_soon(self.services)  # an operator's console opened: a call may ring it

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        self.untrack(sid)
        session = await self.get_session(sid)
        if "user_id" in session:
            await queue.do_console_left(
                self.services, session["user_id"], session["session_id"], sid
            )
            if "wall_role" in session:
                await wall.do_close_wall(self.services, session["wall_role"], sid)
            if session.get("monitoring"):
                await monitoring.do_wall_left(
                    self.services,
                    session["user_id"],
                    session.get("username", ""),
                    session["monitoring"],
                    sid,
                )
            for channel in wall.channels_of_role(session.get("role", "")):
                wall.wall_changed(self.services, channel)

    async def recheck(self, sid: str, what: Any) -> None:
        """A session that ran out (idle, too old, the account gone) closes its socket even if
        the console sends nothing; a live one's presence is renewed. Only a console on shift
        counts as activity: an open screen off shift still locks when idle. A wall is the
        room's screen, watched but rarely touched, all day: an open wall counts as on shift."""
        try:
            showing_wall = "wall_role" in await self.get_session(sid)
        except KeyError:
            showing_wall = False
        staff, _expired = await resolve_session(
            self.services, str(what), active=sid in self._on_shift or showing_wall
        )
        if staff is None or not staff.active or staff.role not in CONSOLE_ROLES:
            ended = SessionEndedEvent(reason="expired")
            await self.emit("event", ended.model_dump(mode="json"), to=sid)
            await self.disconnect(sid)
            return
        await queue.do_console_connected(self.services, staff, sid)
        session = await self.get_session(sid)
        if session.get("wall_role") == staff.role:
            await wall.renew_wall(self.services, staff.role, sid)
        if session.get("monitoring"):
            await monitoring.renew_monitoring(
                self.services, staff.user_id, session["monitoring"], sid
            )

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

    async def joined_call(self, sid: str, call_id: str) -> tuple[StaffContext, Call]:
        """As ``own_call``, or a call they are on beside its operator (a warm transfer's
        target, a conference's guest): they see it and chat in it."""
        staff = await self.staff(sid)
        call = await calls.check_call_for_staff(self.services, call_id, staff)
        if call.operator_id != staff.user_id and not (
            await participants.is_participant(self.services, call.id, staff.user_id)
        ):
            await calls.check_call_for_staff(self.services, call_id, staff, must_own=True)
        return staff, call

    @event(ShiftSet)
    async def on_shift(self, sid: str, payload: ShiftSet) -> acks.Ack:
        """The operator starts or ends their shift (the page says it again after a reconnect)."""
        await self.staff(sid)
        if payload.on:
            self._on_shift.add(sid)
        else:
            self._on_shift.discard(sid)
        return acks.Shift(on=payload.on)

    @event(Strict)
    async def on_status(self, sid: str, payload: Strict) -> acks.Ack:
        """The operator's own state (after a connect; when a wrap-up's time is up)."""
        staff = await self.staff(sid)
        now = await routing.do_status(self.services, staff)
        return acks.Status(status=now.status if now is not None else None)

    @event(StatusSet)
    async def on_set_status(self, sid: str, payload: StatusSet) -> acks.Ack:
        """Available, away (with a note) or ready after a wrap-up."""
        staff = await self.staff(sid)
        await routing.do_set_status(self.services, staff, state=payload.state, note=payload.note)
        now = await routing.do_status(self.services, staff)
        return acks.Status(status=now.status if now is not None else None)

    @event(CallRef)
    async def on_decline(self, sid: str, payload: CallRef) -> acks.Ack:
        """Turn down the call that rings this operator: it rings the next at once."""
        staff = await self.staff(sid)
        await routing.do_decline(self.services, staff, payload.call_id)
        now = await routing.do_status(self.services, staff)
        return acks.Status(status=now.status if now is not None else None)

    @event(Strict)
    async def on_operators(self, sid: str, payload: Strict) -> acks.Ack:
        """For the wall: the operators of this role's channels, and what each is doing."""
        staff = await self.staff(sid)
        watched = check_sees_wall(staff.role)
        states = await queue.operator_states(self.services, watched)
        return acks.Operators(operators=states)

    @event(Strict)
    async def on_wall(self, sid: str, payload: Strict) -> acks.Ack:
        """A wall (re)opens: everything it shows, and its channels' updates from now on."""
        staff = await self.staff(sid)
        view = await wall.do_open_wall(self.services, staff, sid)
        session = await self.get_session(sid)
        await self.save_session(sid, {**session, "wall_role": staff.role})
        for channel in channels_for(staff.role):
            await self.enter_room(sid, wall_room(channel))
        return acks.Wall(
            calls=view.calls,
            operators=view.operators,
            figures=view.figures,
            target_secs=view.target_secs,
        )

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
        """Hand the call on (server/actions/transfers.py); with no target named, back to its
        own queue as before."""
        staff = await self.staff(sid)
        kind = OfferKind(payload.kind)
        if payload.target_user is None and payload.target_channel is None:
            summary = await calls.do_transfer(
                self.services, call_id=payload.call_id, staff=staff, note=payload.note
            )
            await self.leave_room(sid, call_room(summary.call_id))
            return acks.Offered(offer_id=None, call=summary)
        offered = await transfers.do_offer(
            self.services,
            staff=staff,
            call_id=payload.call_id,
            kind=kind,
            target_user=payload.target_user,
            target_channel=payload.target_channel,
            note=payload.note,
        )
        if offered.call.state != "answered":  # a cold one: this console has left it
            await self.leave_room(sid, call_room(payload.call_id))
        return acks.Offered(offer_id=offered.offer_id, call=offered.call)

    @event(CallRef)
    async def on_transfer_targets(self, sid: str, payload: CallRef) -> acks.Ack:
        """The transfer dialog's lists: people (with their state) and queues."""
        staff = await self.staff(sid)
        people = await transfers.targets_for(self.services, staff, payload.call_id)
        return acks.Targets(
            people=[
                acks.TransferTarget.model_validate(
                    {"username": p.username, "role": p.role, "state": p.state}
                )
                for p in people
            ],
            queues=transfers.queues_for(staff),
        )

    @event(Strict)
    async def on_offers(self, sid: str, payload: Strict) -> acks.Ack:
        staff = await self.staff(sid)
        return acks.Offers(offers=await transfers.open_offers_for(self.services, staff))

    @event(OfferRef)
    async def on_offer_accept(self, sid: str, payload: OfferRef) -> acks.Ack:
        staff = await self.staff(sid)
        summary = await transfers.do_accept_offer(
            self.services, staff=staff, offer_id=payload.offer_id
        )
        await self.enter_room(sid, call_room(summary.call_id))
        return acks.CallAck(call=summary)

    @event(OfferRef)
    async def on_offer_decline(self, sid: str, payload: OfferRef) -> acks.Ack:
        staff = await self.staff(sid)
        await transfers.do_decline_offer(self.services, staff=staff, offer_id=payload.offer_id)
        return acks.Ack()

    @event(CallRef)
    async def on_transfer_complete(self, sid: str, payload: CallRef) -> acks.Ack:
        staff = await self.staff(sid)
        summary = await transfers.do_complete(self.services, staff=staff, call_id=payload.call_id)
        await self.leave_room(sid, call_room(summary.call_id))
        return acks.CallAck(call=summary)

    @event(CallRef)
    async def on_transfer_cancel(self, sid: str, payload: CallRef) -> acks.Ack:
        staff = await self.staff(sid)
        await transfers.do_cancel(self.services, staff=staff, call_id=payload.call_id)
        return acks.Ack()

    @event(CallRef)
    async def on_leave_call(self, sid: str, payload: CallRef) -> acks.Ack:
        staff = await self.staff(sid)
        await transfers.do_leave(self.services, staff=staff, call_id=payload.call_id)
        await self.leave_room(sid, call_room(payload.call_id))
        return acks.Ack()

    @event(CallJoin)
    async def on_join(self, sid: str, payload: CallJoin) -> acks.Ack:
        """Open a call (its operator after a reload, a participant, or a supervisor) and catch
        up from seq."""
        staff, call = await self.joined_call(sid, payload.call_id)
        await calls.do_note_joined(self.services, call, staff)
        await self.enter_room(sid, call_room(call.id))
        events = await call_events.events_since(
            self.services, call.id, payload.last_seq, locations=True
        )
        summary = await queue.summary_of(self.services, call)
        return acks.Joined(call=summary, events=events)

    @event(ConsoleChatSend)
    async def on_chat(self, sid: str, payload: ConsoleChatSend) -> acks.Ack:
        staff, call = await self.joined_call(sid, payload.call_id)
        stored = await call_events.do_send_chat(
            self.services,
            call_id=call.id,
            client_id=payload.client_id,
            body=payload.body,
            staff=staff,
        )
        return acks.Stored(seq=stored.message.seq, duplicate=stored.duplicate)

    @event(ConsoleLinkReport)
    async def on_link(self, sid: str, payload: ConsoleLinkReport) -> acks.Ack:
        """How the caller's media arrives here, for the caller's degradation ladder."""
        _staff, call = await self.own_call(sid, payload.call_id)
        await link_quality.do_operator_link(self.services, call, payload.quality)
        return acks.Ack()

    async def media_peer(self, sid: str, call_id: str) -> tuple[StaffContext, Call, bool]:
        """Who links to the call's media: its operator (who talks), or a wall role that has
        said it monitors the call from this socket (the caller has been told)."""
        staff = await self.staff(sid)
        call = await calls.check_call_for_staff(self.services, call_id, staff)
        if call.operator_id == staff.user_id or (
            await participants.is_participant(self.services, call.id, staff.user_id)
        ):
            return staff, call, True
        if staff.role == Role.OPERATOR:
            raise AppError(ErrorCode.NOT_YOUR_CALL, "This call is another operator's")
        if not await monitoring.is_monitoring(self.services, staff, call.id, sid):
            raise AppError(ErrorCode.NOT_MONITORING, "Monitor the call first")
        return staff, call, False

    @event(ConsoleOffer)
    async def on_media_offer(self, sid: str, payload: ConsoleOffer) -> acks.Ack:
        staff, call, talk = await self.media_peer(sid, payload.call_id)
        if call.state != CallState.ANSWERED:
            raise AppError(ErrorCode.CALL_NOT_LIVE, "The call is not live")
        answer = await self.services.media.subscriber_offer(
            call.id, calls.staff_peer(staff.user_id), payload.sdp, talk=talk
        )
        return acks.Answer(sdp=answer)

    @event(ConsoleIceCandidate)
    async def on_media_ice(self, sid: str, payload: ConsoleIceCandidate) -> acks.Ack:
        staff, call, _talk = await self.media_peer(sid, payload.call_id)
        await self.services.media.add_candidate(
            call.id,
            calls.staff_peer(staff.user_id),
            payload.candidate,
            payload.sdpMid,
            payload.sdpMLineIndex,
        )
        return acks.Ack()

    @event(CallMonitor)
    async def on_monitor(self, sid: str, payload: CallMonitor) -> acks.Ack:
        """A wall watches a call (the caller is told first) or stops."""
        staff = await self.staff(sid)
        people = await monitoring.do_monitor(
            self.services, staff, payload.call_id, sid, on=payload.on
        )
        session = await self.get_session(sid)
        watching = [c for c in session.get("monitoring", []) if c != payload.call_id]
        if payload.on:
            watching.append(payload.call_id)
            await self.enter_room(sid, call_room(payload.call_id))
        else:
            await self.leave_room(sid, call_room(payload.call_id))
        await self.save_session(sid, {**session, "monitoring": watching})
        return acks.People(roles=people.roles, speaking=people.speaking)

    @event(CallMonitor)
    async def on_barge(self, sid: str, payload: CallMonitor) -> acks.Ack:
        """The monitoring supervisor speaks to the caller and the operator, or stops."""
        staff = await self.staff(sid)
        people = await monitoring.do_barge(
            self.services, staff, payload.call_id, sid, on=payload.on
        )
        return acks.People(roles=people.roles, speaking=people.speaking)

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
