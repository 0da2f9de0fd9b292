"""Admission control: an overloaded node refuses new media, keeps its calls, chat goes on."""

from __future__ import annotations

import asyncio
import time

from media.admission import Admission, host_cpu_times
from server.node import MEDIA_HUB_KEY
from tests.media_peers import MediaPeer, citizen_peer, wait_until
from tests.sockets import answer_via, citizen, start_call
from tests.staff import Client


def test_host_cpu_times_are_read() -> None:
    first = host_cpu_times()
    assert first is not None
    sum(range(2_000_000))  # some CPU between the two readings
    second = host_cpu_times()
    assert second is not None
    busy, total = second[0] - first[0], second[1] - first[1]
    assert 0 <= busy <= total


async def test_a_busy_machine_refuses_even_when_the_process_is_idle() -> None:
    """Another process starving this one: its own CPU stays low, the machine's does not."""
    admission = Admission(max_loop_lag_ms=1e9, max_cpu_percent=1e9, max_host_cpu_percent=0.0)
    admission.start()
    try:
        await wait_until(
            lambda: admission.load.host_cpu_percent > 0, 5.0, "a sample of the machine's CPU"
        )
        assert not admission.admit()
        admission.max_host_cpu_percent = 100.0  # a whole machine is never more than 100 % busy
        assert admission.admit()
    finally:
        await admission.close()


async def test_a_blocked_loop_is_seen_as_lag() -> None:
    admission = Admission(max_loop_lag_ms=50, max_cpu_percent=1000)
    admission.start()
    try:
        assert admission.admit()
        for _ in range(10):
            time.sleep(0.12)  # noqa: ASYNC251  (the point: hog the loop, as heavy media would)
            await asyncio.sleep(0)
        await asyncio.sleep(0.15)  # let the sampler see it
        assert admission.load.loop_lag_ms > 50
        assert not admission.admit()
        await wait_until(lambda: admission.admit(), 5.0, "the lag to settle")
    finally:
        await admission.close()


async def test_below_its_guaranteed_share_a_node_admits_whatever_the_machine_says() -> None:
    """A browser or a backup beside an idle node makes the machine look busy: a node with
    fewer calls than its share still takes the next one."""
    admission = Admission(
        max_loop_lag_ms=1e9, max_cpu_percent=1e9, max_host_cpu_percent=0.0, guaranteed_sessions=2
    )
    admission.start()
    try:
        await wait_until(
            lambda: admission.load.host_cpu_percent > 0, 5.0, "a sample of the machine's CPU"
        )
        assert admission.admit(sessions=0) and admission.admit(sessions=1)
        assert admission.fits(1)
        assert not admission.admit(sessions=2)  # past its share: the machine's CPU counts
        assert admission.refused["host_cpu"] == 1
    finally:
        await admission.close()


async def test_a_spike_shorter_than_the_window_refuses_nothing() -> None:
    """Judged over a sustained window: a blocked loop for a moment is not an overload, a
    blocked loop for longer than the window is."""
    admission = Admission(max_loop_lag_ms=50, max_cpu_percent=1e9, sustained_secs=3.0)
    admission.start()
    try:
        for _ in range(10):
            time.sleep(0.12)  # noqa: ASYNC251  (hog the loop, as heavy media would)
            await asyncio.sleep(0)
        await asyncio.sleep(0.15)
        assert admission.load.loop_lag_ms > 50
        assert admission.admit(), "a spike shorter than the window refuses nothing"
        started = time.monotonic()
        while time.monotonic() - started < 3.5:  # over the threshold for longer than the window
            time.sleep(0.12)  # noqa: ASYNC251
            await asyncio.sleep(0)
        assert admission.load.loop_lag_ms > 50
        assert not admission.admit()
        assert admission.refused["loop_lag"] == 1
    finally:
        await admission.close()


async def test_an_overloaded_node_refuses_new_media_but_keeps_its_calls(client: Client) -> None:
    assert client.app is not None
    hub = client.app[MEDIA_HUB_KEY]
    assert hub is not None
    assert hub.admission is not None
    admitted, refused = await start_call(client), await start_call(client)
    peers: list[MediaPeer] = []
    try:
        async with citizen(client, admitted["token"]) as first:
            peers.append(await citizen_peer(answer_via(first)))
            await wait_until(
                lambda: hub.admission is not None and hub.admission.load.cpu_percent > 0,
                5.0,
                "a CPU sample",
            )
            # From now on the node is "overloaded", at once (no window), with its one call
            # already its whole guaranteed share.
            hub.admission.sustained_secs = 0.0
            hub.admission.guaranteed_sessions = 1
            hub.admission.max_cpu_percent = 0.0
            async with citizen(client, refused["token"]) as second:
                sdp = peers[0].pc.localDescription.sdp
                reply = await second.call("media_offer", {"type": "offer", "sdp": sdp})
                assert reply["ok"] is False
                assert reply["error"]["code"] == "media_busy"
                assert (await second.next_error())["code"] == "media_busy"
                assert not hub.has_session(refused["call_id"])
                # The refused call still queues, and its chat works.
                said = await second.call("chat", {"client_id": "c-busy0001", "body": "no video?"})
                assert said["ok"]
                assert (await second.call("resume", {}))["call"]["state"] == "queued"
            # The admitted call keeps its media: a reconnect (new peer) is still answered.
            await peers[0].close()
            peers.append(await citizen_peer(answer_via(first)))
            assert hub.has_session(admitted["call_id"])
    finally:
        for peer in peers:
            await peer.close()
