"""A street basemap the tests make themselves: a small PMTiles v3 file of vector tiles in the
Protomaps basemap schema (the layers ``earth``, ``landuse``, ``water`` and ``roads``, with the
``kind`` that protomaps-leaflet's default style paints by), holding a grid of synthetic streets
around one point, written with the ``pmtiles`` writer and encoded with ``mapbox-vector-tile``.

The tiles go to zoom 15, as a city extract would; the pages draw zoom 17 from them larger.
Also here: the Web Mercator arithmetic the browser tests use to say where on the screen a
street must be, and the colours of protomaps-leaflet's two flavours that the pixels are read
against."""

from __future__ import annotations

import gzip
import math
from dataclasses import dataclass
from pathlib import Path

import mapbox_vector_tile
from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import Writer

MAX_ZOOM = 15
EXTENT = 4096
# The grid's middle crossing, south-east of central Almaty; streets every SPACING_M metres.
CROSSING = (43.2400, 76.9300)
SPACING_M = 150.0
STREET_HALF_LENGTH_M = 450.0
METRES_PER_DEGREE_LAT = 111_320.0
ATTRIBUTION = "Synthetic test streets (Lifeline)"

# protomaps-leaflet 5.1's flavours (@protomaps/basemaps LIGHT and DARK): the land and the
# colour every road kind it draws here is painted in.
LIGHT_EARTH = (0xE2, 0xDF, 0xDA)
LIGHT_ROAD = (0xFF, 0xFF, 0xFF)
DARK_EARTH = (0x1F, 0x1F, 0x1F)
DARK_ROAD = (0x3D, 0x3D, 0x3D)


@dataclass(frozen=True)
class Street:
    """A straight street: east-west at ``lat`` or north-south at ``lon``."""

    name: str
    kind: str  # "major_road" or "minor_road", as the Protomaps basemap schema has them
    lat: float | None = None
    lon: float | None = None

    def points(self) -> list[tuple[float, float]]:
        """Its two ends, (lat, lon)."""
        lat0, lon0 = CROSSING
        half_lat = STREET_HALF_LENGTH_M / METRES_PER_DEGREE_LAT
        half_lon = half_lat / math.cos(math.radians(lat0))
        if self.lat is not None:
            return [(self.lat, lon0 - half_lon), (self.lat, lon0 + half_lon)]
        assert self.lon is not None
        return [(lat0 - half_lat, self.lon), (lat0 + half_lat, self.lon)]


def offset(metres_north: float, metres_east: float) -> tuple[float, float]:
    """The point that far from the middle crossing (small distances: a flat earth)."""
    lat0, lon0 = CROSSING
    lat = lat0 + metres_north / METRES_PER_DEGREE_LAT
    lon = lon0 + metres_east / (METRES_PER_DEGREE_LAT * math.cos(math.radians(lat0)))
    return lat, lon


def streets() -> list[Street]:
    """Three streets each way; the two through the middle crossing are major roads."""
    south, _ = offset(-SPACING_M, 0)
    north, _ = offset(SPACING_M, 0)
    _, west = offset(0, -SPACING_M)
    _, east = offset(0, SPACING_M)
    lat0, lon0 = CROSSING
    return [
        Street("Central Avenue", "major_road", lat=lat0),
        Street("North Street", "minor_road", lat=north),
        Street("South Street", "minor_road", lat=south),
        Street("Market Avenue", "major_road", lon=lon0),
        Street("West Lane", "minor_road", lon=west),
        Street("East Lane", "minor_road", lon=east),
    ]


def _box(north_m: tuple[float, float], east_m: tuple[float, float]) -> list[tuple[float, float]]:
    (s, w), (n, e) = offset(north_m[0], east_m[0]), offset(north_m[1], east_m[1])
    return [(s, w), (s, e), (n, e), (n, w), (s, w)]


# Away from the four blocks around the middle crossing, where the tests read the pixels.
POND = _box((-290, -215), (40, 120))
PARK = _box((200, 290), (-140, -20))


def world_pixel(lat: float, lon: float, zoom: float) -> tuple[float, float]:
    """Web Mercator: the point's pixel in the whole world's 256-pixel tiles at ``zoom``."""
    size = 256 * 2**zoom
    sin = math.sin(math.radians(lat))
    x = (lon + 180) / 360 * size
    y = (0.5 - math.log((1 + sin) / (1 - sin)) / (4 * math.pi)) * size
    return x, y


def metres_between(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Haversine, on the same sphere the server measures with."""
    p1, p2 = math.radians(a[0]), math.radians(b[0])
    dp, dl = p2 - p1, math.radians(b[1] - a[1])
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(min(1.0, math.sqrt(h)))


def _tile_xy(lat: float, lon: float, z: int, tx: int, ty: int) -> tuple[float, float]:
    x, y = world_pixel(lat, lon, z)
    return (x / 256 - tx) * EXTENT, (y / 256 - ty) * EXTENT


def _wkt_line(points: list[tuple[float, float]], z: int, tx: int, ty: int) -> str:
    coords = ", ".join(f"{x:.1f} {y:.1f}" for x, y in (_tile_xy(*p, z, tx, ty) for p in points))
    return f"LINESTRING ({coords})"


def _wkt_polygon(ring: list[tuple[float, float]], z: int, tx: int, ty: int) -> str:
    return "POLYGON ((" + _wkt_line(ring, z, tx, ty)[len("LINESTRING (") : -1] + "))"


def _tile(z: int, tx: int, ty: int) -> bytes:
    """One tile: land over all of it, the pond, the park and every street (drawn past the
    tile's edge, which the painter clips)."""
    edge = EXTENT // 16
    land = f"POLYGON ((-{edge} -{edge}, {EXTENT + edge} -{edge}, {EXTENT + edge} {EXTENT + edge}, "
    land += f"-{edge} {EXTENT + edge}, -{edge} -{edge}))"
    layers = [
        {"name": "earth", "features": [{"geometry": land, "properties": {"kind": "earth"}}]},
        {
            "name": "landuse",
            "features": [
                {
                    "geometry": _wkt_polygon(PARK, z, tx, ty),
                    "properties": {"kind": "park", "name": "Test Park"},
                }
            ],
        },
        {
            "name": "water",
            "features": [
                {
                    "geometry": _wkt_polygon(POND, z, tx, ty),
                    "properties": {"kind": "water", "name": "Test Pond"},
                }
            ],
        },
        {
            "name": "roads",
            "features": [
                {
                    "geometry": _wkt_line(street.points(), z, tx, ty),
                    "properties": {
                        "kind": street.kind,
                        "kind_detail": "primary" if street.kind == "major_road" else "residential",
                        "name": street.name,
                    },
                }
                for street in streets()
            ],
        },
    ]
    encoded: bytes = mapbox_vector_tile.encode(
        layers, default_options={"y_coord_down": True, "extents": EXTENT}
    )
    return gzip.compress(encoded, mtime=0)


def _covering(
    z: int, south: float, west: float, north: float, east: float
) -> list[tuple[int, int]]:
    x0, y0 = (int(v // 256) for v in world_pixel(north, west, z))
    x1, y1 = (int(v // 256) for v in world_pixel(south, east, z))
    return [(x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]


def write_street_basemap(path: Path) -> Path:
    """The PMTiles file, zooms 0 to MAX_ZOOM over the grid and a margin around it."""
    south, west = offset(-2 * STREET_HALF_LENGTH_M, -2 * STREET_HALF_LENGTH_M)
    north, east = offset(2 * STREET_HALF_LENGTH_M, 2 * STREET_HALF_LENGTH_M)
    tiles = sorted(
        (zxy_to_tileid(z, x, y), z, x, y)
        for z in range(MAX_ZOOM + 1)
        for x, y in _covering(z, south, west, north, east)
    )
    lat0, lon0 = CROSSING
    with path.open("wb") as file:
        writer = Writer(file)
        for tile_id, z, x, y in tiles:
            writer.write_tile(tile_id, _tile(z, x, y))
        writer.finalize(
            {
                "tile_type": TileType.MVT,
                "tile_compression": Compression.GZIP,
                "min_lon_e7": int(west * 1e7),
                "min_lat_e7": int(south * 1e7),
                "max_lon_e7": int(east * 1e7),
                "max_lat_e7": int(north * 1e7),
                "center_zoom": MAX_ZOOM,
                "center_lon_e7": int(lon0 * 1e7),
                "center_lat_e7": int(lat0 * 1e7),
            },
            {
                "name": "lifeline-test-streets",
                "attribution": ATTRIBUTION,
                "vector_layers": [
                    {"id": name, "fields": {"kind": "String", "name": "String"}}
                    for name in ("earth", "landuse", "water", "roads")
                ],
            },
        )
    return path
