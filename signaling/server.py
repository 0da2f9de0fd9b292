"""The Socket.IO server, attached to the aiohttp app.

Embedded mode fans out in-process; scale-out mode carries every emit through Redis
(``AsyncRedisManager``) so a client on any node receives it. The websocket transport is the
only one allowed: long-polling would need sticky sessions across nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import socketio
from aiohttp import web
from engineio import packet as eio_packet
from socketio import packet

from config import Settings
from server.core.errors import ErrorCode
from server.core.events import ResyncEvent
from server.core.media_rpc import NAMESPACE as MEDIA_NAMESPACE
from server.core.outages import Outages, reason_of
from server.state.media_nodes import home_channel
from signaling.frames import (
    CheckedPacket,
    MalformedFrames,
    MalformedPacket,
    checked_engineio_drivers,
)
from signaling.notifier import CITIZEN_NS, CONSOLE_NS, THREAD_NS

log = logging.getLogger("lifeline.signaling")

_LIBRARY_REFUSALS = frozenset(
    {"Unexpected binary packet", "Unexpected CONNECT_ERROR packet.", "Unknown packet type."}
)

PART = "Socket.IO fan-out"
REDIS_CONNECT_SECS = 1.0
# At most this long from Redis answering again to this node hearing the others (and its
# consoles told to resync): within the 5 s a console must match the database again.
LISTEN_RETRY_MAX_SECS = 2.0
CLOSE_WAIT_SECS = 2.0
PUBLISH_TRIES = 2


class BroadcastManager(socketio.AsyncManager):
    """python-socketio 5.18 sends a broadcast as one asyncio task per recipient and waits for
    them all: at 1,000 consoles a location fix costs 1,000 tasks, and the profile of the fan-out
    row put a third of the loop in making and scheduling them. Queueing the one encoded packet
    on each socket in turn is the same work (each socket's writer task sends it) without them.

    Written against python-socketio 5.18.1 / python-engineio 4.15.1 (tests/test_broadcast.py
    fails on another version); emits with a callback keep the library's path.
    """

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: str | None = None,
        skip_sid: str | list[str] | None = None,
        callback: Any = None,
        to: str | None = None,
        **kwargs: Any,
    ) -> None:
        if callback is not None:
            await super().emit(
                event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, to=to
            )
            return
        room = to or room
        if namespace not in self.rooms:
            return
        args = list(data) if isinstance(data, tuple) else [] if data is None else [data]
        skip = set(skip_sid) if isinstance(skip_sid, list) else {skip_sid}
        encoded = self.server.packet_class(
            packet.EVENT, namespace=namespace, data=[event, *args]
        ).encode()
        eio_packets = [
            eio_packet.Packet(eio_packet.MESSAGE, p)
            for p in (encoded if isinstance(encoded, list) else [encoded])
        ]
        for sid, eio_sid in list(self.get_participants(namespace, room)):
            if sid in skip:
                continue
            for eio_pkt in eio_packets:
                try:
                    await self.server._send_eio_packet(eio_sid, eio_pkt)
                except Exception:  # noqa: BLE001 - one closed socket must not stop the rest
                    log.debug("broadcast to a closing socket skipped", extra={"sid": sid})
                    break


class ClosingRedisManager(socketio.AsyncRedisManager, BroadcastManager):
    """python-socketio's Redis manager leaves its listener task and connections open at
    shutdown; a node that stops (and every test) must close them. Its local deliveries go
    through BroadcastManager (next in the method order after the pub/sub manager)."""

    def __init__(self, url: str, *, channel: str, home: str, outages: Outages) -> None:
        # Only a connect timeout: the listener blocks reading between messages by design.
        super().__init__(
            url, channel=channel, redis_options={"socket_connect_timeout": REDIS_CONNECT_SECS}
        )
        self._outages = outages
        # Held while this process lives (server/state/media_nodes.py: home_channel).
        self.home_channel = home_channel(channel, home)
        self.connected: bool = False
        # Set by ``close``: the listener stops rather than listen again.
        self.closing = False
        # Set when an event of this node's did not reach Redis: the other nodes missed it.
        self.unheard = False

    async def _publish(self, data: Any) -> None:
        """Two tries, and the outage said once, not two ERROR lines per emit: while Redis is
        away every emit reaches this node's own sockets (delivered before publishing).

        The first publish after Redis restarts can meet a pooled connection the old server
        closed: the second try takes a fresh one. An event that still did not go out is lost
        to the other nodes (Socket.IO is at most once), and their listeners may already be
        subscribed again, so nothing else would tell their consoles: this node asks every
        node's consoles to resync as soon as it can publish again (``tell_all_to_resync``)."""
        failure: Exception = ConnectionError("not tried")
        for _ in range(PUBLISH_TRIES):
            try:
                if self.redis is None:
                    self._redis_connect()
                assert self.redis is not None
                await self.redis.publish(self.channel, self.json.dumps(data))
            except Exception as exc:  # noqa: BLE001 - whatever the client raises, the emit went out here
                failure = exc
                continue
            self._outages.answered("redis", PART)
            if self.unheard:
                await self.tell_all_to_resync()
            return
        self.unheard = True
        self._outages.failed("redis", PART, reason_of(failure))

    async def tell_all_to_resync(self) -> None:
        """Every node's consoles read what they show again (this node's directly, the others'
        through the bus): the other nodes missed at least one of this node's events."""
        self.unheard = False
        resync = ResyncEvent().model_dump(mode="json")
        try:
            await self.emit("event", resync, namespace=CONSOLE_NS)
        except Exception:  # the caller (an emit or the listener) must go on whatever happens
            log.exception("telling every node's consoles to resync failed")
        else:
            if not self.unheard:
                log.info("every node's consoles told to resync: this node's events were lost")

    async def _redis_listen_with_retries(self) -> AsyncIterator[Any]:
        """The library's listener doubles its wait after every failure without a bound: after
        ten minutes without Redis a node would hear the others only minutes after it returned.
        Here the wait stays under ``LISTEN_RETRY_MAX_SECS``.

        Whatever the other nodes emitted while this one did not listen is lost (Socket.IO is
        at most once): once subscribed again, this node's consoles and walls are told to read
        what they show again from the database (``console.resync``)."""
        wait = 0.5
        subscribed = False
        missed = False
        while not self.closing:
            try:
                if not subscribed:
                    self._redis_connect()
                    assert self.pubsub is not None
                    await self.pubsub.subscribe(self.channel, self.home_channel)
                    subscribed, wait = True, 0.5
                    self._outages.answered("redis", PART)
                    if self.unheard:  # the others missed this node's events too
                        missed = False
                        await self.tell_all_to_resync()
                    elif missed:
                        missed = False
                        await self.resync_local()
                assert self.pubsub is not None
                async for message in self.pubsub.listen():
                    yield message
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure: listen again shortly
                if self.closing:
                    return
                self._outages.failed("redis", PART, reason_of(exc))
                subscribed, missed = False, True
                await asyncio.sleep(wait)
                wait = min(wait * 2, LISTEN_RETRY_MAX_SECS)

    async def resync_local(self) -> None:
        """Tell this node's own console sockets (not the other nodes': each resyncs its own
        when its listener is back) to read the queue, the wall and the open call again."""
        resync = ResyncEvent().model_dump(mode="json")
        try:
            await self.emit("event", resync, namespace=CONSOLE_NS, ignore_queue=True)
        except Exception:  # the listener must go on whatever a socket does
            log.exception("telling the consoles to resync failed")
        else:
            log.info("consoles told to resync: the bus to the other nodes is back")

    def _redis_connect(self) -> None:
        if self.redis is None:
            super()._redis_connect()
            return
        # Reuse the client (redis-py's pool reconnects by itself): the library makes a new one
        # on every (re)connect and drops the old one with its connection still open. A new
        # pubsub opens no connection until the listener subscribes with it.
        self.pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        self.connected = True

    async def close(self) -> None:
        """Stop the listener, then close its connections, each wait bounded: a cancel that
        lands inside redis-py's connect or subscribe can be lost there (the listener then
        reads its socket for ever, and a node's shutdown, or a test's teardown, hung 120 s on
        it once). Closing the connections ends that read; ``closing`` ends the loop."""
        self.closing = True
        task = getattr(self, "thread", None)
        if isinstance(task, asyncio.Task):
            task.cancel()
            await asyncio.wait({task}, timeout=CLOSE_WAIT_SECS)
        for name in ("pubsub", "redis"):
            resource = getattr(self, name, None)
            if resource is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(resource.aclose(), CLOSE_WAIT_SECS)
        if isinstance(task, asyncio.Task) and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=CLOSE_WAIT_SECS)
            if not task.done():
                log.warning("the Redis listener did not stop; left to the process's exit")


async def close_manager(sio: socketio.AsyncServer) -> None:
    if isinstance(sio.manager, ClosingRedisManager):
        await sio.manager.close()


class LifelineServer(socketio.AsyncServer):
    """python-socketio hands a client's event named ``connect`` or ``disconnect`` to the same
    handler as the real thing: a page could make the server believe it left (a caller's call
    abandoned after the grace, an operator shown offline) while it stays connected. Those names
    are refused as events, with the usual error event and refusal ack.

    Frames that do not decode are dropped and said once per connection (signaling/frames.py).

    Written against python-socketio 5.18.1 (``_handle_event`` is private; tests/test_broadcast.py
    pins the version)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(serializer=CheckedPacket, **kwargs)
        self._malformed_frames = MalformedFrames()
        self.eio._async = checked_engineio_drivers(self.eio._async, self._malformed_frames)

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        try:
            await super()._handle_eio_message(eio_sid, data)
        except MalformedPacket as exc:
            self._malformed(eio_sid, str(exc))
        except ValueError as exc:
            # The library's own refusals of a decodable but impossible packet.
            if str(exc) not in _LIBRARY_REFUSALS:
                raise
            self._malformed(eio_sid, str(exc))

    def _malformed(self, eio_sid: str, reason: str) -> None:
        request = self.environ.get(eio_sid, {}).get("aiohttp.request")
        remote = request.remote if request is not None else None
        self._malformed_frames.dropped(eio_sid, "socket.io", reason, remote)

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        self._malformed_frames.forget(eio_sid)
        await super()._handle_eio_disconnect(eio_sid, reason)

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: Any, data: Any) -> None:
        if not (isinstance(data, list) and data and isinstance(data[0], str)):
            self._malformed(eio_sid, "an event without a name")
            return
        if isinstance(data, list) and data and data[0] in self.reserved_events:
            namespace = namespace or "/"
            sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
            code, message = ErrorCode.UNKNOWN_EVENT, f"{data[0]!r} is not an event a client sends"
            log.info("reserved event refused", extra={"event": data[0], "namespace": namespace})
            if sid is not None:
                await self.emit(
                    "error",
                    {"code": code.value, "message": message, "event": data[0]},
                    to=sid,
                    namespace=namespace,
                )
            if id is not None:
                await self._send_packet(
                    eio_sid,
                    self.packet_class(
                        packet.ACK,
                        namespace=namespace,
                        id=id,
                        data=[{"ok": False, "error": {"code": code.value, "message": message}}],
                    ),
                )
            return
        await super()._handle_event(eio_sid, namespace, id, data)


def allowed_origins(settings: Settings) -> list[str] | None:
    """The deployment's named origins. None lets engine.io compare with the Host header, which
    proves nothing; the namespaces then check against the address the connection reached
    (server/security/origins.py), and the default namespace is refused."""
    named = [o.rstrip("/") for o in (settings.PUBLIC_URL, *settings.ALLOWED_ORIGINS) if o]
    return named or None


def broadcast_channel(redis_url: str) -> str:
    """Redis pub/sub ignores the database number: two deployments on one Redis server, each
    with a database of its own, would hear each other's events (a call on the other one's
    wall) on one channel name. The channel carries the database number."""
    path = urlsplit(redis_url).path.strip("/")
    return f"lifeline-socketio:{path or '0'}"


def create_sio(settings: Settings, outages: Outages) -> socketio.AsyncServer:
    manager: socketio.AsyncManager = (
        ClosingRedisManager(
            settings.REDIS_URL,
            channel=broadcast_channel(settings.REDIS_URL),
            home=settings.NODE_ID,
            outages=outages,
        )
        if settings.REDIS_URL
        else BroadcastManager()
    )
    return LifelineServer(
        async_mode="aiohttp",
        # Only our namespaces: the default one ("/") would accept anyone, token or not.
        namespaces=[CITIZEN_NS, CONSOLE_NS, THREAD_NS, MEDIA_NAMESPACE],
        client_manager=manager,
        cors_allowed_origins=allowed_origins(settings),
        transports=["websocket"],
        logger=False,
        engineio_logger=False,
    )


def attach(sio: socketio.AsyncServer, app: web.Application) -> None:
    sio.attach(app, socketio_path="socket.io")


def connection_counts(sio: socketio.AsyncServer) -> dict[str, int]:
    """This node's Socket.IO connections, by namespace (the manager's rooms are this process's
    own, in scale-out too): what its metrics export."""
    return {
        namespace: sum(1 for _ in sio.manager.get_participants(namespace, None))
        for namespace in (CITIZEN_NS, CONSOLE_NS, THREAD_NS, MEDIA_NAMESPACE)
    }
