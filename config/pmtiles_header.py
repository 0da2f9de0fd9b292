"""The PMTiles file a deployment serves as its street basemap: its fixed 127-byte header,
read once at start-up so that a wrong file stops the node instead of a blank map on every
phone. Only what the check needs is read (the pages read the rest with the ``pmtiles``
library)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"PMTiles"
SPEC_VERSION = 3
# Version 2 began "PM" and a little-endian 16-bit version.
_V2_MAGIC = b"PM\x02\x00"
HEADER_BYTES = 127
# The header's tile type byte (offset 99): 1 is Mapbox Vector Tiles, the only kind the pages
# draw (protomaps-leaflet paints vectors on a canvas).
TILE_TYPE_MVT = 1
_TILE_TYPES = {0: "unknown", 1: "mvt", 2: "png", 3: "jpeg", 4: "webp", 5: "avif"}


class NotABasemap(ValueError):
    """The file cannot be the street basemap; the message says why, in one line."""


@dataclass(frozen=True)
class PMTilesHeader:
    """What start-up checks and logs: the zooms the file holds and the area it covers."""

    min_zoom: int
    max_zoom: int
    bounds: tuple[float, float, float, float]  # min_lon, min_lat, max_lon, max_lat


def read_header(path: Path) -> PMTilesHeader:
    """The header of a PMTiles v3 archive of vector tiles; ``NotABasemap`` for anything else."""
    try:
        with path.open("rb") as file:
            head = file.read(HEADER_BYTES)
    except FileNotFoundError:
        raise NotABasemap(f"no file at {path}") from None
    except IsADirectoryError:
        raise NotABasemap(f"{path} is a directory, not a PMTiles file") from None
    except OSError as exc:
        raise NotABasemap(f"{path} cannot be read: {exc.strerror}") from None
    if head.startswith(_V2_MAGIC):
        version = 2
    elif len(head) < HEADER_BYTES or not head.startswith(MAGIC):
        raise NotABasemap(f"{path} is not a PMTiles file (no PMTiles header)")
    else:
        version = head[7]
    if version != SPEC_VERSION:
        upgrade = " (`pmtiles convert` upgrades it)" if version < SPEC_VERSION else ""
        raise NotABasemap(
            f"{path} is PMTiles version {version}; version {SPEC_VERSION} is needed{upgrade}"
        )
    tile_type = head[99]
    if tile_type != TILE_TYPE_MVT:
        kind = _TILE_TYPES.get(tile_type, str(tile_type))
        raise NotABasemap(f"{path} holds {kind} tiles; the pages draw vector (MVT) tiles only")
    min_zoom, max_zoom = head[100], head[101]
    min_lon, min_lat, max_lon, max_lat = struct.unpack_from("<4i", head, 102)
    if min_zoom > max_zoom:
        raise NotABasemap(f"{path} has a broken header (zooms {min_zoom}..{max_zoom})")
    return PMTilesHeader(
        min_zoom=min_zoom,
        max_zoom=max_zoom,
        bounds=(min_lon / 1e7, min_lat / 1e7, max_lon / 1e7, max_lat / 1e7),
    )
