"""The public map's clusters come from the server, and what they say adds up: every report in
the view is counted once, in the cell whose bounds hold its public point, with its status; a
report alone in its cell comes as itself; the totals and bounds cover every report; bad views
get a 422 with the reason. Counted here independently, by plain comparisons of degrees."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from config import Settings
from server.core.clock import FrozenClock
from server.db.map_grid import public_point
from server.db.models import ThreatReport
from server.http.keys import SERVICES_KEY
from tests.staff import Client
from tests.threats import TEST_AREA, geojson, refused

STATUSES = ("new", "verifying", "confirmed", "not_confirmed", "eliminated")
# Points on a 0.0004-degree lattice; view edges half a step off it, so that no point sits
# within a grid cell (~2 m) of an edge and "inside" needs no rounding rule.
STEP = 0.0004


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"REPORT_AREA": TEST_AREA})


@dataclass(frozen=True)
class Report:
    """What the checks read of a stored report."""

    id: int
    status: str
    lat: float
    lon: float
    sensitive: bool


async def _reports(client: Client, clock: FrozenClock, count: int) -> list[Report]:
    rng = random.Random(11)
    now = clock.now()
    rows = []
    for i in range(count):
        # Dense around one centre, sparse farther out: cells of many and cells of one.
        spread = 40 if i % 3 else 400
        lat = 52.2 + STEP * round(rng.gauss(0, spread))
        lon = 21.0 + STEP * round(rng.gauss(0, spread))
        rows.append(
            ThreatReport(
                category="vandalism",
                status=rng.choice(STATUSES),
                lat=round(lat, 6),
                lon=round(lon, 6),
                sensitive=i % 17 == 0,
                description=f"generated {i}",
                created_at=now - timedelta(minutes=i),
                updated_at=now - timedelta(minutes=i),
            )
        )
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        session.add_all(rows)
        await session.flush()  # ids and grid cells, without a read back per row
        kept = [Report(row.id or 0, row.status, row.lat, row.lon, row.sensitive) for row in rows]
        await session.commit()
    return kept


def _inside(row: Report, south: float, west: float, north: float, east: float) -> bool:
    lat, lon = public_point(row.lat, row.lon, row.sensitive)
    return south <= lat <= north and west <= lon <= east


async def _view(client: Client, zoom: int, bbox: str, **extra: str) -> dict[str, Any]:
    response = await client.get(
        "/api/reports/clusters", params={"zoom": str(zoom), "bbox": bbox, **extra}
    )
    assert response.status == 200, await response.text()
    assert response.content_type == "application/geo+json"
    body: dict[str, Any] = await response.json(content_type=None)
    return body


async def test_every_report_in_view_is_counted_once_in_its_cell(
    client: Client, clock: FrozenClock
) -> None:
    rows = await _reports(client, clock, 3000)
    half = STEP / 2
    views = [
        (3, (20.0 + half, 51.5 + half, 22.0 + half, 53.0 + half)),
        (12, (20.9 + half, 52.1 + half, 21.1 + half, 52.3 + half)),
        (15, (20.99 + half, 52.19 + half, 21.01 + half, 52.21 + half)),
        (18, (20.998 + half, 52.198 + half, 21.002 + half, 52.202 + half)),
    ]
    for zoom, (west, south, east, north) in views:
        view = await _view(client, zoom, f"{west},{south},{east},{north}")
        expected = [r for r in rows if _inside(r, south, west, north, east)]
        clusters = [f for f in view["features"] if f["properties"].get("cluster")]
        singles = [f for f in view["features"] if not f["properties"].get("cluster")]
        assert sum(c["properties"]["count"] for c in clusters) + len(singles) == len(expected)
        assert {s["properties"]["id"] for s in singles} <= {r.id for r in expected}
        for cluster in clusters:
            props = cluster["properties"]
            (c_south, c_west), (c_north, c_east) = props["bounds"]
            held = [r for r in expected if _inside(r, c_south, c_west, c_north, c_east)]
            assert props["count"] == len(held) >= 2
            assert props["statuses"] == dict(Counter(r.status for r in held))
            # Drawn at the cell's centre, not at a mean of the (maybe sensitive) points.
            lon, lat = cluster["geometry"]["coordinates"]
            assert abs(lon - (c_west + c_east) / 2) < 1e-5
            assert c_south < lat < c_north
        for single in singles:
            row = next(r for r in rows if r.id == single["properties"]["id"])
            assert single["geometry"]["coordinates"] == list(
                reversed(public_point(row.lat, row.lon, row.sensitive))
            )
        assert view["total"] == len(rows)
        (b_south, b_west), (b_north, b_east) = view["bounds"]
        assert all(_inside(r, b_south, b_west, b_north, b_east) for r in rows)
    # The zoomed-in views hold cells of one; the overview folds them all into a few.
    assert len((await _view(client, 3, "20,51,22,53"))["features"]) <= 4


async def test_filters_and_pages_agree_with_the_clusters(
    client: Client, clock: FrozenClock
) -> None:
    rows = await _reports(client, clock, 400)
    view = await _view(client, 10, "20,51,22,53", status="confirmed,eliminated")
    wanted = [r for r in rows if r.status in ("confirmed", "eliminated")]
    counted = sum(f["properties"].get("count", 1) for f in view["features"])
    assert counted == view["total"] == len(wanted)

    ids: list[int] = []
    query = "limit=64&bbox=20.95,52.15,21.05,52.25"
    while query:
        page = await geojson(client, f"/api/reports?{query}")
        assert len(page["features"]) <= 64
        ids += [f["properties"]["id"] for f in page["features"]]
        query = page.get("next", "")
    inside = [r.id or 0 for r in rows if _inside(r, 52.15, 20.95, 52.25, 21.05)]
    assert len(ids) == len(set(ids)) and sorted(ids) == sorted(inside)


async def test_bad_views_are_refused_with_their_reason(client: Client) -> None:
    for query, code in [
        ("zoom=10", "invalid_bbox"),
        ("zoom=10&bbox=1,2,3", "invalid_bbox"),
        ("zoom=10&bbox=a,b,c,d", "invalid_bbox"),
        ("zoom=10&bbox=22,51,20,53", "invalid_bbox"),
        ("zoom=10&bbox=20,51,22,nan", "invalid_bbox"),
        ("zoom=10&bbox=20,-91,22,53", "invalid_bbox"),
        ("bbox=20,51,22,53", "invalid_zoom"),
        ("zoom=23&bbox=20,51,22,53", "invalid_zoom"),
        ("zoom=x&bbox=20,51,22,53", "invalid_zoom"),
    ]:
        await refused(await client.get(f"/api/reports/clusters?{query}"), 422, code)
    for query in ("limit=0", "limit=10001", "limit=x", "offset=-1"):
        await refused(await client.get(f"/api/reports?{query}"), 422, "invalid_page")
    await refused(await client.get("/api/reports?bbox=1,2"), 422, "invalid_bbox")
