"""The multipart (and urlencoded) forms the upload routes read: the threat report form
(``server.http.threats.forms.read_report_form``, streamed part by part) and a single file field
(``server.http.uploads.read_upload``, aiohttp's ``post()``). Refusals: ``AppError`` and
aiohttp's HTTP exceptions, which the error middleware turns into 4xx; anything else is a 500.

The request is aiohttp's own, its body a ``StreamReader`` fed the input's bytes, as the server's
protocol feeds it from a socket.
"""

from __future__ import annotations

import asyncio

import atheris
from aiohttp import web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.streams import StreamReader
from aiohttp.test_utils import make_mocked_request

from server.core.errors import AppError, ErrorCode
from server.http.threats.forms import read_report_form
from server.http.uploads import read_upload
from tests.fuzz.harness import Target

BOUNDARY = "----lifelinefuzz"
CONTENT_TYPES = [
    f"multipart/form-data; boundary={BOUNDARY}",
    "multipart/form-data",
    "multipart/form-data; boundary=",
    'multipart/form-data; boundary="a b"',
    "multipart/mixed; boundary=x",
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=latin-1",
    "text/plain",
]
MAX_PHOTO_BYTES = 64 * 1024


def _request(loop: asyncio.AbstractEventLoop, content_type: str, body: bytes) -> web.Request:
    payload = StreamReader(BaseProtocol(loop), 2**16, loop=loop)
    payload.feed_data(body)
    payload.feed_eof()
    return make_mocked_request(
        "POST",
        "/api/reports",
        headers={"Content-Type": content_type, "Content-Length": str(len(body))},
        payload=payload,
        client_max_size=MAX_PHOTO_BYTES * 2,
        loop=loop,
    )


async def _read(content_type: str, body: bytes, report_form: bool) -> None:
    request = _request(asyncio.get_running_loop(), content_type, body)
    try:
        if report_form:
            await read_report_form(request, MAX_PHOTO_BYTES)
        else:
            await read_upload(request, "photo", ErrorCode.PHOTO_REQUIRED)
    except (AppError, web.HTTPException):
        return


class FormTarget:
    """One event loop for every input of a run (a new one per input costs more than the form)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None

    def __call__(self, data: bytes) -> None:
        fdp = atheris.FuzzedDataProvider(data)
        report_form = fdp.ConsumeBool()
        if fdp.ConsumeIntInRange(0, 7) == 0:
            content_type = fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 120))
            if any(ch in content_type for ch in "\r\n\x00"):
                return  # not a header a client can send: the HTTP parser refuses it first
        else:
            content_type = CONTENT_TYPES[fdp.ConsumeIntInRange(0, len(CONTENT_TYPES) - 1)]
        body = fdp.ConsumeBytes(len(data))
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(_read(content_type, body, report_form))

    def close(self) -> None:
        if self._loop is not None:
            self._loop.close()


def _part(name: str, value: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return (
        (
            f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
            + ("Content-Type: image/jpeg\r\n" if filename else "")
            + "\r\n"
        ).encode()
        + value
        + b"\r\n"
    )


FORM = (
    _part("category", b"theft")
    + _part("lat", b"43.2")
    + _part("photos", b"\xff\xd8\xff\xe0" + b"\x00" * 64, "a.jpg")
    + _part("photo", b"\x89PNG\r\n\x1a\n", "b.png")
    + f"--{BOUNDARY}--\r\n".encode()
)
SEEDS = [b"\x01\x01" + FORM, b"\x00\x01" + FORM, b"\x01\x05category=theft&lat=1"]

TARGET = Target("forms", FormTarget(), SEEDS)
