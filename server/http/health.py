"""Probes for load balancers and orchestrators, and the metrics endpoint."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from server.http import metrics
from server.http.keys import REDIS_KEY, REGISTRY_KEY, SERVICES_KEY

log = logging.getLogger("lifeline.health")
routes = web.RouteTableDef()
PROBE_TIMEOUT_SECS = 2.0


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.StreamResponse:
    """Ready when every store this node depends on answers; 503 names the ones that do not."""
    down: list[str] = []
    try:
        await asyncio.wait_for(request.app[SERVICES_KEY].db.ping(), PROBE_TIMEOUT_SECS)
    except Exception as exc:  # noqa: BLE001  (any failure means: not ready)
        log.warning("database not ready", extra={"reason": repr(exc)})
        down.append("database")
    redis = request.app[REDIS_KEY]
    if redis is not None:
        try:
            await asyncio.wait_for(redis.ping(), PROBE_TIMEOUT_SECS)
        except Exception as exc:  # noqa: BLE001
            log.warning("redis not ready", extra={"reason": repr(exc)})
            down.append("redis")
    if down:
        return web.json_response({"status": "unavailable", "down": down}, status=503)
    # Informational (a node without media still queues calls and chats): its media nodes.
    home = request.app[SERVICES_KEY].settings.NODE_ID
    nodes = sorted(
        n.id for n in await request.app[SERVICES_KEY].media_nodes.alive() if n.home == home
    )
    return web.json_response({"status": "ok", "media_nodes": nodes})


@routes.get("/metrics")
async def metrics_endpoint(request: web.Request) -> web.StreamResponse:
    return metrics.render(request.app[REGISTRY_KEY])
