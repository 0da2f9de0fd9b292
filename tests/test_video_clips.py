"""Video clips: sniffed by content with PyAV (never by name or Content-Type), kept as sent
with their hash beside a call's photos, and shown to the operator."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from sqlmodel import col, select

from config import Settings
from media.clips import PyAVClipProbe
from server.actions.video_clips import container_of
from server.core.errors import AppError
from server.db.models import AuditEntry, CallPhoto
from server.http.keys import SERVICES_KEY
from tests.clips import fake_ftyp_mp4, html_named_mp4, make_clip, truncated_mp4, zip_named_mp4
from tests.sockets import citizen, console, start_call
from tests.staff import Client


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # A small limit, so an oversized clip is a few hundred kilobytes.
    return settings.model_copy(update={"MAX_CLIP_BYTES": 40_000})


async def _upload(client: Client, call_id: str, token: str, data: bytes) -> aiohttp.ClientResponse:
    form = aiohttp.FormData()
    # The name and type lie as a browser would send them: only the bytes count.
    form.add_field("clip", io.BytesIO(data), filename="clip.mp4", content_type="video/mp4")
    return await client.post(
        f"/api/calls/{call_id}/clips", data=form, headers={"X-Call-Token": token}
    )


async def _stored(client: Client) -> tuple[list[tuple[int, str, str]], int]:
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        rows = (await session.exec(select(CallPhoto).order_by(col(CallPhoto.seq)))).all()
        audit = len((await session.exec(select(AuditEntry))).all())
    return [(r.seq, r.sha256, r.content_type) for r in rows], audit


@pytest.mark.parametrize("container", ["mp4", "webm"])
def test_a_real_clip_is_sniffed_with_its_size(container: str) -> None:
    clip = make_clip(container)
    assert container_of(clip) == container
    facts = PyAVClipProbe().probe(clip, container_of(clip), 5.0)
    assert (facts.width, facts.height) == (160, 120)
    assert facts.duration_secs is not None and 1.5 < facts.duration_secs < 2.5


@pytest.mark.parametrize(
    "fake", [html_named_mp4, zip_named_mp4, truncated_mp4, fake_ftyp_mp4, lambda: b""]
)
def test_a_fake_clip_is_refused(fake: Callable[[], bytes]) -> None:
    data = fake()
    with pytest.raises(AppError) as refused:
        PyAVClipProbe().probe(data, container_of(data), 5.0)
    assert refused.value.code == "not_a_video"


async def test_a_clip_during_a_call_reaches_the_operator_as_sent(
    client: Client, operator: Client
) -> None:
    started = await start_call(client)
    call_id, token = started["call_id"], started["token"]
    clip = make_clip("webm")
    async with console(operator) as desk, citizen(client, token) as phone:
        assert (await desk.call("accept", {"call_id": call_id}))["ok"]
        response = await _upload(client, call_id, token, clip)
        assert response.status == 201, await response.text()
        sent: dict[str, Any] = await response.json()
        assert (sent["kind"], sent["content_type"]) == ("video", "video/webm")
        seen = await desk.next_event("call.photo", call_id=call_id)
        assert seen["seq"] == sent["seq"]
        served = await operator.get(seen["url"])
        assert served.status == 200
        assert served.headers["Content-Type"] == "video/webm"
        body = await served.read()
        assert hashlib.sha256(body).hexdigest() == served.headers["X-Content-SHA256"]
        assert body == clip
        resumed = await phone.call("resume", {"last_seq": 0})
        assert [e["kind"] for e in resumed["events"] if e["type"] == "call.photo"] == ["video"]
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        actions = [e.action for e in (await session.exec(select(AuditEntry))).all()]
    assert "call_clip_received" in actions


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (html_named_mp4(), 400, "not_a_video"),
        (zip_named_mp4(), 400, "not_a_video"),
        (truncated_mp4(), 400, "not_a_video"),
        (make_clip("mp4", frames=10, size=(320, 240), noise=True), 413, "video_too_large"),
    ],
    ids=["html", "zip", "truncated", "oversized"],
)
async def test_a_bad_clip_is_refused_and_nothing_stored_is_lost(
    client: Client, data: bytes, status: int, code: str
) -> None:
    started = await start_call(client)
    call_id, token = started["call_id"], started["token"]
    good = await _upload(client, call_id, token, make_clip("mp4"))
    assert good.status == 201
    before = await _stored(client)
    response = await _upload(client, call_id, token, data)
    assert response.status == status, await response.text()
    assert (await response.json())["error"]["code"] == code
    assert await _stored(client) == before


async def test_a_clip_needs_the_calls_own_token(client: Client) -> None:
    first = await start_call(client)
    other = await start_call(client)
    response = await _upload(client, first["call_id"], other["token"], make_clip())
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "bad_call_token"


async def test_a_calls_clip_is_in_its_record_as_a_video(
    client: Client, operator_desk: tuple[Client, str]
) -> None:
    """The archive's record of the call lists the clip as a video, served with the view."""
    operator, csrf = operator_desk
    started = await start_call(client)
    call_id, token = started["call_id"], started["token"]
    clip = make_clip("mp4")
    async with console(operator) as desk:
        assert (await desk.call("accept", {"call_id": call_id}))["ok"]
        assert (await _upload(client, call_id, token, clip)).status == 201
        ended = await desk.call("end_call", {"call_id": call_id, "disposition": "dispatched"})
        assert ended["ok"], ended
    opened = await operator.post(
        f"/api/archive/calls/{call_id}/views",
        json={"reason": "Case 17: the clip"},
        headers={"X-CSRF-Token": csrf},
    )
    assert opened.status == 201, await opened.text()
    record = await opened.json()
    [photo] = record["photos"]
    assert (photo["kind"], photo["content_type"]) == ("video", "video/mp4")
    assert photo["sha256"] == hashlib.sha256(clip).hexdigest()
    served = await operator.get(
        f"/api/calls/{call_id}/photos/{photo['seq']}", params={"view": record["view"]["token"]}
    )
    assert served.status == 200
    assert await served.read() == clip
