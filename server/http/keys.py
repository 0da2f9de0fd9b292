"""The web app's own typed keys: the services (everything the actions use), and what only the
HTTP side needs. No string keys; this module imports nothing heavier than the core, so it can't
close an import circle."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from config import Settings
from server.core.clock import Clock
from server.core.outages import Outages
from server.core.services import Services

if TYPE_CHECKING:  # the keys name these types as strings: importing them would be circular
    from prometheus_client import CollectorRegistry  # noqa: F401
    from redis.asyncio import Redis  # noqa: F401

    from server.actions.staff_sessions import StaffContext  # noqa: F401
    from server.http.i18n import Catalogs  # noqa: F401
    from server.http.metrics import Metrics  # noqa: F401
    from server.http.pages import Pages  # noqa: F401

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ErrorPage = Callable[[web.Request, int, str, str], web.Response]

# Set by the app factory from its arguments; the services once storage is open (on startup).
CONFIG_KEY = web.AppKey("config", Settings)
START_CLOCK_KEY = web.AppKey[Clock]("start_clock")
SERVICES_KEY = web.AppKey("services", Services)
REDIS_KEY = web.AppKey["Redis | None"]("redis")
OUTAGES_KEY = web.AppKey("outages", Outages)
CATALOGS_KEY = web.AppKey["Catalogs"]("catalogs")
PAGES_KEY = web.AppKey["Pages"]("pages")
METRICS_KEY = web.AppKey["Metrics"]("metrics")
ERROR_PAGE_KEY = web.AppKey[ErrorPage]("error_page")
REGISTRY_KEY = web.AppKey["CollectorRegistry"]("registry")

# Per request: the signed-in staff member (or None), set by the session middleware.
STAFF_KEY = web.RequestKey["StaffContext | None"]("staff")
LANG_KEY = web.RequestKey("lang", str)
