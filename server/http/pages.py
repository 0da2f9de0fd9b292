"""Server-rendered pages: one jinja2 environment, the same context for every template."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from server.http.basemap import BASEMAP_PATH
from server.http.i18n import LANG_COOKIE, LANGUAGE_NAMES, Catalogs
from server.http.keys import LANG_KEY, SERVICES_KEY, STAFF_KEY

UI_DIR = Path(__file__).resolve().parents[2] / "console_ui"
TEMPLATES_DIR = UI_DIR / "templates"
STATIC_DIR = UI_DIR / "static"
ASSET_VERSION = "1"


class _LazyCsrf:
    """Mints the pre-login CSRF cookie only for pages that really render a form."""

    def __init__(self, request: web.Request) -> None:
        self._request = request

    def __str__(self) -> str:
        from server.http.auth.csrf import csrf_token

        return csrf_token(self._request)

    def __html__(self) -> str:
        return str(self)


class Pages:
    """Renders templates with the request's language, staff member and CSRF token."""

    def __init__(self, catalogs: Catalogs) -> None:
        self.catalogs = catalogs
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
            autoescape=jinja2.select_autoescape(default=True),
            undefined=jinja2.StrictUndefined,
            extensions=["jinja2.ext.i18n"],
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def context(self, request: web.Request) -> dict[str, Any]:
        lang = request.get(LANG_KEY, "en")
        settings = request.app[SERVICES_KEY].settings

        emergency = settings.EMERGENCY_NUMBER

        def _(key: str, **values: object) -> str:
            # A text naming the emergency number names this deployment's (112, 102, 911...).
            if "{emergency}" in self.catalogs.messages.get(lang, {}).get(key, ""):
                values = {"emergency": emergency, **values}
            return self.catalogs.gettext(lang, key, **values)

        return {
            "_": _,
            "gettext": _,
            "lang": lang,
            "languages": list(LANGUAGE_NAMES.items()),
            "staff": request.get(STAFF_KEY),
            "csrf_token": _LazyCsrf(request),
            "require_totp": settings.REQUIRE_TOTP,
            "map_tile_url": settings.MAP_TILE_URL,
            # The street basemap first, when the deployment has one (basemap.py, basemap.js).
            "map_pmtiles_url": BASEMAP_PATH if settings.MAP_PMTILES is not None else "",
            "map_attribution": settings.MAP_ATTRIBUTION,
            "ice_transport_policy": settings.ICE_TRANSPORT_POLICY,
            "request_path": request.path,
            "emergency_number": emergency,
            "time_zone": settings.TIME_ZONE,
            "quick_exit_url": settings.QUICK_EXIT_URL,
            "static": lambda path: f"/static/{path}?v={ASSET_VERSION}",
        }

    def render(
        self, request: web.Request, template: str, *, http_status: int = 200, **values: Any
    ) -> web.Response:
        context = self.context(request)
        context.update(values)
        body = self.env.get_template(template).render(context)
        response = web.Response(text=body, status=http_status, content_type="text/html")
        response.headers["Content-Language"] = context["lang"]
        if request.query.get("lang") == context["lang"]:
            response.set_cookie(LANG_COOKIE, context["lang"], max_age=365 * 86400, samesite="Lax")
        return response
