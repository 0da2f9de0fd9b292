"""Every piece of application state, each under its own typed key (no string keys)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from config import Settings
from server.core.clock import Clock

if TYPE_CHECKING:  # the keys name these types as strings: importing them would be circular
    import socketio  # noqa: F401
    from prometheus_client import CollectorRegistry  # noqa: F401
    from redis.asyncio import Redis  # noqa: F401

    from media.hub import MediaHub  # noqa: F401
    from server.actions.media import MediaRouter  # noqa: F401
    from server.db.audit import AuditLog  # noqa: F401
    from server.db.engine import Database  # noqa: F401
    from server.http.auth.sessions import StaffContext  # noqa: F401
    from server.http.i18n import Catalogs  # noqa: F401
    from server.http.metrics import Metrics  # noqa: F401
    from server.http.pages import Pages  # noqa: F401
    from server.state.media_nodes import MediaNodes  # noqa: F401
    from server.state.presence import Presence  # noqa: F401
    from server.state.ratelimit import RateLimits  # noqa: F401

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ErrorPage = Callable[[web.Request, int, str, str], web.Response]

SETTINGS_KEY = web.AppKey("settings", Settings)
CLOCK_KEY = web.AppKey[Clock]("clock")
DB_KEY = web.AppKey["Database"]("db")
AUDIT_KEY = web.AppKey["AuditLog"]("audit")
REDIS_KEY = web.AppKey["Redis | None"]("redis")
SIO_KEY = web.AppKey["socketio.AsyncServer"]("sio")
CATALOGS_KEY = web.AppKey["Catalogs"]("catalogs")
PAGES_KEY = web.AppKey["Pages"]("pages")
METRICS_KEY = web.AppKey["Metrics"]("metrics")
# The way to every call's media; MEDIA_HUB_KEY is this process's own hub (None with workers).
MEDIA_KEY = web.AppKey["MediaRouter"]("media")
MEDIA_HUB_KEY = web.AppKey["MediaHub | None"]("media_hub")
MEDIA_NODES_KEY = web.AppKey["MediaNodes"]("media_nodes")
MEDIA_SECRET_KEY = web.AppKey[str]("media_secret")
PRESENCE_KEY = web.AppKey["Presence"]("presence")
RATE_LIMITS_KEY = web.AppKey["RateLimits"]("rate_limits")
ERROR_PAGE_KEY = web.AppKey[ErrorPage]("error_page")
REGISTRY_KEY = web.AppKey["CollectorRegistry"]("registry")

# Per request: the signed-in staff member (or None), set by the session middleware.
STAFF_KEY = web.RequestKey["StaffContext | None"]("staff")
LANG_KEY = web.RequestKey("lang", str)
