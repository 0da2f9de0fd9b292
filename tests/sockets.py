"""Real Socket.IO clients for the tests: a citizen by call token, a console by staff cookie.

Every event a test client receives is validated against the one union of server events
(``server.core.events.SERVER_EVENTS``), and every acknowledgement against its event's model
(``signaling.acks.ACKS``): a test fails when the server sends anything else.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import socketio
from pydantic import ValidationError

from server.core.events import SERVER_EVENTS, ErrorEvent
from signaling.acks import ACKS, Refusal
from tests.staff import Client

EVENT_TIMEOUT_SECS = 10.0


@dataclass
class Peer:
    """One connected Socket.IO client and everything it has received."""

    sio: socketio.AsyncClient
    namespace: str
    events: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    errors: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    seen: list[dict[str, Any]] = field(default_factory=list)
    # Events that are not in the one union (or carry a field it does not declare).
    invalid: list[str] = field(default_factory=list)
    # Set when the server closes this client's namespace connection.
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    async def call(self, event: str, data: Any = None) -> Any:
        """Send a request; its acknowledgement is checked against the event's ack model (or
        the one refusal shape) before the test sees it."""
        reply = await self.sio.call(
            event, data, namespace=self.namespace, timeout=EVENT_TIMEOUT_SECS
        )
        answer = ACKS.get(self.namespace, {}).get(event)
        if isinstance(reply, dict) and reply.get("ok") is True and answer is not None:
            answer.model_validate(reply)
        else:
            Refusal.model_validate(reply)
        return reply

    async def next_event(self, type_: str, **match: Any) -> dict[str, Any]:
        """Wait for the next event of ``type_`` (matching ``match``), keeping the others."""

        async def wait() -> dict[str, Any]:
            while True:
                item = await self.events.get()
                if item.get("type") == type_ and all(item.get(k) == v for k, v in match.items()):
                    return item

        return await asyncio.wait_for(wait(), EVENT_TIMEOUT_SECS)

    async def next_error(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.errors.get(), EVENT_TIMEOUT_SECS)

    async def until_closed(self) -> None:
        """Wait for the server to close this connection."""
        await asyncio.wait_for(self.closed.wait(), EVENT_TIMEOUT_SECS)

    def received(self, type_: str) -> list[dict[str, Any]]:
        return [e for e in self.seen if e.get("type") == type_]


def base_url(client: Client) -> str:
    return str(client.make_url("/")).rstrip("/")


@asynccontextmanager
async def connect(
    url: str, namespace: str, *, auth: Any = None, headers: dict[str, str] | None = None
) -> AsyncIterator[Peer]:
    async with aiohttp.ClientSession() as http:
        sio = socketio.AsyncClient(reconnection=False, http_session=http)
        peer = Peer(sio, namespace)

        def on_event(data: dict[str, Any]) -> None:
            try:
                SERVER_EVENTS.validate_python(data)
            except ValidationError as exc:
                peer.invalid.append(f"{data.get('type')!r}: {exc}")
            peer.seen.append(data)
            peer.events.put_nowait(data)

        def on_error(data: dict[str, Any]) -> None:
            try:
                ErrorEvent.model_validate(data)
            except ValidationError as exc:
                peer.invalid.append(f"error event: {exc}")
            peer.errors.put_nowait(data)

        sio.on("event", on_event, namespace=namespace)
        sio.on("error", on_error, namespace=namespace)
        sio.on("disconnect", lambda *_reason: peer.closed.set(), namespace=namespace)
        await sio.connect(
            url,
            namespaces=[namespace],
            transports=["websocket"],
            auth=auth,
            headers={"Origin": url, **(headers or {})},
            wait_timeout=EVENT_TIMEOUT_SECS,
        )
        try:
            yield peer
        finally:
            await sio.disconnect()
        # Every event the server sent this client is one of the union's, exactly.
        assert not peer.invalid, peer.invalid


def citizen(client: Client, token: str, last_seq: int = 0) -> Any:
    return connect(base_url(client), "/citizen", auth={"token": token, "last_seq": last_seq})


def console(client: Client) -> Any:
    """A console socket carrying the client's staff session cookie."""
    jar = client.session.cookie_jar.filter_cookies(client.make_url("/"))
    cookie = jar["lifeline_session"].value
    return connect(base_url(client), "/console", headers={"Cookie": f"lifeline_session={cookie}"})


async def start_call(client: Client, **body: Any) -> dict[str, Any]:
    response = await client.post(
        "/api/calls", json={"channel": "police", "language": "en", "mode": "video", **body}
    )
    assert response.status == 201, await response.text()
    result: dict[str, Any] = await response.json()
    return result


def answer_via(socket: Peer, **extra: str) -> Callable[[str], Awaitable[str]]:
    """A test peer's offer, answered through the server as a page's is (``media_offer``)."""

    async def answer(sdp: str) -> str:
        reply = await socket.call("media_offer", {"type": "offer", "sdp": sdp, **extra})
        assert reply["ok"], reply
        return str(reply["sdp"])

    return answer


def without_dtls_setup(sdp: str) -> str:
    """A real peer's offer less its ``a=setup`` lines: it passes the media node's checks and then
    fails deep inside aiortc (an AttributeError while applying it), the kind of fault the node
    cannot name: what the tests use for "a bug inside a media node", with no code replaced."""
    return "".join(
        line for line in sdp.splitlines(keepends=True) if not line.startswith("a=setup:")
    )


def refused_offer(
    socket: Peer,
    refusals: list[dict[str, Any]],
    rewrite: Callable[[str], str] = lambda sdp: sdp,
) -> Callable[[str], Awaitable[str]]:
    """A test peer's offer (as ``rewrite`` leaves it) that the server must refuse: the refusal
    is kept in ``refusals`` and the peer's negotiation stops with ``RuntimeError("refused as
    expected")``."""

    async def offer(sdp: str) -> str:
        reply = await socket.call("media_offer", {"type": "offer", "sdp": rewrite(sdp)})
        assert reply["ok"] is False, reply
        refusals.append(reply["error"])
        raise RuntimeError("refused as expected")

    return offer
