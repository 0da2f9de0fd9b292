"""The threat map through the real server: reports, photos, duplicates, verification, live events,
statistics, and every bad input refused with nothing changed."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import random
from collections import Counter
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import pytest
from PIL import Image
from sqlmodel import col, select

from config import Settings
from server.actions.threats.categories import DEFAULT_CATEGORY_CODES
from server.actions.threats.queries import SENSITIVE_DISTANCE_GRAIN_M
from server.app import create_app
from server.core.clock import FrozenClock
from server.core.events import ReportNewEvent, ReportUpdatedEvent
from server.db.map_grid import to_grid
from server.db.models import ReportHistory, ReportPhoto, ThreatReport
from server.http.keys import SERVICES_KEY
from tests.conftest import ClientFactory
from tests.sockets import console, start_call
from tests.staff import Client, add_account, another_browser, sign_in
from tests.threats import (
    HERE,
    TEST_AREA,
    audit_actions,
    created,
    fields_at,
    geojson,
    jpeg_with_gps,
    north_of,
    png_bomb,
    post_report,
    refused,
    report_count,
    report_form,
)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Many reports from one test client; the daily limit has a test of its own.
    return settings.model_copy(update={"REPORT_RATE_LIMIT": "1000/day", "REPORT_AREA": TEST_AREA})


async def _status(
    officer: Client, csrf: str, report_id: int, status: str, **notes: object
) -> tuple[int, dict[str, Any]]:
    response = await officer.post(
        f"/api/staff/reports/{report_id}/status",
        json={"status": status, **notes},
        headers={"X-CSRF-Token": csrf},
    )
    return response.status, await response.json()


async def test_categories_are_the_kmzb_list_in_order(client: Client) -> None:
    response = await client.get("/api/report-categories")
    assert response.status == 200
    codes = [c["code"] for c in (await response.json())["categories"]]
    assert codes == list(DEFAULT_CATEGORY_CODES)
    assert "lifeline_reporter" in response.cookies


async def test_photo_public_copy_has_no_gps_and_the_original_hash_is_kept(
    client: Client,
) -> None:
    photo = jpeg_with_gps()
    assert Image.open(io.BytesIO(photo)).getexif().get_ifd(0x8825)  # the input has GPS
    body = await created(await post_report(client, [photo], contact="jan@example.pl"))
    assert body["status"] == "new"
    assert body["follow_url"].startswith("/reports/follow/")
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        row = (
            await session.exec(select(ReportPhoto).where(col(ReportPhoto.report_id) == body["id"]))
        ).one()
    assert row.sha256 == hashlib.sha256(photo).hexdigest()
    storage = client.app[SERVICES_KEY].storage
    assert await asyncio.to_thread(storage.path(row.original_path).read_bytes) == photo

    served = await client.get(f"/api/reports/{body['id']}/photos/1")
    assert served.status == 200
    assert served.content_type == "image/jpeg"
    public = Image.open(io.BytesIO(await served.read()))
    assert public.getexif().get_ifd(0x8825) == {}
    assert dict(public.getexif()) == {}

    geo = await geojson(client, "/api/reports")
    [feature] = geo["features"]
    props = feature["properties"]
    assert props["photos"] == [f"/api/reports/{body['id']}/photos/1"]
    assert feature["geometry"]["coordinates"] == [HERE[1], HERE[0]]
    assert props["days"] == ["fri", "sat"] and props["time_of_day"] == "night"
    assert "contact" not in props and "jan@example.pl" not in str(geo)


async def test_polyglot_is_accepted_but_its_public_copy_is_only_the_picture(
    client: Client,
) -> None:
    """Decision: a JPEG with a ZIP and HTML appended is a JPEG. The original is kept byte for
    byte (evidence, staff only); the public copy is re-encoded pixels and carries neither."""
    tail = b"PK\x03\x04" + b"\x00" * 26 + b"<html><script>alert(1)</script></html>"
    polyglot = jpeg_with_gps() + tail
    body = await created(await post_report(client, [polyglot]))
    public = await (await client.get(f"/api/reports/{body['id']}/photos/1")).read()
    assert b"PK\x03\x04" not in public and b"<script" not in public
    assert public.startswith(b"\xff\xd8") and public.rstrip(b"\x00").endswith(b"\xff\xd9")
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        row = (await session.exec(select(ReportPhoto))).one()
    assert row.sha256 == hashlib.sha256(polyglot).hexdigest()


async def test_an_original_is_a_sandboxed_download_never_a_page_of_ours(
    client: Client, operator_desk: tuple[Client, str]
) -> None:
    """A polyglot opened from our origin would run as our page: the original is served as an
    attachment under a sandbox policy, and the public copy under the same policy."""
    officer, _csrf = operator_desk
    tail = b"<html><script>alert(1)</script></html>"
    body = await created(await post_report(client, [jpeg_with_gps() + tail]))
    original = await officer.get(f"/api/staff/reports/{body['id']}/photos/1/original")
    assert original.status == 200
    assert original.headers["Content-Disposition"].startswith("attachment;")
    assert original.headers["Content-Security-Policy"].startswith("sandbox")
    assert original.headers["X-Content-Type-Options"] == "nosniff"
    public = await client.get(f"/api/reports/{body['id']}/photos/1")
    assert public.headers["Content-Security-Policy"].startswith("sandbox")


async def test_a_report_posted_from_another_site_is_refused(client: Client) -> None:
    """A page elsewhere must not post threat reports in its visitors' names; a client with no
    Origin (a script, an Open311 app) is no browser acting for someone and is not refused."""
    base = str(client.make_url("/")).rstrip("/")
    refused_post = await client.post(
        "/api/reports", data=report_form(fields_at()), headers={"Origin": "https://evil.example"}
    )
    await refused(refused_post, 403, "foreign_origin")
    assert await report_count(client) == 0
    ours = await client.post(
        "/api/reports", data=report_form(fields_at()), headers={"Origin": base}
    )
    await created(ours)
    assert await report_count(client) == 1


async def test_duplicate_offered_then_me_too_counts_once(client: Client) -> None:
    first = await created(await post_report(client))
    neighbour = await another_browser(client)
    try:
        lat = north_of(HERE[0], 20)
        response = await post_report(neighbour, lat=lat)
        body = await refused(response, 409, "possible_duplicate")
        [offered] = body["nearby"]
        assert offered["id"] == first["id"]
        assert 19 <= offered["distance_m"] <= 21
        assert offered["description"] == "Smashed bus stop glass"
        assert await report_count(client) == 1

        # Another category at the same place is no duplicate; the form's own check agrees.
        near = await neighbour.get(
            "/api/reports/nearby",
            params={"lat": str(lat), "lon": str(HERE[1]), "category": "vandalism"},
        )
        assert [n["id"] for n in (await near.json())["nearby"]] == [first["id"]]
        other = await neighbour.get(
            "/api/reports/nearby",
            params={"lat": str(lat), "lon": str(HERE[1]), "category": "speeding"},
        )
        assert (await other.json())["nearby"] == []

        confirmed = await neighbour.post(f"/api/reports/{first['id']}/confirm")
        assert confirmed.status == 200, await confirmed.text()
        assert await confirmed.json() == {"id": first["id"], "confirmations": 1}
        await refused(
            await neighbour.post(f"/api/reports/{first['id']}/confirm"), 409, "already_confirmed"
        )
        # The reporter's own "me too" does not count either.
        await refused(
            await client.post(f"/api/reports/{first['id']}/confirm"), 409, "already_confirmed"
        )
        geo = await geojson(client, "/api/reports")
        assert geo["features"][0]["properties"]["confirmations"] == 1

        # Insisting files it anyway.
        await created(await post_report(neighbour, lat=lat, duplicate_ok="1"))
        assert await report_count(client) == 2
    finally:
        await neighbour.close()


async def test_verify_workflow_and_the_follow_link(
    client: Client, operator_desk: tuple[Client, str]
) -> None:
    officer, csrf = operator_desk
    body = await created(await post_report(client, description="<b>bold</b> & <script>x</script>"))
    report_id, follow = body["id"], body["follow_url"]
    token = follow.rsplit("/", 1)[1]

    status, view = await _status(officer, csrf, report_id, "verifying", public_note="On it")
    assert status == 200 and view["status"] == "verifying"
    status, view = await _status(
        officer,
        csrf,
        report_id,
        "confirmed",
        public_note="A patrol confirmed it",
        internal_note="Suspects known to the precinct",
    )
    assert status == 200 and view["status"] == "confirmed"
    assert view["read_at"] is not None and view["verified_at"] is not None
    assert [(h["from_status"], h["to_status"], h["actor"]) for h in view["history"]] == [
        (None, "new", "citizen"),
        ("new", "verifying", "olga"),
        ("verifying", "confirmed", "olga"),
    ]

    mine = await client.get(f"/api/reports/follow/{token}")
    assert mine.status == 200
    followed = await mine.json()
    assert followed["status"] == "confirmed"
    assert followed["public_note"] == "A patrol confirmed it"
    assert [h["status"] for h in followed["history"]] == ["new", "verifying", "confirmed"]
    assert "Suspects" not in await mine.text()

    page = await client.get(follow)
    assert page.status == 200
    html = await page.text()
    assert "A patrol confirmed it" in html and "Suspects" not in html

    # HTML in a description is text: stored and returned as sent, never markup.
    geo = await geojson(client, "/api/reports")
    assert geo["features"][0]["properties"]["description"] == "<b>bold</b> & <script>x</script>"

    staff = await (await officer.get("/api/staff/reports")).json()
    [full] = staff["reports"]
    assert full["history"][-1]["internal_note"] == "Suspects known to the precinct"
    assert "report_status" in await audit_actions(client)

    status, error = await _status(officer, csrf, report_id, "verifying")
    assert status == 409 and error["error"]["code"] == "illegal_transition"

    forwarded = await officer.post(
        f"/api/staff/reports/{report_id}/forward",
        json={"to": "city_guard", "note": "Their patrol area"},
        headers={"X-CSRF-Token": csrf},
    )
    assert forwarded.status == 200
    assert (await forwarded.json())["history"][-1]["forwarded_to"] == "city_guard"
    status, view = await _status(officer, csrf, report_id, "eliminated", public_note="Repaired")
    assert status == 200 and view["status"] == "eliminated"


async def test_illegal_transition_and_unauthorised_changes_change_nothing(
    client: Client, clock: FrozenClock, operator_desk: tuple[Client, str]
) -> None:
    officer, csrf = operator_desk
    report_id = (await created(await post_report(client)))["id"]

    status, error = await _status(officer, csrf, report_id, "eliminated")
    assert status == 409 and error["error"]["code"] == "illegal_transition"
    status, error = await _status(officer, csrf, report_id, "resolved")
    assert status == 422
    # A citizen (no session), without and with a made-up token.
    for headers in ({}, {"X-CSRF-Token": "x" * 43}):
        response = await client.post(
            f"/api/staff/reports/{report_id}/status", json={"status": "verifying"}, headers=headers
        )
        await refused(response, 401, "unauthorized")
    # The operator without the CSRF token.
    response = await officer.post(
        f"/api/staff/reports/{report_id}/status", json={"status": "verifying"}
    )
    await refused(response, 403, "csrf_failed")
    # Roles without rights over reports.
    for name, role in (("ivan", "internal_security"), ("adam", "admin")):
        browser = await another_browser(client)
        try:
            their_csrf = await sign_in(browser, await add_account(client, name, role), clock)
            response = await browser.post(
                f"/api/staff/reports/{report_id}/status",
                json={"status": "verifying"},
                headers={"X-CSRF-Token": their_csrf},
            )
            await refused(response, 403, "role_forbidden")
            await refused(await browser.get("/api/staff/reports"), 403, "role_forbidden")
        finally:
            await browser.close()

    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        report = await session.get(ThreatReport, report_id)
        history = (await session.exec(select(ReportHistory))).all()
    assert report is not None and report.status == "new" and report.read_at is None
    assert len(history) == 1
    assert "report_status" not in await audit_actions(client)


async def test_bad_input_is_refused_and_changes_nothing(client: Client, settings: Settings) -> None:
    photo = jpeg_with_gps()
    big = jpeg_with_gps() + b"\x00" * (2 * 1_048_576)  # valid JPEG, padded
    cases: list[tuple[object, int, str]] = [
        (report_form(fields_at(lat=91.0)), 422, "invalid_point"),
        (report_form(fields_at(lon=-181.0)), 422, "invalid_point"),
        (report_form(fields_at(lat=float("nan"))), 422, "invalid_point"),
        (report_form(fields_at(lat=40.0, lon=-74.0)), 422, "outside_area"),
        (report_form(fields_at(category="ufo_sighting")), 422, "unknown_category"),
        (report_form(fields_at(category="")), 422, "unknown_category"),
        (report_form(fields_at(description="x" * 501)), 422, "description_too_long"),
        (report_form(fields_at(contact="c" * 201)), 422, "contact_too_long"),
        (report_form(fields_at(days="mon,funday")), 422, "invalid_days"),
        (report_form(fields_at(time_of_day="noon")), 422, "invalid_time_of_day"),
        (report_form(fields_at(colour="red")), 422, "unknown_field"),
        (report_form(fields_at(), [b"<html><body>hi</body></html>"]), 400, "not_an_image"),
        (report_form(fields_at(), [b"%PDF-1.4 not a picture"]), 400, "not_an_image"),
        (report_form(fields_at(), [png_bomb()]), 413, "image_too_large"),
        # 88 megapixels in a few hundred bytes: under Pillow's own limit, over ours.
        (report_form(fields_at(), [png_bomb(9_400, 9_400)]), 413, "image_too_large"),
        (report_form(fields_at(), [photo] * 4), 400, "too_many_photos"),
        (report_form(fields_at(), [big, big, big]), 413, "photos_too_large"),
    ]
    for form, status, code in cases:
        await refused(await client.post("/api/reports", data=form), status, code)
    await refused(
        await client.post("/api/reports", json=fields_at()), 415, "unsupported_media_type"
    )
    assert await report_count(client) == 0
    assert "report_created" not in await audit_actions(client)
    assert not (settings.storage_dir / "reports").exists()
    # A bad request used none of the day's limit, and exactly 500 characters is fine.
    await created(await post_report(client, description="y" * 500))


async def test_one_report_per_client_per_day(
    settings: Settings, clock: FrozenClock, aiohttp_client: ClientFactory
) -> None:
    strict = settings.model_copy(update={"REPORT_RATE_LIMIT": "1/day"})
    client = await aiohttp_client(create_app(strict, clock))
    # A refused report does not count.
    await refused(await post_report(client, category="nope"), 422, "unknown_category")
    await created(await post_report(client))
    await refused(await post_report(client, category="speeding"), 429, "rate_limited")
    # Another browser on the same address: the address is over its limit too.
    other = await another_browser(client)
    try:
        await refused(await post_report(other, category="begging"), 429, "rate_limited")
    finally:
        await other.close()
    assert await report_count(client) == 1


async def test_live_report_events_reach_operator_consoles(
    client: Client, operator_desk: tuple[Client, str]
) -> None:
    officer, csrf = operator_desk
    async with console(officer) as desk:
        body = await created(await post_report(client, [jpeg_with_gps()]))
        event = await desk.next_event("report.new")
        new = ReportNewEvent.model_validate(event)
        assert new.report.id == body["id"] and new.report.status == "new"
        assert new.report.photos == [f"/api/reports/{body['id']}/photos/1"]
        status, _view = await _status(officer, csrf, body["id"], "verifying")
        assert status == 200
        updated = ReportUpdatedEvent.model_validate(await desk.next_event("report.updated"))
        assert updated.report.status == "verifying"


async def test_sensitive_reports_are_public_only_at_about_100_m(
    client: Client, operator_desk: tuple[Client, str]
) -> None:
    officer, csrf = operator_desk
    lat, lon = 52.229712, 21.012234
    report_id = (await created(await post_report(client, lat=lat, lon=lon)))["id"]
    status, view = await _status(officer, csrf, report_id, "verifying", sensitive=True)
    assert status == 200 and view["sensitive"] is True
    geo = await geojson(client, "/api/reports")
    assert geo["features"][0]["geometry"]["coordinates"] == [21.012, 52.23]
    # The map's clusters too, and its grid cell is the rounded point's.
    box = f"{lon - 0.01},{lat - 0.01},{lon + 0.01},{lat + 0.01}"
    view = await geojson(client, "/api/reports/clusters?zoom=18&bbox=" + box)
    assert [f["geometry"]["coordinates"] for f in view["features"]] == [[21.012, 52.23]]
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        row = await session.get(ThreatReport, report_id)
    assert row is not None and (row.grid_x, row.grid_y) == to_grid(52.23, 21.012)
    staff = await (await officer.get("/api/staff/reports")).json()
    assert (staff["reports"][0]["lat"], staff["reports"][0]["lon"]) == (lat, lon)

    # "Nearby" answers start from the public point and are no finer than it: asking at the
    # exact point and at the rounded one cannot be told apart (no locating it by distances).
    async def distances(at_lat: float, at_lon: float) -> list[float]:
        near = await client.get(
            "/api/reports/nearby",
            params={"lat": str(at_lat), "lon": str(at_lon), "category": "vandalism"},
        )
        assert near.status == 200, await near.text()
        return [n["distance_m"] for n in (await near.json())["nearby"]]

    assert await distances(lat, lon) == await distances(52.23, 21.012) == [0]
    for metres in (10, 20, 30, 40):
        assert all(
            d % SENSITIVE_DISTANCE_GRAIN_M == 0 for d in await distances(north_of(lat, metres), lon)
        )


async def test_overdue_targets_follow_the_clock(client: Client, clock: FrozenClock) -> None:
    report_id = (await created(await post_report(client)))["id"]
    account = await add_account(client, "olga", "operator")

    async def flags() -> tuple[bool, bool]:
        props = (await geojson(client, "/api/reports"))["features"][0]["properties"]
        return props["overdue_read"], props["overdue_verify"]

    assert await flags() == (False, False)
    clock.advance(timedelta(days=2, minutes=1).total_seconds())
    assert await flags() == (True, False)
    officer = await another_browser(client)
    try:
        # Signed in after the clock moved: a session idle for days would have expired.
        await sign_in(officer, account, clock)
        opened = await officer.get(f"/api/staff/reports/{report_id}")
        assert opened.status == 200 and (await opened.json())["read_at"] is not None
        assert await flags() == (False, False)
    finally:
        await officer.close()
    clock.advance(timedelta(days=3).total_seconds())
    assert await flags() == (False, True)
    officer = await another_browser(client)
    try:
        await sign_in(officer, account, clock)
        listed = await (await officer.get("/api/staff/reports?status=new&max_age_days=30")).json()
        assert [r["id"] for r in listed["reports"]] == [report_id]
        assert listed["reports"][0]["overdue_verify"] is True
        stale = await (await officer.get("/api/staff/reports?max_age_days=1")).json()
        assert stale["reports"] == []
    finally:
        await officer.close()


async def test_a_call_becomes_a_report_at_the_callers_position(
    client: Client, operator_desk: tuple[Client, str]
) -> None:
    officer, csrf = operator_desk
    call = await start_call(client)
    async with console(officer) as desk:
        assert (await desk.call("accept", {"call_id": call["call_id"]}))["ok"]
        # The location arrives over the call like any other.
        await _send_location(client, call["token"])
        response = await officer.post(
            f"/api/staff/reports/from-call/{call['call_id']}",
            json={"category": "illegal_car_racing", "description": "Caller saw racing"},
            headers={"X-CSRF-Token": csrf},
        )
        assert response.status == 201, await response.text()
        view = await response.json()
        assert (view["lat"], view["lon"]) == (52.2297, 21.0122)
        assert view["source"] == "call" and view["call_id"] == call["call_id"]
        event = ReportNewEvent.model_validate(await desk.next_event("report.new"))
        assert event.report.id == view["id"]

    # The caller never chose to publish it: nothing public shows it before a verdict, not
    # even as "no such report" apart from one that does not exist.
    report_id = view["id"]
    box = "21.0,52.2,21.1,52.3"

    async def public_ids() -> dict[str, list[int]]:
        geo = await geojson(client, "/api/reports")
        view_ = await geojson(client, f"/api/reports/clusters?zoom=18&bbox={box}")
        near = await client.get(
            "/api/reports/nearby",
            params={"lat": "52.2297", "lon": "21.0122", "category": "illegal_car_racing"},
        )
        open311 = await (await client.get("/open311/v2/requests.json")).json()
        csv_ids = [
            int(row["id"])
            for row in csv.DictReader(
                io.StringIO(await (await client.get("/api/reports.csv?plain=1")).text())
            )
        ]
        return {
            "geojson": [f["properties"]["id"] for f in geo["features"]],
            "clusters": [f["properties"].get("id") for f in view_["features"]],
            "nearby": [n["id"] for n in (await near.json())["nearby"]],
            "open311": [int(r["service_request_id"]) for r in open311],
            "csv": csv_ids,
        }

    assert all(report_id not in ids for ids in (await public_ids()).values())
    empty = await (await client.get("/api/stats")).json()
    assert empty["total"] == 0
    # No share of too few reports: only how many were confirmed.
    assert empty["confirmed_pct"] is None and empty["confirmed"] == 0
    assert (await client.get(f"/open311/v2/requests/{report_id}.json")).status == 404
    await refused(await client.post(f"/api/reports/{report_id}/confirm"), 404, "report_not_found")

    # A verdict publishes it, at the rounded point a sensitive report has.
    assert (await _status(officer, csrf, report_id, "verifying"))[0] == 200
    assert all(report_id not in ids for ids in (await public_ids()).values())
    assert (await _status(officer, csrf, report_id, "confirmed"))[0] == 200
    shown = await public_ids()
    assert all(report_id in shown[where] for where in ("geojson", "clusters", "open311", "csv"))
    geo = await geojson(client, "/api/reports")
    assert geo["features"][0]["geometry"]["coordinates"] == [21.012, 52.23]


async def test_an_officer_invites_the_author_to_a_video_call(
    client: Client, clock: FrozenClock, operator_desk: tuple[Client, str]
) -> None:
    officer, csrf = operator_desk
    body = await created(await post_report(client))
    report_id, follow = body["id"], body["follow_url"]
    token = follow.rsplit("/", 1)[1]
    url = f"/api/staff/reports/{report_id}/invite"
    assert (await (await client.get(f"/api/reports/follow/{token}")).json())["invited"] is False
    assert 'data-testid="follow-video-call"' not in await (await client.get(follow)).text()

    # Refused, and nothing changes: a citizen, no CSRF token, a role without reports, no report.
    await refused(await client.post(url), 401, "unauthorized")
    await refused(await officer.post(url), 403, "csrf_failed")
    browser = await another_browser(client)
    try:
        their_csrf = await sign_in(
            browser, await add_account(client, "ivan", "internal_security"), clock
        )
        response = await browser.post(url, headers={"X-CSRF-Token": their_csrf})
        await refused(response, 403, "role_forbidden")
    finally:
        await browser.close()
    response = await officer.post(
        f"/api/staff/reports/{report_id + 1000}/invite", headers={"X-CSRF-Token": csrf}
    )
    await refused(response, 404, "report_not_found")
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        report = await session.get(ThreatReport, report_id)
        assert report is not None and report.invited_at is None
    assert "report_author_invited" not in await audit_actions(client)

    async with console(officer) as desk:
        response = await officer.post(url, headers={"X-CSRF-Token": csrf})
        assert response.status == 200, await response.text()
        view = await response.json()
        assert datetime.fromisoformat(view["invited_at"]) == clock.now()
        assert [(h["kind"], h["actor"]) for h in view["history"]] == [
            ("created", "citizen"),
            ("invite", "olga"),
        ]
        event = ReportUpdatedEvent.model_validate(await desk.next_event("report.updated"))
        assert event.report.id == report_id and event.report.invited_at is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        rows = (
            await session.exec(
                select(ReportHistory).where(col(ReportHistory.report_id) == report_id)
            )
        ).all()
    assert [r.kind for r in rows] == ["created", "invite"]
    assert "report_author_invited" in await audit_actions(client)

    followed = await (await client.get(f"/api/reports/follow/{token}")).json()
    assert followed["invited"] is True
    # The invitation is not a status: the author's history stays as it was.
    assert [h["status"] for h in followed["history"]] == ["new"]
    html = await (await client.get(follow)).text()
    assert f'href="/?report={report_id}&amp;channel=police"' in html

    # A report made from a call has no author's link to show an invitation on.
    async with client.app[SERVICES_KEY].db.session() as session:
        report = await session.get(ThreatReport, report_id)
        assert report is not None
        report.follow_token_hash = None
        session.add(report)
        await session.commit()
    response = await officer.post(url, headers={"X-CSRF-Token": csrf})
    await refused(response, 409, "no_follow_link")


async def _send_location(client: Client, token: str) -> None:
    from tests.sockets import citizen

    async with citizen(client, token) as phone:
        ack = await phone.call(
            "location",
            {"lat": HERE[0], "lon": HERE[1], "accuracy": 10.0, "timestamp": 1_790_000_000_000.0},
        )
        assert ack["ok"], ack


async def test_stats_equal_independent_counts_over_generated_reports(
    client: Client, clock: FrozenClock
) -> None:
    rng = random.Random(5)
    statuses = ["new", "verifying", "confirmed", "not_confirmed", "joke_or_mistake", "eliminated"]
    start = clock.now()
    rows = []
    for i in range(1200):
        at = start - timedelta(days=rng.randrange(0, 400), seconds=i)
        rows.append(
            ThreatReport(
                category=rng.choice(DEFAULT_CATEGORY_CODES),
                status=rng.choice(statuses),
                lat=round(rng.uniform(52.1, 52.3), 6),
                # Wide enough for more grid cells (areas) than the top 20 the page lists.
                lon=round(rng.uniform(20.5, 21.5), 6),
                description=f"generated {i}",
                created_at=at,
                updated_at=at,
            )
        )
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        session.add_all(rows)
        await session.commit()

    stats = await (await client.get("/api/stats")).json()
    by_status = Counter(r.status for r in rows)
    assert stats["total"] == 1200
    assert stats["by_category"] == dict(Counter(r.category for r in rows))
    assert stats["by_status"] == dict(by_status)
    assert stats["by_month"] == dict(Counter(f"{r.created_at:%Y-%m}" for r in rows))
    confirmed = by_status["confirmed"] + by_status["eliminated"]
    assert stats["confirmed_pct"] == round(100 * confirmed / 1200, 1)
    assert sum(w for _lat, _lon, w in stats["heat"]) == by_status["confirmed"]
    assert stats["by_area"] == _top_areas(rows)
    assert stats["areas_named"] is False

    geo = await geojson(client, "/api/reports")
    ids = [f["properties"]["id"] for f in geo["features"]]
    while "next" in geo:  # a page of 1,000 by default
        geo = await geojson(client, f"/api/reports?{geo['next']}")
        ids += [f["properties"]["id"] for f in geo["features"]]
    assert sorted(ids) == sorted(r.id or 0 for r in rows)
    only = await geojson(client, "/api/reports?status=confirmed&category=vandalism")
    assert len(only["features"]) == sum(
        1 for r in rows if r.status == "confirmed" and r.category == "vandalism"
    )
    spreadsheet = await client.get("/api/reports.csv")
    assert spreadsheet.headers["Content-Type"] == "text/csv; charset=utf-8"
    raw = await spreadsheet.read()
    assert raw.startswith(b"\xef\xbb\xbf")  # the BOM Excel reads UTF-8 by
    table = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert len(table) == 1200 and "contact" not in table[0]
    plain = await (await client.get("/api/reports.csv?plain=1")).read()
    assert plain == raw[3:]
    await refused(await client.get("/api/reports?status=lost"), 422, "invalid_status")
    await refused(await client.get("/api/reports?since=yesterday"), 422, "invalid_since")


def _top_areas(rows: list[ThreatReport]) -> list[dict[str, Any]]:
    """The 20 busiest 0.05-degree cells, counted in exact decimal arithmetic."""
    cell = Decimal("0.05")

    def centre(value: float) -> Decimal:
        index = (Decimal(str(value)) / cell).to_integral_value(rounding=ROUND_FLOOR)
        return index * cell + cell / 2

    counts = Counter((centre(r.lat), centre(r.lon)) for r in rows)
    labelled = sorted(
        ((f"{lat:.3f},{lon:.3f}", lat, lon, n) for (lat, lon), n in counts.items()),
        key=lambda item: (-item[3], item[0]),
    )
    assert len(labelled) > 20
    return [
        {"area": label, "named": False, "lat": float(lat), "lon": float(lon), "count": n}
        for label, lat, lon, n in labelled[:20]
    ]


async def test_admin_edits_the_category_list(client: Client, clock: FrozenClock) -> None:
    admin = await another_browser(client)
    try:
        csrf = await sign_in(admin, await add_account(client, "root", "admin"), clock)
        added = await admin.post(
            "/api/admin/report-categories",
            json={"code": "fireworks_test", "active": True},
            headers={"X-CSRF-Token": csrf},
        )
        assert added.status == 200, await added.text()
        codes = [
            c["code"]
            for c in (await (await client.get("/api/report-categories")).json())["categories"]
        ]
        assert codes[-1] == "fireworks_test"
        await created(await post_report(client, category="fireworks_test"))
        off = await admin.post(
            "/api/admin/report-categories",
            json={"code": "fireworks_test", "active": False},
            headers={"X-CSRF-Token": csrf},
        )
        assert off.status == 200
        await refused(
            await post_report(client, category="fireworks_test", lat=53.0),
            422,
            "unknown_category",
        )
        await refused(await client.get("/api/admin/report-categories"), 401, "unauthorized")
    finally:
        await admin.close()
