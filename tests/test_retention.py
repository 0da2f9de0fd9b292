"""Retention, legal holds and audited deletion (server/actions/retention.py, legal_holds.py).

Real calls on a real server: one with real media (a recording segment and a snapshot from an
aiortc peer, a photo uploaded over HTTP), text calls with photos, threat reports with photos.
The app's FrozenClock is moved past the retention windows and the node's own daily purge
(a background timer on that clock) deletes what expired: the files go, the rows stay marked
purged with their hashes, every deletion is an ``evidence_purged`` entry in the chain, a call
under a legal hold keeps everything, and ``python -m server evidence verify`` still passes.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from config import Settings
from server.actions.recordings import record_segment
from server.actions.retention import do_purge
from server.core.clock import FrozenClock
from server.core.media_rpc import ClosedSegment, Recovery
from server.db.locks import PURGE_LOCK_ID, exclusive
from server.db.models import (
    AuditEntry,
    Call,
    CallPhoto,
    Recording,
    ReportPhoto,
    Snapshot,
)
from server.http.keys import SERVICES_KEY
from tests.media_peers import MediaPeer, citizen_peer, subscriber_peer, wait_until
from tests.sockets import answer_via, citizen, console, start_call
from tests.staff import Client, add_account, another_browser, sign_in
from tests.threats import TEST_AREA, created, jpeg_with_gps, post_report

DAY_SECS = 86_400
POLICE_DAYS = 30
IS_DAYS = 90
UNCONFIRMED_DAYS = 7
MEDIA_TIMEOUT_SECS = 20.0
IS = "internal_security"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "RETENTION_POLICE_DAYS": POLICE_DAYS,
            "RETENTION_INTERNAL_SECURITY_DAYS": IS_DAYS,
            "RETENTION_UNCONFIRMED_REPORT_DAYS": UNCONFIRMED_DAYS,
            "REPORT_AREA": TEST_AREA,
            "REPORT_RATE_LIMIT": "1000/day",
        }
    )


# -- helpers -----------------------------------------------------------------------------------


async def _photo(client: Client, call: dict[str, Any], color: str = "red") -> None:
    sent = await client.post(
        f"/api/calls/{call['call_id']}/photos",
        data={"photo": io.BytesIO(jpeg_with_gps((96, 64), color))},
        headers={"X-Call-Token": call["token"]},
    )
    assert sent.status == 201, await sent.text()


async def _ended_text_call(client: Client, channel: str = "police") -> str:
    """A text call with one photo, which the caller then ends (abandoned, never answered)."""
    call = await start_call(client, channel=channel, mode="text")
    await _photo(client, call, "blue")
    async with citizen(client, call["token"]) as phone:
        ended = await phone.call("end_call", {})
        assert ended["ok"], ended
    return str(call["call_id"])


async def _recorded_call(client: Client, clock: FrozenClock, operator: Client) -> str:
    """A real video call: answered, a snapshot taken, a photo sent, ended; its recording's
    segment closes with the call."""
    call = await start_call(client)
    call_id = str(call["call_id"])
    peers: list[MediaPeer] = []
    try:
        async with citizen(client, call["token"]) as phone, console(operator) as desk:
            peers.append(await citizen_peer(answer_via(phone)))
            assert (await desk.call("accept", {"call_id": call_id}))["ok"]
            clock.advance(1.0)  # the keyframe limit runs on this clock
            peers.append(await subscriber_peer(answer_via(desk, call_id=call_id), talk=True))
            await wait_until(
                lambda: peers[1].received.video_frames > 30, MEDIA_TIMEOUT_SECS, "video"
            )
            snap = await desk.call("snapshot", {"call_id": call_id})
            assert snap["ok"], snap
            await _photo(client, call)
            ended = await desk.call(
                "end_call", {"call_id": call_id, "disposition": "dispatched", "note": ""}
            )
            assert ended["state"] == "ended"
    finally:
        for peer in peers:
            await peer.close()
    assert client.app is not None
    services = client.app[SERVICES_KEY]

    async def segment_stored() -> None:
        while True:
            async with services.db.session() as session:
                if (
                    await session.exec(select(Recording).where(Recording.call_id == call_id))
                ).first():
                    return
            await asyncio.sleep(0.05)

    await asyncio.wait_for(segment_stored(), MEDIA_TIMEOUT_SECS)
    return call_id


async def _report(client: Client, officer: Client, csrf: str, verdict: str | None) -> int:
    body = await created(await post_report(client, [jpeg_with_gps()]))
    report_id = int(body["id"])
    for status in ("verifying", verdict) if verdict else ():
        changed = await officer.post(
            f"/api/staff/reports/{report_id}/status",
            json={"status": status},
            headers={"X-CSRF-Token": csrf},
        )
        assert changed.status == 200, await changed.text()
    return report_id


async def _hold(
    officer: Client, csrf: str, call_id: str, reason: str, *, lift: bool = False
) -> Any:
    method = officer.delete if lift else officer.put
    return await method(
        f"/api/calls/{call_id}/legal-hold", json={"reason": reason}, headers={"X-CSRF-Token": csrf}
    )


async def _rows(client: Client, table: Any, **where: Any) -> list[Any]:
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        query = select(table)
        for name, value in where.items():
            query = query.where(col(getattr(table, name)) == value)
        return list((await session.exec(query)).all())


async def _purged_entries(client: Client) -> list[AuditEntry]:
    return [e for e in await _rows(client, AuditEntry, action="evidence_purged")]


def _exists(settings: Settings, key: str) -> bool:
    return (settings.storage_dir / key).is_file()


async def _cli_verify(settings: Settings) -> tuple[int, str]:
    """``python -m server evidence verify`` on the test's database, as an operator runs it."""
    env = {
        **os.environ,
        "LIFELINE_DATABASE_URL": settings.database_url,
        "LIFELINE_DATA_DIR": str(settings.DATA_DIR),
        "LIFELINE_STORAGE_DIR": str(settings.storage_dir),
        "LIFELINE_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(REPO),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        "evidence",
        "verify",
        env=env,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode()


async def _run_the_nodes_purge(client: Client, clock: FrozenClock, days: float) -> None:
    """Move the app's clock on; its purge timer falls due and the purge runs in the
    background; wait for it to finish."""
    assert client.app is not None
    background = client.app[SERVICES_KEY].background
    assert background.scheduled("retention:purge") == 1
    clock.advance(days * DAY_SECS)
    await background.drain()
    assert background.scheduled("retention:purge") == 1  # and the next one is set


# -- the purge ---------------------------------------------------------------------------------


async def test_expired_evidence_is_deleted_held_kept_and_every_deletion_is_chained(
    client: Client, clock: FrozenClock, settings: Settings
) -> None:
    operator = await another_browser(client)
    supervisor = await another_browser(client)
    try:
        await sign_in(operator, await add_account(client, "olga", "operator"), clock)
        sup = await add_account(client, "sam", "supervisor")
        sup_csrf = await sign_in(supervisor, sup, clock)
        recorded = await _recorded_call(client, clock, operator)
        held = await _ended_text_call(client)
        hidden = await _ended_text_call(client, IS)
        op_csrf = await sign_in(operator, await add_account(client, "oleg", "operator"), clock)
        unconfirmed = await _report(client, operator, op_csrf, "not_confirmed")
        confirmed = await _report(client, operator, op_csrf, "confirmed")
        reason = "Case 2026/114/K: the prosecutor asked to keep it"
        hold = await _hold(supervisor, sup_csrf, held, reason)
        assert hold.status == 200, await hold.text()
        assert (await hold.json())["held"] is True

        recording = (await _rows(client, Recording, call_id=recorded))[0]
        snapshot = (await _rows(client, Snapshot, call_id=recorded))[0]
        photos = {
            c: (await _rows(client, CallPhoto, call_id=c))[0] for c in (recorded, held, hidden)
        }
        report_photos = {
            r: (await _rows(client, ReportPhoto, report_id=r))[0] for r in (unconfirmed, confirmed)
        }
        for key in (recording.path, snapshot.path, *(p.path for p in photos.values())):
            assert _exists(settings, key)
        entries_before = len(await _rows(client, AuditEntry))

        # A week and a day: only the unconfirmed report's photos have expired.
        await _run_the_nodes_purge(client, clock, UNCONFIRMED_DAYS + 1)
        gone = report_photos[unconfirmed]
        assert not _exists(settings, gone.original_path)
        assert not _exists(settings, gone.public_path)
        assert _exists(settings, report_photos[confirmed].original_path)
        assert _exists(settings, recording.path)
        [entry] = await _purged_entries(client)
        data = json.loads(entry.data)
        assert entry.subject == f"report:{unconfirmed}"
        assert data["kind"] == "report_photo"
        assert data["sha256"] == gone.sha256 and data["public_sha256"] == gone.public_sha256
        assert data["reason"] == "retention" and data["retention_days"] == UNCONFIRMED_DAYS
        public = await client.get(f"/api/reports/{unconfirmed}/photos/1")
        assert public.status == 410, await public.text()
        assert (await public.json())["error"]["code"] == "evidence_purged"

        # Past the police window: the police call's recording, snapshot and photo go; the
        # held call and the internal-security call (90 days) keep theirs.
        await _run_the_nodes_purge(client, clock, POLICE_DAYS)
        for key in (recording.path, snapshot.path, photos[recorded].path):
            assert not _exists(settings, key), key
        assert _exists(settings, photos[held].path)
        assert _exists(settings, photos[hidden].path)
        [recording_now] = await _rows(client, Recording, call_id=recorded)
        assert recording_now.purged_at is not None
        assert recording_now.sha256 == recording.sha256  # the row and its hash stay
        assert (await _rows(client, CallPhoto, call_id=held))[0].purged_at is None
        assert (await _rows(client, Call, id=recorded))[0].disposition == "dispatched"
        # The confirmed report is kept as long as police calls: 38 days is past 30.
        assert not _exists(settings, report_photos[confirmed].original_path)

        chained = {
            (e.subject, json.loads(e.data)["kind"]): json.loads(e.data)
            for e in await _purged_entries(client)
        }
        assert set(chained) == {
            (f"report:{unconfirmed}", "report_photo"),
            (f"report:{confirmed}", "report_photo"),
            (f"call:{recorded}", "recording"),
            (f"call:{recorded}", "snapshot"),
            (f"call:{recorded}", "call_photo"),
        }
        assert chained[(f"call:{recorded}", "recording")]["sha256"] == recording.sha256
        assert chained[(f"call:{recorded}", "recording")]["segment"] == recording.segment
        assert chained[(f"call:{recorded}", "snapshot")]["sha256"] == snapshot.sha256
        assert chained[(f"call:{recorded}", "call_photo")]["sha256"] == photos[recorded].sha256
        assert all(d["reason"] == "retention" for d in chained.values())
        assert len(await _rows(client, AuditEntry)) == entries_before + 5

        # Staff asking for a purged file are told it was deleted, not that storage is broken.
        viewer = await another_browser(client)
        try:
            viewer_csrf = await sign_in(viewer, sup, clock)
            # Played as the call's record plays it: within a view opened with a reason.
            view = await viewer.post(
                f"/api/archive/calls/{recorded}/views",
                json={"reason": "Case 2026/114"},
                headers={"X-CSRF-Token": viewer_csrf},
            )
            assert view.status == 201, await view.text()
            purged = await viewer.get(
                f"/api/calls/{recorded}/recordings/1",
                params={"view": (await view.json())["view"]["token"]},
            )
            assert purged.status == 410, await purged.text()
            assert (await purged.json())["error"]["code"] == "evidence_purged"

            # The hold lifted (by a new session: the old one has long expired), the held
            # call's photo goes at the next daily purge.
            lifted = await _hold(viewer, viewer_csrf, held, "Case closed", lift=True)
            assert lifted.status == 200, await lifted.text()
            assert (await lifted.json())["held"] is False
        finally:
            await viewer.close()
        await _run_the_nodes_purge(client, clock, 1)
        assert not _exists(settings, photos[held].path)
        assert _exists(settings, photos[hidden].path)

        # Past the internal-security window too.
        await _run_the_nodes_purge(client, clock, IS_DAYS)
        assert not _exists(settings, photos[hidden].path)
        kinds = [(e.subject, json.loads(e.data)["kind"]) for e in await _purged_entries(client)]
        assert kinds.count((f"call:{held}", "call_photo")) == 1
        assert kinds.count((f"call:{hidden}", "call_photo")) == 1
        assert len(kinds) == 7  # each deletion once, however many purges ran

        assert client.app is not None
        chain = await client.app[SERVICES_KEY].audit.verify()
        assert chain.ok, chain
        code, out = await _cli_verify(settings)
        assert code == 0, out
        assert "intact" in out
    finally:
        for browser in (operator, supervisor):
            await browser.close()


# -- legal holds -------------------------------------------------------------------------------


async def test_a_legal_hold_is_set_and_lifted_only_by_its_roles_with_a_reason(
    client: Client, clock: FrozenClock
) -> None:
    police = await _ended_text_call(client)
    hidden = await _ended_text_call(client, IS)
    browsers: dict[str, tuple[Client, str]] = {}
    try:
        for name, role in (
            ("olga", "operator"),
            ("sam", "supervisor"),
            ("ada", "admin"),
            ("ivan", IS),
        ):
            browser = await another_browser(client)
            browsers[role] = (
                browser,
                await sign_in(browser, await add_account(client, name, role), clock),
            )
        operator, op_csrf = browsers["operator"]
        supervisor, sup_csrf = browsers["supervisor"]
        admin, admin_csrf = browsers["admin"]
        unit, unit_csrf = browsers[IS]

        async def refused(response: Any, status: int, code: str) -> None:
            body = await response.json()
            assert response.status == status, body
            assert body["error"]["code"] == code, body

        # Operators hold nothing; no other role reaches the misconduct channel's calls.
        await refused(await _hold(operator, op_csrf, police, "mine"), 403, "role_forbidden")
        await refused(await operator.get(f"/api/calls/{police}/legal-hold"), 403, "role_forbidden")
        await refused(await _hold(supervisor, sup_csrf, hidden, "look"), 404, "call_not_found")
        await refused(await _hold(admin, admin_csrf, hidden, "look"), 404, "call_not_found")
        await refused(
            await supervisor.get(f"/api/calls/{hidden}/legal-hold"), 404, "call_not_found"
        )
        await refused(await _hold(unit, unit_csrf, police, "look"), 404, "call_not_found")
        await refused(await _hold(supervisor, sup_csrf, "no-such-call", "x"), 404, "call_not_found")
        # A reason is required, and bounded; the body is JSON with only that field; CSRF.
        await refused(await _hold(supervisor, sup_csrf, police, "   "), 400, "reason_required")
        await refused(await _hold(supervisor, sup_csrf, police, "x" * 501), 422, "reason_too_long")
        bad = await supervisor.put(
            f"/api/calls/{police}/legal-hold",
            json={"reason": "ok", "until": "never"},
            headers={"X-CSRF-Token": sup_csrf},
        )
        await refused(bad, 422, "invalid")
        no_csrf = await supervisor.put(f"/api/calls/{police}/legal-hold", json={"reason": "ok"})
        await refused(no_csrf, 403, "csrf_failed")
        assert (await (await supervisor.get(f"/api/calls/{police}/legal-hold")).json())[
            "held"
        ] is False

        set_ = await _hold(supervisor, sup_csrf, police, "  Case 77/2026  ")
        assert set_.status == 200
        shown = await (await admin.get(f"/api/calls/{police}/legal-hold")).json()
        assert shown["held"] is True and shown["by"] == "sam" and shown["reason"] == "Case 77/2026"
        await refused(await _hold(admin, admin_csrf, police, "again"), 409, "already_held")
        lifted = await _hold(admin, admin_csrf, police, "Court released it", lift=True)
        assert lifted.status == 200, await lifted.text()
        await refused(await _hold(admin, admin_csrf, police, "again", lift=True), 409, "not_held")
        assert (await _hold(unit, unit_csrf, hidden, "Complaint 3/2026")).status == 200

        entries = await _rows(client, AuditEntry)
        holds = [
            (e.actor, e.action, e.subject, json.loads(e.data)["reason"])
            for e in entries
            if e.action.startswith("legal_hold")
        ]
        assert holds == [
            ("sam", "legal_hold_set", f"call:{police}", "Case 77/2026"),
            ("ada", "legal_hold_lifted", f"call:{police}", "Court released it"),
            ("ivan", "legal_hold_set", f"call:{hidden}", "Complaint 3/2026"),
        ]
        [call] = await _rows(client, Call, id=hidden)
        assert call.held_by == "ivan" and call.held_at == clock.now()
    finally:
        for browser, _csrf in browsers.values():
            await browser.close()


# -- two purgers, a purge cut short ------------------------------------------------------------


async def test_two_purgers_at_once_delete_each_item_once_and_a_live_call_is_kept(
    client: Client, clock: FrozenClock, settings: Settings
) -> None:
    """The node's purge and `evidence purge` (or two nodes) at the same moment: the lock lets
    one do the work in scale-out, and on either database the in-transaction checks mean no
    item is deleted, or entered in the chain, twice."""
    ended = [await _ended_text_call(client) for _ in range(4)]
    live = await start_call(client, mode="text")
    async with citizen(client, live["token"]):  # the caller on the line all the while
        await _photo(client, live)
        assert client.app is not None
        services = client.app[SERVICES_KEY]
        clock.advance((POLICE_DAYS + 1) * DAY_SECS)
        await services.background.drain()  # the node's own purge, due meanwhile, has run
        reports = await asyncio.gather(do_purge(services), do_purge(services), do_purge(services))
        kinds = [(e.subject, json.loads(e.data)["kind"]) for e in await _purged_entries(client)]
        assert sorted(kinds) == sorted((f"call:{c}", "call_photo") for c in ended)
        assert all(not report.purged for report in reports)  # the node's purge had done it all
        [kept] = await _rows(client, CallPhoto, call_id=live["call_id"])
        assert kept.purged_at is None and _exists(settings, kept.path)

        # Now with work for all: three more calls expire, and the node's next daily purge falls
        # due at the same moment as three others start.
        more = [await _ended_text_call(client) for _ in range(3)]
        clock.advance((POLICE_DAYS + 1) * DAY_SECS)
        reports = await asyncio.gather(do_purge(services), do_purge(services), do_purge(services))
        await services.background.drain()
        done = [item.subject for report in reports for item in report.purged]
        assert len(done) == len(set(done)) and set(done) <= {f"call:{c}" for c in more}
        kinds = [(e.subject, json.loads(e.data)["kind"]) for e in await _purged_entries(client)]
        assert len(kinds) == len(set(kinds)) == 7

        # While one node purges (holds the lock), the others' purges in scale-out do nothing:
        # neither this one nor the node's own daily one, due meanwhile.
        last = await _ended_text_call(client)
        async with exclusive(services.db, PURGE_LOCK_ID) as mine:
            assert mine
            clock.advance((POLICE_DAYS + 1) * DAY_SECS)
            blocked = await do_purge(services)
            await services.background.drain()
            [photo] = await _rows(client, CallPhoto, call_id=last)
        if services.db.is_postgres:
            assert not blocked.ran and photo.purged_at is None
            assert [item.subject for item in (await do_purge(services)).purged] == [f"call:{last}"]
        else:  # one node: the lock is always its own, the row's check keeps it to one deletion
            assert blocked.ran and photo.purged_at is not None
        assert [e.subject for e in await _purged_entries(client)].count(f"call:{last}") == 1
        assert (await services.audit.verify()).ok


async def test_a_file_left_behind_by_a_purge_cut_short_is_removed_by_the_next(
    client: Client, clock: FrozenClock, settings: Settings
) -> None:
    """The row is marked and chained first, the file removed after: a node that dies in
    between leaves a file the row calls purged, which the next purge removes."""
    call_id = await _ended_text_call(client)
    [photo] = await _rows(client, CallPhoto, call_id=call_id)
    data = (settings.storage_dir / photo.path).read_bytes()
    assert client.app is not None
    services = client.app[SERVICES_KEY]
    clock.advance((POLICE_DAYS + 1) * DAY_SECS)
    await services.background.drain()
    assert not _exists(settings, photo.path)
    # As if the node had died after its commit: the file is still there.
    (settings.storage_dir / photo.path).write_bytes(data)
    report = await do_purge(services)
    assert report.purged == [] and report.files_deleted == 1
    assert not _exists(settings, photo.path)
    assert len(await _purged_entries(client)) == 1


async def test_a_recovered_segments_playable_copy_goes_with_it(
    client: Client, clock: FrozenClock, settings: Settings
) -> None:
    """A segment recovered after a crash has a playable copy beside it (media/recovery.py):
    retention removes both files, and the chain entry names both hashes."""
    assert client.app is not None
    services = client.app[SERVICES_KEY]
    call_id = await _ended_text_call(client)
    files = {}
    for name, data in (("segment-0001.mkv", b"as the writer left it"), ("copy", b"remuxed")):
        key = f"recordings/{call_id}/" + (
            name if name.endswith(".mkv") else "segment-0001.playable.mkv"
        )
        await asyncio.to_thread(services.storage.put, key, data)
        files[key] = hashlib.sha256(data).hexdigest()
    (original, original_sha), (copy, copy_sha) = files.items()
    now = services.clock.now()
    segment = ClosedSegment(
        call_id=call_id,
        segment=1,
        key=original,
        path=services.storage.path(original),
        started_at=now,
        ended_at=now,
        size_bytes=21,
        sha256=original_sha,
        video_frames=0,
        audio_frames=0,
        recovered=Recovery(
            writer="dead.m1",
            recovered_by="node.m1",
            playable_key=copy,
            playable_sha256=copy_sha,
            playable_size_bytes=7,
        ),
    )
    assert await record_segment(services, segment)
    clock.advance((POLICE_DAYS + 1) * DAY_SECS)
    await services.background.drain()
    assert not _exists(settings, original) and not _exists(settings, copy)
    [entry] = [
        json.loads(e.data)
        for e in await _purged_entries(client)
        if json.loads(e.data)["kind"] == "recording"
    ]
    assert (entry["sha256"], entry["playable_sha256"]) == (original_sha, copy_sha)
    # A purge cut short after its commit leaves the copy: the next one removes it.
    await asyncio.to_thread(services.storage.put, copy, b"remuxed")
    report = await do_purge(services)
    assert report.files_deleted == 1 and not _exists(settings, copy)
    assert (await services.audit.verify()).ok
