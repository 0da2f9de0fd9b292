"""Public call statistics: police calls by what the caller said was happening, filterable by
one situation (``?situation=``, ``none`` for calls that named none). Counts only; internal
security's calls are never in them."""

from __future__ import annotations

from aiohttp import web

from server.actions.queue import SITUATIONS
from server.actions.situations import situation_counts
from server.core.errors import AppError, ErrorCode
from server.http.keys import SERVICES_KEY

routes = web.RouteTableDef()


@routes.get("/api/stats/calls")
async def calls_by_situation(request: web.Request) -> web.StreamResponse:
    asked = request.query.get("situation", "")
    if asked and asked != "none" and asked not in SITUATIONS:
        raise AppError(
            ErrorCode.INVALID_SITUATION,
            f"Unknown situation; use one of {', '.join(SITUATIONS)} or none",
        )
    found = await situation_counts(request.app[SERVICES_KEY])
    counts: dict[str, int] = {key or "none": n for key, n in found.items()}
    by_situation: list[dict[str, object]] = [
        {"situation": None if key == "none" else key, "calls": n} for key, n in counts.items()
    ]
    total = counts[asked] if asked else sum(counts.values())
    return web.json_response(
        {"situation": asked or None, "calls": total, "by_situation": by_situation},
        headers={"Cache-Control": "no-store"},
    )
