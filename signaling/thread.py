"""Namespace ``/thread``: a citizen's message-thread page, authenticated by the thread's token
at connect. It only listens (messages are posted over HTTP, where photos and clips go too) and
asks, after each (re)connect, for what it missed (``resume``)."""

from __future__ import annotations

from typing import Any

from server.actions import threads
from server.core.errors import ErrorCode
from server.core.services import Services
from signaling import acks
from signaling.namespace import LifelineNamespace, connection_refused, event
from signaling.notifier import THREAD_NS, thread_room
from signaling.payloads import Resume


class ThreadNamespace(LifelineNamespace):
    def __init__(self, services: Services) -> None:
        super().__init__(THREAD_NS, services)

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        self.check_origin(environ)
        hello = self.hello_of(auth, "thread")
        thread = await threads.thread_by_token(self.services, hello.token)
        if thread is None:
            raise connection_refused(ErrorCode.BAD_THREAD_TOKEN, "Unknown thread")
        await self.save_session(sid, {"thread_id": thread.id})
        await self.enter_room(sid, thread_room(thread.id))

    @event(Resume)
    async def on_resume(self, sid: str, payload: Resume) -> acks.Ack:
        """The thread's state and every message after ``last_seq``."""
        session = await self.get_session(sid)
        thread_id = str(session["thread_id"])
        state = await threads.state_of(self.services, thread_id)
        missed = await threads.messages_since(self.services, thread_id, payload.last_seq)
        return acks.ThreadResumed(state=state, messages=missed)
