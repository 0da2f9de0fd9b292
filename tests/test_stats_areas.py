"""Statistics by named area (``STATS_AREAS_FILE``): a report counts in the district that holds
it, by name; one outside every district in its grid cell, as without the file. A file that is
not named polygons stops ``server run`` with one line, before anything starts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from config import Settings
from server.core.clock import FrozenClock
from server.core.named_areas import NamedAreasError, load_named_areas
from server.db.models import ReportStatus, ThreatReport
from server.http.keys import SERVICES_KEY
from tests.staff import Client

# Two districts side by side, west and east of 21.0 E; the second a MultiPolygon.
WEST = [[20.9, 52.2], [21.0, 52.2], [21.0, 52.3], [20.9, 52.3], [20.9, 52.2]]
EAST = [[21.0, 52.2], [21.1, 52.2], [21.1, 52.3], [21.0, 52.3], [21.0, 52.2]]
DISTRICTS = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "properties": {"district": "Wola"},
            "geometry": {"type": "Polygon", "coordinates": [WEST]},
        },
        {
            "type": "Feature",
            "properties": {"district": "Praga-Północ"},
            "geometry": {"type": "MultiPolygon", "coordinates": [[EAST]]},
        },
    ],
}


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    path = tmp_path / "districts.geojson"
    path.write_text(json.dumps(DISTRICTS), encoding="utf-8")
    return settings.model_copy(
        update={"STATS_AREAS_FILE": path, "STATS_AREAS_NAME_PROPERTY": "district"}
    )


async def _add(client: Client, clock: FrozenClock, points: list[tuple[float, float]]) -> None:
    now = clock.now()
    rows = [
        ThreatReport(
            category="speeding",
            status=ReportStatus.NEW,
            lat=lat,
            lon=lon,
            description=f"generated {n}",
            created_at=now,
            updated_at=now,
        )
        for n, (lat, lon) in enumerate(points)
    ]
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        session.add_all(rows)
        await session.commit()


async def test_reports_count_in_the_named_district_that_holds_them(
    client: Client, clock: FrozenClock
) -> None:
    # 3 in Wola, 2 in Praga-Północ, 1 far outside both (its grid cell).
    await _add(
        client,
        clock,
        [
            *((52.25, 20.95), (52.21, 20.91), (52.29, 20.99)),
            *((52.25, 21.05), (52.22, 21.09)),
            (52.60, 21.50),
        ],
    )
    stats: dict[str, Any] = await (await client.get("/api/stats")).json()
    assert stats["areas_named"] is True
    assert stats["by_area"] == [
        {"area": "Wola", "named": True, "count": 3},
        {"area": "Praga-Północ", "named": True, "count": 2},
        {"area": "52.625,21.525", "named": False, "lat": 52.625, "lon": 21.525, "count": 1},
    ]
    assert stats["total"] == 6


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("not json", "not a readable GeoJSON file"),
        (json.dumps({"type": "Feature"}), "not a GeoJSON FeatureCollection"),
        (
            json.dumps(
                {
                    "type": "FeatureCollection",
                    "features": [{"type": "Feature", "properties": {}, "geometry": None}],
                }
            ),
            "feature 0 is not a Polygon or MultiPolygon",
        ),
        (
            json.dumps(
                {
                    "type": "FeatureCollection",
                    "features": [
                        {
                            "type": "Feature",
                            "properties": {"name": "x"},
                            "geometry": {"type": "Polygon", "coordinates": [WEST]},
                        }
                    ],
                }
            ),
            "feature 0 has no 'district' property",
        ),
    ],
)
def test_each_fault_of_the_file_is_named(tmp_path: Path, content: str, says: str) -> None:
    path = tmp_path / "areas.geojson"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(NamedAreasError, match=re.escape(says)):
        load_named_areas(path, "district")


def test_a_file_that_is_not_named_polygons_stops_the_node_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "areas.geojson"
    path.write_text(json.dumps({"type": "Feature"}), encoding="utf-8")
    env = {
        **os.environ,
        "LIFELINE_DATA_DIR": str(tmp_path / "data"),
        "LIFELINE_STATS_AREAS_FILE": str(path),
        "LIFELINE_STATS_AREAS_NAME_PROPERTY": "district",
    }
    done = subprocess.run(
        [sys.executable, "-m", "server", "run", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: LIFELINE_STATS_AREAS_FILE: "), line
    assert "not a GeoJSON FeatureCollection" in line, line
