"""Prometheus metrics, in a registry of the app's own (no process-wide default registry)."""

from __future__ import annotations

import time

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from server.core.outages import Outages
from server.http.keys import Handler

# The shared stores a node can work without for a while (server/core/outages.py).
SHARED_STORES = ("redis",)


class Metrics:
    def __init__(self, registry: CollectorRegistry, outages: Outages) -> None:
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


def metrics_middleware(metrics: Metrics) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
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


def render(registry: CollectorRegistry) -> web.Response:
    response = web.Response(body=generate_latest(registry))
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    response.charset = "utf-8"
    return response
