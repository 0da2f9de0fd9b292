"""Many public reports written straight into a deployment's database, for the map's browser
test and its bench row: what is measured is the map, not the report form."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from server.db.engine import Database
from server.db.models import ThreatReport

STATUSES = ("new", "verifying", "confirmed", "not_confirmed", "eliminated")
CATEGORIES = ("vandalism", "illegal_dumping", "speeding", "stray_dogs", "illegal_parking")
# Around Almaty: a city's worth of reports, 0.1 by 0.15 degrees.
SOUTH, WEST, HEIGHT, WIDTH = 43.2, 76.85, 0.1, 0.15
_BATCH = 10_000


async def fill_reports(url: str, count: int, seed: int = 7) -> None:
    """``count`` reports spread over the city, in batches (the grid cells come from the
    column default, as for any insert)."""
    now = datetime.now(UTC)
    rng = random.Random(seed)
    db = Database(url)
    try:
        for start in range(0, count, _BATCH):
            rows: list[dict[str, Any]] = [
                {
                    "category": rng.choice(CATEGORIES),
                    "status": rng.choice(STATUSES),
                    "lat": SOUTH + rng.random() * HEIGHT,
                    "lon": WEST + rng.random() * WIDTH,
                    "description": f"bench report {i}",
                    "days": "",
                    "time_of_day": "any",
                    "sensitive": False,
                    "confirmations": 0,
                    "source": "web",
                    "remote": "",
                    "created_at": now - timedelta(minutes=i),
                    "updated_at": now - timedelta(minutes=i),
                }
                for i in range(start, min(count, start + _BATCH))
            ]
            async with db.engine.begin() as conn:
                await conn.execute(ThreatReport.__table__.insert(), rows)  # type: ignore[attr-defined]
    finally:
        await db.close()
