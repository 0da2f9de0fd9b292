"""The pages of docs/interfaces.md. Their live features arrive with their own issues."""

from __future__ import annotations

from aiohttp import web

from server.core.errors import AppError, ErrorCode
from server.http.auth.access import CONSOLE_ROLES, WALL_ROLES, require_page_staff
from server.http.keys import CATALOGS_KEY, PAGES_KEY

routes = web.RouteTableDef()


@routes.get("/")
async def citizen(request: web.Request) -> web.StreamResponse:
    return request.app[PAGES_KEY].render(request, "citizen.html")


@routes.get("/console")
async def console(request: web.Request) -> web.StreamResponse:
    require_page_staff(request, CONSOLE_ROLES)
    return request.app[PAGES_KEY].render(request, "console.html")


@routes.get("/wall")
async def wall(request: web.Request) -> web.StreamResponse:
    require_page_staff(request, WALL_ROLES)
    return request.app[PAGES_KEY].render(request, "wall.html")


@routes.get("/map")
async def threat_map(request: web.Request) -> web.StreamResponse:
    return request.app[PAGES_KEY].render(request, "map.html")


@routes.get("/stats")
async def stats(request: web.Request) -> web.StreamResponse:
    return request.app[PAGES_KEY].render(request, "stats.html")


@routes.get("/leave")
async def leave(request: web.Request) -> web.StreamResponse:
    """Where quick exit goes by default (QUICK_EXIT_URL): a page about nothing, naming nothing
    of this service, that an onlooker takes for any other site."""
    return request.app[PAGES_KEY].render(request, "neutral.html")


@routes.get(r"/i18n/{lang}.json")
async def catalogue(request: web.Request) -> web.StreamResponse:
    """The page scripts' texts: the same catalogue the templates use."""
    messages = request.app[CATALOGS_KEY].messages.get(request.match_info["lang"])
    if messages is None:
        raise AppError(ErrorCode.UNKNOWN_LANGUAGE, "No such language")
    return web.json_response(messages, headers={"Cache-Control": "public, max-age=300"})
