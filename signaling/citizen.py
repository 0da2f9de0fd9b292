"""Namespace ``/citizen``: the caller's page, authenticated by its call token at connect."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import socketio
from aiohttp import web
from pydantic import ValidationError

from media.hub import MediaBusy
from server.actions.calls import (
    call_by_token,
    chat_event,
    chat_since,
    do_finish,
    do_store_chat,
    do_store_location,
    location_event,
)
from server.core.errors import AppError, ErrorCode
from server.db.models import Call, CallState, User
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
from signaling.events import (
    CallStateEvent,
    ChatSend,
    CitizenEnd,
    CitizenHello,
    CitizenPresenceEvent,
    IceCandidate,
    Location,
    QueueCallRemoved,
    Resume,
    SessionDescription,
)
from signaling.fanout import CITIZEN_NS, call_room, to_call_watchers, to_citizen, to_queue

log = logging.getLogger("lifeline.signaling.citizen")


def presence_key(call_id: str) -> str:
    return f"citizen:{call_id}"


class CitizenNamespace(LifelineNamespace):
    def __init__(self, app: web.Application) -> None:
        super().__init__(CITIZEN_NS, app)
        self._abandon_tasks: set[asyncio.Task[None]] = set()

    async def _call_of(self, sid: str) -> tuple[str, str]:
        session = await self.get_session(sid)
        return session["call_id"], session["channel"]

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        self.check_origin(environ)
        try:
            hello = CitizenHello.model_validate(auth or {})
        except ValidationError:
            raise socketio.exceptions.ConnectionRefusedError(
                {"code": "token_required", "message": "Connect with the call's token"}
            ) from None
        call = await call_by_token(self.app[DB_KEY], hello.token)
        if call is None:
            raise socketio.exceptions.ConnectionRefusedError(
                {"code": "bad_call_token", "message": "Unknown call"}
            )
        if call.state not in (CallState.QUEUED, CallState.ANSWERED):
            raise socketio.exceptions.ConnectionRefusedError(
                {"code": "call_ended", "message": "This call has ended", "state": call.state}
            )
        await self.save_session(sid, {"call_id": call.id, "channel": call.channel})
        await self.enter_room(sid, call_room(call.id))
        presence = self.app[PRESENCE_KEY]
        was_away = await presence.count(presence_key(call.id)) == 0
        await presence.join(presence_key(call.id), sid)
        if was_away:
            sio = self.app[SIO_KEY]
            await to_call_watchers(
                sio, call.id, CitizenPresenceEvent(call_id=call.id, connected=True)
            )

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        try:
            call_id, channel = await self._call_of(sid)
        except KeyError:
            return
        presence = self.app[PRESENCE_KEY]
        await presence.leave(presence_key(call_id), sid)
        if await presence.count(presence_key(call_id)) > 0:
            return
        await to_call_watchers(
            self.app[SIO_KEY], call_id, CitizenPresenceEvent(call_id=call_id, connected=False)
        )
        task = asyncio.create_task(self._abandon_if_gone(call_id, channel))
        self._abandon_tasks.add(task)
        task.add_done_callback(self._abandon_tasks.discard)

    async def _abandon_if_gone(self, call_id: str, channel: str) -> None:
        """A queued call whose citizen stays away past the grace period is abandoned."""
        await asyncio.sleep(self.app[SETTINGS_KEY].ABANDON_GRACE_SECS)
        if await self.app[PRESENCE_KEY].count(presence_key(call_id)) > 0:
            return
        async with self.app[DB_KEY].session() as session:
            call = await session.get(Call, call_id)
        if call is None or call.state != CallState.QUEUED:
            return
        await finish_call(self.app, call_id, channel, actor="system:citizen-left")

    async def close(self) -> None:
        for task in list(self._abandon_tasks):
            task.cancel()
        await asyncio.gather(*self._abandon_tasks, return_exceptions=True)

    @event(Resume)
    async def on_resume(self, sid: str, payload: Resume) -> Ack:
        """The call's state and every chat message after ``last_seq``: what the page missed."""
        call_id, _ = await self._call_of(sid)
        db = self.app[DB_KEY]
        async with db.session() as session:
            call = await session.get(Call, call_id)
            assert call is not None
            operator = None
            if call.operator_id is not None:
                user = await session.get(User, call.operator_id)
                operator = user.username if user else None
        missed = [dump(chat_event(m)) for m in await chat_since(db, call_id, payload.last_seq)]
        missed += [
            dump(photo_event(p)) for p in await photos_since(self.app, call_id, payload.last_seq)
        ]
        missed.sort(key=lambda e: int(e["seq"]))
        state = CallStateEvent(
            call_id=call_id, state=call.state, operator=operator, at=self.app[CLOCK_KEY].now()
        )
        return {"ok": True, "call": dump(state), "events": missed}

    @event(Location)
    async def on_location(self, sid: str, payload: Location) -> Ack:
        call_id, channel = await self._call_of(sid)
        stored = await do_store_location(
            self.app[DB_KEY],
            self.app[CLOCK_KEY],
            call_id=call_id,
            lat=payload.lat,
            lon=payload.lon,
            accuracy=payload.accuracy,
            heading=payload.heading,
            speed=payload.speed,
            measured_ms=payload.timestamp,
        )
        located = location_event(stored.sample)
        sio = self.app[SIO_KEY]
        await to_call_watchers(sio, call_id, located)
        if stored.state == CallState.QUEUED:
            # The queue shows where waiting callers are; an answered call's track goes only to
            # those watching it, not to every console of the channel.
            await to_queue(sio, channel, located)
        return {"ok": True, "seq": stored.sample.seq}

    @event(ChatSend)
    async def on_chat(self, sid: str, payload: ChatSend) -> Ack:
        call_id, _ = await self._call_of(sid)
        stored = await do_store_chat(
            self.app[DB_KEY],
            self.app[CLOCK_KEY],
            call_id=call_id,
            sender="citizen",
            sender_user_id=None,
            client_id=payload.client_id,
            body=payload.body,
        )
        if not stored.duplicate:
            message = chat_event(stored.message)
            sio = self.app[SIO_KEY]
            await to_call_watchers(sio, call_id, message)
            await to_citizen(sio, call_id, message)
        return {"ok": True, "seq": stored.message.seq, "duplicate": stored.duplicate}

    @event(SessionDescription)
    async def on_media_offer(self, sid: str, payload: SessionDescription) -> Ack:
        call_id, _ = await self._call_of(sid)
        try:
            answer = await self.app[MEDIA_KEY].citizen_offer(call_id, payload.sdp)
        except MediaBusy:
            raise AppError(
                ErrorCode.MEDIA_BUSY,
                "Video is not available right now; stay in the chat: an operator will answer",
            ) from None
        except ValueError as exc:
            raise AppError(ErrorCode.INVALID_SDP, f"Unusable offer: {exc}") from None
        return {"ok": True, "type": "answer", "sdp": answer}

    @event(IceCandidate)
    async def on_media_ice(self, sid: str, payload: IceCandidate) -> Ack:
        call_id, _ = await self._call_of(sid)
        try:
            await self.app[MEDIA_KEY].add_candidate(
                call_id, "citizen", payload.candidate, payload.sdpMid, payload.sdpMLineIndex
            )
        except LookupError:
            raise AppError(ErrorCode.NO_MEDIA, "Send the offer first") from None
        except ValueError as exc:
            raise AppError(ErrorCode.INVALID_CANDIDATE, f"Unusable candidate: {exc}") from None
        return {"ok": True}

    @event(CitizenEnd)
    async def on_end_call(self, sid: str, payload: CitizenEnd) -> Ack:
        call_id, channel = await self._call_of(sid)
        state = await finish_call(self.app, call_id, channel, actor="citizen")
        return {"ok": True, "state": state}


async def finish_call(
    app: web.Application,
    call_id: str,
    channel: str,
    *,
    actor: str,
    disposition: str | None = None,
    note: str | None = None,
) -> str:
    """End the call everywhere: state, queue, media (the recording's last segment closes)."""
    call, old = await do_finish(
        app[AUDIT_KEY],
        app[CLOCK_KEY],
        call_id=call_id,
        actor=actor,
        disposition=disposition,
        note=note,
    )
    sio = app[SIO_KEY]
    if old is not None:
        state = CallStateEvent(call_id=call_id, state=call.state, at=app[CLOCK_KEY].now())
        await to_citizen(sio, call_id, state)
        await to_call_watchers(sio, call_id, state)
        if old == CallState.QUEUED:
            await to_queue(
                sio, channel, QueueCallRemoved(call_id=call_id, reason=call.state, by=actor)
            )
        else:
            await to_queue(
                sio, channel, QueueCallRemoved(call_id=call_id, reason="ended", by=actor)
            )
        await app[MEDIA_KEY].end_call(call_id)
    return call.state
