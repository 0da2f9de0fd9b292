"""What a report may say: the checks every way in (the map's form, Open311, a call) applies to
the text it was sent, each refusal naming the first problem with its own code.

The category is checked against the database apart (``categories.check_category``): it is the
one rule that needs a query.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from server.core.errors import AppError, ErrorCode

MAX_DESCRIPTION_CHARS = 500
MAX_CONTACT_CHARS = 200
MAX_ADDRESS_CHARS = 250
MAX_PUBLIC_NOTE_CHARS = 1000
MAX_INTERNAL_NOTE_CHARS = 4000
MAX_PHOTOS = 3

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TIMES_OF_DAY = ("morning", "afternoon", "evening", "night", "any")
# Control characters other than tab and newline have no business in a description.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

Area = tuple[float, float, float, float]
"""The deployment's area: min_lon, min_lat, max_lon, max_lat."""


@dataclass(frozen=True)
class ReportInput:
    """A citizen's report, validated (the category is checked against the database apart)."""

    category: str
    lat: float
    lon: float
    description: str
    days: tuple[str, ...] = ()
    time_of_day: str = "any"
    contact: str | None = None
    # Open311's address_string, as the partner wrote it beside the point (never geocoded).
    address: str | None = None


def check_point(lat: float, lon: float, area: Area) -> None:
    """A point on Earth, and inside the deployment's area."""
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise AppError(
            ErrorCode.INVALID_POINT, "The point is not on Earth: lat -90..90, lon -180..180"
        )
    min_lon, min_lat, max_lon, max_lat = area
    if not (min_lat <= lat <= max_lat and min_lon <= lon <= max_lon):
        raise AppError(ErrorCode.OUTSIDE_AREA, "The point is outside the area this service covers")


def parse_coordinate(value: str, name: str) -> float:
    try:
        number = float(value.strip())
    except ValueError:
        raise AppError(ErrorCode.INVALID_POINT, f"{name} must be a number") from None
    if not math.isfinite(number):
        raise AppError(ErrorCode.INVALID_POINT, f"{name} must be a finite number")
    return number


def check_text(value: str, name: str, limit: int) -> str:
    """Plain text of at most ``limit`` characters. HTML is not refused: it is kept and always
    returned as text (the pages set it with textContent, the templates escape it)."""
    text = value.replace("\r\n", "\n").replace("\r", "\n").strip()
    if len(text) > limit:
        raise AppError(
            ErrorCode[f"{name.upper()}_TOO_LONG"], f"{name} is longer than {limit} characters"
        )
    if _CONTROL_RE.search(text):
        raise AppError(ErrorCode[f"INVALID_{name.upper()}"], f"{name} contains control characters")
    return text


def check_address(value: str) -> str | None:
    """An address given beside a point: plain text, kept as sent; empty is none."""
    return check_text(value, "address", MAX_ADDRESS_CHARS) or None


def check_days(value: str) -> tuple[str, ...]:
    days = tuple(dict.fromkeys(part.strip().lower() for part in value.split(",") if part.strip()))
    unknown = [d for d in days if d not in DAYS]
    if unknown:
        raise AppError(ErrorCode.INVALID_DAYS, f"days: use {', '.join(DAYS)}")
    return tuple(d for d in DAYS if d in days)  # in the week's order


def check_report_fields(fields: Mapping[str, str], area: Area) -> ReportInput:
    """The form's fields as a ``ReportInput``; a 422 naming the first problem."""
    if "lat" not in fields or "lon" not in fields:
        raise AppError(ErrorCode.INVALID_POINT, "lat and lon are required")
    lat = parse_coordinate(fields["lat"], "lat")
    lon = parse_coordinate(fields["lon"], "lon")
    check_point(lat, lon, area)
    category = fields.get("category", "").strip()
    if not category:
        raise AppError(ErrorCode.UNKNOWN_CATEGORY, "category is required")
    time_of_day = fields.get("time_of_day", "").strip() or "any"
    if time_of_day not in TIMES_OF_DAY:
        raise AppError(ErrorCode.INVALID_TIME_OF_DAY, f"time_of_day: use {', '.join(TIMES_OF_DAY)}")
    contact = check_text(fields.get("contact", ""), "contact", MAX_CONTACT_CHARS) or None
    return ReportInput(
        category=category,
        lat=lat,
        lon=lon,
        description=check_text(fields.get("description", ""), "description", MAX_DESCRIPTION_CHARS),
        days=check_days(fields.get("days", "")),
        time_of_day=time_of_day,
        contact=contact,
    )
