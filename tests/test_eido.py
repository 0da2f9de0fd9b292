"""The CAD hand-off (docs/cad.md): a real call's NENA EIDO document passes the project's JSON
Schema of the fields NENA-STA-021 requires; the CAD's webhook (a real aiohttp receiver on an
ephemeral port, which checks the signature itself) gets it signed when the call is answered and
when it ends; a receiver that fails twice gets it on the third try, the backoff run on the
frozen clock; a delivery that fails every try is dead-lettered on /admin's list, and "retry
now" delivers it. Every export and every delivery is in the audit chain."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import random
import secrets
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
from aiohttp import web
from sqlmodel import col, select

from config import Settings
from config.settings import SettingsError, load_settings
from server.actions.cad_deliveries import do_sweep
from server.actions.eido import WGS84
from server.app import create_app
from server.core.clock import FrozenClock
from server.db.models import AuditEntry, CadDelivery
from tests.conftest import ClientFactory
from tests.evidence_calls import jpeg, store_segment, stored_segments
from tests.sockets import citizen, console, start_call
from tests.staff import Client, add_account, another_browser, services_of, sign_in

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "server" / "actions" / "eido.schema.json"
ATTEMPTS = 3
BACKOFF_SECS = 10.0
AGENCY = "test-centre.example"
WAIT_SECS = 10.0
PIDF = {
    "pidf": "urn:ietf:params:xml:ns:pidf",
    "dm": "urn:ietf:params:xml:ns:pidf:data-model",
    "gml": "http://www.opengis.net/gml",
    "gs": "http://www.opengis.net/pidflo/1.0",
}


@dataclass(frozen=True)
class Received:
    status: int
    event: str
    delivery: str
    signed: bool
    body: bytes

    def document(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.body)
        return result


@dataclass
class Receiver:
    """The CAD's end: answers each post with the next status of ``plan`` (200 once it is
    spent), 401 to a post whose signature it cannot verify with the shared secret."""

    url: str
    secret: bytes
    secret_file: Path
    plan: list[int] = field(default_factory=list)
    got: asyncio.Queue[Received] = field(default_factory=asyncio.Queue)
    seen: list[Received] = field(default_factory=list)

    async def next(self) -> Received:
        return await asyncio.wait_for(self.got.get(), WAIT_SECS)


def _verified(secret: bytes, timestamp: str, body: bytes, given: str) -> bool:
    """The receiver's own check, written from the documented scheme (not the server's code)."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(given, f"sha256={mac}")


@pytest.fixture
async def receiver(tmp_path: Path) -> AsyncIterator[Receiver]:
    secret = secrets.token_hex(32).encode()
    secret_file = tmp_path / "cad-webhook.secret"
    secret_file.write_bytes(secret + b"\n")
    box: list[Receiver] = []

    async def handle(request: web.Request) -> web.Response:
        me = box[0]
        body = await request.read()
        signed = _verified(
            me.secret,
            request.headers.get("X-Lifeline-Timestamp", ""),
            body,
            request.headers.get("X-Lifeline-Signature", ""),
        )
        status = me.plan.pop(0) if me.plan else 200
        if not signed:
            status = 401
        got = Received(
            status=status,
            event=request.headers.get("X-Lifeline-Event", ""),
            delivery=request.headers.get("X-Lifeline-Delivery", ""),
            signed=signed,
            body=body,
        )
        me.seen.append(got)
        me.got.put_nowait(got)
        return web.json_response({"ok": status == 200}, status=status)

    app = web.Application()
    app.router.add_post("/eido", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    box.append(Receiver(f"http://{host}:{port}/eido", secret, secret_file))
    yield box[0]
    await runner.cleanup()


@pytest.fixture
def settings(settings: Settings, receiver: Receiver) -> Settings:
    return settings.model_copy(
        update={
            "CAD_WEBHOOK_URL": receiver.url,
            "CAD_WEBHOOK_SECRET_FILE": receiver.secret_file,
            "CAD_WEBHOOK_ATTEMPTS": ATTEMPTS,
            "CAD_WEBHOOK_BACKOFF_SECS": BACKOFF_SECS,
            "CAD_AGENCY_ID": AGENCY,
        }
    )


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(loaded)
    return loaded


def check(schema: dict[str, Any], document: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(schema).validate(document)


async def _entries(client: Client, action: str) -> list[AuditEntry]:
    async with services_of(client).db.session() as session:
        rows = await session.exec(
            select(AuditEntry).where(col(AuditEntry.action) == action).order_by(col(AuditEntry.seq))
        )
        return list(rows.all())


async def _deliveries(client: Client) -> list[CadDelivery]:
    async with services_of(client).db.session() as session:
        rows = await session.exec(select(CadDelivery).order_by(col(CadDelivery.id)))
        return list(rows.all())


async def _pass(client: Client, clock: FrozenClock, secs: float) -> None:
    """``secs`` of the node's clock, and the work the timers that fell due started."""
    clock.advance(secs)
    await services_of(client).background.drain()


def _ms(clock: FrozenClock) -> float:
    return clock.now().timestamp() * 1000


def _by_type(document: dict[str, Any], component: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = document.get(component, [])
    return found


def _track(document: dict[str, Any]) -> list[tuple[float, float, float | None, str]]:
    """Each location component's PIDF-LO read back: latitude, longitude, radius, time."""
    points = []
    for location in _by_type(document, "locationComponent"):
        root = ET.fromstring(location["locationByValue"])
        circle = root.find(".//gs:Circle", PIDF)
        shape = circle if circle is not None else root.find(".//gml:Point", PIDF)
        assert shape is not None and shape.get("srsName") == WGS84
        pos = shape.find("gml:pos", PIDF)
        assert pos is not None and pos.text is not None
        lat, lon = (float(v) for v in pos.text.split())
        radius = circle.find("gs:radius", PIDF) if circle is not None else None
        stamp = root.find(".//dm:timestamp", PIDF)
        assert stamp is not None and stamp.text is not None
        points.append(
            (lat, lon, float(radius.text or "") if radius is not None else None, stamp.text)
        )
    return points


async def test_a_real_calls_eido_passes_the_schema_and_reaches_the_cad_signed(
    client: Client,
    operator_desk: tuple[Client, str],
    clock: FrozenClock,
    receiver: Receiver,
    schema: dict[str, Any],
) -> None:
    operator, _csrf = operator_desk
    services = services_of(client)
    call = await start_call(client)
    call_id = call["call_id"]
    async with citizen(client, call["token"]) as phone, console(operator) as desk:
        located = await phone.call(
            "location",
            {"lat": 52.2297, "lon": 21.0122, "accuracy": 15.0, "timestamp": _ms(clock)},
        )
        assert located["ok"], located
        said = await phone.call(
            "chat", {"client_id": "phone-0001", "body": "Someone <b>is</b> at my door"}
        )
        assert said["ok"], said
        clock.advance(3)
        accepted = await desk.call("accept", {"call_id": call_id})
        assert accepted["ok"], accepted

        # The answer's post: signed, the call answered, its chat and where the caller is.
        first = await receiver.next()
        assert (first.status, first.event, first.signed) == (200, "answered", True)
        answered = first.document()
        check(schema, answered)
        assert answered["callComponent"][0]["callStateRegistryText"] == "callAnswered"
        assert answered["agencyComponent"][0]["$id"] == AGENCY
        assert [a["$id"] for a in answered["agentComponent"]] == [f"olga@{AGENCY}"]

        # More of the call: a fix without accuracy, the operator's reply, a photo, a segment.
        clock.advance(2)
        moved = await phone.call(
            "location", {"lat": 52.2301, "lon": 21.0130, "timestamp": _ms(clock)}
        )
        assert moved["ok"], moved
        replied = await desk.call(
            "chat", {"call_id": call_id, "client_id": "desk-00001", "body": "Stay inside"}
        )
        assert replied["ok"], replied
        form = aiohttp.FormData()
        form.add_field(
            "photo",
            io.BytesIO(jpeg(random.Random(7), 40)),
            filename="door.jpg",
            content_type="image/jpeg",
        )
        photo = await client.post(
            f"/api/calls/{call_id}/photos", data=form, headers={"X-Call-Token": call["token"]}
        )
        assert photo.status == 201, await photo.text()
        photo_sha = (await photo.json())["sha256"]
        await store_segment(services, clock, call_id, 1, secrets.token_bytes(4096))
        clock.advance(5)
        ended = await desk.call(
            "end_call",
            {"call_id": call_id, "disposition": "dispatched", "note": "Patrol 12 sent"},
        )
        assert ended["ok"], ended

        # The end's post: the whole call, the disposition, the track, the media and their hashes.
        second = await receiver.next()
        assert (second.status, second.event, second.signed) == (200, "ended", True)
        document = second.document()
        check(schema, document)
        await services.background.drain()  # the delivery's own settling, after the CAD's 200
    segment = (await stored_segments(client, call_id))[0]
    assert document["callComponent"][0]["callStateRegistryText"] == "callEnd"
    answered_at = datetime.fromisoformat(document["callComponent"][0]["answerDate"])
    assert answered_at == datetime.fromisoformat(accepted["call"]["answered_at"])
    incident = document["incidentComponent"]
    assert incident["incidentStatusCommonRegistryText"] == ["Closed"]
    assert incident["dispositionComponent"][0]["dispositionCommonRegistryCode"] == "dispatched"
    comments = [n["notesActionComments"] for n in document["notesComponent"]]
    assert "<p><b>citizen</b>: Someone &lt;b&gt;is&lt;/b&gt; at my door</p>" in comments
    assert "<p><b>olga</b>: Stay inside</p>" in comments
    assert "<p>Patrol 12 sent</p>" in comments
    assert "<p>Call queued \u2192 answered by olga</p>" in comments
    assert "<p>Call answered \u2192 ended by olga</p>" in comments
    track = _track(document)
    assert [(lat, lon, radius) for lat, lon, radius, _ in track] == [
        (52.2297, 21.0122, 15.0),
        (52.2301, 21.013, None),
    ]
    media = {m["contentType"]: m for m in document["mediaComponent"]}
    assert media["video/x-matroska"]["sha256"] == segment.sha256
    assert media["video/x-matroska"]["uri"] == f"/api/calls/{call_id}/recordings/1"
    assert media["image/jpeg"]["sha256"] == photo_sha
    assert segment.sha256 is not None and segment.sha256 in media["video/x-matroska"]["label"]
    # The caller: a role, the call, the track; nothing the record does not hold.
    (caller,) = document["personComponent"]
    assert set(caller) == {
        "$id",
        "lastUpdateTimeStamp",
        "updatedByAgencyReference",
        "personIncidentRoleRegistryText",
        "callIdentifier",
        "locationReference",
    }
    posted = await _entries(client, "eido_posted")
    assert [(e.actor, json.loads(e.data)["event"]) for e in posted] == [
        ("system:cad-webhook", "answered"),
        ("system:cad-webhook", "ended"),
    ]
    assert json.loads(posted[1].data)["sha256"] == hashlib.sha256(second.body).hexdigest()

    # The console's download: the same document, for the call's operator, in the chain.
    got = await operator.get(f"/api/staff/calls/{call_id}/eido")
    assert got.status == 200, await got.text()
    body = await got.read()
    assert got.headers["X-Content-SHA256"] == hashlib.sha256(body).hexdigest()
    assert "attachment" in got.headers["Content-Disposition"]
    check(schema, json.loads(body))
    (exported,) = await _entries(client, "eido_exported")
    assert exported.actor == "olga" and exported.subject == f"call:{call_id}"
    assert json.loads(exported.data)["sha256"] == got.headers["X-Content-SHA256"]


async def test_who_may_take_a_calls_eido(
    client: Client, operator_desk: tuple[Client, str], clock: FrozenClock
) -> None:
    operator, _csrf = operator_desk
    other = await another_browser(client)
    await sign_in(other, await add_account(client, "petr", "operator"), clock)
    call = await start_call(client)
    hidden = await start_call(client, channel="internal_security")
    async with console(operator) as desk:
        assert (await desk.call("accept", {"call_id": call["call_id"]}))["ok"]
    anonymous = await client.get(f"/api/staff/calls/{call['call_id']}/eido")
    assert anonymous.status == 401
    not_theirs = await other.get(f"/api/staff/calls/{call['call_id']}/eido")
    assert (not_theirs.status, (await not_theirs.json())["error"]["code"]) == (403, "not_your_call")
    for unknown in (hidden["call_id"], "no-such-call"):
        refused = await operator.get(f"/api/staff/calls/{unknown}/eido")
        assert (refused.status, (await refused.json())["error"]["code"]) == (404, "call_not_found")
    expired = await operator.get(f"/api/staff/calls/{call['call_id']}/eido", params={"view": "x"})
    assert (expired.status, (await expired.json())["error"]["code"]) == (403, "view_expired")
    assert await _entries(client, "eido_exported") == []
    await other.close()


async def test_a_receiver_that_fails_twice_gets_it_on_the_third_try(
    client: Client,
    operator_desk: tuple[Client, str],
    clock: FrozenClock,
    receiver: Receiver,
    schema: dict[str, Any],
) -> None:
    operator, _csrf = operator_desk
    receiver.plan = [500, 500]
    call = await start_call(client)
    async with console(operator) as desk:
        assert (await desk.call("accept", {"call_id": call["call_id"]}))["ok"]
        first = await receiver.next()
        assert (first.status, first.signed) == (500, True)
        await services_of(client).background.drain()

        # Not before its backoff: 10 s after the first failure, then 20 s after the second.
        await _pass(client, clock, BACKOFF_SECS - 1)
        assert len(receiver.seen) == 1
        await _pass(client, clock, 1)
        second = await receiver.next()
        assert (second.status, second.signed) == (500, True)
        await _pass(client, clock, 2 * BACKOFF_SECS - 1)
        assert len(receiver.seen) == 2
        await _pass(client, clock, 1)
        third = await receiver.next()
    assert (third.status, third.signed, third.event) == (200, True, "answered")
    # The same document every time, each try signed anew (its own timestamp).
    assert first.body == second.body == third.body
    check(schema, third.document())
    (delivery,) = await _deliveries(client)
    assert (delivery.state, delivery.attempts) == ("delivered", 3)
    (posted,) = await _entries(client, "eido_posted")
    assert json.loads(posted.data)["attempt"] == 3
    await _pass(client, clock, 10 * BACKOFF_SECS)
    assert len(receiver.seen) == 3  # delivered: never again


async def test_a_delivery_that_fails_every_try_is_dead_lettered_and_retry_now_delivers_it(
    client: Client,
    operator_desk: tuple[Client, str],
    clock: FrozenClock,
    receiver: Receiver,
) -> None:
    operator, _csrf = operator_desk
    receiver.plan = [503] * ATTEMPTS
    call = await start_call(client)
    async with console(operator) as desk:
        assert (await desk.call("accept", {"call_id": call["call_id"]}))["ok"]
        await receiver.next()
        await services_of(client).background.drain()
        for n in range(1, ATTEMPTS):
            await _pass(client, clock, BACKOFF_SECS * 2 ** (n - 1))
            await receiver.next()
    (delivery,) = await _deliveries(client)
    assert (delivery.state, delivery.attempts, delivery.last_error) == (
        "dead",
        ATTEMPTS,
        "HTTP 503",
    )
    (dead,) = await _entries(client, "eido_post_dead_lettered")
    assert json.loads(dead.data)["attempts"] == ATTEMPTS
    # Operators have no such list.
    assert (await operator.get("/api/admin/cad/deliveries")).status == 403
    await _pass(client, clock, 3600)
    assert len(receiver.seen) == ATTEMPTS  # dead: no sweep tries it again

    admin = await another_browser(client)
    csrf = await sign_in(admin, await add_account(client, "adam", "admin"), clock)
    page = await admin.get("/admin")
    assert page.status == 200
    html = await page.text()
    assert 'data-testid="cad-dead-letters"' in html and "admin_cad.js" in html
    listed = await (await admin.get("/api/admin/cad/deliveries")).json()
    assert [(d["id"], d["call_id"], d["event"]) for d in listed["deliveries"]] == [
        (delivery.id, call["call_id"], "answered")
    ]
    # A retry needs the CSRF token; an unknown one is a 404.
    no_csrf = await admin.post(f"/api/admin/cad/deliveries/{delivery.id}/retry")
    assert no_csrf.status == 403
    for wrong, code in (("99999", "delivery_not_found"), ("x1", "delivery_not_found")):
        refused = await admin.post(
            f"/api/admin/cad/deliveries/{wrong}/retry", headers={"X-CSRF-Token": csrf}
        )
        assert (refused.status, (await refused.json())["error"]["code"]) == (404, code)

    retried = await admin.post(
        f"/api/admin/cad/deliveries/{delivery.id}/retry", headers={"X-CSRF-Token": csrf}
    )
    assert retried.status == 200, await retried.text()
    got = await receiver.next()
    assert (got.status, got.signed) == (200, True)
    await services_of(client).background.drain()
    (delivery,) = await _deliveries(client)
    assert delivery.state == "delivered"
    (entry,) = await _entries(client, "eido_post_retried")
    assert entry.actor == "adam" and json.loads(entry.data)["delivery"] == delivery.id
    again = await admin.post(
        f"/api/admin/cad/deliveries/{delivery.id}/retry", headers={"X-CSRF-Token": csrf}
    )
    assert (again.status, (await again.json())["error"]["code"]) == (409, "delivery_not_dead")
    assert (await (await admin.get("/api/admin/cad/deliveries")).json())["deliveries"] == []
    await admin.close()


async def test_sweeps_racing_for_one_due_try_post_it_once(
    client: Client,
    operator_desk: tuple[Client, str],
    clock: FrozenClock,
    receiver: Receiver,
) -> None:
    """The claim is one conditional UPDATE: four sweeps (and the node's own, which the clock
    wakes too) racing for one due try post it once, as two nodes' sweeps would."""
    operator, _csrf = operator_desk
    receiver.plan = [500]
    call = await start_call(client)
    async with console(operator) as desk:
        assert (await desk.call("accept", {"call_id": call["call_id"]}))["ok"]
        await receiver.next()
        await services_of(client).background.drain()
    services = services_of(client)
    clock.advance(BACKOFF_SECS)
    results = await asyncio.gather(*(do_sweep(services) for _ in range(4)))
    await services.background.drain()
    assert sum(len(r) for r in results) <= 1
    assert len(receiver.seen) == 2
    (delivery,) = await _deliveries(client)
    assert (delivery.state, delivery.attempts) == ("delivered", 2)


async def test_a_pending_delivery_survives_a_node_restart(
    client: Client,
    operator_desk: tuple[Client, str],
    settings: Settings,
    clock: FrozenClock,
    receiver: Receiver,
    aiohttp_client: ClientFactory,
) -> None:
    """The node stops with a try due later: the node that starts next (on the same database)
    posts it at its first sweep past the backoff."""
    operator, _csrf = operator_desk
    receiver.plan = [500]
    call = await start_call(client)
    async with console(operator) as desk:
        assert (await desk.call("accept", {"call_id": call["call_id"]}))["ok"]
        assert (await receiver.next()).status == 500
        await services_of(client).background.drain()
    await operator.close()
    await client.close()

    later = FrozenClock(clock.now() + timedelta(seconds=BACKOFF_SECS))
    node = await aiohttp_client(create_app(settings, later))
    later.advance(settings.CAD_WEBHOOK_SWEEP_SECS)
    await services_of(node).background.drain()
    again = await receiver.next()
    assert (again.status, again.signed, again.delivery) == (200, True, "1")
    (delivery,) = await _deliveries(node)
    assert (delivery.state, delivery.attempts) == ("delivered", 2)


async def test_a_message_threads_eido_passes_the_schema(
    client: Client,
    operator_desk: tuple[Client, str],
    receiver: Receiver,
    schema: dict[str, Any],
) -> None:
    operator, csrf = operator_desk
    made = await client.post(
        "/api/threads",
        json={
            "channel": "police",
            "language": "en",
            "contact": "+48 600 100 200",
            "lat": 52.2297,
            "lon": 21.0122,
            "accuracy": 40.0,
        },
    )
    assert made.status == 201, await made.text()
    thread = await made.json()
    token = {"X-Thread-Token": thread["token"]}
    base = f"/api/threads/{thread['thread_id']}"
    sent = await client.post(
        f"{base}/messages",
        json={"client_id": "msg-00001", "body": "Loud fight next door"},
        headers=token,
    )
    assert sent.status == 201, await sent.text()
    staff = {"X-CSRF-Token": csrf}
    assert (await operator.post(f"{base}/claim", headers=staff)).status == 200
    replied = await operator.post(
        f"{base}/reply",
        json={"client_id": "rep-00001", "body": "A patrol is on its way"},
        headers=staff,
    )
    assert replied.status == 201, await replied.text()
    closed = await operator.post(
        f"{base}/close", json={"disposition": "dispatched", "note": "Patrol 7"}, headers=staff
    )
    assert closed.status == 200, await closed.text()

    got = await operator.get(f"/api/staff/threads/{thread['thread_id']}/eido")
    assert got.status == 200, await got.text()
    document = json.loads(await got.read())
    check(schema, document)
    assert document["callComponent"][0]["callStateRegistryText"] == "callEnd"
    assert document["callComponent"][0]["localCallType"] == "police/thread"
    comments = [n["notesActionComments"] for n in document["notesComponent"]]
    for said in (
        "<p><b>citizen</b>: Loud fight next door</p>",
        "<p><b>olga</b>: A patrol is on its way</p>",
        "<p>Thread claimed by olga</p>",
        "<p>Thread closed by olga</p>",
        "<p>Contact given: +48 600 100 200</p>",
        "<p>Patrol 7</p>",
    ):
        assert said in comments, comments
    assert [(lat, lon, radius) for lat, lon, radius, _ in _track(document)] == [
        (52.2297, 21.0122, 40.0)
    ]
    disposition = document["incidentComponent"]["dispositionComponent"][0]
    assert disposition["dispositionCommonRegistryCode"] == "dispatched"
    (exported,) = await _entries(client, "eido_exported")
    assert exported.subject == f"thread:{thread['thread_id']}"
    # Another channel's thread does not exist for an operator; threads are never posted.
    hidden = await client.post(
        "/api/threads", json={"channel": "internal_security", "language": "en"}
    )
    refused = await operator.get(f"/api/staff/threads/{(await hidden.json())['thread_id']}/eido")
    assert (refused.status, (await refused.json())["error"]["code"]) == (404, "thread_not_found")
    assert receiver.seen == []


@pytest.mark.one_pass
def test_a_webhook_url_needs_a_readable_secret(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="CAD_WEBHOOK_SECRET_FILE"):
        load_settings(CAD_WEBHOOK_URL="http://127.0.0.1:9/eido", DATA_DIR=tmp_path)
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings(
            CAD_WEBHOOK_URL="http://127.0.0.1:9/eido",
            CAD_WEBHOOK_SECRET_FILE=tmp_path / "missing",
            DATA_DIR=tmp_path,
        )
    with pytest.raises(SettingsError, match="CAD_WEBHOOK_URL"):
        load_settings(CAD_WEBHOOK_URL="ftp://cad/eido", DATA_DIR=tmp_path)
    good = tmp_path / "secret"
    good.write_text("s" * 32 + "\n")
    settings = load_settings(
        CAD_WEBHOOK_URL="https://cad.example/eido", CAD_WEBHOOK_SECRET_FILE=good, DATA_DIR=tmp_path
    )
    assert settings.cad_webhook_secret == b"s" * 32
