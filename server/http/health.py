"""Probes for load balancers and orchestrators, and the metrics endpoint.

The probes are open to anyone (a balancer must reach them); ``/metrics`` only to a connection
from ``METRICS_NETWORKS``, judged by the TCP peer, never by a forwarded-for header: Prometheus
scrapes each node directly, not through the proxy.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from server.core.errors import ErrorCode
from server.http.keys import METRICS_KEY, OUTAGES_KEY, REDIS_KEY, SERVICES_KEY
from server.http.peer import networks, peer_within

log = logging.getLogger("lifeline.health")
routes = web.RouteTableDef()
PROBE_TIMEOUT_SECS = 2.0


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.StreamResponse:
    """503 without the database (nothing could be stored); with Redis away, still ready.

    Without Redis a node takes calls on its own view (limits, presence and media placement in
    its memory): a load balancer that took every node out whenever Redis blinked would stop
    call-taking altogether. ``degraded`` names the shared stores it works without, and
    ``recording_disk`` when a media node's recording volume is low (its calls go on
    unrecorded: ``recording_disk_low`` names the media nodes).
    """
    services = request.app[SERVICES_KEY]
    try:
        await asyncio.wait_for(services.db.ping(), PROBE_TIMEOUT_SECS)
    except Exception as exc:  # noqa: BLE001  (any failure means: not ready)
        log.warning("database not ready", extra={"reason": repr(exc)})
        return web.json_response({"status": "unavailable", "down": ["database"]}, status=503)
    # Informational (a node without media still queues calls and chats): its media nodes.
    home = services.settings.NODE_ID
    nodes = sorted(n.id for n in await services.media_nodes.alive() if n.home == home)
    degraded = set(request.app[OUTAGES_KEY].stores())
    redis = request.app[REDIS_KEY]
    if redis is not None:
        try:
            await asyncio.wait_for(redis.ping(), PROBE_TIMEOUT_SECS)
        except Exception as exc:  # noqa: BLE001
            log.warning("redis does not answer", extra={"reason": repr(exc)})
            degraded.add("redis")
    # A recording volume low on space stops the recording, never the calls: the node stays
    # ready (a balancer that took it out would end calls that go on unrecorded) and says so.
    loads = await request.app[METRICS_KEY].media_loads()
    disk_low = sorted(node for node, load in loads.items() if load.disk_low)
    if disk_low:
        degraded.add("recording_disk")
    body: dict[str, object] = {"status": "degraded" if degraded else "ok", "media_nodes": nodes}
    if degraded:
        body["degraded"] = sorted(degraded)
    if disk_low:
        body["recording_disk_low"] = disk_low
        body["calls_not_recorded"] = sum(loads[node].recording_paused for node in disk_low)
    return web.json_response(body)


@routes.get("/metrics")
async def metrics_endpoint(request: web.Request) -> web.StreamResponse:
    allowed = networks(request.app[SERVICES_KEY].settings.METRICS_NETWORKS)
    if not peer_within(request, allowed):
        code = ErrorCode.FORBIDDEN
        message = "Metrics are served only to METRICS_NETWORKS"
        return web.json_response(
            {"error": {"code": code.value, "message": message}}, status=code.status
        )
    return await request.app[METRICS_KEY].render()
