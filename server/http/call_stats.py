"""Public call statistics: police calls by what the caller said was happening, filterable by
one situation (``?situation=``, ``none`` for calls that named none). Counts only; internal
security's calls are never in them."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from server.actions.queue import SITUATIONS
from server.actions.situations import situation_counts
from server.core.errors import AppError, ErrorCode
from server.core.events import SituationName
from server.http.keys import SERVICES_KEY
from server.http.openapi import documented

routes = web.RouteTableDef()


class SituationQuery(BaseModel):
    situation: SituationName | Literal["none"] | None = None


class SituationCount(BaseModel):
    model_config = ConfigDict(extra="forbid")
    situation: SituationName | None
    calls: int


class CallStats(BaseModel):
    """Police calls by what the caller said was happening; ``calls``, those of ``situation``
    (all of them when none is asked)."""

    model_config = ConfigDict(extra="forbid")
    situation: SituationName | Literal["none"] | None
    calls: int
    by_situation: list[SituationCount]


@routes.get("/api/stats/calls")
@documented(query=SituationQuery, replies={200: CallStats})
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
