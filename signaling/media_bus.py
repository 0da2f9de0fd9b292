"""The media transport (``server.core.ports.MediaTransport``) over Socket.IO.

A request to this node's own hub is handed to it in process (the composition root injects its
handler: signaling never imports ``media``); any other goes as a call to room ``node:<id>`` on
``/media``, which the manager (Redis in scale-out) carries to whichever node holds that media
node's connection, and its acknowledgement back. Both ways carry the same models
(server/core/media_rpc.py) and end in the same reply or ``AppError``.
"""

from __future__ import annotations

import socketio

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


class SocketIOMediaBus:
    """``home``: this node's NODE_ID, the id its own hub (``local``) is known by."""

    def __init__(
        self,
        sio: socketio.AsyncServer,
        nodes: MediaNodes,
        *,
        home: str,
        local: MediaHandler | None = None,
    ) -> None:
        self._sio = sio
        self._nodes = nodes
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
        try:
            raw = await self._sio.call(
                request.event,
                request.model_dump(mode="json"),
                to=node_room(node_id),
                namespace=NAMESPACE,
                timeout=timeout,
            )
        except socketio.exceptions.TimeoutError:
            raise AppError(
                ErrorCode.MEDIA_UNREACHABLE,
                f"Media node {node_id} did not answer {request.event} in {timeout:g} s",
            ) from None
        return reply_to(request, raw)
