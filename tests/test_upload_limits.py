"""Resource limits on uploaded images (issue 14, items 3 and 8).

A report's photos are refused from their headers when together they declare too many pixels;
every decoding runs on the node's image pool (a few threads and a bounded line), so a flood of
huge-but-tiny PNGs waits in line instead of taking the node's memory, and a call started during
it gets video; a call's photos have a quota per call, and only the photo over it is refused.
"""

from __future__ import annotations

import asyncio
import io
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pyotp
import pytest
from PIL import Image
from sqlmodel import func, select
from yarl import URL

from config import Settings
from server.core.clock import FrozenClock
from server.db.models import Call, CallPhoto
from server.http.keys import SERVICES_KEY
from tests.browser.conftest import RunningServer, start_server, stop_server
from tests.browser.staff import STAFF_PASSWORD, add_staff
from tests.media_peers import MediaPeer, citizen_peer, subscriber_peer, wait_until
from tests.sockets import answer_via, citizen, connect, start_call
from tests.staff import Client, csrf_of
from tests.threats import fields_at, png_bomb, refused, report_count, report_form

# The server's peak resident memory through the flood below, with the default settings (one
# image worker). Measured on a 2-core machine: 2,292 MB before the pool (four reports of three
# 50-megapixel PNGs decoded at once; 1,891 MB still held afterwards), 425 MB with it.
FLOOD_PEAK_RSS_MB = 600
MEDIA_TIMEOUT_SECS = 30.0
WAIT_SECS = 10.0


def _png(megapixels: float) -> bytes:
    """A real, whole PNG of that many pixels (4:3) in a few hundred KB: cheap to send, and
    4 bytes a pixel to decode."""
    width = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    out = io.BytesIO()
    Image.new("RGB", (width, int(megapixels * 1e6 / width)), (90, 90, 90)).save(out, "PNG")
    return out.getvalue()


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (320, 240), (200, 40, 40)).save(out, "JPEG")
    return out.getvalue()


def _noise_png(side: int) -> bytes:
    """A PNG that does not compress: a little over 3 * side * side bytes."""
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(3 * side * side)).save(out, "PNG")
    return out.getvalue()


async def _photo(client: Client, call: dict[str, Any], data: bytes) -> aiohttp.ClientResponse:
    form = aiohttp.FormData()
    form.add_field("photo", io.BytesIO(data), filename="p.png", content_type="image/png")
    return await client.post(
        f"/api/calls/{call['call_id']}/photos", data=form, headers={"X-Call-Token": call["token"]}
    )


async def _stored_photos(client: Client) -> int:
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        return int((await session.exec(select(func.count()).select_from(CallPhoto))).one())


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            # Many reports from one test client: the daily limit has tests of its own.
            "REPORT_RATE_LIMIT": "1000/day",
            # One worker and a line of three: the line's rules are seen with a few uploads.
            "IMAGE_WORKERS": 1,
            "IMAGE_QUEUE_MAX": 3,
            "CALL_PHOTO_MEGABYTES_LIMIT": "1/10 minutes",
        }
    )


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """What a job holding a worker waits for; set at the end whatever happened."""
    event = threading.Event()
    yield event
    event.set()


async def _hold_workers(client: Client, gate: threading.Event) -> list[asyncio.Task[bool]]:
    """Every thread of the app's image pool taken by a job that waits for ``gate``."""
    assert client.app is not None
    pool = client.app[SERVICES_KEY].image_pool
    holders = [asyncio.create_task(pool.run(gate.wait)) for _ in range(pool.workers)]
    await wait_until(lambda: pool.running == pool.workers, WAIT_SECS, "the workers held")
    return holders


# --- the pixels of one request ----------------------------------------------------------------


async def test_a_report_declaring_too_many_pixels_together_is_refused_before_decoding(
    client: Client,
) -> None:
    """Two PNGs of 50 megapixels each (each under the per-image limit) whose pixel data is
    cut short: decoding the first would refuse it as not an image; the refusal for the
    pixels of both comes first, from their headers alone."""
    fifty = png_bomb(8000, 6250)
    alone = await client.post("/api/reports", data=report_form(fields_at(), [fifty]))
    await refused(alone, 400, "not_an_image")  # decoded, and found cut short
    both = await client.post("/api/reports", data=report_form(fields_at(), [fifty, fifty]))
    body = await refused(both, 413, "photos_too_many_pixels")
    assert "100 megapixels" in body["error"]["message"]
    assert await report_count(client) == 0


# --- the image pool ---------------------------------------------------------------------------


async def test_uploads_wait_in_line_for_a_worker_and_all_succeed(
    client: Client, gate: threading.Event
) -> None:
    assert client.app is not None
    pool = client.app[SERVICES_KEY].image_pool
    holders = await _hold_workers(client, gate)
    call = await start_call(client)
    uploads = [asyncio.create_task(_photo(client, call, _jpeg())) for _ in range(3)]
    await wait_until(lambda: pool.waiting == 3, WAIT_SECS, "three uploads in line")
    assert pool.running == pool.workers == 1
    assert not any(upload.done() for upload in uploads)
    gate.set()
    answers = await asyncio.gather(*uploads)
    assert [answer.status for answer in answers] == [201, 201, 201]
    assert await asyncio.gather(*holders) == [True]
    assert (pool.running, pool.waiting) == (0, 0)
    assert await _stored_photos(client) == 3


async def test_an_upload_beyond_the_line_or_too_long_in_it_gets_503(
    client: Client, gate: threading.Event, clock: FrozenClock
) -> None:
    assert client.app is not None
    services = client.app[SERVICES_KEY]
    pool = services.image_pool
    holders = await _hold_workers(client, gate)
    call = await start_call(client)
    waiting = [asyncio.create_task(_photo(client, call, _jpeg())) for _ in range(3)]
    await wait_until(lambda: pool.waiting == 3, WAIT_SECS, "a full line")
    beyond = await _photo(client, call, _jpeg())
    await refused(beyond, 503, "uploads_busy")
    assert int(beyond.headers["Retry-After"]) >= 1
    clock.advance(services.settings.IMAGE_QUEUE_WAIT_SECS)
    for answer in await asyncio.gather(*waiting):
        await refused(answer, 503, "uploads_busy")
    assert pool.waiting == 0
    gate.set()
    assert await asyncio.gather(*holders) == [True]
    assert (await _photo(client, call, _jpeg())).status == 201
    assert await _stored_photos(client) == 1


async def test_a_callers_photo_goes_ahead_of_report_photos_in_line(
    client: Client, gate: threading.Event
) -> None:
    """In line: a report photo, then a caller's photo, then a job that holds the worker again
    (as urgent as a caller's). When that job runs, the caller's photo has been stored and the
    report photo, in line first, still waits."""
    assert client.app is not None
    pool = client.app[SERVICES_KEY].image_pool
    await _hold_workers(client, gate)
    call = await start_call(client)
    report = asyncio.create_task(
        client.post("/api/reports", data=report_form(fields_at(), [_jpeg()]))
    )
    await wait_until(lambda: pool.waiting == 1, WAIT_SECS, "the report photo in line")
    photo = asyncio.create_task(_photo(client, call, _jpeg()))
    await wait_until(lambda: pool.waiting == 2, WAIT_SECS, "the caller's photo in line")
    started, again = threading.Event(), threading.Event()

    def hold_again() -> None:
        started.set()
        again.wait(WAIT_SECS)

    holder = asyncio.create_task(pool.run(hold_again, urgent=True))
    await wait_until(lambda: pool.waiting == 3, WAIT_SECS, "the holder in line")
    gate.set()
    try:
        assert await asyncio.to_thread(started.wait, WAIT_SECS)
        assert (await photo).status == 201
        assert not report.done() and pool.waiting == 1
    finally:
        again.set()
    await holder
    assert (await report).status == 201


# --- a call's photo quota ---------------------------------------------------------------------


async def test_photos_over_the_calls_quota_are_refused_and_the_call_goes_on(
    client: Client,
) -> None:
    """The default quota: ten photos a minute."""
    assert client.app is not None
    call = await start_call(client)
    async with citizen(client, call["token"]) as phone:
        for _ in range(10):
            assert (await _photo(client, call, _jpeg())).status == 201
        over = await _photo(client, call, _jpeg())
        body = await refused(over, 429, "photo_limit")
        assert "The call goes on" in body["error"]["message"]
        assert 1 <= int(over.headers["Retry-After"]) <= 60
        assert await _stored_photos(client) == 10
        # The call itself is untouched: its socket stays, chat is stored, it is still queued.
        chat = await phone.call("chat", {"client_id": "c-after-429", "body": "still here"})
        assert chat["ok"], chat
        assert not phone.closed.is_set()
        async with client.app[SERVICES_KEY].db.session() as session:
            stored = await session.get(Call, call["call_id"])
        assert stored is not None and stored.state == "queued"
    # The quota is the call's (its token's): another call sends its photo.
    other = await start_call(client)
    assert (await _photo(client, other, _jpeg())).status == 201


async def test_photo_megabytes_over_the_calls_quota_are_refused(client: Client) -> None:
    """``CALL_PHOTO_MEGABYTES_LIMIT`` is 1 MB per 10 minutes here: two photos of ~0.48 MB
    pass, the third is refused and not stored."""
    call = await start_call(client)
    photos = [_noise_png(400) for _ in range(3)]
    assert all(480_000 < len(p) < 500_000 for p in photos)
    assert (await _photo(client, call, photos[0])).status == 201
    assert (await _photo(client, call, photos[1])).status == 201
    over = await _photo(client, call, photos[2])
    body = await refused(over, 429, "photo_limit")
    assert "megabytes" in body["error"]["message"]
    assert int(over.headers["Retry-After"]) == 600
    assert await _stored_photos(client) == 2


# --- the flood, against a real server process -------------------------------------------------


@pytest.fixture(scope="module")
def flood_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """``python -m server run`` with the default image settings: its memory is its own."""
    running = start_server(
        tmp_path_factory.mktemp("flood"), {"LIFELINE_REPORT_RATE_LIMIT": "1000/day"}
    )
    yield running
    stop_server(running)


def _memory_mb(pid: int) -> dict[str, int]:
    """The process's resident memory now (VmRSS) and at its peak so far (VmHWM), in MB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0]) // 1024
    return found


async def _sign_in_operator(http: aiohttp.ClientSession, server: RunningServer) -> str:
    """An operator made with the CLI, signed in through /login; the session cookie."""
    secret = await asyncio.to_thread(add_staff, server, "olga", "operator")
    async with http.get(f"{server.base}/login") as page:
        csrf = csrf_of(await page.text())
    form = {
        "username": "olga",
        "password": STAFF_PASSWORD,
        "totp": pyotp.TOTP(secret).now(),
        "csrf_token": csrf,
        "next": "",
    }
    async with http.post(f"{server.base}/login", data=form, allow_redirects=False) as answer:
        assert answer.status == 303, await answer.text()
    return http.cookie_jar.filter_cookies(URL(server.base))["lifeline_session"].value


async def _report(http: aiohttp.ClientSession, base: str, photos: list[bytes]) -> tuple[int, str]:
    form = report_form(fields_at(duplicate_ok="1"), photos)
    async with http.post(f"{base}/api/reports", data=form) as answer:
        body = await answer.json()
        return answer.status, body["error"]["code"] if answer.status >= 400 else "created"


async def test_a_flood_of_huge_pngs_stays_under_the_memory_bound_and_a_call_gets_video(
    flood_server: RunningServer,
) -> None:
    """Ten reports at once, as one client without a login sends them: six of a 50- and a
    25-megapixel PNG (under both limits: decoded, on the pool), two of three 50-megapixel PNGs
    (over the report's pixels: refused from the headers), two of three 88-megapixel ones (the
    reported flood: over the per-image limit). Meanwhile a call starts, and its operator gets
    the caller's video before the flood is over."""
    fifty, twenty_five, eighty_eight = _png(50), _png(25), png_bomb(11_000, 8_000)
    flood = [[fifty, twenty_five]] * 6 + [[fifty] * 3] * 2 + [[eighty_eight] * 3] * 2
    jar = aiohttp.CookieJar(unsafe=True)  # cookies of an IP address (127.0.0.1)
    peers: list[MediaPeer] = []
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        cookie = await _sign_in_operator(http, flood_server)
        sent = asyncio.gather(*(_report(http, flood_server.base, p) for p in flood))
        body = {"channel": "police", "language": "en", "mode": "video"}
        async with http.post(f"{flood_server.base}/api/calls", json=body) as answer:
            assert answer.status == 201, await answer.text()
            call = await answer.json()
        auth = {"token": call["token"], "last_seq": 0}
        headers = {"Cookie": f"lifeline_session={cookie}"}
        try:
            async with (
                connect(flood_server.base, "/citizen", auth=auth) as phone,
                connect(flood_server.base, "/console", headers=headers) as desk,
            ):
                peers.append(await citizen_peer(answer_via(phone)))
                assert (await desk.call("accept", {"call_id": call["call_id"]}))["ok"]
                console = await subscriber_peer(
                    answer_via(desk, call_id=call["call_id"]), talk=True
                )
                peers.append(console)
                await wait_until(
                    lambda: console.received.video_frames > 30,
                    MEDIA_TIMEOUT_SECS,
                    "the caller's video at the operator during the flood",
                )
                video_during_flood = not sent.done()
                answers = await sent
        finally:
            for peer in peers:
                await peer.close()
    memory = _memory_mb(flood_server.process.pid)
    assert memory["VmHWM"] < FLOOD_PEAK_RSS_MB, memory
    assert video_during_flood
    decoded, over_pixels, over_image = answers[:6], answers[6:8], answers[8:]
    assert set(decoded) <= {(201, "created"), (503, "uploads_busy")}, decoded
    assert (201, "created") in decoded
    assert over_pixels == [(413, "photos_too_many_pixels")] * 2
    assert over_image == [(413, "image_too_large")] * 2
