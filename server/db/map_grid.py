"""Where a report sits on the public map's grid: its public point in Web Mercator, as two
integers at 2^24 cells a side (a 256-pixel tile's pixel at zoom 16).

The public map clusters on the server (``server.actions.threats.clusters``): a cell at zoom z
is these integers divided by a power of two, which SQLite and PostgreSQL both do on an index,
without a math function either lacks. The point is the *public* one, so that which cell a
sensitive report falls in says no more than its rounded point does.
"""

from __future__ import annotations

import math

from sqlalchemy.engine.default import DefaultExecutionContext

GRID_BITS = 24
GRID_SIZE = 1 << GRID_BITS
# Web Mercator's edge: the square world ends here.
MAX_LAT = 85.05112878
# A sensitive report (a victim's home, say) is public only at this many decimals (~100 m).
SENSITIVE_DECIMALS = 3


def public_point(lat: float, lon: float, sensitive: bool) -> tuple[float, float]:
    if sensitive:
        return round(lat, SENSITIVE_DECIMALS), round(lon, SENSITIVE_DECIMALS)
    return lat, lon


def to_grid(lat: float, lon: float) -> tuple[int, int]:
    """The cell of a point; the world's edges clamp (x wraps nowhere: -180 is cell 0)."""
    x = (min(180.0, max(-180.0, lon)) + 180.0) / 360.0
    s = math.sin(math.radians(min(MAX_LAT, max(-MAX_LAT, lat))))
    y = 0.5 - math.log((1 + s) / (1 - s)) / (4 * math.pi)
    return (
        min(GRID_SIZE - 1, max(0, int(x * GRID_SIZE))),
        min(GRID_SIZE - 1, max(0, int(y * GRID_SIZE))),
    )


def from_grid(x: float, y: float) -> tuple[float, float]:
    """The point (lat, lon) at grid coordinates, fractions allowed (a cell's centre)."""
    lon = x / GRID_SIZE * 360.0 - 180.0
    lat = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * y / GRID_SIZE))))
    return lat, lon


def report_grid(lat: float, lon: float, sensitive: bool) -> tuple[int, int]:
    return to_grid(*public_point(lat, lon, sensitive))


def _row_grid(context: DefaultExecutionContext) -> tuple[int, int]:
    row = context.get_current_parameters()
    return report_grid(float(row["lat"]), float(row["lon"]), bool(row.get("sensitive", False)))


def default_grid_x(context: DefaultExecutionContext) -> int:
    """The column default: every insert (the ORM's or a bulk one) gets its cell."""
    return _row_grid(context)[0]


def default_grid_y(context: DefaultExecutionContext) -> int:
    return _row_grid(context)[1]
