"""Namespace ``/citizen``: the caller's page, authenticated by its call token at connect.

Each handler parses the payload, calls one action, and shapes the acknowledgement.
"""

from __future__ import annotations

from typing import Any

from server.actions import call_events, calls, link_quality, queue_position, situations
from server.actions.call_marks import do_mark_call
from server.core.errors import ErrorCode
from server.core.services import Services
from signaling import acks
from signaling.namespace import LifelineNamespace, connection_refused, event
from signaling.notifier import CITIZEN_NS, call_room
from signaling.payloads import (
    ChatSend,
    CitizenEnd,
    IceCandidate,
    LinkReport,
    Location,
    Resume,
    SessionDescription,
    SituationSet,
)


class CitizenNamespace(LifelineNamespace):
    def __init__(self, services: Services) -> None:
        super().__init__(CITIZEN_NS, services)

    async def _call_of(self, sid: str) -> tuple[str, str]:
        """The socket's call, which this event's log lines name from here on."""
        session = await self.get_session(sid)
        calls.about(self.services, session["channel"], session["call_id"])
        return session["call_id"], session["channel"]

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        self.check_origin(environ)
        hello = self.hello_of(auth, "call")
        call = await calls.call_by_token(self.services, hello.token)
        if call is None:
            raise connection_refused(ErrorCode.BAD_CALL_TOKEN, "Unknown call")
        calls.about(self.services, call.channel, call.id)
        if call.state not in calls.LIVE_STATES:
            raise connection_refused(ErrorCode.CALL_ENDED, "This call has ended", state=call.state)
        await self.save_session(sid, {"call_id": call.id, "channel": call.channel})
        await self.enter_room(sid, call_room(call.id))
        await calls.do_citizen_connected(self.services, call, sid)
        self.track(sid, call.id)

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        self.untrack(sid)
        try:
            call_id, _channel = await self._call_of(sid)
        except KeyError:
            return
        await calls.do_citizen_left(self.services, call_id, sid)

    async def recheck(self, sid: str, what: Any) -> None:
        await calls.renew_citizen_presence(self.services, str(what), sid)

    async def flooding(self, sid: str, name: str) -> None:
        """The caller's page went over its allowance: its call is marked (once), not ended."""
        call_id = self._live.get(sid)
        if call_id is not None:
            await do_mark_call(
                self.services,
                str(call_id),
                "flooding",
                actor="system",
                reason=f"{name!r} over the per-connection allowance",
            )

    @event(Resume)
    async def on_resume(self, sid: str, payload: Resume) -> acks.Ack:
        """The call's state and every chat message after ``last_seq``: what the page missed."""
        call_id, _ = await self._call_of(sid)
        state = await calls.state_of(self.services, call_id)
        missed = await call_events.events_since(
            self.services, call_id, payload.last_seq, locations=False
        )
        # Who is on the call (a supervisor may have joined while the page was away).
        people = await calls.people_present(self.services, call_id)
        await self.emit("event", people.model_dump(mode="json"), to=sid)
        # A waiting call's place in the queue (it may have moved while the page was away).
        place = await queue_position.position_of_call(self.services, call_id)
        if place is not None:
            await self.emit("event", place.model_dump(mode="json"), to=sid)
        return acks.Resumed(call=state, events=missed)

    @event(Location)
    async def on_location(self, sid: str, payload: Location) -> acks.Ack:
        call_id, channel = await self._call_of(sid)
        seq = await call_events.do_send_location(
            self.services,
            call_id=call_id,
            channel=channel,
            lat=payload.lat,
            lon=payload.lon,
            accuracy=payload.accuracy,
            heading=payload.heading,
            speed=payload.speed,
            measured_ms=payload.timestamp,
        )
        return acks.Located(seq=seq)

    @event(SituationSet)
    async def on_situation(self, sid: str, payload: SituationSet) -> acks.Ack:
        call_id, _ = await self._call_of(sid)
        call = await calls.check_live_call(self.services, call_id)
        await situations.do_set_situation(self.services, call, payload.situation)
        return acks.Ack()

    @event(LinkReport)
    async def on_link(self, sid: str, payload: LinkReport) -> acks.Ack:
        """The degradation ladder's rung and the measured quality, for the operator's console."""
        call_id, _ = await self._call_of(sid)
        await link_quality.do_caller_link(self.services, call_id, payload.rung, payload.quality)
        return acks.Ack()

    @event(ChatSend)
    async def on_chat(self, sid: str, payload: ChatSend) -> acks.Ack:
        call_id, _ = await self._call_of(sid)
        stored = await call_events.do_send_chat(
            self.services, call_id=call_id, client_id=payload.client_id, body=payload.body
        )
        return acks.Stored(seq=stored.message.seq, duplicate=stored.duplicate)

    @event(SessionDescription)
    async def on_media_offer(self, sid: str, payload: SessionDescription) -> acks.Ack:
        call_id, _ = await self._call_of(sid)
        answer = await self.services.media.citizen_offer(call_id, payload.sdp)
        return acks.Answer(sdp=answer)

    @event(IceCandidate)
    async def on_media_ice(self, sid: str, payload: IceCandidate) -> acks.Ack:
        call_id, _ = await self._call_of(sid)
        await self.services.media.add_candidate(
            call_id, "citizen", payload.candidate, payload.sdpMid, payload.sdpMLineIndex
        )
        return acks.Ack()

    @event(CitizenEnd)
    async def on_end_call(self, sid: str, payload: CitizenEnd) -> acks.Ack:
        call_id, _channel = await self._call_of(sid)
        state = await calls.do_finish(self.services, call_id=call_id, actor="citizen")
        return acks.Ended(state=state)
