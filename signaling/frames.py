"""Malformed transport frames: dropped, and said once per connection at warning level.

Anyone may open a websocket to ``/socket.io/`` and write anything into it before any token is
checked. python-engineio and python-socketio 5.18 meet a frame they cannot decode with an
ERROR and a full traceback (one per frame: a log flood for the price of a loop), and an
undecodable Engine.IO frame escapes its websocket handler, leaving the connection half
closed. Here such a frame is dropped before it reaches either library's decoder, and the
connection carries on (a phone's page that sent one bad frame keeps its call).

Written against python-engineio 4.15.1 and python-socketio 5.18.1 (tests/test_broadcast.py pins
them): the Engine.IO websocket wrapper is replaced per server through its ``_async`` table, and
Socket.IO packets decode through ``CheckedPacket``.
"""

from __future__ import annotations

import logging
from typing import Any

from engineio.async_drivers.aiohttp import WebSocket
from socketio.packet import Packet

log = logging.getLogger("lifeline.signaling")

# Engine.IO packet types a client sends as text: open..noop ("0".."6").
_ENGINEIO_TYPES = frozenset("0123456")
# A harmless Engine.IO packet (noop) that stands in for a dropped frame.
_NOOP = "6"


class MalformedPacket(ValueError):
    """A Socket.IO packet that does not decode."""


class CheckedPacket(Packet):
    """A Socket.IO packet whose decoding failures are one named error, told apart from a bug."""

    def decode(self, encoded_packet: Any) -> Any:
        try:
            return super().decode(encoded_packet)
        except (ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
            raise MalformedPacket(f"{type(exc).__name__}: {exc}") from None


class MalformedFrames:
    """Which connections (Engine.IO sids) were already said to send malformed frames."""

    def __init__(self) -> None:
        self._said: set[str] = set()

    def dropped(self, eio_sid: str, layer: str, reason: str, remote: str | None) -> None:
        if eio_sid in self._said:
            return
        self._said.add(eio_sid)
        log.warning(
            "malformed frame dropped (said once per connection)",
            extra={"layer": layer, "reason": reason[:200], "remote": remote or "-"},
        )

    def forget(self, eio_sid: str) -> None:
        self._said.discard(eio_sid)


class CheckedWebSocket(WebSocket):
    """The Engine.IO websocket wrapper, dropping text frames that are no Engine.IO packet."""

    def __init__(self, handler: Any, server: Any, frames: MalformedFrames) -> None:
        super().__init__(handler, server)
        self._frames = frames

    async def wait(self) -> Any:
        data = await super().wait()
        if isinstance(data, str) and (not data or data[0] not in _ENGINEIO_TYPES):
            request = getattr(self, "environ", {}).get("aiohttp.request")
            owner = getattr(self.handler, "__self__", None)  # the AsyncSocket of this link
            self._frames.dropped(
                str(getattr(owner, "sid", "")),
                "engine.io",
                f"frame starts with {data[:1]!r}",
                request.remote if request is not None else None,
            )
            return _NOOP
        return data


def checked_engineio_drivers(drivers: dict[str, Any], frames: MalformedFrames) -> dict[str, Any]:
    """The server's own copy of the driver table, with the checking websocket wrapper."""

    def websocket(handler: Any, server: Any) -> CheckedWebSocket:
        return CheckedWebSocket(handler, server, frames)

    return {**drivers, "websocket": websocket}
