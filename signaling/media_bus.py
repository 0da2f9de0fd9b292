"""The media transport (``server.core.ports.MediaTransport``) over Socket.IO.

A request to this node's own hub is handed to it in process (the composition root injects its
handler: signaling never imports ``media``); any other goes as a call to room ``node:<id>`` on
``/media``, which the manager (Redis in scale-out) carries to whichever node holds that media
node's connection, and its acknowledgement back. Both ways carry the same models
(server/core/media_rpc.py) and end in the same reply or ``AppError``.
"""

from __future__ import annotations

import asyncio
import contextlib

import socketio

from server.actions.media_liveness import LOST_SECS, home_gone, silent
from server.core.clock import Clock
from server.core.errors import AppError, ErrorCode
from server.core.media_rpc import (
    NAMESPACE,
    CitizenOffer,
    EndCall,
    MediaHandler,
    MediaRequest,
    R,
    node_room,
    reply_to,
)
from server.core.ports import MediaNodes

# An offer is answered in a few hundred ms (setup p95 302 ms under load in `make bench`); these
# bound how long a media node that died without a goodbye can hold a request up. They stay well
# inside the pages' 10 s acknowledgement timeout, so a caller whose media node was killed is
# placed on another one within the same request (an offer used to wait 10 s for the dead node
# and the page's own request timed out first).
OFFER_TIMEOUT_SECS = 4.0
REQUEST_TIMEOUT_SECS = 3.0
# Ending a call waits for its last segment to be muxed, hashed and stored (media/agent.py
# answers after its reports are acknowledged, at most END_CALL_REPORT_WAIT_SECS): the seal
# covers it. The pages were told the call ended before this.
END_CALL_TIMEOUT_SECS = 8.0
# While a request waits, how often its media node's last report is looked at: a node silent for
# LOST_SECS (killed without a goodbye) is not waited for to the end of the timeout. A caller
# whose page reconnected at once after its node's death is placed elsewhere about LOST_SECS
# after its offer, not OFFER_TIMEOUT_SECS after it.
SILENCE_CHECK_SECS = 0.25


class SocketIOMediaBus:
    """``home``: this node's NODE_ID, the id its own hub (``local``) is known by."""

    def __init__(
        self,
        sio: socketio.AsyncServer,
        nodes: MediaNodes,
        clock: Clock,
        *,
        home: str,
        local: MediaHandler | None = None,
    ) -> None:
        self._sio = sio
        self._nodes = nodes
        self._clock = clock
        self._home = home
        self._local = local

    @property
    def local_node(self) -> str | None:
        return self._home if self._local is not None else None

    async def request(self, node_id: str, request: MediaRequest[R]) -> R:
        if self._local is not None and node_id == self._home:
            return await self._local(request)
        if node_id not in {node.id for node in await self._nodes.alive()}:
            raise AppError(ErrorCode.MEDIA_UNREACHABLE, f"Media node {node_id} is not alive")
        timeout = (
            OFFER_TIMEOUT_SECS
            if isinstance(request, CitizenOffer)
            else END_CALL_TIMEOUT_SECS
            if isinstance(request, EndCall)
            else REQUEST_TIMEOUT_SECS
        )
        call = asyncio.ensure_future(
            self._sio.call(
                request.event,
                request.model_dump(mode="json"),
                to=node_room(node_id),
                namespace=NAMESPACE,
                timeout=timeout,
            )
        )
        patience = asyncio.get_running_loop().time() + LOST_SECS
        try:
            while not (await asyncio.wait({call}, timeout=SILENCE_CHECK_SECS))[0]:
                # Only a request that itself waited LOST_SECS gives up early on a late report: a
                # clock moved on in a test makes every node look silent for a moment, and a live
                # node answers well within that. A home process gone is no such guess.
                waited = asyncio.get_running_loop().time() >= patience
                if await self._given_up(node_id, waited=waited):
                    raise AppError(
                        ErrorCode.MEDIA_UNREACHABLE,
                        f"Media node {node_id} went silent during {request.event}",
                    )
            raw = call.result()
        except socketio.exceptions.TimeoutError:
            raise AppError(
                ErrorCode.MEDIA_UNREACHABLE,
                f"Media node {node_id} did not answer {request.event} in {timeout:g} s",
            ) from None
        finally:
            if not call.done():
                call.cancel()
                with contextlib.suppress(asyncio.CancelledError, socketio.exceptions.TimeoutError):
                    await call
        return reply_to(request, raw)

    async def _given_up(self, node_id: str, *, waited: bool) -> bool:
        """Its home process gone, or (``waited``: the request itself waited LOST_SECS) silent
        (server/actions/media_liveness.py). A registry that does not answer tells nothing:
        then the timeout decides."""
        seen = await self._nodes.last_seen()
        if seen is None:
            return False
        heard, now = seen.get(node_id), self._clock.now().timestamp()
        return home_gone(heard, now) or (waited and silent(heard, now))
