"""Photos during a call: sniffed, kept as sent with their hash, caught up by sequence number."""

from __future__ import annotations

import hashlib
import io
from typing import Any

import aiohttp
import pytest
from PIL import Image
from sqlmodel import select

from server.db.models import AuditEntry, CallPhoto
from server.http.keys import SERVICES_KEY
from tests.sockets import citizen, console, start_call
from tests.staff import Client


def _jpeg(size: tuple[int, int] = (320, 240)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(buffer, "JPEG")
    return buffer.getvalue()


def _bomb() -> bytes:
    """A tiny PNG that claims to be 20000 x 20000 pixels."""
    buffer = io.BytesIO()
    Image.new("1", (20000, 20000)).save(buffer, "PNG")
    return buffer.getvalue()


async def _upload(
    client: Client, call_id: str, token: str, data: bytes, name: str = "p.jpg", field: str = "photo"
) -> aiohttp.ClientResponse:
    form = aiohttp.FormData()
    form.add_field(field, io.BytesIO(data), filename=name, content_type="image/jpeg")
    return await client.post(
        f"/api/calls/{call_id}/photos", data=form, headers={"X-Call-Token": token}
    )


async def _count(client: Client) -> tuple[int, int]:
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        photos = len((await session.exec(select(CallPhoto))).all())
        audit = len((await session.exec(select(AuditEntry))).all())
    return photos, audit


async def test_a_photo_reaches_the_operator_and_is_kept_as_sent(
    client: Client, operator: Client
) -> None:
    started = await start_call(client)
    call_id, token = started["call_id"], started["token"]
    photo = _jpeg()
    async with console(operator) as desk, citizen(client, token) as phone:
        assert (await desk.call("accept", {"call_id": call_id}))["ok"]
        await phone.call("chat", {"client_id": "c-before01", "body": "look"})
        response = await _upload(client, call_id, token, photo)
        assert response.status == 201, await response.text()
        sent: dict[str, Any] = await response.json()
        assert sent["sha256"] == hashlib.sha256(photo).hexdigest()
        assert (sent["width"], sent["height"]) == (320, 240)
        seen = await desk.next_event("call.photo", call_id=call_id)
        assert seen["seq"] == sent["seq"] == 2
        served = await operator.get(seen["url"])
        assert served.status == 200
        assert await served.read() == photo
        mine = await client.get(seen["url"], headers={"X-Call-Token": token})
        assert await mine.read() == photo
        resumed = await phone.call("resume", {"last_seq": 1})
        assert [(e["type"], e["seq"]) for e in resumed["events"]] == [("call.photo", 2)]
        joined = await desk.call("join", {"call_id": call_id, "last_seq": 0})
        assert [e["type"] for e in joined["events"]] == ["chat.message", "call.photo"]


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"GIF89a not really", 400, "not_an_image"),
        (b"<html><script>alert(1)</script></html>", 400, "not_an_image"),
        (_jpeg()[:200], 400, "not_an_image"),
        (_bomb(), 413, "image_too_large"),
    ],
)
async def test_what_is_not_a_photo_is_refused(
    client: Client, data: bytes, status: int, code: str
) -> None:
    started = await start_call(client)
    before = await _count(client)
    response = await _upload(client, started["call_id"], started["token"], data)
    assert response.status == status
    assert (await response.json())["error"]["code"] == code
    assert await _count(client) == before


async def test_only_the_calls_token_may_upload_or_read(client: Client) -> None:
    first, second = await start_call(client), await start_call(client)
    before = await _count(client)
    wrong = await _upload(client, first["call_id"], second["token"], _jpeg())
    assert wrong.status == 401
    missing = await client.post(f"/api/calls/{first['call_id']}/photos", data=b"x")
    assert missing.status == 401
    field = await _upload(client, first["call_id"], first["token"], _jpeg(), field="file")
    assert field.status == 400
    assert await _count(client) == before
    ok = await _upload(client, first["call_id"], first["token"], _jpeg())
    url = (await ok.json())["url"]
    assert (await client.get(url)).status == 401
    assert (await client.get(url, headers={"X-Call-Token": second["token"]})).status == 401


async def test_an_oversize_photo_is_refused_before_it_is_read(client: Client) -> None:
    started = await start_call(client)
    assert client.app is not None
    big = b"\xff\xd8" + b"0" * (10 * 1_048_576 + 1)
    response = await _upload(client, started["call_id"], started["token"], big)
    assert response.status == 413
    assert await _count(client) == (0, 1)
