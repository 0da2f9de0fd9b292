"""Prometheus metrics, in a registry of the app's own (no process-wide default registry).

Three kinds. What can be read at any moment is read at scrape time from the services (the
queue, the operators, this node's media nodes as they last reported, Socket.IO connections):
one source of truth, nothing to keep in step. What happens (a call's outcome, a segment stored)
is counted where it happens, by the actions, through the ``Telemetry`` port that ``Metrics``
implements. And the HTTP requests, counted by a middleware. Plus the process and platform
collectors of prometheus-client, on the same registry.

The queue and the operators are the whole deployment's (the database, the shared presence):
every node reports the same values, so aggregate them with ``max``, not ``sum``. Everything
else is this node's own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar, get_args

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from server.actions.queue import operator_states, queued_by_channel
from server.core.media_rpc import FailureStage, LoadReport, RefusalCause
from server.core.outages import Outages
from server.core.ports import CallOutcome, StoreFailure
from server.core.services import Services
from server.db.models import Channel, Role
from server.http.access_log import route_of
from server.http.keys import Handler

log = logging.getLogger("lifeline.metrics")

# The shared stores a node can work without for a while (server/core/outages.py).
SHARED_STORES = ("redis", "database", "directory")
OUTCOMES: tuple[CallOutcome, ...] = ("answered", "transferred", "abandoned", "ended")
CAUSES: tuple[RefusalCause, ...] = ("loop_lag", "cpu", "host_cpu")
STORE_FAILURES: tuple[StoreFailure, ...] = ("conflict", "error")
# The roles whose accounts answer calls (the wall's operators; internal security's officers).
ANSWERING_ROLES = (Role.OPERATOR, Role.INTERNAL_SECURITY)
OPERATOR_STATES = ("available", "in_call", "offline")
# Seconds a caller waits for an answer: an emergency line's targets are in seconds.
WAIT_BUCKETS = (2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600)
# One part of a scrape (a database query, the presence store) answers in this long, or the
# scrape goes on without it (lifeline_scrape_ok{part} is 0): metrics matter most in an outage.
PART_TIMEOUT_SECS = 2.0

T = TypeVar("T")


@dataclass(frozen=True)
class Sources:
    """What a scrape reads, set once the node's services exist.

    ``local_media``: this process's own media hub, by its media node id, as it would report
    itself (None with media workers: they report over the bus). ``connections``: this node's
    Socket.IO connections, by namespace.
    """

    services: Services
    local_media: Callable[[], tuple[str, LoadReport]] | None
    connections: Callable[[], Mapping[str, int]]


@dataclass
class _Snapshot:
    ok: dict[str, bool] = field(default_factory=dict)
    queued: Mapping[str, int] | None = None
    operators: dict[tuple[str, str], int] | None = None
    media: dict[str, LoadReport] | None = None
    connections: Mapping[str, int] = field(default_factory=dict)


class _Live(Collector):
    """The families read at scrape time: ``refresh`` (async: the database, the presence
    store) gathers them, then ``collect`` (called by ``generate_latest``, synchronously and
    right after) yields them."""

    def __init__(self) -> None:
        self.snapshot = _Snapshot()

    def collect(self) -> Iterable[Metric]:
        snap = self.snapshot
        ok = GaugeMetricFamily(
            "lifeline_scrape_ok", "1 when this part of the scrape was read now", labels=["part"]
        )
        for part, read in sorted(snap.ok.items()):
            ok.add_metric([part], float(read))
        yield ok
        if snap.queued is not None:
            queued = GaugeMetricFamily(
                "lifeline_calls_queued",
                "Calls waiting for an answer, by channel (the whole deployment)",
                labels=["channel"],
            )
            for channel, count in sorted(snap.queued.items()):
                queued.add_metric([channel], count)
            yield queued
        if snap.operators is not None:
            operators = GaugeMetricFamily(
                "lifeline_operators",
                "Accounts that answer calls, by role and state (the whole deployment)",
                labels=["role", "state"],
            )
            for (role, state), count in sorted(snap.operators.items()):
                operators.add_metric([role, state], count)
            yield operators
        if snap.media is not None:
            yield from _media_families(snap.media)
        connections = GaugeMetricFamily(
            "lifeline_socketio_connections",
            "Socket.IO connections to this node, by namespace",
            labels=["namespace"],
        )
        for namespace, count in sorted(snap.connections.items()):
            connections.add_metric([namespace], count)
        yield connections


def _media_families(media: dict[str, LoadReport]) -> Iterable[Metric]:
    """This node's media nodes (its workers, or its own hub), as each last reported."""
    label = ["media_node"]
    sessions = GaugeMetricFamily(
        "lifeline_media_sessions", "Calls with media on the media node", labels=label
    )
    lag = GaugeMetricFamily(
        "lifeline_media_loop_lag_seconds",
        "The media node's event-loop lag (smoothed), what admission control watches",
        labels=label,
    )
    admitting = GaugeMetricFamily(
        "lifeline_media_admitting", "1 while the media node takes new calls' media", labels=label
    )
    refusals = CounterMetricFamily(
        "lifeline_media_admission_refusals",
        "New calls' media the media node refused as overloaded, by the first signal over",
        labels=["media_node", "cause"],
    )
    written = CounterMetricFamily(
        "lifeline_recording_segments_written",
        "Recording segments the media node closed and hashed",
        labels=label,
    )
    failed = CounterMetricFamily(
        "lifeline_recording_segment_failures",
        "Recording segments the media node failed to write",
        labels=label,
    )
    dropped = CounterMetricFamily(
        "lifeline_recording_frames_dropped",
        "Frames the media node could not record (the disk fell behind)",
        labels=label,
    )
    disk_free = GaugeMetricFamily(
        "lifeline_recording_disk_free_bytes",
        "Free space on the media node's recording volume",
        labels=label,
    )
    disk_low = GaugeMetricFamily(
        "lifeline_recording_disk_low",
        "1 while the recording volume is under RECORDING_MIN_FREE_MB (recording paused)",
        labels=label,
    )
    paused = GaugeMetricFamily(
        "lifeline_recording_paused_calls",
        "Calls on the media node going on unrecorded (the recording volume low)",
        labels=label,
    )
    for node, load in sorted(media.items()):
        sessions.add_metric([node], load.sessions)
        if load.disk_free_bytes is not None:
            disk_free.add_metric([node], load.disk_free_bytes)
        disk_low.add_metric([node], float(load.disk_low))
        paused.add_metric([node], load.recording_paused)
        if load.loop_lag_ms is not None:
            lag.add_metric([node], load.loop_lag_ms / 1000)
        admitting.add_metric([node], float(load.admit))
        for cause in CAUSES:
            refusals.add_metric([node, cause], load.refused.get(cause, 0))
        written.add_metric([node], load.segments_written)
        failed.add_metric([node], load.segments_failed)
        dropped.add_metric([node], load.frames_dropped)
    yield from (sessions, lag, admitting, refusals, written, failed, dropped)
    yield from (disk_free, disk_low, paused)


class Metrics:
    """The node's metrics, and the ``Telemetry`` its actions count through."""

    def __init__(self, registry: CollectorRegistry, outages: Outages) -> None:
        self.registry = registry
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        self.requests = Counter(
            "lifeline_http_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "lifeline_http_request_seconds",
            "HTTP request latency",
            ["route"],
            registry=registry,
        )
        self.degraded = Gauge(
            "lifeline_degraded",
            "1 while some part of this node works without the shared store (its own view only)",
            ["store"],
            registry=registry,
        )
        for store in SHARED_STORES:
            self.degraded.labels(store).set_function(
                lambda store=store: float(outages.is_down(store))  # type: ignore[misc]
            )
        self._created = Counter(
            "lifeline_calls_created", "Calls created on this node", ["channel"], registry=registry
        )
        self._outcomes = Counter(
            "lifeline_call_outcomes",
            "Calls answered, transferred, abandoned (ended before an answer) or ended",
            ["channel", "outcome"],
            registry=registry,
        )
        self._waits = Histogram(
            "lifeline_call_wait_seconds",
            "How long answered calls waited in the queue (since they were last queued)",
            ["channel"],
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        for channel in Channel:
            self._created.labels(channel.value)
            self._waits.labels(channel.value)
            for outcome in OUTCOMES:
                self._outcomes.labels(channel.value, outcome)
        self._unplaced = Counter(
            "lifeline_media_unplaced",
            "New calls' media that no media node took (the call goes on in chat)",
            registry=registry,
        )
        self._stored = Counter(
            "lifeline_recording_segments_stored",
            "Recording segments stored with their hash and audit entry",
            registry=registry,
        )
        self._not_stored = Counter(
            "lifeline_recording_segment_store_failures",
            "Recording segment reports this node could not store, by reason",
            ["reason"],
            registry=registry,
        )
        for reason in STORE_FAILURES:
            self._not_stored.labels(reason)
        self._recovered = Counter(
            "lifeline_recording_segments_recovered",
            "Recording segments left open by a dead process, closed and stored after it",
            registry=registry,
        )
        self._failed = Counter(
            "lifeline_recording_failures",
            "Recording failures entered in the audit chain, by where they happened",
            ["stage"],
            registry=registry,
        )
        for stage in get_args(FailureStage):
            self._failed.labels(stage)
        self._live = _Live()
        registry.register(self._live)
        self._sources: Sources | None = None
        # The last report of each media node that reports to this node (its workers).
        self._reports: dict[str, LoadReport] = {}

    def watch(self, sources: Sources) -> None:
        """From now on scrapes read these (the node's services are open)."""
        self._sources = sources

    async def media_loads(self) -> dict[str, LoadReport]:
        """This node's live media nodes as they last reported (``/readyz`` reads them)."""
        sources = self._sources
        if sources is None:
            return {}
        try:
            return await self._media(sources)
        except Exception:  # noqa: BLE001 - the registry away (Redis): what was last heard
            media = dict(self._reports)
            if sources.local_media is not None:
                node, load = sources.local_media()
                media[node] = load
            return media

    # -- Telemetry ---------------------------------------------------------------------------

    def call_created(self, channel: str) -> None:
        self._created.labels(channel).inc()

    def call_outcome(self, channel: str, outcome: CallOutcome) -> None:
        self._outcomes.labels(channel, outcome).inc()

    def call_waited(self, channel: str, seconds: float) -> None:
        self._waits.labels(channel).observe(max(0.0, seconds))

    def media_unplaced(self) -> None:
        self._unplaced.inc()

    def media_node_reported(self, node_id: str, load: LoadReport) -> None:
        self._reports[node_id] = load

    def media_node_left(self, node_id: str) -> None:
        self._reports.pop(node_id, None)

    def segment_stored(self) -> None:
        self._stored.inc()

    def segment_not_stored(self, reason: StoreFailure) -> None:
        self._not_stored.labels(reason).inc()

    def segment_recovered(self) -> None:
        self._recovered.inc()

    def recording_failed(self, stage: FailureStage) -> None:
        self._failed.labels(stage).inc()

    # -- a scrape ----------------------------------------------------------------------------

    async def render(self) -> web.Response:
        await self._refresh()
        # No await between the refresh and this: the collector yields what was just read.
        response = web.Response(body=generate_latest(self.registry))
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        response.charset = "utf-8"
        return response

    async def _refresh(self) -> None:
        sources = self._sources
        if sources is None:
            self._live.snapshot = _Snapshot()
            return
        services = sources.services
        snap = _Snapshot(connections=dict(sources.connections()))
        snap.queued = await self._part(snap, "queue", lambda: queued_by_channel(services))
        snap.operators = await self._part(snap, "operators", lambda: _operators(services))
        snap.media = await self._part(snap, "media_nodes", lambda: self._media(sources))
        self._live.snapshot = snap

    async def _part(self, snap: _Snapshot, part: str, read: Callable[[], Awaitable[T]]) -> T | None:
        try:
            value = await asyncio.wait_for(read(), PART_TIMEOUT_SECS)
        except Exception as exc:  # noqa: BLE001  (a scrape without this part, said as 0)
            log.warning("metrics part not read", extra={"part": part, "reason": repr(exc)})
            snap.ok[part] = False
            return None
        snap.ok[part] = True
        return value

    async def _media(self, sources: Sources) -> dict[str, LoadReport]:
        """The media nodes of this node that are alive (the registry's rule: a report not
        renewed in time is a dead node), as they last reported; this process's own hub read
        now."""
        services = sources.services
        home = services.settings.NODE_ID
        alive = {n.id for n in await services.media_nodes.alive() if n.home == home}
        media = {node: load for node, load in self._reports.items() if node in alive}
        if sources.local_media is not None:
            node, load = sources.local_media()
            media[node] = load
        return media


async def _operators(services: Services) -> dict[tuple[str, str], int]:
    counts = {(role.value, state): 0 for role in ANSWERING_ROLES for state in OPERATOR_STATES}
    for role in ANSWERING_ROLES:
        for operator in await operator_states(services, role):
            counts[(role.value, operator.state)] += 1
    return counts


def metrics_middleware(metrics: Metrics) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        route = route_of(request)
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            metrics.requests.labels(request.method, route, str(status)).inc()
            metrics.latency.labels(route).observe(time.perf_counter() - started)

    return middleware
