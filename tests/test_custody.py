"""The custody chain nobody rewrites unseen: the deployment's key, signed checkpoints of the
chain's head (table, file, syslog; every N entries, every M minutes, from two nodes at once),
and ``evidence verify`` naming the first broken item after each kind of tampering."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import text

from config import Settings
from server.actions.checkpoints import Custody, checkpoint_line, make_checkpoint
from server.actions.custody import verify_custody
from server.actions.recordings import record_segment
from server.core.clock import FrozenClock
from server.core.media_rpc import ClosedSegment
from server.core.services import Services
from server.core.storage import FileStorage, recording_key
from server.db.audit import AuditLog, entry_hash
from server.db.engine import Database
from server.db.models import AuditCheckpoint
from server.evidence.verify_bundle import checkpoint_message, key_id_of, signature_holds
from server.security.evidence_key import EvidenceKey, load_evidence_key
from tests.sockets import start_call
from tests.staff import Client, add_account, services_of, sign_in

EVERY = 5
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def syslog_socket() -> Iterator[socket.socket]:
    """A syslog receiver of our own: a UDP socket on an ephemeral loopback port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)
    yield sock
    sock.close()


@pytest.fixture
def settings(settings: Settings, syslog_socket: socket.socket) -> Settings:
    return settings.model_copy(
        update={
            "CHECKPOINT_EVERY_ENTRIES": EVERY,
            "CHECKPOINT_SYSLOG": f"127.0.0.1:{syslog_socket.getsockname()[1]}",
        }
    )


async def _append(services: Services, count: int) -> None:
    for i in range(count):
        await services.audit.append(actor="test", action="test_entry", data={"i": i})
    await services.background.drain()


async def _rows(db: Database) -> list[AuditCheckpoint]:
    from sqlmodel import col, select

    async with db.session() as session:
        return list(
            (await session.exec(select(AuditCheckpoint).order_by(col(AuditCheckpoint.seq)))).all()
        )


def _published_key(pem: str) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem.encode())
    assert isinstance(key, Ed25519PublicKey)
    return key


# --- the key ---------------------------------------------------------------------------------


async def test_the_key_is_made_once_kept_private_and_published(
    client: Client, settings: Settings
) -> None:
    path = settings.DATA_DIR / "evidence.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    pem = await client.get("/.well-known/lifeline-evidence-key")
    assert pem.status == 200
    public = _published_key(await pem.text())
    described = await (await client.get("/.well-known/lifeline-evidence-key.json")).json()
    assert described["key_id"] == key_id_of(public) == pem.headers["X-Key-Id"]
    assert described["algorithm"] == "Ed25519"
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert described["key_id"] == hashlib.sha256(raw).hexdigest()
    # A node that finds the file uses it: the same key again, the file untouched.
    before = path.read_bytes()
    assert load_evidence_key(path).key_id == described["key_id"]
    assert path.read_bytes() == before
    # EVIDENCE_KEY_FILE: a path of its own (several nodes pointing at one).
    other = settings.DATA_DIR / "shared" / "deployment.key"
    made = load_evidence_key(other)
    assert load_evidence_key(other).key_id == made.key_id != described["key_id"]


async def test_the_admin_page_shows_the_key_id_and_pem(client: Client, clock: FrozenClock) -> None:
    await sign_in(client, await add_account(client, "ada", "admin"), clock)
    page = await client.get("/admin")
    assert page.status == 200
    html = await page.text()
    key = services_of(client).evidence_key
    assert f'data-testid="evidence-public-key" data-key-id="{key.key_id}"' in html
    assert f'<code class="key-id" data-testid="evidence-key-id">{key.key_id}</code>' in html
    assert key.public_pem.strip() in html
    assert "/.well-known/lifeline-evidence-key" in html


# --- making checkpoints ------------------------------------------------------------------------


async def test_every_n_entries_a_signed_checkpoint_in_the_table_the_file_and_syslog(
    client: Client, settings: Settings, syslog_socket: socket.socket
) -> None:
    services = services_of(client)
    await _append(services, EVERY - 1)
    assert await _rows(services.db) == []
    await _append(services, 1)
    await _append(services, EVERY)
    await _append(services, 2)
    rows = await _rows(services.db)
    assert [row.seq for row in rows] == [EVERY, 2 * EVERY]
    public = _published_key(await (await client.get("/.well-known/lifeline-evidence-key")).text())
    heads = dict(await _query(client, "SELECT seq, hash FROM audit_log"))
    for row in rows:
        assert row.head_hash == heads[row.seq]
        message = checkpoint_message(
            seq=row.seq,
            head_hash=row.head_hash,
            at=row.at.isoformat(timespec="microseconds"),
            key_id=key_id_of(public),
        )
        assert signature_holds(public, message, row.signature)
    lines = settings.checkpoint_file.read_text().splitlines()
    assert lines == [checkpoint_line(row) for row in rows]
    received = [(await asyncio.to_thread(syslog_socket.recv, 4096)).decode() for _ in rows]
    for datagram, line in zip(received, lines, strict=True):
        assert datagram.startswith("<")  # a syslog priority
        assert datagram.endswith(f"lifeline-checkpoint: {line}\x00")


async def test_the_timer_anchors_a_few_entries_every_m_minutes(
    client: Client, settings: Settings, clock: FrozenClock
) -> None:
    services = services_of(client)
    await _append(services, 2)
    assert await _rows(services.db) == []
    clock.advance(settings.CHECKPOINT_EVERY_SECS - 1)
    await services.background.drain()
    assert await _rows(services.db) == []
    clock.advance(1)
    await services.background.drain()
    assert [row.seq for row in await _rows(services.db)] == [2]
    # Nothing new: the next tick signs nothing; one entry more: the next tick signs it.
    clock.advance(settings.CHECKPOINT_EVERY_SECS)
    await services.background.drain()
    assert len(await _rows(services.db)) == 1
    await _append(services, 1)
    clock.advance(settings.CHECKPOINT_EVERY_SECS)
    await services.background.drain()
    assert [row.seq for row in await _rows(services.db)] == [2, 3]


async def test_a_node_that_stops_anchors_what_it_appended(
    client: Client, settings: Settings
) -> None:
    services = services_of(client)
    await _append(services, 2)
    await client.close()  # the node's cleanup runs
    db = Database(settings.database_url)
    try:
        assert [row.seq for row in await _rows(db)] == [2]
    finally:
        await db.close()


async def test_two_nodes_never_sign_conflicting_checkpoints(
    settings: Settings, clock: FrozenClock, tmp_path: Path
) -> None:
    """Two engines on one database (two nodes), appending and checkpointing at once."""
    key = load_evidence_key(tmp_path / "evidence.key")
    first, second = Database(settings.database_url), Database(settings.database_url)
    try:
        logs = [AuditLog(first, clock), AuditLog(second, clock)]
        nodes = [Custody(log, clock, key, tmp_path / "checkpoints.jsonl") for log in logs]

        async def work(i: int) -> None:
            await logs[i % 2].append(actor=f"node{i % 2}", action="test_entry", data={"i": i})
            clock.advance(0.001)
            await make_checkpoint(nodes[(i + 1) % 2])

        await asyncio.gather(*(work(i) for i in range(30)))
        rows = await _rows(first)
        assert rows, "no checkpoint made"
        assert [row.seq for row in rows] == sorted({row.seq for row in rows})
        lines = (tmp_path / "checkpoints.jsonl").read_text().splitlines()
        assert lines == [checkpoint_line(row) for row in rows]
        report = await verify_custody(nodes[0], FileStorage(tmp_path / "files"))
        assert report.ok, report.broken
        assert (report.entries, report.checkpoints) == (30, len(rows))
    finally:
        await first.close()
        await second.close()


# --- evidence verify ---------------------------------------------------------------------------


async def _recorded_call(client: Client, clock: FrozenClock) -> tuple[str, str]:
    """A call with one stored, hashed recording segment (the recorder's report, as the media
    node sends it), then a checkpoint over it all."""
    services = services_of(client)
    call = await start_call(client)
    data = os.urandom(4096)
    key = recording_key(call["call_id"], 1)
    await asyncio.to_thread(services.storage.put, key, data)
    await record_segment(
        services,
        ClosedSegment(
            call_id=call["call_id"],
            segment=1,
            key=key,
            path=services.storage.path(key),
            started_at=clock.now() - timedelta(seconds=5),
            ended_at=clock.now(),
            size_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            video_frames=10,
            audio_frames=10,
        ),
    )
    await _append(services, 3)
    await make_checkpoint(Custody.of(services))
    assert (await _rows(services.db))[-1].seq == await _head(client)
    return call["call_id"], key


async def _verify(client: Client) -> str:
    services = services_of(client)
    report = await verify_custody(Custody.of(services), services.storage)
    return "ok" if report.ok else str(report.broken)


async def _sql(client: Client, *statements: str) -> None:
    async with services_of(client).db.engine.begin() as conn:
        for statement in statements:
            await conn.execute(text(statement))


async def _query(client: Client, sql: str) -> list[tuple[Any, ...]]:
    async with services_of(client).db.engine.connect() as conn:
        return [tuple(row) for row in (await conn.execute(text(sql))).all()]


async def _head(client: Client) -> int:
    return int((await _query(client, "SELECT max(seq) FROM audit_log"))[0][0])


async def test_an_untouched_store_verifies_and_the_cli_says_so(
    client: Client, clock: FrozenClock, settings: Settings
) -> None:
    await _recorded_call(client, clock)
    assert await _verify(client) == "ok"
    result = _cli_verify(settings)
    assert result.returncode == 0, result.stdout + result.stderr
    head, points = await _head(client), len(await _rows(services_of(client).db))
    assert result.stdout.strip() == (
        f"audit chain intact: {head} entries, {points} checkpoints, 1 files re-hashed"
    )


async def test_entries_cut_off_the_end_are_caught_by_the_checkpoint(
    client: Client, clock: FrozenClock, settings: Settings
) -> None:
    await _recorded_call(client, clock)
    head = await _head(client)
    await _sql(client, f"DELETE FROM audit_log WHERE seq > {head - 2}")
    assert await _verify(client) == (
        f"audit entry {head - 1}: missing: entries cut off the chain's end "
        f"(the checkpoint at entry {head} signed a longer chain)"
    )
    result = _cli_verify(settings)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [f"evidence BROKEN at {await _verify(client)}"]


async def test_a_recomputed_chain_no_longer_has_the_signed_head(
    client: Client, clock: FrozenClock
) -> None:
    """Whoever can write the database edits entry 2 and recomputes every hash after it: every
    link holds, but the head the checkpoint signed is gone."""
    await _recorded_call(client, clock)
    services = services_of(client)
    async with services.db.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM audit_log ORDER BY seq"))).mappings()
        entries = [dict(row) for row in rows]
    entries[1]["actor"] = "someone-else"
    prev = entries[0]["hash"]
    for entry in entries[1:]:
        entry["prev_hash"] = prev
        at = entry["at"]
        at_text = at.isoformat(timespec="microseconds") if not isinstance(at, str) else at
        entry["hash"] = prev = entry_hash(
            seq=entry["seq"],
            at=_aware(at_text),
            actor=entry["actor"],
            action=entry["action"],
            subject=entry["subject"],
            data=entry["data"],
            prev_hash=entry["prev_hash"],
        )
    async with services.db.engine.begin() as conn:
        # Unique hashes: clear them first, then write the recomputed ones.
        await conn.execute(text("UPDATE audit_log SET hash = 'x' || seq WHERE seq >= 2"))
        for entry in entries[1:]:
            await conn.execute(
                text("UPDATE audit_log SET actor=:a, prev_hash=:p, hash=:h WHERE seq=:s"),
                {
                    "a": entry["actor"],
                    "p": entry["prev_hash"],
                    "h": entry["hash"],
                    "s": entry["seq"],
                },
            )
    assert (await services.audit.verify()).ok  # the links alone hold
    first = (await _rows(services.db))[0].seq
    assert await _verify(client) == (
        f"checkpoint at audit entry {first}: the chain there is not the one it signed "
        "(rewritten up to that entry)"
    )


def _aware(at: str) -> str:
    """The stored time as the chain hashes it (SQLite keeps it as text, without the zone)."""
    from datetime import UTC, datetime

    parsed = datetime.fromisoformat(at)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.isoformat(timespec="microseconds")


async def test_a_deleted_or_changed_checkpoint_disagrees_with_the_file(
    client: Client, clock: FrozenClock, settings: Settings
) -> None:
    await _recorded_call(client, clock)
    first = (await _rows(services_of(client).db))[0].seq
    lines = settings.checkpoint_file.read_text()
    await _sql(
        client,
        "UPDATE audit_checkpoints SET head_hash = CASE WHEN substr(head_hash, 1, 1) = 'f'"
        " THEN 'e' ELSE 'f' END || substr(head_hash, 2)",
    )
    assert await _verify(client) == (
        f"checkpoint at audit entry {first}: differs from its line in the checkpoint file"
    )
    await _sql(client, "DELETE FROM audit_checkpoints")
    assert await _verify(client) == (
        f"checkpoint file {settings.checkpoint_file} line 1 (audit entry {first}): "
        "no such checkpoint in the database (deleted there)"
    )
    settings.checkpoint_file.unlink()
    assert await _verify(client) == "ok"  # nothing left to anchor: the last check is the chain
    settings.checkpoint_file.write_text(lines)
    assert "no such checkpoint in the database" in await _verify(client)


async def test_a_checkpoint_forged_with_another_key_is_refused(
    client: Client, clock: FrozenClock, settings: Settings
) -> None:
    """Rewritten in the table and the file alike, signed by a key that is not the deployment's."""
    await _recorded_call(client, clock)
    services = services_of(client)
    forger = EvidenceKey(Ed25519PrivateKey.generate())
    row = (await _rows(services.db))[0]
    row.key_id = forger.key_id
    row.signature = forger.sign(
        checkpoint_message(
            seq=row.seq,
            head_hash=row.head_hash,
            at=row.at.isoformat(timespec="microseconds"),
            key_id=forger.key_id,
        )
    )
    await _sql(
        client,
        f"UPDATE audit_checkpoints SET key_id = '{row.key_id}', signature = '{row.signature}'",
    )
    settings.checkpoint_file.write_text(checkpoint_line(row) + "\n")
    assert await _verify(client) == (
        f"checkpoint at audit entry {row.seq}: its signature does not verify"
    )


async def test_a_changed_recording_file_is_named(
    client: Client, clock: FrozenClock, settings: Settings
) -> None:
    call_id, key = await _recorded_call(client, clock)
    path = services_of(client).storage.path(key)
    data = bytearray(path.read_bytes())
    data[100] ^= 1
    path.write_bytes(bytes(data))
    expected = (
        f"recording of call {call_id} segment 1 ({key}): "
        "the file was changed (its SHA-256 is not the recorded one)"
    )
    assert await _verify(client) == expected
    result = _cli_verify(settings)
    assert (result.returncode, result.stdout.strip()) == (1, f"evidence BROKEN at {expected}")
    # The row's hash rewritten to the new file's: the chain still holds the old one.
    digest = hashlib.sha256(bytes(data)).hexdigest()
    await _sql(client, f"UPDATE recordings SET sha256 = '{digest}'")
    assert await _verify(client) == (
        f"recording of call {call_id} segment 1 ({key}): "
        "its hash in the database is not the one the audit chain holds"
    )
    path.unlink()
    chain = json.loads(
        (
            await _query(
                client, "SELECT data FROM audit_log WHERE action = 'recording_segment_closed'"
            )
        )[0][0]
    )
    await _sql(client, f"UPDATE recordings SET sha256 = '{chain['sha256']}'")
    assert await _verify(client) == (
        f"recording of call {call_id} segment 1 ({key}): the file is missing"
    )


def _cli_verify(settings: Settings) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LIFELINE_DATABASE_URL": settings.database_url,
        "LIFELINE_DATA_DIR": str(settings.DATA_DIR),
        "LIFELINE_LOG_FORMAT": "text",
        "LIFELINE_LOG_LEVEL": "WARNING",
    }
    env.pop("LIFELINE_REDIS_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "server", "evidence", "verify"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
