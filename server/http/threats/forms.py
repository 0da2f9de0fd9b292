"""What the threat map's routes (and Open311's) read off a request: the citizen's cookie, a
report id in the path, and the report form, streamed with limits.

No routes here: a helper both route modules import, so neither imports the other.
"""

from __future__ import annotations

from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel, Field

from server.actions.threats.citizens import Reporter
from server.actions.threats.fields import MAX_CONTACT_CHARS, MAX_DESCRIPTION_CHARS, MAX_PHOTOS
from server.core.errors import AppError, ErrorCode
from server.http.bodies import read_form
from server.http.keys import SERVICES_KEY
from server.security.tokens import new_token

REPORTER_COOKIE = "lifeline_reporter"
REPORTER_COOKIE_MAX_AGE_SECS = 365 * 86_400
REPORT_FIELDS = frozenset(
    {"category", "lat", "lon", "description", "days", "time_of_day", "contact", "duplicate_ok"}
)
MAX_FIELD_BYTES = 4096
MAX_FORM_PARTS = 16
READ_CHUNK_BYTES = 64 * 1024


class ReportForm(BaseModel):
    """The report form's fields (``REPORT_FIELDS``) and its photos, as the API's document
    shows them; ``read_report_form`` reads them, the actions check them."""

    category: str = Field(description="An active category's code (GET /api/report-categories)")
    lat: str = Field(description="Degrees north, inside the deployment's area")
    lon: str = Field(description="Degrees east, inside the deployment's area")
    description: str = Field(default="", max_length=MAX_DESCRIPTION_CHARS)
    days: str = Field(default="", description="Days it happens: mon,tue,... comma-separated")
    time_of_day: str = Field(default="any", description="morning, afternoon, evening, night, any")
    contact: str = Field(default="", max_length=MAX_CONTACT_CHARS)
    duplicate_ok: str = Field(default="", description="1: store it despite open reports nearby")
    photos: list[bytes] = Field(default=[], max_length=MAX_PHOTOS)


# --- the citizen as a client: address and cookie ----------------------------------------------


def reporter_of(request: web.Request) -> Reporter:
    """The asking citizen: their cookie if it looks like one of ours, else a new one."""
    cookie = request.cookies.get(REPORTER_COOKIE, "")
    if 20 <= len(cookie) <= 64 and cookie.replace("-", "").replace("_", "").isalnum():
        return Reporter(request.remote or "unknown", cookie, minted=False)
    return Reporter(request.remote or "unknown", new_token(), minted=True)


def with_cookie(request: web.Request, reporter: Reporter, response: web.Response) -> web.Response:
    """Set a newly minted cookie on the answer: the next request is then the same client."""
    if reporter.minted:
        response.set_cookie(
            REPORTER_COOKIE,
            reporter.cookie,
            max_age=REPORTER_COOKIE_MAX_AGE_SECS,
            httponly=True,
            samesite="Lax",
            secure=request.app[SERVICES_KEY].settings.cookies_secure,
            path="/",
        )
    return response


def report_id_of(request: web.Request) -> int:
    try:
        return int(request.match_info["report_id"])
    except ValueError:
        raise AppError(ErrorCode.INVALID_REPORT_ID, "A report id is a number") from None


# --- reading the report form ------------------------------------------------------------------


async def _read_part(part: BodyPartReader, limit: int, too_big: AppError) -> bytes:
    data = bytearray()
    while chunk := await part.read_chunk(READ_CHUNK_BYTES):
        data += chunk
        if len(data) > limit:
            raise too_big
    return bytes(data)


def _check_names(fields: dict[str, Any]) -> None:
    unknown = sorted(set(fields) - REPORT_FIELDS)
    if unknown:
        raise AppError(ErrorCode.UNKNOWN_FIELD, f"Unknown field {unknown[0]!r}")


async def read_report_form(
    request: web.Request, max_photo_bytes: int
) -> tuple[dict[str, str], list[bytes]]:
    """Text fields and photos of a multipart (or urlencoded) form, streamed with limits: a
    too-large photo is refused while it arrives, not after it is all in memory."""
    if request.content_type == "application/x-www-form-urlencoded":
        form = await read_form(request)
        plain = {k: v for k, v in form.items() if isinstance(v, str)}
        _check_names(plain)
        return plain, []
    if request.content_type != "multipart/form-data":
        raise AppError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, "Send the report as multipart/form-data")
    try:
        return await _read_parts(request, max_photo_bytes)
    except (ValueError, HttpProcessingError):  # no boundary, a body without it, a bad header
        raise AppError(ErrorCode.BAD_FORM, "The form does not parse: malformed") from None


async def _read_parts(
    request: web.Request, max_photo_bytes: int
) -> tuple[dict[str, str], list[bytes]]:
    reader = await request.multipart()
    fields: dict[str, str] = {}
    photos: list[bytes] = []
    total = 0
    for _index in range(MAX_FORM_PARTS + 1):
        part = await reader.next()
        if part is None:
            return fields, photos
        if not isinstance(part, BodyPartReader):
            raise AppError(ErrorCode.BAD_FORM, "Nested multipart bodies are not accepted")
        name = part.name or ""
        if name == "photos":
            data = await _read_part(
                part,
                max_photo_bytes - total,
                AppError(
                    ErrorCode.PHOTOS_TOO_LARGE,
                    f"Photos are larger than {max_photo_bytes // 1_048_576} MB in total",
                ),
            )
            if not data and not part.filename:
                continue  # a file input left empty
            photos.append(data)
            total += len(data)
            if len(photos) > MAX_PHOTOS:
                raise AppError(ErrorCode.TOO_MANY_PHOTOS, f"At most {MAX_PHOTOS} photos")
            continue
        _check_names({name: ""})
        raw = await _read_part(
            part, MAX_FIELD_BYTES, AppError(ErrorCode.INVALID, f"{name} is too long")
        )
        try:
            fields[name] = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise AppError(ErrorCode.INVALID, f"{name} is not UTF-8 text") from None
    raise AppError(ErrorCode.BAD_FORM, "Too many parts in the form")
