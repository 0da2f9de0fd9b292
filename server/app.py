"""The application factory: wires routes, pages, Socket.IO, storage and metrics from settings."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from config import Settings
from server.core.clock import Clock, SystemClock
from server.db.audit import AuditLog
from server.db.engine import Database
from server.http import admin, health, open311, page_routes
from server.http import calls as call_routes
from server.http import photos as call_photos
from server.http import threats as threat_routes
from server.http.auth import routes as auth_routes
from server.http.auth.sessions import session_middleware
from server.http.errors import error_middleware
from server.http.i18n import Catalogs, negotiate
from server.http.keys import (
    AUDIT_KEY,
    CATALOGS_KEY,
    CLOCK_KEY,
    DB_KEY,
    ERROR_PAGE_KEY,
    LANG_KEY,
    MEDIA_HUB_KEY,
    MEDIA_KEY,
    MEDIA_NODES_KEY,
    MEDIA_SECRET_KEY,
    METRICS_KEY,
    PAGES_KEY,
    PRESENCE_KEY,
    RATE_LIMITS_KEY,
    REDIS_KEY,
    REGISTRY_KEY,
    SETTINGS_KEY,
    SIO_KEY,
    Handler,
)
from server.http.metrics import Metrics, metrics_middleware
from server.http.pages import STATIC_DIR, Pages
from server.http.uploads import body_limit_middleware
from server.state.presence import LocalPresence, RedisPresence
from server.state.ratelimit import RateLimits
from signaling.server import attach, close_manager, create_sio

if TYPE_CHECKING:
    from media.hub import ClosedSegment


def _content_security_policy(settings: Settings) -> str:
    tiles = ""
    if settings.MAP_TILE_URL:
        from urllib.parse import urlsplit

        parts = urlsplit(settings.MAP_TILE_URL.replace("{s}", "a"))
        tiles = f" {parts.scheme}://{parts.netloc.split('{')[0]}" if parts.netloc else ""
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        f"img-src 'self' data: blob:{tiles}; media-src 'self' blob:; "
        "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'"
    )


def _headers_middleware(settings: Settings) -> Middleware:
    csp = _content_security_policy(settings)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        response.headers.setdefault("Content-Security-Policy", csp)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault(
            "Permissions-Policy", "camera=(self), microphone=(self), geolocation=(self)"
        )
        if request.path.startswith(("/login", "/account", "/admin", "/api/")):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    return middleware


@web.middleware
async def _language_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[LANG_KEY], _ = negotiate(request, request.app[SETTINGS_KEY].DEFAULT_LANGUAGE)
    return await handler(request)


async def _storage(app: web.Application) -> AsyncIterator[None]:
    """Open the database and Redis for the app's lifetime; close them on shutdown."""
    settings = app[SETTINGS_KEY]
    db = Database(settings.database_url)
    app[DB_KEY] = db
    app[AUDIT_KEY] = AuditLog(db, app[CLOCK_KEY])
    redis = Redis.from_url(settings.REDIS_URL) if settings.REDIS_URL else None
    app[REDIS_KEY] = redis
    try:
        yield
    finally:
        if redis is not None:
            await redis.aclose()
        await db.close()


async def _calls(app: web.Application) -> AsyncIterator[None]:
    """Presence, rate limits, the media (this process's hub, or the workers' registry) and the
    call namespaces, for the app's lifetime."""
    from media.hub import hub_from_settings
    from server.actions.media import MediaRouter
    from server.actions.recordings import record_segment
    from server.state.media_nodes import LocalMediaNodes, RedisMediaNodes
    from signaling.citizen import CitizenNamespace
    from signaling.console import ConsoleNamespace
    from signaling.media_ns import MediaNamespace

    settings = app[SETTINGS_KEY]
    redis = app[REDIS_KEY]
    app[PRESENCE_KEY] = RedisPresence(redis) if redis is not None else LocalPresence()
    app[RATE_LIMITS_KEY] = RateLimits(settings.REDIS_URL)
    app[MEDIA_NODES_KEY] = RedisMediaNodes(redis) if redis is not None else LocalMediaNodes()
    app[MEDIA_SECRET_KEY] = secrets.token_urlsafe(32)

    async def on_segment_closed(segment: ClosedSegment) -> None:
        await record_segment(app, segment)

    hub = (
        hub_from_settings(settings, on_segment_closed=on_segment_closed, clock=app[CLOCK_KEY])
        if settings.MEDIA_WORKERS == 0
        else None
    )
    app[MEDIA_HUB_KEY] = hub
    sio = app[SIO_KEY]
    app[MEDIA_KEY] = MediaRouter(
        sio=sio, db=app[DB_KEY], nodes=app[MEDIA_NODES_KEY], home=settings.NODE_ID, local=hub
    )
    citizen = CitizenNamespace(app)
    sio.register_namespace(citizen)
    sio.register_namespace(ConsoleNamespace(app))
    sio.register_namespace(MediaNamespace(app))
    try:
        yield
    finally:
        await citizen.close()
        if hub is not None:
            await hub.close()
        await sio.shutdown()
        await close_manager(sio)
        await app[RATE_LIMITS_KEY].close()


def create_app(settings: Settings, clock: Clock | None = None) -> web.Application:
    """Build one Lifeline node. Nothing is opened until the app starts."""
    registry = CollectorRegistry()
    app_metrics = Metrics(registry)
    app = web.Application(
        # The largest body any route takes; body_limit_middleware holds the others to less.
        client_max_size=max(settings.MAX_BODY_BYTES, settings.MAX_UPLOAD_BYTES),
        middlewares=[
            metrics_middleware(app_metrics),
            _headers_middleware(settings),
            error_middleware,
            body_limit_middleware,
            _language_middleware,
            session_middleware,
        ],
    )
    app[SETTINGS_KEY] = settings
    app[CLOCK_KEY] = clock or SystemClock()
    app[REGISTRY_KEY] = registry
    app[METRICS_KEY] = app_metrics
    catalogs = Catalogs()
    app[CATALOGS_KEY] = catalogs
    pages = Pages(catalogs)
    app[PAGES_KEY] = pages
    app[ERROR_PAGE_KEY] = lambda request, status, code, message: pages.render(
        request, "error.html", http_status=status, status=status, code=code, message=message
    )
    app.cleanup_ctx.append(_storage)

    sio = create_sio(settings)
    app[SIO_KEY] = sio
    attach(sio, app)
    app.cleanup_ctx.append(_calls)

    for table in (
        health.routes,
        auth_routes.routes,
        admin.routes,
        page_routes.routes,
        call_routes.routes,
        threat_routes.routes,
        open311.routes,
        call_photos.routes,
    ):
        app.router.add_routes(table)
    app.router.add_static("/static/", STATIC_DIR, append_version=False)
    return app
