"""What makes the public pages installable as an app: the web app manifest (in the page's
language) and the favicon at the address browsers ask for. The icons themselves are static files
(console_ui/static/icons, drawn by tools/make_icons.py)."""

from __future__ import annotations

from aiohttp import web

from server.http.keys import CATALOGS_KEY, LANG_KEY
from server.http.pages import STATIC_DIR

routes = web.RouteTableDef()

THEME_COLOUR = "#0b3d91"
BACKGROUND_COLOUR = "#ffffff"
ICON_SIZES = (192, 512)


@routes.get("/manifest.webmanifest")
async def manifest(request: web.Request) -> web.StreamResponse:
    """Started from the home screen, the app opens the citizen page on its own, full screen."""
    lang = request.get(LANG_KEY, "en")
    catalogs = request.app[CATALOGS_KEY]
    body = {
        "name": catalogs.gettext(lang, "citizen.title"),
        "short_name": catalogs.gettext(lang, "app.name"),
        "lang": lang,
        "start_url": "/",
        "scope": "/",
        "display": "standalone",
        "theme_color": THEME_COLOUR,
        "background_color": BACKGROUND_COLOUR,
        "icons": [
            {
                "src": f"/static/icons/icon-{size}.png",
                "sizes": f"{size}x{size}",
                "type": "image/png",
                "purpose": "any maskable",
            }
            for size in ICON_SIZES
        ],
    }
    return web.json_response(
        body,
        content_type="application/manifest+json",
        headers={"Cache-Control": "public, max-age=3600"},
    )


@routes.get("/favicon.ico")
async def favicon(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(
        STATIC_DIR / "icons" / "favicon.ico",
        headers={"Content-Type": "image/x-icon", "Cache-Control": "public, max-age=86400"},
    )
