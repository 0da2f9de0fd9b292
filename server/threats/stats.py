"""Public statistics of the threat map: counts by category, status and month, and a heat layer.

Counted in Python over a narrow query: a city's reports for years fit in memory, and the same
code runs on SQLite and PostgreSQL (no dialect-specific date functions).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from server.db.engine import Database
from server.db.models import ReportStatus, ThreatReport

# Heat cells of ~100 m: the heat layer never shows an exact position.
HEAT_DECIMALS = 3
# Reports that passed verification as real: eliminated ones were confirmed first.
CONFIRMED_STATUSES = (ReportStatus.CONFIRMED, ReportStatus.ELIMINATED)


async def compute_stats(db: Database) -> dict[str, Any]:
    async with db.engine.connect() as connection:
        rows = (
            await connection.execute(
                select(
                    col(ThreatReport.category),
                    col(ThreatReport.status),
                    col(ThreatReport.created_at),
                    col(ThreatReport.lat),
                    col(ThreatReport.lon),
                )
            )
        ).all()
    by_category: Counter[str] = Counter()
    by_status: Counter[str] = Counter()
    by_month: Counter[str] = Counter()
    heat: Counter[tuple[float, float]] = Counter()
    for category, status, created_at, lat, lon in rows:
        by_category[category] += 1
        by_status[status] += 1
        by_month[f"{created_at:%Y-%m}"] += 1
        if status == ReportStatus.CONFIRMED:
            heat[(round(lat, HEAT_DECIMALS), round(lon, HEAT_DECIMALS))] += 1
    total = len(rows)
    confirmed = sum(by_status[s] for s in CONFIRMED_STATUSES)
    return {
        "total": total,
        "confirmed_pct": round(100 * confirmed / total, 1) if total else 0.0,
        "by_category": dict(sorted(by_category.items())),
        "by_status": dict(sorted(by_status.items())),
        "by_month": dict(sorted(by_month.items())),
        "heat": [[lat, lon, weight] for (lat, lon), weight in sorted(heat.items())],
    }
