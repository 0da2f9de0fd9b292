"""The export bundle: streamed over HTTP to the roles that may have it (with a reason, audited
with who, when, what, why and from where), written by ``evidence export``, and checked by its
own verifier and by ``evidence verify BUNDLE.zip``."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

from sqlalchemy import text

from config import Settings
from server.core.clock import FrozenClock
from server.evidence.verify_bundle import verify
from tests.evidence_calls import recorded_call
from tests.staff import Client, add_account, another_browser, services_of, sign_in

ROOT = Path(__file__).resolve().parent.parent
REASON = "case 2026/PR/0412: request of the district prosecutor"


async def _staff(client: Client, clock: FrozenClock, name: str, role: str) -> tuple[Client, str]:
    browser = await another_browser(client)
    csrf = await sign_in(browser, await add_account(client, name, role), clock)
    return browser, csrf


async def _export(browser: Client, call_id: str, csrf: str, body: Any) -> Any:
    return await browser.post(
        f"/api/calls/{call_id}/export", json=body, headers={"X-CSRF-Token": csrf}
    )


async def _exports(client: Client) -> list[dict[str, Any]]:
    async with services_of(client).db.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT actor, subject, data FROM audit_log WHERE action = 'evidence_exported'")
        )
        return [{"actor": r[0], "subject": r[1], **json.loads(r[2])} for r in rows.all()]


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LIFELINE_DATABASE_URL": settings.database_url,
        "LIFELINE_DATA_DIR": str(settings.DATA_DIR),
        "LIFELINE_LOG_FORMAT": "text",
        "LIFELINE_LOG_LEVEL": "WARNING",
    }
    env.pop("LIFELINE_REDIS_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "server", "evidence", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        cwd=ROOT,
    )


async def test_a_supervisor_exports_a_call_and_the_bundle_verifies(
    client: Client, clock: FrozenClock, settings: Settings, tmp_path: Path
) -> None:
    services = services_of(client)
    call_id = await recorded_call(client, services, clock, segments=3, taken_by=None)
    browser, csrf = await _staff(client, clock, "sofia", "supervisor")
    response = await _export(browser, call_id, csrf, {"reason": REASON})
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"] == "application/zip"
    assert f'filename="call-{call_id}-evidence.zip"' in response.headers["Content-Disposition"]
    data = await response.read()
    bundle = tmp_path / "bundle.zip"
    bundle.write_bytes(data)

    verdict = verify(bundle, services.evidence_key.key_id)
    assert verdict.ok, verdict.line()
    assert verdict.call_id == call_id

    with zipfile.ZipFile(io.BytesIO(data)) as zipped:
        names = zipped.namelist()
        manifest = json.loads(zipped.read("manifest.json"))
        listed = {f["name"] for f in manifest["files"]}
        assert set(names) == listed | {"manifest.json", "manifest.sig"}
        assert manifest["recordings"] == [
            "recordings/segment-0001.mkv",
            "recordings/segment-0002.mkv",
            "recordings/segment-0003.mkv",
        ]
        assert (manifest["reason"], manifest["exported_by"]) == (REASON, "sofia")
        for n in (1, 2, 3):
            stored = services.storage.path(f"recordings/{call_id}/segment-{n:04d}.mkv")
            assert zipped.read(f"recordings/segment-{n:04d}.mkv") == stored.read_bytes()
        chat = json.loads(zipped.read("chat.json"))
        assert [m["body"] for m in chat] == [f"help 0 message {n}" for n in range(3)]
        transcript = zipped.read("chat.txt").decode()
        assert "citizen: help 0 message 2" in transcript
        track = json.loads(zipped.read("location.geojson"))
        assert track["type"] == "FeatureCollection"
        assert track["features"][0]["geometry"]["type"] == "LineString"
        assert len(track["features"][0]["geometry"]["coordinates"]) == 3
        assert json.loads(zipped.read("transitions.json"))[0]["to"] == "queued"
        assert len([n for n in names if n.startswith("photos/") and n.endswith(".jpg")]) == 1
        entries = json.loads(zipped.read("audit/entries.json"))
        assert {e["subject"] for e in entries} == {f"call:{call_id}"}
        actions = [e["action"] for e in entries]
        assert actions.count("recording_segment_closed") == 3
        assert actions[-1] == "evidence_exported"
        points = json.loads(zipped.read("audit/checkpoints.json"))
        assert points and points[-1]["seq"] >= entries[-1]["seq"]
        # verify.py is the repository's verifier, byte for byte.
        verifier = ROOT / "server" / "evidence" / "verify_bundle.py"
        assert zipped.read("verify.py") == verifier.read_bytes()
        assert zipped.read("public_key.pem").decode() == services.evidence_key.public_pem

    # The export is in the chain: who, when, what, why, from where.
    [exported] = await _exports(client)
    assert exported["actor"] == "sofia"
    assert exported["subject"] == f"call:{call_id}"
    assert exported["reason"] == REASON
    assert exported["remote"] == "127.0.0.1"
    assert (exported["segments"], exported["photos"]) == (3, 1)

    # The server's own check of a bundle, against the deployment's key.
    checked = _cli(settings, "verify", str(bundle))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.splitlines()[0] == (
        f"bundle intact: call {call_id}, {len(listed)} files, "
        f"signed by key {services.evidence_key.key_id}"
    )
    # ... and of the whole store, with the export in it.
    store = _cli(settings, "verify")
    assert store.returncode == 0, store.stdout + store.stderr
    assert "4 files re-hashed" in store.stdout
    await browser.close()


async def test_who_may_export_what_and_the_refusals(client: Client, clock: FrozenClock) -> None:
    services = services_of(client)
    police = await recorded_call(client, services, clock, seed=1, segments=1)
    hidden = await recorded_call(
        client, services, clock, channel="internal_security", seed=2, segments=1
    )
    operator, operator_csrf = await _staff(client, clock, "olga", "operator")
    admin, admin_csrf = await _staff(client, clock, "ada", "admin")
    officer, officer_csrf = await _staff(client, clock, "igor", "internal_security")

    async def status(browser: Client, call_id: str, csrf: str, body: Any) -> tuple[int, str]:
        response = await _export(browser, call_id, csrf, body)
        if response.status == 200:
            await response.read()
            return 200, ""
        return response.status, (await response.json())["error"]["code"]

    assert await status(operator, police, operator_csrf, {"reason": REASON}) == (
        403,
        "role_forbidden",
    )
    assert await status(operator, hidden, operator_csrf, {"reason": REASON}) == (
        403,
        "role_forbidden",
    )
    assert await status(admin, hidden, admin_csrf, {"reason": REASON}) == (404, "call_not_found")
    assert await status(officer, police, officer_csrf, {"reason": REASON}) == (
        404,
        "call_not_found",
    )
    assert await status(admin, police, admin_csrf, {}) == (422, "invalid")
    assert await status(admin, police, admin_csrf, {"reason": "   "}) == (400, "reason_required")
    assert await status(admin, police, admin_csrf, {"reason": "x" * 501}) == (
        422,
        "reason_too_long",
    )
    assert await status(admin, police, admin_csrf, {"reason": 7}) == (422, "invalid")
    assert await status(admin, police, "not-the-token", {"reason": REASON}) == (
        403,
        "csrf_failed",
    )
    bad_json = await admin.post(
        f"/api/calls/{police}/export",
        data=b"{",
        headers={"X-CSRF-Token": admin_csrf, "Content-Type": "application/json"},
    )
    assert (bad_json.status, (await bad_json.json())["error"]["code"]) == (400, "malformed_json")
    assert await _exports(client) == []  # nothing refused is in the chain as an export

    assert await status(admin, police, admin_csrf, {"reason": REASON}) == (200, "")
    assert await status(officer, hidden, officer_csrf, {"reason": REASON}) == (200, "")
    exports = await _exports(client)
    assert [(e["actor"], e["subject"]) for e in exports] == [
        ("ada", f"call:{police}"),
        ("igor", f"call:{hidden}"),
    ]
    # A misconduct caller's channel: the exporter's address only as its keyed hash.
    assert "remote" not in exports[1] and len(exports[1]["remote_hash"]) == 64
    for browser in (operator, admin, officer):
        await browser.close()


async def test_the_command_line_exports_a_call(
    client: Client, clock: FrozenClock, settings: Settings, tmp_path: Path
) -> None:
    services = services_of(client)
    call_id = await recorded_call(client, services, clock, seed=3, segments=2)
    out = tmp_path / "out.zip"
    done = _cli(settings, "export", call_id, str(out), "--reason", "court order 17/2026")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"bundle written to {out}: call {call_id}, ")
    assert verify(out, services.evidence_key.key_id).ok
    [exported] = await _exports(client)
    assert (exported["actor"], exported["reason"], exported["from"]) == (
        "cli",
        "court order 17/2026",
        "command_line",
    )
    again = _cli(settings, "export", call_id, str(out))
    assert again.returncode == 2 and "exists" in again.stderr
    missing = _cli(settings, "export", "no-such-call", str(tmp_path / "other.zip"))
    assert (missing.returncode, missing.stderr.strip()) == (1, "error: No such call")
    assert not (tmp_path / "other.zip").exists()
