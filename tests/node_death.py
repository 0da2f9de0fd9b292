"""A whole node killed under live calls (issue 11, T1): the scenario, shared by
``tests/test_node_death.py`` (one short round) and ``python -m bench.node_death`` (16 calls, 5
rounds).

Two nodes behind nginx (``tests/edge.py``), each with its media in a worker process. Each call's
phone starts on one node and its operator's console on the other (the pin cookie places the
first connection only); the phone sends video (a real aiortc peer), chat and location fixes, the
console answers and receives the video. Then node B's server process and its media workers get
``SIGKILL``. The clients do what the pages do (console_ui/static/js/socket.js, media_link.js):
reconnect through nginx, now unpinned, with the token and the last sequence number seen; send
again, with the same client id, whatever was not acknowledged; offer media again (the phone after
its reconnect, the console when its video stalls). What is measured: the calls back, the seconds
from the kill to the first frame again at each operator, chat and fixes lost and doubled (what
was acknowledged against what the database holds), and the next recording segment.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import socketio

from tests.browser.staff import add_staff
from tests.edge import PIN_COOKIE, Centre
from tests.edge_callers import from_address, signed_in, start_call
from tests.media_peers import MediaPeer, citizen_peer, subscriber_peer, wait_until

ACK_SECS = 10.0  # the pages' acknowledgement timeout
RECONNECT_DELAY_SECS = 0.5  # the pages' reconnectionDelay
STALL_SECS = 2.0  # the console's video counts as stalled after this long without a frame
LAG_WINDOW_SECS = 10.0  # the harness's own loop lag is watched this long after the kill
LAG_TICK_SECS = 0.05
RETRY_SECS = 0.5  # a refused offer (no media yet, busy) is tried again after this
BACK_WITHIN_SECS = 45.0
SEND_EVERY_SECS = 0.3


def fix(n: int) -> dict[str, float]:
    return {"lat": 52.2 + n * 1e-4, "lon": 21.0, "accuracy": 8.0, "timestamp": 1.7e12 + n}


@dataclass
class Line:
    """A Socket.IO client that reconnects through nginx as the pages do: the first connection
    pinned to a node, every later one balanced (the pin cookie dropped)."""

    centre: Centre
    session: aiohttp.ClientSession
    namespace: str
    auth: Callable[[], dict[str, Any]] | None
    on_event: Callable[[dict[str, Any]], None]
    on_connected: Callable[[], Awaitable[None]]
    sio: socketio.AsyncClient | None = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    lost: asyncio.Event = field(default_factory=asyncio.Event)  # set on a disconnect, or closing
    reconnects: int = 0
    closing: bool = False
    task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        await self._connect()
        self.task = asyncio.create_task(self._keep())

    async def _connect(self) -> None:
        sio = socketio.AsyncClient(reconnection=False, http_session=self.session, ssl_verify=False)
        sio.on("event", self.on_event, namespace=self.namespace)
        sio.on("disconnect", lambda *_: self._lost(), namespace=self.namespace)
        await sio.connect(
            self.centre.base,
            namespaces=[self.namespace],
            transports=["websocket"],
            auth=self.auth() if self.auth else None,
            headers={"Origin": self.centre.base},
            wait_timeout=ACK_SECS,
        )
        self.sio = sio
        self.connected.set()
        await self.on_connected()

    def _lost(self) -> None:
        self.connected.clear()
        self.lost.set()

    async def _keep(self) -> None:
        while not self.closing:
            await self.lost.wait()
            if self.closing:
                return
            self.lost.clear()
            self.session.cookie_jar.clear(lambda morsel: morsel.key == PIN_COOKIE)
            await asyncio.sleep(RECONNECT_DELAY_SECS)
            with contextlib.suppress(Exception):
                if self.sio is not None:
                    await self.sio.disconnect()
            try:
                await self._connect()
                self.reconnects += 1
            except (socketio.exceptions.ConnectionError, OSError, TimeoutError):
                self.lost.set()  # tried again after the delay

    async def call(self, event: str, data: Any) -> Any:
        """An acknowledged request; None when it was not answered (disconnected, timed out)."""
        if self.sio is None or not self.connected.is_set():
            return None
        try:
            return await self.sio.call(event, data, namespace=self.namespace, timeout=ACK_SECS)
        except (socketio.exceptions.SocketIOError, TimeoutError, OSError):
            return None

    async def close(self) -> None:
        self.closing = True
        self.lost.set()
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)
        if self.sio is not None:
            with contextlib.suppress(Exception):
                await self.sio.disconnect()


@dataclass
class Outbox:
    """What a page keeps until it is acknowledged, sent again with its client id."""

    line: Line
    sent_chat: list[str] = field(default_factory=list)
    acked_chat: list[str] = field(default_factory=list)
    pending: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    acked_fixes: list[float] = field(default_factory=list)
    # One flush at a time (the talking task's and the end's): two would send the same first
    # item and each take one off, counting the next as acknowledged unsent.
    flushing: asyncio.Lock = field(default_factory=asyncio.Lock)

    def add_chat(self, client_id: str, body: str) -> None:
        self.pending.append(("chat", {"client_id": client_id, "body": body}))

    def add_fix(self, n: int) -> None:
        self.pending.append(("location", fix(n)))

    async def flush(self) -> None:
        async with self.flushing:
            while self.pending:
                event, data = self.pending[0]
                reply = await self.line.call(event, data)
                if not (isinstance(reply, dict) and reply.get("ok")):
                    return  # kept; sent again later, the same
                self.pending.pop(0)
                if event == "chat":
                    self.acked_chat.append(data["body"])
                else:
                    self.acked_fixes.append(round(data["lat"], 4))


@dataclass
class CallUnderTest:
    call_id: str
    phone_node: str
    desk_node: str
    phone: Line
    desk: Line
    outbox: Outbox
    phone_peer: MediaPeer | None = None
    desk_peer: MediaPeer | None = None
    desk_frames_at: float = 0.0
    desk_peer_since: float = 0.0
    last_seq: int = 0
    media_renewals: int = 0
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    talking: asyncio.Task[None] | None = None  # the phone's chat and fixes
    # When each step of coming back after the kill first happened (this process's clock; the
    # round clears them at the kill).
    marks: dict[str, float] = field(default_factory=dict)

    def frames(self) -> int:
        return self.desk_peer.received.video_frames if self.desk_peer else 0


async def _offer_until(make: Callable[[], Awaitable[MediaPeer]], line: Line) -> MediaPeer:
    """An offer, tried again while refused (no media yet, the media node still being found)."""
    while True:
        try:
            return await make()
        except (AssertionError, RuntimeError, OSError, TimeoutError):
            if line.closing:
                raise
            await asyncio.sleep(RETRY_SECS)


def _answered_by(line: Line, extra: dict[str, Any]) -> Callable[[str], Awaitable[str]]:
    async def answer(sdp: str) -> str:
        reply = await line.call("media_offer", {"type": "offer", "sdp": sdp, **extra})
        assert isinstance(reply, dict) and reply.get("ok"), reply
        return str(reply["sdp"])

    return answer


async def _renew_phone_media(call: CallUnderTest) -> None:
    old, call.phone_peer = call.phone_peer, None
    if old is not None:
        await old.close()
    call.phone_peer = await _offer_until(
        lambda: citizen_peer(_answered_by(call.phone, {})), call.phone
    )
    call.marks.setdefault("phone media placed", time.monotonic())


async def _renew_desk_media(call: CallUnderTest) -> None:
    call.marks.setdefault("console stalled, offers", time.monotonic())
    old, call.desk_peer = call.desk_peer, None
    if old is not None:
        await old.close()
    call.desk_peer = await _offer_until(
        lambda: subscriber_peer(_answered_by(call.desk, {"call_id": call.call_id}), talk=True),
        call.desk,
    )
    call.desk_peer_since = time.monotonic()
    call.media_renewals += 1
    call.marks.setdefault("console offer answered", call.desk_peer_since)


async def _desk_watch(call: CallUnderTest) -> None:
    """The console's media: offered again when its video stalls (console_media.js)."""
    seen, seen_at = -1, time.monotonic()
    while not call.desk.closing:
        await asyncio.sleep(0.1)
        frames = call.frames()
        if frames != seen:
            seen, seen_at = frames, time.monotonic()
            call.desk_frames_at = seen_at
            continue
        if time.monotonic() - max(seen_at, call.desk_peer_since) > STALL_SECS:
            with contextlib.suppress(Exception):
                await _renew_desk_media(call)
            seen, seen_at = -1, time.monotonic()


async def _phone_talk(call: CallUnderTest) -> None:
    n = 0
    while not call.phone.closing:
        call.outbox.add_chat(f"{call.call_id[:8]}-chat-{n:04d}", f"message {n}")
        call.outbox.add_fix(n)
        n += 1
        await call.outbox.flush()
        await asyncio.sleep(SEND_EVERY_SECS)


@asynccontextmanager
async def placed_call(
    centre: Centre, index: int, operator: str, secret: str
) -> AsyncIterator[CallUnderTest]:
    """A call made on one node (by index), answered from the other, media and chat flowing."""
    phone_node, desk_node = ("a", "b") if index % 2 == 0 else ("b", "a")
    address = f"127.0.3.{10 + index}"
    async with (
        from_address(address, pin=phone_node) as phone_http,
        from_address(f"127.0.4.{10 + index}", pin=desk_node) as desk_http,
    ):
        started = await start_call(centre, phone_http)
        call_id, token = started["call_id"], started["token"]
        holder: dict[str, CallUnderTest] = {}

        def seen(data: dict[str, Any]) -> None:
            seq = data.get("seq")
            if isinstance(seq, int) and "call" in holder:
                holder["call"].last_seq = max(holder["call"].last_seq, seq)

        async def phone_back() -> None:
            if "call" not in holder:
                return
            call = holder["call"]
            call.marks.setdefault("phone socket back", time.monotonic())
            reply = await call.phone.call("resume", {"last_seq": call.last_seq})
            assert reply is None or reply.get("ok"), reply
            call.tasks.append(asyncio.create_task(_renew_phone_media(call)))

        async def desk_back() -> None:
            if "call" not in holder:
                return
            call = holder["call"]
            await call.desk.call("join", {"call_id": call.call_id, "last_seq": 0})

        phone = Line(
            centre,
            phone_http,
            "/citizen",
            lambda: {"token": token, "last_seq": holder["call"].last_seq if holder else 0},
            seen,
            phone_back,
        )
        await signed_in(centre, desk_http, secret, operator)
        desk = Line(centre, desk_http, "/console", None, lambda _data: None, desk_back)
        call = CallUnderTest(call_id, phone_node, desk_node, phone, desk, Outbox(phone))
        await phone.open()
        await desk.open()
        holder["call"] = call
        try:
            accepted = await desk.call("accept", {"call_id": call_id})
            assert accepted and accepted["ok"], accepted
            call.phone_peer = await _offer_until(
                lambda: citizen_peer(_answered_by(phone, {})), phone
            )
            await _renew_desk_media(call)
            call.talking = asyncio.create_task(_phone_talk(call))
            call.tasks += [asyncio.create_task(_desk_watch(call)), call.talking]
            yield call
        finally:
            phone.closing = desk.closing = True
            await asyncio.gather(*call.tasks, return_exceptions=True)
            for peer in (call.phone_peer, call.desk_peer):
                if peer is not None:
                    await peer.close()
            await desk.close()
            await phone.close()


@dataclass
class WallWatch:
    """A supervisor's wall on node A, as wall.js keeps it: for each call, when its tile first
    said "reconnecting" (media lost) and when it said so no more, in this process's clock."""

    lost_at: dict[str, float] = field(default_factory=dict)
    back_at: dict[str, float] = field(default_factory=dict)

    def on_event(self, data: dict[str, Any]) -> None:
        call = data.get("call") if data.get("type") == "queue.call_updated" else None
        if not isinstance(call, dict):
            return
        call_id = str(call.get("call_id"))
        if call.get("media_lost") is True:
            self.lost_at.setdefault(call_id, time.monotonic())
        elif call_id in self.lost_at:
            self.back_at.setdefault(call_id, time.monotonic())


@asynccontextmanager
async def supervisor_wall(centre: Centre, secret: str, name: str) -> AsyncIterator[WallWatch]:
    watch = WallWatch()
    async with from_address("127.0.5.10", pin="a") as http:
        await signed_in(centre, http, secret, name)
        lines: list[Line] = []

        async def opened() -> None:
            reply = await lines[0].call("wall", {})
            assert reply is None or reply.get("ok"), reply

        line = Line(centre, http, "/console", None, watch.on_event, opened)
        lines.append(line)
        await line.open()
        try:
            yield watch
        finally:
            await line.close()


def operators(centre: Centre, count: int) -> list[tuple[str, str]]:
    """``count`` operators, added at once (each a CLI process)."""
    names = [f"op{n}" for n in range(count)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        secrets = list(pool.map(lambda n: add_staff(centre.nodes["a"], n, "operator"), names))
    return list(zip(names, secrets, strict=True))


def media_workers_of(node_id: str) -> list[int]:
    """The pids of the media worker processes whose home is ``node_id``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            words = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        home = words[words.index("--home") + 1 :][:1] if "--home" in words else []
        if "media.worker" in words and home == [node_id]:
            found.append(int(entry.name))
    return found


def kill_node(centre: Centre, name: str) -> list[int]:
    """SIGKILL to the node's server process and each of its media workers; their pids."""
    server = centre.nodes[name]
    workers = media_workers_of(f"node-{name}")
    assert workers, f"node {name} has no media worker process"
    pids = [server.process.pid, *workers]
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    server.process.wait(timeout=10)
    return pids


async def media_of(database_url: str, call_id: str) -> dict[str, Any]:
    """The call's media node and its stored recording segments (number, media node)."""
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        node = await conn.fetchval("SELECT media_node FROM calls WHERE id = $1", call_id)
        rows = await conn.fetch(
            "SELECT segment, media_node FROM recordings WHERE call_id = $1 ORDER BY segment",
            call_id,
        )
    finally:
        await conn.close()
    return {"media_node": node, "recordings": [dict(row) for row in rows]}


async def stored(database_url: str, call_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Per call, the citizen's chat bodies and fix latitudes in the database, in order."""
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        out: dict[str, dict[str, Any]] = {}
        for call_id in call_ids:
            chats = await conn.fetch(
                "SELECT body FROM chat_messages WHERE call_id = $1 AND sender = 'citizen'"
                " ORDER BY seq",
                call_id,
            )
            fixes = await conn.fetch(
                "SELECT lat FROM location_samples WHERE call_id = $1 ORDER BY seq", call_id
            )
            out[call_id] = {
                "chat": [row["body"] for row in chats],
                "fixes": [round(row["lat"], 4) for row in fixes],
            }
        return out
    finally:
        await conn.close()


@dataclass
class Figures:
    calls: int
    calls_back: int
    affected: int  # calls whose media was on the killed node
    # Per call whose video stopped: the kill to the first frame again at its operator.
    back_secs: list[float]
    lost: int
    doubled: int
    next_segments: int  # the killed node's calls recorded on in a later segment elsewhere
    chats: int
    fixes: int
    # Per moved call: the kill to its tile saying "reconnecting" on the wall (inf: never said).
    reconnecting_secs: list[float] = field(default_factory=list)
    wall_back: int = 0  # moved calls whose tile said "reconnecting" no more afterwards
    # The longest this process's own event loop was late in the LAG_WINDOW_SECS after the kill:
    # every figure above is an event seen here, so one seen late by this much says as much
    # about this process (32 peers, encoding and decoding video) as about the centre.
    harness_lag_secs: float = 0.0
    # The moved calls' way back, step by step: seconds from the kill, per call.
    steps: dict[str, list[float]] = field(default_factory=dict)

    def line(self) -> str:
        ordered = sorted(self.back_secs)
        p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)] if ordered else float("nan")
        return (
            f"calls {self.calls} back {self.calls_back} (media moved {self.affected},"
            f" next segment {self.next_segments}) first frame again ({len(ordered)} calls)"
            f" p95 {p95:.2f} s"
            f" max {max(ordered, default=float('nan')):.2f} s"
            f" median {statistics.median(ordered) if ordered else float('nan'):.2f} s;"
            f" chat {self.chats} fixes {self.fixes} lost {self.lost} doubled {self.doubled};"
            f" wall reconnecting max {max(self.reconnecting_secs, default=float('nan')):.2f} s"
            f" ({len(self.reconnecting_secs)} calls, back on the wall {self.wall_back});"
            f" this process's loop late by at most {self.harness_lag_secs:.2f} s;"
            " moved calls' steps after the kill (median/max s): "
            + ", ".join(
                f"{step} {statistics.median(at):.2f}/{max(at):.2f}"
                for step, at in sorted(self.steps.items(), key=lambda item: min(item[1]))
            )
        )


async def _loop_lag(window_secs: float) -> float:
    """The most this event loop woke late from a LAG_TICK_SECS sleep within ``window_secs``."""
    worst, ends = 0.0, time.monotonic() + window_secs
    while (now := time.monotonic()) < ends:
        await asyncio.sleep(LAG_TICK_SECS)
        worst = max(worst, time.monotonic() - now - LAG_TICK_SECS)
    return worst


async def node_death_round(centre: Centre, count: int, database_url: str) -> Figures:
    """``count`` calls split across the nodes, node B killed, everything measured."""
    began = time.monotonic()

    def phase(what: str) -> None:
        print(f"node_death {time.monotonic() - began:6.1f} s {what}", flush=True)

    staff = await asyncio.to_thread(operators, centre, count)
    supervisor = await asyncio.to_thread(add_staff, centre.nodes["a"], "sup", "supervisor")
    phase("operators added")
    async with contextlib.AsyncExitStack() as stack:
        wall = await stack.enter_async_context(supervisor_wall(centre, supervisor, "sup"))
        calls = [
            await stack.enter_async_context(placed_call(centre, n, *staff[n])) for n in range(count)
        ]
        await wait_until(
            lambda: all(call.frames() > 30 and call.outbox.acked_chat for call in calls),
            BACK_WITHIN_SECS,
            "video at every operator and chat acknowledged",
        )
        phase("calls placed, video at every operator")
        before = {call.call_id: await media_of(database_url, call.call_id) for call in calls}
        on_b = [c for c in calls if str(before[c.call_id]["media_node"]).startswith("node-b")]
        frames_at_kill = {call.call_id: call.frames() for call in calls}
        for call in calls:
            call.marks.clear()
        killed_at = time.monotonic()
        lag = asyncio.create_task(_loop_lag(LAG_WINDOW_SECS))
        phase(f"killing node B: pids {kill_node(centre, 'b')}")

        moved = {call.call_id for call in on_b}

        def back(call: CallUnderTest) -> bool:
            """A moved call's video on a new console peer; the others' still coming (a second
            more of it, or on a new peer)."""
            if call.desk_peer_since > killed_at:
                # Offered again since (a moved call always; another when its video stalled
                # under the load of the moved ones): frames on the new peer.
                return call.frames() > 0
            return call.call_id not in moved and call.frames() > frames_at_kill[call.call_id] + 30

        try:
            await wait_until(
                lambda: all(back(call) for call in calls),
                BACK_WITHIN_SECS,
                "every call's video back",
            )
        except AssertionError:
            for call in calls:
                if not back(call):
                    phase(
                        f"not back: {call.call_id} moved={call.call_id in moved}"
                        f" phone_peer={call.phone_peer is not None}"
                        f" renewals={call.media_renewals}"
                        f" desk_peer_since={call.desk_peer_since - killed_at:.1f}"
                        f" frames={call.frames()} at_kill={frames_at_kill[call.call_id]}"
                    )
            raise
        phase("every call's video back")
        await wait_until(
            lambda: all(c in wall.back_at for c in moved if c in wall.lost_at),
            BACK_WITHIN_SECS,
            "every reconnecting tile back on the wall",
        )
        reconnecting_secs = [wall.lost_at.get(c, float("inf")) - killed_at for c in sorted(moved)]
        harness_lag = await lag
        steps: dict[str, list[float]] = {}
        for call in calls:
            if call.call_id in moved:
                for step, at in call.marks.items():
                    steps.setdefault(step, []).append(at - killed_at)
                if call.desk_peer is not None and call.desk_peer.received.first_video_at:
                    steps.setdefault("first frame", []).append(
                        call.desk_peer.received.first_video_at - killed_at
                    )
        # Each call offered again since the kill (every moved call, and any other whose video
        # stalled meanwhile): the kill to the first frame on its new peer. A call whose video
        # never stopped has no figure here.
        back_secs = [
            (c.desk_peer.received.first_video_at or 0.0) - killed_at
            for c in calls
            if c.desk_peer is not None and c.desk_peer_since > killed_at
        ]
        # Chat and fixes flow again on every call, then the calls end from the consoles.
        acked_then = {call.call_id: len(call.outbox.acked_chat) for call in calls}
        await wait_until(
            lambda: all(len(c.outbox.acked_chat) > acked_then[c.call_id] + 2 for c in calls),
            BACK_WITHIN_SECS,
            "chat acknowledged again on every call",
        )
        phase("chat acknowledged again")
        for call in calls:
            call.phone.closing = True
        await asyncio.gather(
            *(c.talking for c in calls if c.talking is not None), return_exceptions=True
        )
        for call in calls:
            await call.outbox.flush()
        for call in calls:
            ended = await call.desk.call(
                "end_call", {"call_id": call.call_id, "disposition": "dispatched"}
            )
            assert ended and ended["ok"], ended
        acked: dict[str, dict[str, list[Any]]] = {
            c.call_id: {"chat": list(c.outbox.acked_chat), "fixes": list(c.outbox.acked_fixes)}
            for c in calls
        }
    phase("calls ended")
    held = await stored(database_url, list(acked))
    lost = doubled = chats = fixes = 0
    for call_id, mine in acked.items():
        for kind in ("chat", "fixes"):
            theirs = held[call_id][kind]
            lost += len(set(mine[kind]) - set(theirs))
            doubled += len(theirs) - len(set(theirs))
        chats += len(held[call_id]["chat"])
        fixes += len(held[call_id]["fixes"])
    next_segments = 0
    for call in on_b:
        deadline = time.monotonic() + BACK_WITHIN_SECS
        while True:
            # Recording goes on as the next segment on A: after every segment B wrote (B may
            # have begun another before the kill, when a phone offered again under load).
            media = await media_of(database_url, call.call_id)
            on_node_b = [
                r["segment"] for r in media["recordings"] if r["media_node"].startswith("node-b")
            ]
            on_node_a = [
                r["segment"] for r in media["recordings"] if r["media_node"].startswith("node-a")
            ]
            if on_node_a and min(on_node_a) > max(on_node_b, default=0):
                next_segments += 1
                break
            assert time.monotonic() < deadline, f"no next segment on node A: {media}"
            await asyncio.sleep(0.2)
    phase("next segments found")
    return Figures(
        calls=len(calls),
        calls_back=sum(1 for call in calls if call.desk_frames_at > killed_at),
        affected=len(on_b),
        back_secs=back_secs,
        lost=lost,
        doubled=doubled,
        next_segments=next_segments,
        chats=chats,
        fixes=fixes,
        reconnecting_secs=reconnecting_secs,
        wall_back=sum(1 for c in moved if c in wall.back_at),
        harness_lag_secs=harness_lag,
        steps=steps,
    )
