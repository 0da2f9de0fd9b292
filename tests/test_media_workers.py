"""``LIFELINE_MEDIA_WORKERS``: a real ``python -m server run`` with two media worker processes.

A worker killed outright is started again and the call's next offer gets media, and the
restarted worker recovers the segment its predecessor died with; a node that stops closes its
workers' calls first, so their last segments are stored as evidence.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest

from media.recovery import count_frames
from server.actions.media_liveness import LOST_SECS
from server.core.storage import recording_key
from signaling.media_bus import OFFER_TIMEOUT_SECS
from tests.browser.conftest import RunningServer, call_media, start_server, stop_server
from tests.media_peers import MediaPeer, citizen_peer, wait_until
from tests.sockets import answer_via, connect

MEDIA_TIMEOUT_SECS = 20.0
RECOVERY_TIMEOUT_SECS = 60.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(
        tmp_path_factory.mktemp("workers"),
        {"LIFELINE_MEDIA_WORKERS": "2", "LIFELINE_CALL_RATE_LIMIT": "100/minute"},
    )
    yield running
    stop_server(running)


def workers_of(server: RunningServer) -> dict[str, int]:
    """Media node id -> pid of every worker process of this server."""
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in args]
        if "media.worker" in words and server.base in words:
            found[words[words.index("--id") + 1]] = int(entry.name)
    return found


def stored_segments(server: RunningServer, call_id: str) -> set[int]:
    return {r["segment"] for r in call_media(server, call_id)["recordings"]}


def sealed_after_kill(server: RunningServer, call_id: str, before: set[int]) -> dict[str, Any]:
    """The call's media after its worker was killed and the call ended: waits for the new media
    node's segment and for the killed worker's open segment (numbered after ``before``), which
    the restarted worker recovers, and checks that the move kept the evidence apart: the next
    segment takes a later number, so nothing is overwritten."""
    deadline = time.monotonic() + MEDIA_TIMEOUT_SECS
    while True:
        media = call_media(server, call_id)
        new = [r for r in media["recordings"] if r["segment"] not in before]
        if new and new[-1]["media_node"] == media["media_node"]:
            break
        assert time.monotonic() < deadline, f"no segment from the new media node: {media}"
        time.sleep(0.2)
    # The restarted worker recovers it once it is up (a process start: long on a busy machine).
    deadline = time.monotonic() + RECOVERY_TIMEOUT_SECS
    while not (recovered := [r for r in new if r["recovered"]]):
        assert time.monotonic() < deadline, f"the killed worker's segment not recovered: {media}"
        time.sleep(0.2)
        media = call_media(server, call_id)
        new = [r for r in media["recordings"] if r["segment"] not in before]
    [killed] = recovered
    assert killed["segment"] == max(before, default=0) + 1, media
    numbers = [r["segment"] for r in media["recordings"]]
    assert numbers == sorted(set(numbers)), media
    assert new[-1]["segment"] >= max(before, default=0) + 2, media
    assert len({r["path"] for r in media["recordings"]}) == len(numbers), media
    return media


async def _ready(http: aiohttp.ClientSession, server: RunningServer) -> list[str]:
    async with http.get(f"{server.base}/readyz") as response:
        assert response.status == 200
        nodes: list[str] = (await response.json())["media_nodes"]
        return nodes


async def _connected(peer: MediaPeer) -> None:
    await wait_until(
        lambda: peer.pc.connectionState == "connected", MEDIA_TIMEOUT_SECS, "ICE and DTLS"
    )


async def _start_call(http: aiohttp.ClientSession, server: RunningServer) -> dict[str, Any]:
    body = {"channel": "police", "language": "en", "mode": "video"}
    async with http.post(f"{server.base}/api/calls", json=body) as response:
        assert response.status == 201, await response.text()
        started: dict[str, Any] = await response.json()
        return started


def _video_on_disk(path: Path) -> int:
    try:
        return count_frames(path)["video"]
    except (OSError, av.error.FFmpegError):
        return 0  # not there yet, or not even its header


def _check_file(recording: dict[str, Any]) -> None:
    path = Path(recording["path"])
    assert hashlib.sha256(path.read_bytes()).hexdigest() == recording["sha256"]
    with av.open(str(path)) as container:
        assert sum(1 for packet in container.demux(video=0) if packet.size) > 0


async def test_a_killed_worker_comes_back_and_the_call_gets_media_again(
    server: RunningServer,
) -> None:
    async with aiohttp.ClientSession() as http:
        workers = await _ready(http, server)
        assert len(workers) == 2 and workers == sorted(workers_of(server)), workers
        started = await _start_call(http, server)
        call_id = started["call_id"]
        peers: list[MediaPeer] = []
        auth = {"token": started["token"], "last_seq": 0}
        try:
            async with connect(server.base, "/citizen", auth=auth) as phone:
                peers.append(await citizen_peer(answer_via(phone)))
                await _connected(peers[0])
                home = call_media(server, call_id)["media_node"]
                assert home in workers
                before = stored_segments(server, call_id)
                # Killed once its open segment holds a whole cluster of video.
                open_segment = (
                    Path(server.env["LIFELINE_DATA_DIR"])
                    / "files"
                    / recording_key(call_id, max(before, default=0) + 1)
                )
                await wait_until(
                    lambda: _video_on_disk(open_segment) > 0, MEDIA_TIMEOUT_SECS, "a cluster"
                )
                os.kill(workers_of(server)[home], signal.SIGKILL)
                await peers[0].close()
                # The page reconnects with a new peer connection: media again, somewhere.
                peers.append(await citizen_peer(answer_via(phone)))
                await _connected(peers[1])
                await asyncio.sleep(1.5)
                assert (await phone.call("end_call", {}))["ok"]
        finally:
            for peer in peers:
                await peer.close()
        media = sealed_after_kill(server, call_id, before)
        _check_file(media["recordings"][-1])
        # The segment the worker died with, recovered by its successor: as it was left, and
        # holding the whole clusters it had written.
        [killed] = [r for r in media["recordings"] if r["recovered"]]
        _check_file(killed)
        # The killed worker is back.
        for _ in range(100):
            if await _ready(http, server) == workers:
                break
            await asyncio.sleep(0.1)
        assert await _ready(http, server) == workers
        assert home in workers_of(server)


async def test_a_hung_worker_is_not_waited_for_to_the_end_of_the_offer_timeout(
    server: RunningServer,
) -> None:
    """A media node that stops answering and reporting (SIGSTOP: as a machine that froze, or a
    node killed with no goodbye) is given up once it has been silent for LOST_SECS: the
    caller's next offer is placed on the other worker well before OFFER_TIMEOUT_SECS, which is
    what it waited before."""
    async with aiohttp.ClientSession() as http:
        workers = await _ready(http, server)
        started = await _start_call(http, server)
    call_id = started["call_id"]
    peers: list[MediaPeer] = []
    auth = {"token": started["token"], "last_seq": 0}
    async with connect(server.base, "/citizen", auth=auth) as phone:
        try:
            peers.append(await citizen_peer(answer_via(phone)))
            await _connected(peers[0])
            home = call_media(server, call_id)["media_node"]
            assert home in workers
            hung = workers_of(server)[home]
            os.kill(hung, signal.SIGSTOP)
            try:
                began = time.monotonic()
                peers.append(await citizen_peer(answer_via(phone)))
                answered_in = time.monotonic() - began
                moved_to = call_media(server, call_id)["media_node"]
                await _connected(peers[1])
            finally:
                os.kill(hung, signal.SIGCONT)
            assert moved_to != home and moved_to in workers, (home, moved_to)
            assert LOST_SECS <= answered_in < OFFER_TIMEOUT_SECS, answered_in
            assert (await phone.call("end_call", {}))["ok"]
        finally:
            for peer in peers:
                await peer.close()


async def test_a_stopping_node_stores_its_calls_last_segments(server: RunningServer) -> None:
    """Runs last: it stops the module's server."""
    async with aiohttp.ClientSession() as http:
        started = await _start_call(http, server)
    call_id = started["call_id"]
    peer: MediaPeer | None = None
    auth = {"token": started["token"], "last_seq": 0}
    async with connect(server.base, "/citizen", auth=auth) as phone:
        peer = await citizen_peer(answer_via(phone))
        try:
            await _connected(peer)
            await asyncio.sleep(1.5)
            await asyncio.to_thread(stop_server, server)  # SIGTERM, as an orchestrator does
        finally:
            await peer.close()
    assert server.process.returncode == 0
    assert workers_of(server) == {}
    media = call_media(server, call_id)
    assert [r["segment"] for r in media["recordings"]] == [1], media
    assert media["recordings"][0]["media_node"] == media["media_node"]
    _check_file(media["recordings"][0])
