"""The call archive (issue 12): who finds which calls, the search, and the reason asked before
a record or its recording is shown.

Calls are made by the actions the live routes call (create, accept, chat, location, finish, a
stored segment, a photo), on a real app and database of the mode under test; the staff use the
HTTP routes as the pages do, signed in with password and TOTP.

"Done when" 7, the role matrix: for operator, supervisor, internal security and admin, every
archive route (the two pages, the search, opening a record, its recording, snapshot and photo)
against every call: 0 reads outside each role's rights, and every read within them works.
The archive has no Socket.IO events: everything it shows comes over these routes.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from PIL import Image
from sqlmodel import col, select

from server.actions import call_events, calls, recordings
from server.actions.staff_sessions import StaffContext
from server.core.clock import FrozenClock
from server.core.media_rpc import ClosedSegment
from server.core.services import Services
from server.core.storage import recording_key, snapshot_key
from server.db.models import AuditEntry, CallPhoto, Recording, Snapshot, User
from tests.sockets import console, start_call
from tests.staff import Account, Client, add_account, another_browser, services_of, sign_in

WARSAW = (52.2297, 21.0122)
KRAKOW = (50.0647, 19.9450)
# A square around central Warsaw, drawn as lat,lon;... (the page sends it so).
AROUND_WARSAW = "52.20,20.98;52.26,20.98;52.26,21.05;52.20,21.05"
SHIFT_SECS = 12 * 3600
ROLES = ("operator", "supervisor", "internal_security", "admin")


@dataclass
class Desk:
    """A signed-in staff member's browser and its CSRF token."""

    name: str
    role: str
    browser: Client
    csrf: str

    async def search(self, **params: str) -> tuple[int, dict[str, Any]]:
        response = await self.browser.get("/api/archive/calls", params=params)
        return response.status, await response.json()

    async def found(self, **params: str) -> set[str]:
        status, body = await self.search(**params)
        assert status == 200, body
        return {r["call_id"] for r in body["results"]}

    async def open(self, call_id: str, reason: str | None = "Case 2026/114") -> Any:
        body = {} if reason is None else {"reason": reason}
        return await self.browser.post(
            f"/api/archive/calls/{call_id}/views", json=body, headers={"X-CSRF-Token": self.csrf}
        )


@dataclass
class Seeded:
    """The calls made for a test, by name, with what each holds."""

    ids: dict[str, str] = field(default_factory=dict)
    snapshots: dict[str, int] = field(default_factory=dict)
    segment_bytes: dict[str, bytes] = field(default_factory=dict)
    photos: dict[str, int] = field(default_factory=dict)


async def _staff(services: Services, username: str) -> StaffContext:
    async with services.db.session() as session:
        user = (await session.exec(select(User).where(col(User.username) == username))).one()
    assert user.id is not None
    return StaffContext(0, user.id, user.username, user.role, "active", "", "en")


async def make_call(
    services: Services,
    *,
    channel: str = "police",
    operator: str | None = None,
    chat: tuple[str, ...] = (),
    where: tuple[float, float] | None = None,
    disposition: str | None = None,
    note: str | None = None,
    photo: bool = False,
) -> str:
    """A call as the live routes make one: created, answered, talked in, located (a photo
    from the caller), ended."""
    created = await calls.do_create_call(
        services, channel=channel, mode="video", language="en", remote="192.0.2.10"
    )
    call_id = created.call.id
    if operator is not None:
        await calls.do_accept(services, call_id=call_id, staff=await _staff(services, operator))
    for n, text in enumerate(chat):
        await call_events.do_send_chat(services, call_id=call_id, client_id=f"c{n}", body=text)
    if where is not None:
        await call_events.do_send_location(
            services,
            call_id=call_id,
            channel=channel,
            lat=where[0],
            lon=where[1],
            accuracy=12.0,
            heading=None,
            speed=None,
            measured_ms=services.clock.now().timestamp() * 1000,
        )
    if photo:
        png = io.BytesIO()
        Image.new("RGB", (80, 60), (20, 40, 200)).save(png, "PNG")
        await call_events.do_store_photo(services, created.call, png.getvalue())
    await calls.do_finish(
        services,
        call_id=call_id,
        actor=operator or "citizen",
        disposition=disposition,
        note=note,
    )
    return call_id


async def add_evidence(services: Services, call_id: str, taker: str) -> tuple[bytes, int]:
    """A stored recording segment and a snapshot for the call."""
    data = b"\x1a\x45\xdf\xa3" + hashlib.sha256(call_id.encode()).digest() * 64
    key = recording_key(call_id, 1)
    services.storage.put(key, data)
    now = services.clock.now()
    await recordings.record_segment(
        services,
        ClosedSegment(
            call_id=call_id,
            segment=1,
            key=key,
            path=services.storage.path(key),
            started_at=now - timedelta(seconds=30),
            ended_at=now,
            size_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            video_frames=900,
            audio_frames=1500,
        ),
    )
    jpeg = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 40, 40)).save(jpeg, "JPEG")
    digest = hashlib.sha256(jpeg.getvalue()).hexdigest()
    snap_key = snapshot_key(call_id, now, digest)
    services.storage.put(snap_key, jpeg.getvalue())
    staff = await _staff(services, taker)
    async with services.db.session() as session:
        snapshot = Snapshot(
            call_id=call_id,
            taken_by=staff.user_id,
            path=snap_key,
            sha256=digest,
            size_bytes=len(jpeg.getvalue()),
            at=now,
        )
        session.add(snapshot)
        await session.commit()
        await session.refresh(snapshot)
    assert snapshot.id is not None
    return data, snapshot.id


STAFF = [
    ("olga", "operator"),
    ("oleg", "operator"),
    ("sam", "supervisor"),
    ("ivan", "internal_security"),
    ("adam", "admin"),
]


class Accounts:
    """The test's accounts, made when first needed (each costs an argon2 hash)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.made: dict[str, Account] = {}

    async def need(self, *names: str) -> dict[str, Account]:
        roles = dict(STAFF)
        for name in names:
            if name not in self.made:
                self.made[name] = await add_account(self.client, name, roles[name])
        return {name: self.made[name] for name in names}


@pytest.fixture
def accounts(client: Client) -> Accounts:
    return Accounts(client)


@pytest.fixture
async def opened_browsers() -> AsyncIterator[list[Client]]:
    made: list[Client] = []
    yield made
    for browser in made:
        await browser.close()


async def signed_in(
    client: Client,
    clock: FrozenClock,
    accounts: Accounts,
    browsers: list[Client],
    only: tuple[str, ...] = (),
) -> dict[str, Desk]:
    """Each account (or those named) signed in now, in a browser of its own (after any move of
    the clock: sessions idle out)."""
    roles = dict(STAFF)
    desks = {}
    for name, account in (await accounts.need(*(only or tuple(roles)))).items():
        browser = await another_browser(client)
        browsers.append(browser)
        csrf = await sign_in(browser, account, clock)
        desks[name] = Desk(name, roles[name], browser, csrf)
    return desks


async def seed(client: Client, clock: FrozenClock) -> Seeded:
    """old: olga's, 13 h ago; mine: olga's now; other: oleg's; hidden: internal security's.
    Each with a recording segment, a snapshot and a photo."""
    services = services_of(client)
    seeded = Seeded()
    seeded.ids["old"] = await make_call(
        services, operator="olga", chat=("old call about a fire",), where=KRAKOW, photo=True
    )
    clock.advance(13 * 3600)
    seeded.ids["mine"] = await make_call(
        services,
        operator="olga",
        chat=("There is a fire on the third floor",),
        where=WARSAW,
        disposition="dispatched",
        note="Fire brigade sent",
        photo=True,
    )
    seeded.ids["other"] = await make_call(
        services,
        operator="oleg",
        chat=("my neighbour shouts",),
        disposition="advice_given",
        photo=True,
    )
    seeded.ids["hidden"] = await make_call(
        services,
        channel="internal_security",
        operator="ivan",
        chat=("the officer took a bribe, there was a fire",),
        where=WARSAW,
        note="complaint against patrol 7",
        photo=True,
    )
    takers = {"old": "olga", "mine": "olga", "other": "oleg", "hidden": "ivan"}
    for name, call_id in seeded.ids.items():
        data, snapshot_id = await add_evidence(services, call_id, takers[name])
        seeded.segment_bytes[name] = data
        seeded.snapshots[name] = snapshot_id
        async with services.db.session() as session:
            photo = (
                await session.exec(select(CallPhoto).where(col(CallPhoto.call_id) == call_id))
            ).one()
        seeded.photos[name] = photo.seq
    return seeded


# Which of the seeded calls each signed-in member's archive holds.
RIGHTS = {
    "olga": {"mine"},
    "oleg": {"other"},
    "sam": {"old", "mine", "other"},
    "adam": {"old", "mine", "other"},
    "ivan": {"hidden"},
}


async def _reads(
    desk: Desk, seeded: Seeded, lent: dict[str, tuple[str, str]]
) -> dict[str, set[str]]:
    """Every archive route against every seeded call: which calls each route gave this member
    anything of (2xx, or rows in a search)."""
    got: dict[str, set[str]] = {
        "search": set(),
        "search_words": set(),
        "search_channel": set(),
        "search_area": set(),
        "page": set(),
        "record": set(),
        "recording": set(),
        "snapshot": set(),
        "photo": set(),
        "recording_with_another_view": set(),
        "recording_without_view": set(),
        "hold_button": set(),
    }
    names = {call_id: name for name, call_id in seeded.ids.items()}
    got["search"] = {names[c] for c in await desk.found()}
    got["search_words"] = {names[c] for c in await desk.found(q="fire")}
    for channel in ("police", "internal_security"):
        got["search_channel"] |= {names[c] for c in await desk.found(channel=channel)}
    got["search_area"] = {names[c] for c in await desk.found(area=AROUND_WARSAW)}
    browser = desk.browser
    for name, call_id in seeded.ids.items():
        page = await browser.get(f"/archive/calls/{call_id}")
        if page.status == 200:
            got["page"].add(name)
            if 'data-testid="legal-hold"' in await page.text():
                got["hold_button"].add(name)
        else:
            assert page.status == 404, (desk.name, name, page.status)
        bare = await browser.get(f"/api/calls/{call_id}/recordings/1")
        if bare.status < 300:
            got["recording_without_view"].add(name)
        else:
            assert (await bare.json())["error"]["code"] == "reason_required"
        lender, borrowed = lent[name]
        if lender != desk.name:  # a view another member opened, with their reason
            stolen = await browser.get(
                f"/api/calls/{call_id}/recordings/1", params={"view": borrowed}
            )
            if stolen.status < 300:
                got["recording_with_another_view"].add(name)
        opened = await desk.open(call_id)
        body = await opened.json()
        if opened.status != 201:
            assert opened.status == 404, (desk.name, name, body)
            assert body["error"]["code"] == "call_not_found"
            assert "fire" not in json.dumps(body) and "bribe" not in json.dumps(body)
            continue
        got["record"].add(name)
        token = body["view"]["token"]
        segment = await browser.get(f"/api/calls/{call_id}/recordings/1", params={"view": token})
        if segment.status == 200:
            assert await segment.read() == seeded.segment_bytes[name]
            got["recording"].add(name)
        snapshot = await browser.get(
            f"/api/calls/{call_id}/snapshots/{seeded.snapshots[name]}", params={"view": token}
        )
        if snapshot.status == 200:
            got["snapshot"].add(name)
        photo = await browser.get(
            f"/api/calls/{call_id}/photos/{seeded.photos[name]}", params={"view": token}
        )
        if photo.status == 200:
            got["photo"].add(name)
    return got


async def test_role_matrix_no_read_outside_each_roles_rights(
    client: Client,
    clock: FrozenClock,
    accounts: Accounts,
    opened_browsers: list[Client],
) -> None:
    await accounts.need(*dict(STAFF))
    seeded = await seed(client, clock)
    desks = await signed_in(client, clock, accounts, opened_browsers)
    # Views opened by the members who may: each call's first rightful reader lends its token.
    lent: dict[str, tuple[str, str]] = {}
    for name, call_id in seeded.ids.items():
        owner = next(d for d in ("sam", "ivan") if name in RIGHTS[d])
        lent[name] = (owner, (await (await desks[owner].open(call_id)).json())["view"]["token"])

    outside: list[tuple[str, str, str]] = []
    within_missing: list[tuple[str, str, str]] = []
    for who, desk in desks.items():
        got = await _reads(desk, seeded, lent)
        rights = RIGHTS[who]
        expected = {
            "search": rights,
            "search_words": rights,  # every seeded call's chat says "fire" but oleg's
            "search_channel": rights,
            "search_area": rights & {"mine", "hidden"},
            "page": rights,
            "record": rights,
            "recording": rights,
            "snapshot": rights,
            "photo": rights,
            "recording_with_another_view": set(),
            "recording_without_view": set(),
            # Retention's rule: supervisors and admins hold police calls, the unit its own.
            "hold_button": set() if who in ("olga", "oleg") else rights,
        }
        expected["search_words"] = rights - {"other"}
        for route, calls_read in got.items():
            outside += [(who, route, c) for c in calls_read - expected[route]]
            within_missing += [(who, route, c) for c in expected[route] - calls_read]
    assert outside == [], "reads outside a role's rights"
    assert within_missing == [], "reads within a role's rights that failed"


async def test_operator_keeps_only_the_last_shift(
    client: Client,
    clock: FrozenClock,
    accounts: Accounts,
    opened_browsers: list[Client],
) -> None:
    services = services_of(client)
    await accounts.need("olga")
    call_id = await make_call(services, operator="olga", chat=("shift test",))
    both = ("olga", "sam")
    desks = await signed_in(client, clock, accounts, opened_browsers, both)
    assert await desks["olga"].found() == {call_id}
    clock.advance(SHIFT_SECS - 60)
    desks = await signed_in(client, clock, accounts, opened_browsers, both)
    assert await desks["olga"].found() == {call_id}, "still within the shift"
    view = await (await desks["olga"].open(call_id)).json()
    clock.advance(120)
    olga = desks["olga"]
    assert await olga.found() == set(), "the shift is over"
    assert (await olga.open(call_id)).status == 404
    # The view she opened a minute before the end of the shift no longer plays either.
    late = await olga.browser.get(
        f"/api/calls/{call_id}/recordings/1", params={"view": view["view"]["token"]}
    )
    assert late.status == 404 and (await late.json())["error"]["code"] == "call_not_found"
    assert await desks["sam"].found() == {call_id}


async def test_search_filters_and_pages(
    client: Client,
    clock: FrozenClock,
    accounts: Accounts,
    opened_browsers: list[Client],
) -> None:
    """Time range, operator, channel, disposition, words in chat or notes (any case, any
    script), the drawn area, and paging: each narrows the supervisor's results as it should."""
    services = services_of(client)
    await accounts.need("olga", "oleg")
    start = clock.now()
    early = await make_call(
        services,
        operator="olga",
        chat=("Пожар в подъезде",),
        where=WARSAW,
        disposition="dispatched",
    )
    clock.advance(3600)
    middle = clock.now()
    polish = await make_call(
        services,
        operator="oleg",
        chat=("Widzę dym",),
        where=KRAKOW,
        disposition="false_alarm",
        note="Zgłoszenie z ŁODZI, sprawdzone",
    )
    clock.advance(3600)
    late = await make_call(services, operator="olga", chat=("100% sure, it_is here",))
    desks = await signed_in(client, clock, accounts, opened_browsers, ("sam",))
    sam = desks["sam"]

    assert await sam.found() == {early, polish, late}
    assert await sam.found(q="ПОЖАР") == {early}, "Cyrillic, another case"
    assert await sam.found(q="пожар подъезде") == {early}, "every word"
    assert await sam.found(q="пожар дым") == set()
    assert await sam.found(q="łodzi") == {polish}, "a word of the note, Polish, another case"
    assert await sam.found(q="100%") == {late}, "% is a letter here, not a wildcard"
    assert await sam.found(q="it_is") == {late}
    assert await sam.found(q="t%s") == set()
    assert await sam.found(operator="olga") == {early, late}
    assert await sam.found(disposition="false_alarm") == {polish}
    assert await sam.found(channel="police") == {early, polish, late}
    assert await sam.found(channel="internal_security") == set()
    assert await sam.found(**{"from": middle.isoformat()}) == {polish, late}
    assert await sam.found(**{"to": middle.isoformat()}) == {early, polish}
    assert await sam.found(**{"from": start.isoformat(), "to": start.isoformat()}) == {early}
    assert await sam.found(area=AROUND_WARSAW) == {early}
    # A triangle whose bounding box holds Warsaw but whose inside does not.
    assert await sam.found(area="52.0,20.9;52.0,21.3;52.4,21.3") == set()
    assert await sam.found(area="52.0,20.9;52.4,20.9;52.4,21.3") == {early}

    status, body = await sam.search()
    assert [r["call_id"] for r in body["results"]] == [late, polish, early], "newest first"
    row = body["results"][1]
    assert row["operator"] == "oleg" and row["disposition"] == "false_alarm"
    assert row["segments"] == 0 and row["state"] == "ended"
    assert "Widzę" not in json.dumps(body), "a result holds no chat"

    for _ in range(services.settings.ARCHIVE_PAGE_SIZE):
        clock.advance(1)
        await make_call(services, operator="olga")
    status, first = await sam.search()
    assert status == 200 and first["total"] == 3 + services.settings.ARCHIVE_PAGE_SIZE
    assert len(first["results"]) == services.settings.ARCHIVE_PAGE_SIZE
    status, second = await sam.search(page="2")
    assert [r["call_id"] for r in second["results"]] == [late, polish, early], "the oldest three"
    paged = {r["call_id"] for r in first["results"]} | {r["call_id"] for r in second["results"]}
    assert len(paged) == first["total"], "the two pages hold every call once"


BAD_SEARCHES: list[tuple[dict[str, str], str]] = [
    ({"from": "yesterday"}, "invalid_date"),
    ({"from": "2026-12-01T10:00:00"}, "invalid_date"),
    ({"from": "2026-12-02T10:00:00Z", "to": "2026-12-01T10:00:00Z"}, "invalid_date"),
    ({"area": "52,21;53,21"}, "invalid_area"),
    ({"area": "52,21;53,21;95,21"}, "invalid_area"),
    ({"area": "a,b;c,d;e,f"}, "invalid_area"),
    ({"q": " ".join(f"w{n}" for n in range(9))}, "invalid_words"),
    ({"q": "x" * 65}, "invalid_words"),
    ({"page": "0"}, "invalid_page"),
    ({"page": "two"}, "invalid_page"),
    ({"channel": "fire"}, "invalid_channel"),
    ({"disposition": "DROP TABLE"}, "invalid_disposition"),
    ({"operator": "a b"}, "invalid_username"),
]


async def test_a_bad_search_is_a_4xx_naming_it(
    client: Client,
    clock: FrozenClock,
    accounts: Accounts,
    opened_browsers: list[Client],
) -> None:
    sam = (await signed_in(client, clock, accounts, opened_browsers, ("sam",)))["sam"]
    for params, code in BAD_SEARCHES:
        status, body = await sam.search(**params)
        assert 400 <= status < 500, (params, body)
        assert body["error"]["code"] == code, params


async def _entries(services: Services, action: str) -> list[AuditEntry]:
    async with services.db.session() as session:
        return list(
            (
                await session.exec(
                    select(AuditEntry)
                    .where(col(AuditEntry.action) == action)
                    .order_by(col(AuditEntry.seq))
                )
            ).all()
        )


async def test_nothing_is_shown_without_a_reason_and_the_chain_keeps_who_when_what_why(
    client: Client,
    clock: FrozenClock,
    accounts: Accounts,
    opened_browsers: list[Client],
) -> None:
    services = services_of(client)
    await accounts.need("olga")
    call_id = await make_call(
        services, operator="olga", chat=("the secret word is heron",), where=WARSAW, photo=True
    )
    data, snapshot_id = await add_evidence(services, call_id, "olga")
    desks = await signed_in(client, clock, accounts, opened_browsers, ("sam", "adam"))
    sam = desks["sam"]
    before = len(await _entries(services, "record_viewed"))

    for reason in (None, "", "  \n "):
        refused = await sam.open(call_id, reason)
        body = await refused.json()
        assert refused.status == 400, body
        assert body == {"error": {"code": "reason_required", "message": ANY_TEXT}}
    too_long = await sam.open(call_id, "x" * 501)
    assert (await too_long.json())["error"]["code"] == "reason_too_long"
    bare = await sam.browser.get(f"/api/calls/{call_id}/recordings/1")
    assert bare.status == 400 and "heron" not in await bare.text()
    for path in (f"snapshots/{snapshot_id}", "photos/2"):
        unknown = await sam.browser.get(f"/api/calls/{call_id}/{path}", params={"view": "x" * 43})
        assert unknown.status == 403
        assert (await unknown.json())["error"]["code"] == "view_expired"
    no_csrf = await sam.browser.post(
        f"/api/archive/calls/{call_id}/views", json={"reason": "Case 7"}
    )
    assert no_csrf.status == 403
    assert len(await _entries(services, "record_viewed")) == before, "a refusal is no view"

    opened = await sam.open(call_id, "  Case   2026/114:  complaint \n of the caller ")
    assert opened.status == 201
    record = await opened.json()
    assert record["chat"][0]["body"] == "the secret word is heron"
    assert record["track"][0]["lat"] == WARSAW[0]
    assert [p["username"] for p in record["present"]] == ["olga"]
    assert record["segments"][0]["sha256"] == hashlib.sha256(data).hexdigest()
    viewed = (await _entries(services, "record_viewed"))[-1]
    assert record["view"]["entry"] == viewed.seq
    assert viewed.actor == "sam" and viewed.subject == f"call:{call_id}"
    assert viewed.at == clock.now()
    assert json.loads(viewed.data) == {
        "reason": "Case 2026/114: complaint of the caller",
        "remote": "127.0.0.1",
        "role": "supervisor",
    }

    token = record["view"]["token"]
    url = f"/api/calls/{call_id}/recordings/1"
    whole = await sam.browser.get(url, params={"view": token})
    assert whole.status == 200 and await whole.read() == data
    assert whole.headers["X-Content-SHA256"] == hashlib.sha256(data).hexdigest()
    for first_byte in (0, 100, 1000):  # the player's range requests
        part = await sam.browser.get(
            url, params={"view": token}, headers={"Range": f"bytes={first_byte}-"}
        )
        assert part.status == 206 and await part.read() == data[first_byte:]
    played = await _entries(services, "recording_played")
    assert len(played) == 1, "one entry per segment played within a view"
    assert played[0].actor == "sam"
    assert json.loads(played[0].data) == {
        "segment": 1,
        "sha256": hashlib.sha256(data).hexdigest(),
        "reason": "Case 2026/114: complaint of the caller",
        "view_entry": viewed.seq,
        "remote": "127.0.0.1",
    }
    snapshot = await sam.browser.get(
        f"/api/calls/{call_id}/snapshots/{snapshot_id}", params={"view": token}
    )
    assert snapshot.status == 200
    shown = json.loads((await _entries(services, "snapshot_viewed"))[-1].data)
    assert shown["reason"] == "Case 2026/114: complaint of the caller"
    assert shown["view_entry"] == viewed.seq

    # Another member cannot ride on sam's view; nor can sam after it ends.
    adam = desks["adam"]
    borrowed = await adam.browser.get(url, params={"view": token})
    assert borrowed.status == 403 and (await borrowed.json())["error"]["code"] == "view_expired"
    clock.advance(services.settings.ARCHIVE_VIEW_SECS + 1)
    sam = (await signed_in(client, clock, accounts, opened_browsers, ("sam",)))["sam"]
    expired = await sam.browser.get(url, params={"view": token})
    assert expired.status == 403 and (await expired.json())["error"]["code"] == "view_expired"
    assert len(await _entries(services, "recording_played")) == 1

    searched = (await _entries(services, "archive_searched"))[-1:] or None
    assert searched is None, "no search was made in this test"
    await sam.found(q="heron")
    search_entry = (await _entries(services, "archive_searched"))[-1]
    assert search_entry.actor == "sam"
    assert json.loads(search_entry.data) == {"role": "supervisor", "words": ["heron"], "page": 1}


async def test_internal_securitys_searches_are_kept_as_keyed_hashes(
    client: Client,
    clock: FrozenClock,
    accounts: Accounts,
    opened_browsers: list[Client],
) -> None:
    """What the unit searched for could tell a reader of the shared chain what a misconduct
    case is about."""
    desks = await signed_in(client, clock, accounts, opened_browsers, ("ivan",))
    await desks["ivan"].found(q="patrol seven", area=AROUND_WARSAW, operator="olga")
    entry = (await _entries(services_of(client), "archive_searched"))[-1]
    kept = json.loads(entry.data)
    assert set(kept) == {"role", "words_hash", "area_hash", "operator_hash", "page"}
    assert "patrol" not in entry.data and "olga" not in entry.data and "52.2" not in entry.data


async def test_who_was_present_names_the_supervisor_who_joined(
    client: Client,
    clock: FrozenClock,
    accounts: Accounts,
    opened_browsers: list[Client],
) -> None:
    """The operator answers over the console socket and a supervisor opens the call to listen
    in (its own console's join): both are on the record, the supervisor as call_joined."""
    desks = await signed_in(client, clock, accounts, opened_browsers, ("olga", "sam"))
    started = await start_call(client)
    async with console(desks["olga"].browser) as operator_desk:
        await operator_desk.call("accept", {"call_id": started["call_id"]})
        clock.advance(5)
        async with console(desks["sam"].browser) as supervisor_desk:
            joined = await supervisor_desk.call("join", {"call_id": started["call_id"]})
            assert joined["ok"] is True
        # The operator's own reload is no joining.
        await operator_desk.call("join", {"call_id": started["call_id"]})
        await operator_desk.call(
            "end_call", {"call_id": started["call_id"], "disposition": "dispatched"}
        )
    entries = await _entries(services_of(client), "call_joined")
    assert [(e.actor, e.subject) for e in entries] == [("sam", f"call:{started['call_id']}")]
    record = await (await desks["sam"].open(started["call_id"])).json()
    assert [(p["username"], p["role"]) for p in record["present"]] == [
        ("olga", "operator"),
        ("sam", "supervisor"),
    ]


async def test_a_segment_recovered_after_a_crash_plays_from_its_copy(
    client: Client,
    clock: FrozenClock,
    accounts: Accounts,
    opened_browsers: list[Client],
) -> None:
    """The original stays as its writer left it (the evidence); the page plays the remuxed copy
    players can seek in, and the chain says which file was served."""
    services = services_of(client)
    await accounts.need("olga")
    call_id = await make_call(services, operator="olga", chat=("crash test",))
    original, copy = b"\x1a\x45\xdf\xa3 as left", b"\x1a\x45\xdf\xa3 remuxed, with cues"
    key = recording_key(call_id, 1)
    copy_key = key.replace(".mkv", ".playable.mkv")
    services.storage.put(key, original)
    services.storage.put(copy_key, copy)
    async with services.db.session() as session:
        session.add(
            Recording(
                call_id=call_id,
                segment=1,
                path=key,
                media_node="node-x",
                started_at=clock.now() - timedelta(seconds=20),
                ended_at=clock.now(),
                size_bytes=len(original),
                sha256=hashlib.sha256(original).hexdigest(),
                recovered=True,
                playable_path=copy_key,
                playable_sha256=hashlib.sha256(copy).hexdigest(),
                playable_size_bytes=len(copy),
            )
        )
        await session.commit()
    sam = (await signed_in(client, clock, accounts, opened_browsers, ("sam",)))["sam"]
    record = await (await sam.open(call_id)).json()
    assert record["segments"][0]["recovered"] is True
    played = await sam.browser.get(
        f"/api/calls/{call_id}/recordings/1", params={"view": record["view"]["token"]}
    )
    assert played.status == 200 and await played.read() == copy
    assert played.headers["X-Content-SHA256"] == hashlib.sha256(copy).hexdigest()
    assert ".playable.mkv" in played.headers["Content-Disposition"]
    entry = json.loads((await _entries(services, "recording_played"))[-1].data)
    assert entry["sha256"] == hashlib.sha256(original).hexdigest()
    assert entry["played_copy_sha256"] == hashlib.sha256(copy).hexdigest()
    with services.storage.open(key) as kept:
        assert kept.read() == original, "the original is untouched"


class _AnyText:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and len(other) > 10


ANY_TEXT = _AnyText()
