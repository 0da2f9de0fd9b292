"""The application factory, the composition root: the one module that imports every layer and
wires them from settings (storage, shared state, media, Socket.IO, the HTTP routes)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Callable

import socketio
from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from config import Settings
from media.agent import load_of
from media.clips import PyAVClipProbe
from media.hub import MediaHub, hub_from_settings
from media.redaction import FaceBlur
from media.rpc import HubHandler
from server.actions import transfers
from server.actions.abandonment import schedule_abandonment
from server.actions.cad_deliveries import schedule_cad_deliveries
from server.actions.checkpoints import CheckpointSchedule
from server.actions.database_watch import schedule_database_watch
from server.actions.media import MediaRouter
from server.actions.media_watch import MediaWatch, schedule_media_watch
from server.actions.recording_state import do_recording_state
from server.actions.recordings import record_failure, record_segment
from server.actions.retention import schedule_purges
from server.actions.routing import schedule_routing
from server.actions.thumbnails import schedule_thumbnails
from server.actions.uploads import return_decoded_memory
from server.actions.wall import schedule_new_day
from server.cad_webhook import cad_webhook_from_settings
from server.core.background import Background
from server.core.clock import Clock, SystemClock
from server.core.errors import AppError, ErrorCode
from server.core.media_rpc import ClosedSegment, LoadReport, RecordingFailure, RecordingState
from server.core.named_areas import NamedAreas, load_named_areas
from server.core.outages import Outages
from server.core.services import Services
from server.core.storage import FileStorage
from server.core.work_pool import WorkPool
from server.db.audit import AuditLog
from server.db.engine import Database
from server.http import account_admin as account_recovery
from server.http import (
    admin,
    archive,
    basemap,
    call_stats,
    evidence,
    health,
    installable,
    legal_holds,
    open311,
    openapi,
    page_routes,
    redactions,
    security,
)
from server.http import cad as cad_routes
from server.http import calls as call_routes
from server.http import invites as invite_routes
from server.http import open311_keys as open311_key_routes
from server.http import photos as call_photos
from server.http import receipts as receipt_routes
from server.http import recordings as call_recordings
from server.http import threads as thread_routes
from server.http.access_log import echo_request_id, request_id_middleware
from server.http.auth import oidc as oidc_routes
from server.http.auth import routes as auth_routes
from server.http.auth import webauthn as webauthn_routes
from server.http.auth.sessions import session_middleware
from server.http.errors import error_middleware
from server.http.forwarded import forwarded_middleware
from server.http.i18n import Catalogs, negotiate
from server.http.keys import (
    CATALOGS_KEY,
    ERROR_PAGE_KEY,
    LANG_KEY,
    METRICS_KEY,
    OUTAGES_KEY,
    PAGES_KEY,
    REDIS_KEY,
    REGISTRY_KEY,
    SERVICES_KEY,
    Handler,
)
from server.http.metrics import Metrics, Sources, metrics_middleware
from server.http.pages import STATIC_DIR, Pages
from server.http.threats import alerts as threat_alerts
from server.http.threats import categories as threat_categories
from server.http.threats import public as threat_public
from server.http.threats import staff as threat_staff
from server.http.uploads import body_limit_middleware, clip_body_limit
from server.node import MEDIA_HUB_KEY, MEDIA_SECRET_KEY, SIO_KEY
from server.oidc_http import AiohttpOidc
from server.security.evidence_key import load_evidence_key
from server.security.pseudonyms import load_pseudonyms
from server.sms import sms_gateway_from_settings
from server.state.media_nodes import LocalMediaNodes, RedisMediaNodes
from server.state.presence import LocalPresence, RedisPresence
from server.state.ratelimit import REDIS_TIMEOUT_SECS, RateLimits
from signaling.citizen import CitizenNamespace
from signaling.console import ConsoleNamespace
from signaling.media_bus import SocketIOMediaBus
from signaling.media_ns import MediaNamespace
from signaling.notifier import SocketIONotifier
from signaling.server import (
    attach,
    broadcast_channel,
    close_manager,
    connection_counts,
    create_sio,
)
from signaling.thread import ThreadNamespace

CleanupContext = Callable[[web.Application], AsyncIterator[None]]


def _content_security_policy(settings: Settings) -> str:
    tiles = ""
    if settings.MAP_TILE_URL:
        from urllib.parse import urlsplit

        parts = urlsplit(settings.MAP_TILE_URL.replace("{s}", "a"))
        tiles = f" {parts.scheme}://{parts.netloc.split('{')[0]}" if parts.netloc else ""
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        f"img-src 'self' data: blob:{tiles}; media-src 'self' blob:; "
        # 'self' covers the page's own ws:/wss: origin (CSP 3): Socket.IO reaches no other host.
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'"
    )


def _headers_middleware(settings: Settings) -> Middleware:
    csp = _content_security_policy(settings)
    # Behind TLS, browsers are told to come back only over TLS (a year; subdomains are not ours).
    hsts = "max-age=31536000" if settings.PUBLIC_URL.startswith("https://") else None

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        response.headers.setdefault("Content-Security-Policy", csp)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault(
            "Permissions-Policy", "camera=(self), microphone=(self), geolocation=(self)"
        )
        if hsts is not None:
            response.headers.setdefault("Strict-Transport-Security", hsts)
        if request.path.startswith(
            ("/login", "/account", "/admin", "/security", "/archive", "/api/")
        ):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    return middleware


@web.middleware
async def _language_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[LANG_KEY], _ = negotiate(request, request.app[SERVICES_KEY].settings.DEFAULT_LANGUAGE)
    return await handler(request)


def _own_media(node_id: str, hub: MediaHub | None) -> Callable[[], tuple[str, LoadReport]] | None:
    """This process's own hub as its metrics read it: the report it would send (media/agent.py),
    under the id the media bus knows it by."""
    if hub is None:
        return None
    own = hub
    return lambda: (node_id, load_of(own, own.admission))


log = logging.getLogger("lifeline.node")

REARM_RETRY_SECS = 5.0


async def _rearm_offers(services: Services) -> None:
    try:
        await transfers.rearm_open_offers(services)
    except Exception:
        log.warning("re-arming open transfer offers failed; trying again", exc_info=True)

        async def again() -> None:
            await _rearm_offers(services)

        services.background.later(services.clock, REARM_RETRY_SECS, again, name="rearm-offers")


def _node(settings: Settings, clock: Clock, sio: socketio.AsyncServer) -> CleanupContext:
    """Storage, shared state, media and the Socket.IO namespaces, opened for the app's lifetime
    and closed in reverse on shutdown: the services every action gets are built here."""

    async def node(app: web.Application) -> AsyncIterator[None]:
        db = Database(settings.database_url)
        # A Redis that stops answering must cost a request a second at most, never hang it.
        redis = (
            Redis.from_url(
                settings.REDIS_URL,
                socket_timeout=REDIS_TIMEOUT_SECS,
                socket_connect_timeout=REDIS_TIMEOUT_SECS,
            )
            if settings.REDIS_URL
            else None
        )
        app[REDIS_KEY] = redis
        outages = app[OUTAGES_KEY]
        media_nodes = (
            RedisMediaNodes(
                redis, clock, outages, bus_channel=broadcast_channel(settings.REDIS_URL)
            )
            if redis is not None
            else LocalMediaNodes(clock)
        )
        limits = RateLimits(settings.REDIS_URL, outages)
        background = Background()
        # One pool for the node: a burst of uploads waits in its line instead of decoding at once.
        return_decoded_memory()
        image_pool = WorkPool(
            clock,
            workers=settings.IMAGE_WORKERS,
            max_waiting=settings.IMAGE_QUEUE_MAX,
            max_wait_secs=settings.IMAGE_QUEUE_WAIT_SECS,
            name="images",
        )
        # Redacted copies: one thread (each is minutes of decoding, detection and encoding),
        # a long line that waits as long as it takes.
        redaction_pool = WorkPool(
            clock, workers=1, max_waiting=64, max_wait_secs=24 * 3600, name="redaction"
        )
        services_box: list[Services] = []
        pseudonyms = load_pseudonyms(settings.PSEUDONYM_KEY, settings.DATA_DIR)
        evidence_key = load_evidence_key(settings.evidence_key_file)
        areas = (
            load_named_areas(settings.STATS_AREAS_FILE, settings.STATS_AREAS_NAME_PROPERTY)
            if settings.STATS_AREAS_FILE is not None
            else NamedAreas.none()
        )

        async def on_segment_closed(segment: ClosedSegment) -> None:
            assert hub is not None
            try:
                await record_segment(services_box[0], segment)
            except AppError as exc:
                if exc.code is ErrorCode.SEGMENT_CONFLICT:
                    hub.release(segment)  # never to be stored; the chain says why
                raise
            except Exception:
                # Not stored now (the database away): its claim is let go, so the next sweep
                # reports it again.
                hub.claims.let_go(segment.key)
                raise
            hub.release(segment)

        async def on_recording_failed(failure: RecordingFailure) -> None:
            await record_failure(services_box[0], failure)

        async def on_recording_state(state: RecordingState) -> None:
            await do_recording_state(services_box[0], state)

        hub = (
            hub_from_settings(
                settings,
                on_segment_closed=on_segment_closed,
                on_recording_failed=on_recording_failed,
                clock=clock,
                node_id=settings.NODE_ID,
                on_recording_state=on_recording_state,
            )
            if settings.MEDIA_WORKERS == 0
            else None
        )
        app[MEDIA_HUB_KEY] = hub
        media_bus = SocketIOMediaBus(
            sio,
            media_nodes,
            clock,
            home=settings.NODE_ID,
            local=HubHandler(hub) if hub is not None else None,
        )
        app[MEDIA_SECRET_KEY] = secrets.token_urlsafe(32)
        presence = RedisPresence(redis, outages) if redis is not None else LocalPresence()
        services = Services(
            settings=settings,
            clock=clock,
            db=db,
            audit=AuditLog(db, clock),
            notifier=SocketIONotifier(sio, presence),
            media=MediaRouter(
                db=db,
                nodes=media_nodes,
                transport=media_bus,
                home=settings.NODE_ID,
                pseudonyms=pseudonyms,
                telemetry=app[METRICS_KEY],
            ),
            media_nodes=media_nodes,
            presence=presence,
            limits=limits,
            background=background,
            pseudonyms=pseudonyms,
            image_pool=image_pool,
            telemetry=app[METRICS_KEY],
            storage=FileStorage(settings.storage_dir),
            redactor=FaceBlur(),
            clip_probe=PyAVClipProbe(),
            redaction_pool=redaction_pool,
            evidence_key=evidence_key,
            sms=sms_gateway_from_settings(settings, clock),
            areas=areas,
            cad=cad_webhook_from_settings(settings),
            oidc=AiohttpOidc(timeout_secs=settings.OIDC_TIMEOUT_SECS),
        )
        services_box.append(services)
        checkpoints = CheckpointSchedule(services)
        checkpoints.start()
        app[SERVICES_KEY] = services
        app[METRICS_KEY].watch(
            Sources(
                services=services,
                local_media=_own_media(settings.NODE_ID, hub),
                connections=lambda: connection_counts(sio),
            )
        )
        sio.register_namespace(CitizenNamespace(services))
        sio.register_namespace(ConsoleNamespace(services))
        sio.register_namespace(ThreadNamespace(services))
        sio.register_namespace(MediaNamespace(services, app[MEDIA_SECRET_KEY]))
        schedule_purges(services)
        # Queued calls whose caller went while no node was counting (or never came): a node
        # that starts after a crash settles them at its first round.
        schedule_abandonment(services)
        # Which calls lost their media node (one killed outright): the wall's "reconnecting".
        schedule_media_watch(services, MediaWatch())
        schedule_thumbnails(services)
        schedule_new_day(services)
        schedule_database_watch(services, outages)  # the console's banner while it is away
        # Offers a node that died left waiting: each settles on time all the same. A node
        # starts while its database is away (/readyz says so) and re-arms them once it answers.
        await _rearm_offers(services)
        schedule_routing(services)
        # EIDO posts to the CAD that are due: a retry, or one a node left when it stopped.
        schedule_cad_deliveries(services)
        if hub is not None:
            # At start-up, close what dead processes left open (this node's last run, say).
            hub.start_recovery()
            hub.watch_disk()
        try:
            yield
        finally:
            await background.close()
            await services.sms.close()
            await services.cad.close()
            await services.oidc.close()
            image_pool.close()
            redaction_pool.close()
            if hub is not None:
                await hub.close()
            await sio.shutdown()
            await close_manager(sio)
            await limits.close()
            if redis is not None:
                await redis.aclose()
            # After the media: the last segments' entries are anchored too.
            await checkpoints.stop()
            await db.close()

    return node


def create_app(settings: Settings, clock: Clock | None = None) -> web.Application:
    """Build one Lifeline node. Nothing is opened until the app starts."""
    registry = CollectorRegistry()
    outages = Outages()
    app_metrics = Metrics(registry, outages)
    app = web.Application(
        # The largest body any route takes; body_limit_middleware holds the others to less.
        client_max_size=max(
            settings.MAX_BODY_BYTES,
            clip_body_limit(settings.MAX_CLIP_BYTES, settings.MAX_UPLOAD_BYTES),
        ),
        middlewares=[
            request_id_middleware(settings.TRUSTED_PROXIES),
            *[m for m in [forwarded_middleware(settings.TRUSTED_PROXIES)] if m is not None],
            metrics_middleware(app_metrics),
            _headers_middleware(settings),
            error_middleware,
            body_limit_middleware,
            _language_middleware,
            session_middleware,
        ],
    )
    app.on_response_prepare.append(echo_request_id)
    app[REGISTRY_KEY] = registry
    app[OUTAGES_KEY] = outages
    app[METRICS_KEY] = app_metrics
    catalogs = Catalogs()
    app[CATALOGS_KEY] = catalogs
    pages = Pages(catalogs)
    app[PAGES_KEY] = pages
    app[ERROR_PAGE_KEY] = lambda request, status, code, message: pages.render(
        request, "error.html", http_status=status, status=status, code=code, message=message
    )
    sio = create_sio(settings, outages)
    app[SIO_KEY] = sio
    attach(sio, app)
    app.cleanup_ctx.append(_node(settings, clock or SystemClock(), sio))

    for table in (
        health.routes,
        auth_routes.routes,
        oidc_routes.routes,
        webauthn_routes.routes,
        admin.routes,
        account_recovery.routes,
        security.routes,
        page_routes.routes,
        call_routes.routes,
        threat_public.routes,
        threat_alerts.routes,
        threat_staff.routes,
        threat_categories.routes,
        open311.routes,
        open311_key_routes.routes,
        call_photos.routes,
        call_recordings.routes,
        legal_holds.routes,
        redactions.routes,
        receipt_routes.routes,
        archive.routes,
        evidence.routes,
        invite_routes.routes,
        installable.routes,
        thread_routes.routes,
        call_stats.routes,
        cad_routes.routes,
        basemap.routes,
        openapi.routes,
    ):
        app.router.add_routes(table)
    # Made once, from the routes just added: GET /api/openapi.json serves it.
    app[openapi.OPENAPI_KEY] = openapi.document(app.router)
    app.router.add_static("/static/", STATIC_DIR, append_version=False)
    return app
