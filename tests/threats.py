"""Helpers for the threat-map tests: images made with Pillow, report forms, database reads."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

from aiohttp import ClientResponse, FormData
from PIL import ExifTags, Image
from sqlmodel import col, func, select

from server.db.models import AuditEntry, ThreatReport
from server.http.keys import SERVICES_KEY
from tests.staff import Client

# Inside the test area (settings below): central Warsaw.
HERE = (52.2297, 21.0122)
TEST_AREA = "20,50,24,54"


def jpeg_with_gps(size: tuple[int, int] = (64, 48), color: str = "red") -> bytes:
    """A JPEG whose EXIF carries a GPS position, as a phone camera writes it."""
    image = Image.new("RGB", size, color)
    exif = Image.Exif()
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (52.0, 13.0, 46.92)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (21.0, 0.0, 43.92)
    exif[ExifTags.Base.Make] = "TestPhone"
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    return out.getvalue()


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A few hundred bytes of PNG that declares ``width`` x ``height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + chunk(b"IEND", b"")
    )


def report_form(
    fields: dict[str, str], photos: list[bytes] | None = None, filename: str = "photo.jpg"
) -> FormData:
    form = FormData()
    for name, value in fields.items():
        form.add_field(name, value)
    for data in photos or []:
        form.add_field("photos", io.BytesIO(data), filename=filename, content_type="image/jpeg")
    return form


def fields_at(
    lat: float = HERE[0], lon: float = HERE[1], category: str = "vandalism", **extra: str
) -> dict[str, str]:
    return {
        "category": category,
        "lat": str(lat),
        "lon": str(lon),
        "description": "Smashed bus stop glass",
        "days": "fri,sat",
        "time_of_day": "night",
        **extra,
    }


async def post_report(
    client: Client, photos: list[bytes] | None = None, **fields: Any
) -> ClientResponse:
    return await client.post("/api/reports", data=report_form(fields_at(**fields), photos or []))


async def created(response: ClientResponse) -> dict[str, Any]:
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def geojson(client: Client, path: str) -> dict[str, Any]:
    """A public GeoJSON answer, served as RFC 7946 registers it."""
    response = await client.get(path)
    assert response.status == 200, await response.text()
    assert response.content_type == "application/geo+json"
    body: dict[str, Any] = await response.json(content_type=None)
    return body


async def refused(response: ClientResponse, status: int, code: str) -> dict[str, Any]:
    text = await response.text()
    assert response.status == status, text
    body: dict[str, Any] = await response.json()
    assert body["error"]["code"] == code, text
    return body


async def report_count(client: Client) -> int:
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        return int((await session.exec(select(func.count()).select_from(ThreatReport))).one())


async def audit_actions(client: Client) -> list[str]:
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        rows = (await session.exec(select(AuditEntry).order_by(col(AuditEntry.seq)))).all()
    return [r.action for r in rows]


def north_of(lat: float, metres: float) -> float:
    return lat + metres / 111_320.0
