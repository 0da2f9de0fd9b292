"""What an operations centre watches and pages on: the metrics of a real call, who may scrape
them, one access-log line per request, the request id, and the call named on its log lines (an
internal-security call only by its pseudonym).

Real parts throughout: the app on an ephemeral port, a real Socket.IO citizen and console, a
real aiortc phone, a real media node (MediaAgent) reporting over ``/media``, and the logging
the command line sets up, read back from stderr.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import BaseTestServer, TestServer
from prometheus_client.parser import text_string_to_metric_families

from config import Settings
from media.admission import Admission
from media.agent import MediaAgent
from media.hub import MediaHub
from server.app import create_app
from server.core.background import Background
from server.core.clock import FrozenClock, SystemClock
from server.core.logs import about_call, setup_logging
from server.core.media_rpc import ClosedSegment
from server.http.access_log import runner_options
from server.http.keys import SERVICES_KEY
from server.node import MEDIA_HUB_KEY, MEDIA_SECRET_KEY
from tests.conftest import ClientFactory
from tests.media_peers import MediaPeer, citizen_peer, wait_until
from tests.sockets import answer_via, base_url, citizen, console, start_call
from tests.staff import Client

MEDIA_TIMEOUT_SECS = 20.0
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


# -- helpers -----------------------------------------------------------------------------------


async def scrape(client: Client) -> Samples:
    """Every sample of ``/metrics``, parsed as Prometheus parses it."""
    response = await client.get("/metrics")
    assert response.status == 200, await response.text()
    assert response.content_type == "text/plain"
    samples: Samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in samples, f"no sample {name}{labels}"
    return samples[key]


def names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


class LoggedServer(TestServer):
    """The app served as ``server run`` serves it: with our access logger on the runner."""

    async def _make_runner(self, **kwargs: Any) -> web.AppRunner:
        return web.AppRunner(self.app, **{**kwargs, **runner_options()})


@pytest.fixture
def stderr_logs() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The logging the command line sets up (JSON, INFO), its stream read back as lines."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    names = ("aioice", "aiortc", "aiohttp.access")
    saved = {name: logging.getLogger(name).level for name in names}
    setup_logging("json", "INFO")
    (handler,) = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    handler.setStream(stream)  # stderr, as the command line has it, but ours to read

    def lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in stream.getvalue().splitlines() if line]

    yield lines
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


async def logged_client(
    aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock
) -> Client:
    server: BaseTestServer = LoggedServer(create_app(settings, clock))
    return await aiohttp_client(server)


@asynccontextmanager
async def media_node(client: Client, node_id: str) -> AsyncIterator[MediaAgent]:
    """What a media worker process runs (its own hub and admission control), connected to the
    client's node over ``/media``."""
    assert client.app is not None
    app = client.app
    settings = app[SERVICES_KEY].settings
    agents: list[MediaAgent] = []

    async def closed(segment: ClosedSegment) -> None:
        await agents[0].segment_closed(segment)

    admission = Admission(max_loop_lag_ms=100_000, max_cpu_percent=100_000)
    admission.start()
    hub = MediaHub(
        recordings_dir=settings.DATA_DIR / "recordings",
        ice_servers=[],
        media_addresses=settings.MEDIA_ADDRESSES,
        peer_networks=settings.MEDIA_PEER_NETWORKS,
        on_segment_closed=closed,
        segment_secs=settings.RECORDING_SEGMENT_SECS,
        clock=SystemClock(),
        admission=admission,
    )
    agent = MediaAgent(
        hub,
        node_id=node_id,
        home=settings.NODE_ID,
        secret=app[MEDIA_SECRET_KEY],
        admission=admission,
    )
    agents.append(agent)
    await agent.connect(base_url(client))
    try:
        yield agent
    finally:
        await agent.close()


async def scraped_until(client: Client, condition: Callable[[Samples], bool], what: str) -> Samples:
    """Scrape until ``condition`` holds (a media node reports once a second)."""
    for _ in range(100):
        samples = await scrape(client)
        if condition(samples):
            return samples
        await asyncio.sleep(0.1)
    raise AssertionError(f"the metrics never showed {what}")


# -- the metrics of a call ---------------------------------------------------------------------


async def test_every_family_has_real_values_during_a_call(
    client: Client, operator: Client, clock: FrozenClock
) -> None:
    assert client.app is not None
    hub = client.app[MEDIA_HUB_KEY]
    assert hub is not None and hub.admission is not None
    node = client.app[SERVICES_KEY].settings.NODE_ID
    peers: list[MediaPeer] = []
    try:
        async with console(operator) as desk:
            started = await start_call(client)
            call_id = started["call_id"]
            async with citizen(client, started["token"]) as phone:
                peers.append(await citizen_peer(answer_via(phone)))
                await wait_until(
                    lambda: hub.stats(call_id)["citizen"]["video_received"] > 10,
                    MEDIA_TIMEOUT_SECS,
                    "the caller's video",
                )
                queued = await scrape(client)
                assert value(queued, "lifeline_calls_queued", channel="police") == 1
                assert value(queued, "lifeline_calls_queued", channel="internal_security") == 0
                assert value(queued, "lifeline_calls_created_total", channel="police") == 1
                operators = {"role": "operator"}
                assert value(queued, "lifeline_operators", **operators, state="available") == 1
                assert value(queued, "lifeline_operators", **operators, state="in_call") == 0
                assert value(queued, "lifeline_media_sessions", media_node=node) == 1
                assert value(queued, "lifeline_media_admitting", media_node=node) == 1
                lag = value(queued, "lifeline_media_loop_lag_seconds", media_node=node)
                assert 0 <= lag < 100
                assert value(queued, "lifeline_socketio_connections", namespace="/citizen") == 1
                assert value(queued, "lifeline_socketio_connections", namespace="/console") == 1
                assert value(queued, "lifeline_scrape_ok", part="queue") == 1

                clock.advance(7)  # the caller waits 7 s on the app's clock
                assert (await desk.call("accept", {"call_id": call_id}))["ok"]
                answered = await scrape(client)
                assert value(answered, "lifeline_calls_queued", channel="police") == 0
                police = {"channel": "police"}
                outcome = "lifeline_call_outcomes_total"
                assert value(answered, outcome, **police, outcome="answered") == 1
                assert value(answered, "lifeline_call_wait_seconds_count", **police) == 1
                assert value(answered, "lifeline_call_wait_seconds_sum", **police) == 7.0
                assert value(answered, "lifeline_call_wait_seconds_bucket", **police, le="5.0") == 0
                assert (
                    value(answered, "lifeline_call_wait_seconds_bucket", **police, le="10.0") == 1
                )
                assert value(answered, "lifeline_operators", **operators, state="in_call") == 1

                # The node is overloaded: a second call's media is refused (its chat goes on).
                hub.admission.max_cpu_percent = -1.0
                second = await start_call(client)
                async with citizen(client, second["token"]) as other:
                    sdp = peers[0].pc.localDescription.sdp
                    reply = await other.call("media_offer", {"type": "offer", "sdp": sdp})
                    assert reply["error"]["code"] == "media_busy"
                    assert (await other.call("end_call", {}))["state"] == "abandoned"
                hub.admission.max_cpu_percent = 100_000
                refused = await scrape(client)
                refusals = "lifeline_media_admission_refusals_total"
                assert value(refused, refusals, media_node=node, cause="cpu") == 1
                assert value(refused, refusals, media_node=node, cause="loop_lag") == 0
                assert value(refused, "lifeline_media_unplaced_total") == 1
                assert value(refused, outcome, **police, outcome="abandoned") == 1

                ended = await desk.call(
                    "end_call", {"call_id": call_id, "disposition": "dispatched", "note": ""}
                )
                assert ended["state"] == "ended"
    finally:
        for peer in peers:
            await peer.close()
    # The server forgets a closed socket a moment after the client has let go (later through
    # Redis in scale-out): wait for that too.
    after = await scraped_until(
        client,
        lambda s: (
            s.get(("lifeline_recording_segments_stored_total", frozenset())) == 1
            and s.get(("lifeline_socketio_connections", frozenset({("namespace", "/citizen")})))
            == 0
        ),
        "the call's segment stored and the caller's socket gone",
    )
    assert value(after, "lifeline_call_outcomes_total", channel="police", outcome="ended") == 1
    assert value(after, "lifeline_recording_segments_written_total", media_node=node) == 1
    assert value(after, "lifeline_recording_segment_failures_total", media_node=node) == 0
    assert value(after, "lifeline_recording_frames_dropped_total", media_node=node) == 0
    store_failures = "lifeline_recording_segment_store_failures_total"
    assert value(after, store_failures, reason="conflict") == 0
    assert value(after, "lifeline_media_sessions", media_node=node) == 0
    assert value(after, "lifeline_socketio_connections", namespace="/citizen") == 0
    # The process and platform collectors, on the app's own registry; the HTTP requests.
    assert value(after, "process_cpu_seconds_total") > 0
    assert {"process_resident_memory_bytes", "python_info"} <= names(after)
    created = {"method": "POST", "route": "/api/calls", "status": "201"}
    assert value(after, "lifeline_http_requests_total", **created) == 2
    assert value(after, "lifeline_degraded", store="redis") == 0


@pytest.fixture
async def worker_node(
    settings: Settings, clock: FrozenClock, aiohttp_client: ClientFactory
) -> Client:
    """A node whose media is all in media nodes of their own (MEDIA_WORKERS > 0)."""
    with_workers = settings.model_copy(update={"MEDIA_WORKERS": 1})
    return await aiohttp_client(create_app(with_workers, clock))


async def test_a_media_node_is_exported_as_it_last_reported(worker_node: Client) -> None:
    """A worker's load, its refusals and its segments reach the node in its load reports; the
    node exports them under the worker's id, and drops them when it leaves."""
    client = worker_node
    assert client.app is not None
    assert client.app[MEDIA_HUB_KEY] is None
    peers: list[MediaPeer] = []
    async with media_node(client, "test.m1") as node:
        started = await start_call(client)
        try:
            async with citizen(client, started["token"]) as phone:
                peers.append(await citizen_peer(answer_via(phone)))
                m1 = {"media_node": "test.m1"}
                reported = await scraped_until(
                    client,
                    lambda s: s.get(("lifeline_media_sessions", frozenset(m1.items()))) == 1,
                    "the worker's session",
                )
                assert value(reported, "lifeline_media_loop_lag_seconds", **m1) >= 0
                assert value(reported, "lifeline_media_admitting", **m1) == 1
                assert node.hub.admission is not None
                node.hub.admission.max_cpu_percent = -1.0  # from now on, it is "overloaded"
                second = await start_call(client)
                async with citizen(client, second["token"]) as other:
                    sdp = peers[0].pc.localDescription.sdp
                    reply = await other.call("media_offer", {"type": "offer", "sdp": sdp})
                    assert reply["error"]["code"] == "media_busy"
                refusal = frozenset({**m1, "cause": "cpu"}.items())
                refused = await scraped_until(
                    client,
                    lambda s: s.get(("lifeline_media_admission_refusals_total", refusal)) == 1,
                    "the worker's refusal",
                )
                assert value(refused, "lifeline_media_unplaced_total") == 1
                assert value(refused, "lifeline_media_admitting", **m1) == 0
                assert (await phone.call("end_call", {}))["state"] == "abandoned"
        finally:
            for peer in peers:
                await peer.close()
        written = frozenset(m1.items())
        done = await scraped_until(
            client,
            lambda s: (
                s.get(("lifeline_recording_segments_written_total", written)) == 1
                and s.get(("lifeline_recording_segments_stored_total", frozenset())) == 1
            ),
            "the worker's segment written and stored",
        )
        assert value(done, "lifeline_media_sessions", **m1) == 0
        assert value(done, "lifeline_socketio_connections", namespace="/media") == 1
    media_ns = frozenset({"namespace": "/media"}.items())
    await scraped_until(
        client,
        lambda s: (
            ("lifeline_media_sessions", frozenset(m1.items())) not in s
            and s[("lifeline_socketio_connections", media_ns)] == 0
        ),
        "the worker gone, its series with it",
    )


# -- who may scrape ----------------------------------------------------------------------------


async def test_metrics_are_refused_outside_metrics_networks(
    settings: Settings, clock: FrozenClock, aiohttp_client: ClientFactory
) -> None:
    """The connection's own peer is judged (127.0.0.1 here, outside 10.0.0.0/8), not the
    forwarded-for address a trusted proxy says."""
    narrowed = settings.model_copy(
        update={"METRICS_NETWORKS": ["10.0.0.0/8"], "TRUSTED_PROXIES": ["127.0.0.0/8"]}
    )
    client = await aiohttp_client(create_app(narrowed, clock))
    for headers in ({}, {"X-Forwarded-For": "10.1.2.3"}):
        refused = await client.get("/metrics", headers=headers)
        assert refused.status == 403
        body = await refused.json()
        assert body["error"]["code"] == "forbidden"
        assert "lifeline_" not in await refused.text()
    assert (await client.get("/healthz")).status == 200  # the probes stay open


async def test_metrics_are_served_to_loopback_by_default(client: Client) -> None:
    assert client.app is not None
    assert client.app[SERVICES_KEY].settings.METRICS_NETWORKS == ["127.0.0.0/8", "::1/128"]
    assert "lifeline_calls_queued" in names(await scrape(client))


# -- logs --------------------------------------------------------------------------------------


async def test_each_request_has_an_access_line_with_its_route_template(
    settings: Settings,
    clock: FrozenClock,
    aiohttp_client: ClientFactory,
    stderr_logs: Callable[[], list[dict[str, Any]]],
) -> None:
    client = await logged_client(aiohttp_client, settings, clock)
    started = await start_call(client)
    call_id = started["call_id"]
    health = await client.get("/healthz")
    snapshot = await client.get(f"/api/calls/{call_id}/snapshots/7")
    assert snapshot.status in (401, 403, 404)
    stray = await client.get(f"/no/such/{call_id}")
    assert stray.status == 404

    lines = stderr_logs()
    access = [line for line in lines if line["logger"] == "lifeline.access"]
    by_route = {line["route"]: line for line in access}
    assert by_route["/api/calls"]["method"] == "POST"
    assert by_route["/api/calls"]["status"] == 201
    assert by_route["/healthz"]["status"] == 200
    assert by_route["/healthz"]["request_id"] == health.headers["X-Request-Id"]
    template = by_route["/api/calls/{call_id}/snapshots/{snapshot_id}"]
    assert template["status"] == snapshot.status
    assert template["request_id"] == snapshot.headers["X-Request-Id"]
    assert by_route["unmatched"]["status"] == 404
    for line in access:
        assert line["level"] == "info" and line["msg"] == "request"
        assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
        assert re.fullmatch(r"[0-9a-f]{32}", line["request_id"])
    # No access line holds the call's id in a path.
    assert not [line for line in access if call_id in line["route"]]
    # Every line the request logged carries its id: the refusal of the snapshot too.
    refusals = [line for line in lines if line["msg"] == "refused"]
    assert [line["request_id"] for line in refusals if line["status"] == snapshot.status] == [
        snapshot.headers["X-Request-Id"]
    ]


async def test_a_request_id_is_taken_only_from_a_trusted_proxy(
    settings: Settings, clock: FrozenClock, aiohttp_client: ClientFactory
) -> None:
    offered = {"X-Request-Id": "nginx-5f2b9c0e"}
    direct = await aiohttp_client(create_app(settings, clock))
    made = await direct.get("/healthz", headers=offered)
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["X-Request-Id"])
    assert made.headers["X-Request-Id"] != (await direct.get("/healthz")).headers["X-Request-Id"]

    behind = settings.model_copy(update={"TRUSTED_PROXIES": ["127.0.0.0/8"]})
    proxied = await aiohttp_client(create_app(behind, clock))
    kept = await proxied.get("/healthz", headers=offered)
    assert kept.headers["X-Request-Id"] == "nginx-5f2b9c0e"
    # Even from the proxy, an id that could carry text into the logs is replaced.
    odd = await proxied.get("/healthz", headers={"X-Request-Id": 'x" level="error'})
    assert re.fullmatch(r"[0-9a-f]{32}", odd.headers["X-Request-Id"])
    # Refusals and redirects carry it too.
    missing = await proxied.get("/no/such/page", headers=offered)
    assert missing.status == 404
    assert missing.headers["X-Request-Id"] == "nginx-5f2b9c0e"


async def test_call_lines_name_the_call_and_an_internal_security_call_by_its_pseudonym(
    settings: Settings,
    clock: FrozenClock,
    aiohttp_client: ClientFactory,
    stderr_logs: Callable[[], list[dict[str, Any]]],
) -> None:
    client = await logged_client(aiohttp_client, settings, clock)
    assert client.app is not None
    pseudonyms = client.app[SERVICES_KEY].pseudonyms
    police = await start_call(client)
    hidden = await start_call(client, channel="internal_security")
    hidden_name = pseudonyms.call_log_name(hidden["call_id"])
    for started in (police, hidden):
        async with citizen(client, started["token"]) as phone:
            # A refused event of the caller's page: logged while handling it, about its call.
            trickled = await phone.call(
                "media_ice", {"candidate": "", "sdpMid": "0", "sdpMLineIndex": 0}
            )
            assert trickled["ok"] is False
            assert (await phone.call("end_call", {}))["state"] == "abandoned"

    lines = stderr_logs()
    created = [line for line in lines if line["msg"] == "call created"]
    assert [(line["call_id"], line["channel"]) for line in created] == [
        (police["call_id"], "police"),
        (hidden_name, "internal_security"),
    ]
    refused = [line for line in lines if line["msg"] == "event refused"]
    assert [line["call_id"] for line in refused] == [police["call_id"], hidden_name]
    # The access line of the request that created a call names it too, as the logs may.
    posts = [line for line in lines if line.get("route") == "/api/calls"]
    assert [line["call_id"] for line in posts] == [police["call_id"], hidden_name]
    assert re.fullmatch(r"is-[0-9a-f]{16}", hidden_name)
    # Nothing logged names the internal-security call by its id.
    assert not [line for line in lines if hidden["call_id"] in json.dumps(line)]


async def test_background_work_names_no_call_it_did_not_say(
    stderr_logs: Callable[[], list[dict[str, Any]]],
) -> None:
    """Work started while a call was in hand (a socket's periodic recheck, started by the
    first socket) is about no call unless it says which."""
    background = Background()
    said = asyncio.Event()

    async def work() -> None:
        logging.getLogger("lifeline.test").info("background line")
        about_call("call-42")
        logging.getLogger("lifeline.test").info("about a call")
        said.set()

    about_call("call-7")
    background.spawn(work(), name="test")
    await asyncio.wait_for(said.wait(), 5)
    logging.getLogger("lifeline.test").info("back in the caller")
    await background.close()
    lines = {line["msg"]: line for line in stderr_logs() if line["logger"] == "lifeline.test"}
    assert "call_id" not in lines["background line"]
    assert lines["about a call"]["call_id"] == "call-42"
    assert lines["back in the caller"]["call_id"] == "call-7"
