"""The deployment's named areas (districts, precincts): where a point is, by name, for the
public statistics. A centre's own boundaries, one GeoJSON file (``STATS_AREAS_FILE``) read at
start; without it the statistics name a grid cell by its centre instead.

Names only, never shapes on the wire: the page lists "Medeu district: 41", not polygons.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import shapely
from shapely.geometry import shape
from shapely.strtree import STRtree

POLYGON_TYPES = frozenset({"Polygon", "MultiPolygon"})


class NamedAreasError(ValueError):
    """The file is not a FeatureCollection of named polygons; the message says what is wrong."""


class NamedAreas:
    """Polygons and their names, indexed for point lookups."""

    def __init__(self, names: Sequence[str], polygons: Sequence[shapely.Geometry]) -> None:
        self._names = list(names)
        self._tree = STRtree(list(polygons)) if polygons else None

    @classmethod
    def none(cls) -> NamedAreas:
        return cls([], [])

    @property
    def configured(self) -> bool:
        return self._tree is not None

    def names(self) -> list[str]:
        return list(self._names)

    def name_of(self, lat: float, lon: float) -> str | None:
        """The first area (in the file's order) that holds the point, its border included."""
        if self._tree is None:
            return None
        hits = self._tree.query(shapely.Point(lon, lat), predicate="intersects")
        return self._names[int(min(hits))] if len(hits) else None


def load_named_areas(path: Path, name_property: str = "name") -> NamedAreas:
    """Raises ``NamedAreasError`` naming the first thing wrong (the node does not start)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NamedAreasError(f"{path}: not a readable GeoJSON file ({exc})") from None
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection":
        raise NamedAreasError(f"{path}: not a GeoJSON FeatureCollection")
    features = data.get("features")
    if not isinstance(features, list) or not features:
        raise NamedAreasError(f"{path}: no features")
    names: list[str] = []
    polygons: list[shapely.Geometry] = []
    for index, feature in enumerate(features):
        geometry = feature.get("geometry") if isinstance(feature, dict) else None
        properties = (feature.get("properties") if isinstance(feature, dict) else None) or {}
        name = properties.get(name_property) if isinstance(properties, dict) else None
        if not isinstance(geometry, dict) or geometry.get("type") not in POLYGON_TYPES:
            raise NamedAreasError(f"{path}: feature {index} is not a Polygon or MultiPolygon")
        if not isinstance(name, str) or not name.strip():
            raise NamedAreasError(f"{path}: feature {index} has no {name_property!r} property")
        try:
            polygon = shape(geometry)
        except (ValueError, TypeError, AttributeError, shapely.errors.ShapelyError) as exc:
            raise NamedAreasError(f"{path}: feature {index} ({name}): {exc}") from None
        if polygon.is_empty:
            raise NamedAreasError(f"{path}: feature {index} ({name}) is empty")
        names.append(name.strip())
        polygons.append(shapely.make_valid(polygon))
    return NamedAreas(names, polygons)
