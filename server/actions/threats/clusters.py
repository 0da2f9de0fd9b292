"""The public map's clusters, made on the server: the page asks for its view (a bounding box
and a zoom) and gets one feature per grid cell that holds reports, the cell's count and its
statuses, or the report itself where it is alone in its cell; beside them, how many reports
there are in all and where. With 100,000 reports the page never holds more than one screen
of cells (a browser that clustered the whole set spent seconds and megabytes on it).

The cells are the map grid's (``server.db.map_grid``) at 64 pixels a side, so a cluster
never covers more than a thumb's width at any zoom. A cluster is drawn at its cell's centre,
never at the mean of its reports: a mean would give away a sensitive report's exact point.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy import func
from sqlmodel import col, select

from server.actions.threats.public import filtered
from server.actions.threats.queries import photos_of
from server.actions.threats.views import public_feature
from server.core.errors import AppError, ErrorCode
from server.core.services import Services
from server.db.map_grid import GRID_BITS, from_grid
from server.db.models import ThreatReport

# 64-pixel cells on 256-pixel tiles: 2^(zoom + 2) cells across the world.
CELL_BITS_OVER_ZOOM = 2
MAX_ZOOM = GRID_BITS - CELL_BITS_OVER_ZOOM
ZOOM_HINT = f"zoom: a whole number from 0 to {MAX_ZOOM}"


@dataclass
class _Cell:
    count: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    first_id: int = 0


def _zoom(value: str | None) -> int:
    if value is None:
        raise AppError(ErrorCode.INVALID_ZOOM, ZOOM_HINT)
    try:
        zoom = int(value)
    except ValueError:
        raise AppError(ErrorCode.INVALID_ZOOM, ZOOM_HINT) from None
    if not 0 <= zoom <= MAX_ZOOM:
        raise AppError(ErrorCode.INVALID_ZOOM, ZOOM_HINT)
    return zoom


async def clusters(services: Services, query: Mapping[str, str]) -> dict[str, Any]:
    """A FeatureCollection of the view's cells, with ``total`` (every report the filters
    take, in view or not) and ``bounds`` ([[south, west], [north, east]] of them all, or
    null), so that the page's first view can show where the reports are."""
    if not query.get("bbox"):
        raise AppError(ErrorCode.INVALID_BBOX, "bbox: required, west,south,east,north")
    zoom = _zoom(query.get("zoom"))
    shift = GRID_BITS - (zoom + CELL_BITS_OVER_ZOOM)
    size = 1 << shift
    cell_x = col(ThreatReport.grid_x) // size
    cell_y = col(ThreatReport.grid_y) // size
    in_view = filtered(
        sa.select(
            cell_x, cell_y, col(ThreatReport.status), func.count(), func.min(ThreatReport.id)
        ),
        query,
    ).group_by(cell_x, cell_y, col(ThreatReport.status))
    everywhere = {key: value for key, value in query.items() if key != "bbox"}
    extent = filtered(
        sa.select(
            func.count(),
            func.min(ThreatReport.grid_x),
            func.min(ThreatReport.grid_y),
            func.max(ThreatReport.grid_x),
            func.max(ThreatReport.grid_y),
        ),
        everywhere,
    )
    cells: dict[tuple[int, int], _Cell] = {}
    async with services.db.engine.connect() as connection:
        for x, y, status, count, first_id in (await connection.execute(in_view)).all():
            cell = cells.setdefault((int(x or 0), int(y or 0)), _Cell(first_id=int(first_id or 0)))
            cell.count += int(count)
            cell.statuses[str(status)] += int(count)
            cell.first_id = min(cell.first_id, int(first_id or 0))
        total, x0, y0, x1, y1 = (await connection.execute(extent)).one()
        x0, y0, x1, y1 = (int(v or 0) for v in (x0, y0, x1, y1))
    alone = [cell.first_id for cell in cells.values() if cell.count == 1]
    async with services.db.session() as session:
        reports = (
            (await session.exec(select(ThreatReport).where(col(ThreatReport.id).in_(alone)))).all()
            if alone
            else []
        )
        photos = await photos_of(session, alone)
    now = services.clock.now()
    features = [public_feature(r, photos.get(r.id or 0, []), now) for r in reports]
    for (x, y), cell in cells.items():
        if cell.count == 1:
            continue
        lat, lon = from_grid((x + 0.5) * size, (y + 0.5) * size)
        south, west = from_grid(x * size, (y + 1) * size)
        north, east = from_grid((x + 1) * size, y * size)
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [round(lon, 6), round(lat, 6)]},
                "properties": {
                    "cluster": True,
                    "count": cell.count,
                    "statuses": dict(cell.statuses),
                    "bounds": [[south, west], [north, east]],
                },
            }
        )
    bounds = None
    if total:
        south, west = from_grid(x0, y1 + 1)
        north, east = from_grid(x1 + 1, y0)
        bounds = [[south, west], [north, east]]
    return {
        "type": "FeatureCollection",
        "features": features,
        "zoom": zoom,
        "total": int(total),
        "bounds": bounds,
    }
