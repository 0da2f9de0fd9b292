"""Public statistics of the threat map: counts by category, status, area and month, and heat.

Counted in Python over a narrow query: a city's reports for years fit in memory, and the same
code runs on SQLite and PostgreSQL (no dialect-specific date functions).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from server.actions.threats.queries import published
from server.core.services import Services
from server.db.models import ReportStatus, ThreatReport

# Heat cells of ~100 m: the heat layer never shows an exact position.
HEAT_DECIMALS = 3
# Reports that passed verification as real: eliminated ones were confirmed first.
CONFIRMED_STATUSES = (ReportStatus.CONFIRMED, ReportStatus.ELIMINATED)
# Where the deployment has no district polygons (STATS_AREAS_FILE), or a report lies outside
# all of them, its "area" is a cell of a fixed grid, 0.05 degrees (~5.5 km of latitude,
# ~3.4 km of longitude at 52 N), named by its centre.
AREA_CELL_DEG = 0.05
AREA_DECIMALS = 3
TOP_AREAS = 20
# A share of fewer reports than this says nothing ("100 % confirmed" of one report): the page
# shows the count alone until there are this many.
MIN_REPORTS_FOR_SHARE = 10
# lat / 0.05 of a 6-decimal coordinate is a 5-decimal number that floats miss by ~1e-12:
# rounding first keeps 52.25 in the cell that starts at 52.25.
_CELL_ROUND_DECIMALS = 9


def area_cell(lat: float, lon: float) -> tuple[float, float]:
    """The centre of the grid cell that holds a point."""

    def centre(value: float) -> float:
        index = math.floor(round(value / AREA_CELL_DEG, _CELL_ROUND_DECIMALS))
        return round((index + 0.5) * AREA_CELL_DEG, AREA_DECIMALS)

    return centre(lat), centre(lon)


def area_label(cell: tuple[float, float]) -> str:
    return f"{cell[0]:.{AREA_DECIMALS}f},{cell[1]:.{AREA_DECIMALS}f}"


async def compute_stats(services: Services) -> dict[str, Any]:
    """The statistics page's numbers, over every report the public may see."""
    async with services.db.engine.connect() as connection:
        rows = (
            await connection.execute(
                select(
                    col(ThreatReport.category),
                    col(ThreatReport.status),
                    col(ThreatReport.created_at),
                    col(ThreatReport.lat),
                    col(ThreatReport.lon),
                ).where(published())
            )
        ).all()
    by_category: Counter[str] = Counter()
    by_status: Counter[str] = Counter()
    by_month: Counter[str] = Counter()
    heat: Counter[tuple[float, float]] = Counter()
    by_area: Counter[tuple[float, float]] = Counter()
    by_name: Counter[str] = Counter()
    areas = services.areas
    for category, status, created_at, lat, lon in rows:
        by_category[category] += 1
        by_status[status] += 1
        by_month[f"{created_at:%Y-%m}"] += 1
        name = areas.name_of(lat, lon) if areas.configured else None
        if name is not None:
            by_name[name] += 1
        else:
            by_area[area_cell(lat, lon)] += 1
        if status == ReportStatus.CONFIRMED:
            heat[(round(lat, HEAT_DECIMALS), round(lon, HEAT_DECIMALS))] += 1
    total = len(rows)
    confirmed = sum(by_status[s] for s in CONFIRMED_STATUSES)
    # The busiest first, named areas and grid cells (reports outside every named area) alike;
    # equal counts by label, so the list is the same on every run.
    listed: list[dict[str, Any]] = [
        {"area": name, "named": True, "count": count} for name, count in by_name.items()
    ] + [
        {"area": area_label(cell), "named": False, "lat": cell[0], "lon": cell[1], "count": count}
        for cell, count in by_area.items()
    ]
    listed.sort(key=lambda entry: (-entry["count"], entry["area"]))
    return {
        "total": total,
        "confirmed": confirmed,
        "confirmed_pct": (
            round(100 * confirmed / total, 1) if total >= MIN_REPORTS_FOR_SHARE else None
        ),
        "min_reports_for_share": MIN_REPORTS_FOR_SHARE,
        "by_category": dict(sorted(by_category.items())),
        "by_status": dict(sorted(by_status.items())),
        "by_month": dict(sorted(by_month.items())),
        "by_area": listed[:TOP_AREAS],
        "areas_named": areas.configured,
        "heat": [[lat, lon, weight] for (lat, lon), weight in sorted(heat.items())],
    }
