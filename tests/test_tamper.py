"""The tamper suite (issue 12, acceptance item 2): over a thousand seeded random mutations of
export bundles, of audit rows and checkpoints, and of stored files, each one detected and named
by the verifier; and no false alarm on a hundred clean bundles or on the untouched store.

Bundles are real exports (``plan_export`` + ``write_bundle``, as HTTP and the CLI make them) of
calls made through the actions a live call runs, with small files, so the suite stays fast.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import stat
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from sqlmodel import col, select

from config import Settings
from server.actions.checkpoints import Custody, make_checkpoint
from server.actions.custody import verify_custody
from server.actions.evidence_export import check_call_for_export, plan_export, write_bundle
from server.core.clock import FrozenClock
from server.core.services import Services
from server.db.models import AuditCheckpoint, AuditEntry
from server.evidence.verify_bundle import MANIFEST, PUBLIC_KEY, SIGNATURE, Verdict, verify
from server.security.evidence_key import EvidenceKey
from tests.evidence_calls import recorded_call
from tests.staff import Client, add_account, services_of

SEED = 20261202
BUNDLE_NAME = "bundle.zip"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Checkpoints often, so that a cut or an edit always has one after it.
    return settings.model_copy(update={"CHECKPOINT_EVERY_ENTRIES": 5})


async def _export(services: Services, call_id: str, reason: str) -> bytes:
    custody = Custody.of(services)
    call = await check_call_for_export(custody, call_id, "supervisor")
    plan = await plan_export(
        custody,
        services.storage,
        services.pseudonyms,
        call,
        actor="sofia",
        role="supervisor",
        reason=reason,
        remote="127.0.0.1",
    )
    sink = io.BytesIO()
    write_bundle(plan, services.storage, sink)
    return sink.getvalue()


# --- rewriting a zip -----------------------------------------------------------------------


def _members(data: bytes) -> list[tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        return [(info, bundle.read(info)) for info in bundle.infolist()]


def _rezip(members: list[tuple[zipfile.ZipInfo, bytes]]) -> bytes:
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a duplicate name, on purpose
        with zipfile.ZipFile(out, "w") as bundle:
            for info, content in members:
                bundle.writestr(info, content)
    return out.getvalue()


def _replace(
    members: list[tuple[zipfile.ZipInfo, bytes]], name: str, content: bytes
) -> list[tuple[zipfile.ZipInfo, bytes]]:
    return [(info, content if info.filename == name else data) for info, data in members]


def _listed(members: list[tuple[zipfile.ZipInfo, bytes]]) -> list[str]:
    manifest = json.loads(dict((i.filename, d) for i, d in members)[MANIFEST])
    return [f["name"] for f in manifest["files"]]


def _resign(
    members: list[tuple[zipfile.ZipInfo, bytes]], key: EvidenceKey, *, swap_key: bool
) -> list[tuple[zipfile.ZipInfo, bytes]]:
    contents = dict((i.filename, d) for i, d in members)
    manifest = json.loads(contents[MANIFEST])
    if swap_key:
        manifest["key_id"] = key.key_id
        pem = key.public_pem.encode()
        for entry in manifest["files"]:
            if entry["name"] == PUBLIC_KEY:
                entry["sha256"], entry["size"] = hashlib.sha256(pem).hexdigest(), len(pem)
        members = _replace(members, PUBLIC_KEY, pem)
    raw = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
    members = _replace(members, MANIFEST, raw)
    return _replace(members, SIGNATURE, (key.sign(raw) + "\n").encode())


def _flip(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return b"\x00"
    at = rng.randrange(len(data))
    return data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1 :]


# Each mutation: (original zip, rng) -> (tampered zip, the item the verifier must name).
Mutation = Callable[[bytes, random.Random], tuple[bytes, str]]
BAD_NAMES = [
    "../evil.txt",
    "/etc/passwd",
    "recordings/../../escape.mkv",
    "C:\\Windows\\evil.txt",
    "photos\\evil.jpg",
    "./manifest.json",
    "recordings//segment-0001.mkv",
    "",
]


def _changed_byte(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    members = _members(data)
    info, content = rng.choice(members)
    name = info.filename
    members = _replace(members, name, _flip(content, rng))
    expected = {MANIFEST: SIGNATURE}.get(name, name)
    return _rezip(members), expected


def _raw_byte_in_a_member(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """A byte of the zip itself, inside one member's stored bytes (its CRC no longer holds)."""
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        infos = [i for i in bundle.infolist() if i.compress_size > 0]
    info = rng.choice(infos)
    name_length = int.from_bytes(data[info.header_offset + 26 : info.header_offset + 28], "little")
    extra_length = int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_length + extra_length
    at = start + rng.randrange(info.compress_size)
    tampered = data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1 :]
    # A flip in the manifest's bytes shows first as the signature that no longer matches them,
    # unless the member's own CRC catches it when it is read: either names the manifest's pair.
    return tampered, info.filename


def _missing_file(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    members = _members(data)
    info, _ = rng.choice(members)
    return _rezip([(i, d) for i, d in members if i.filename != info.filename]), info.filename


def _swapped_segments(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    members = _members(data)
    segments = [n for n in _listed(members) if n.startswith("recordings/segment-")]
    first, second = sorted(rng.sample(segments, 2))
    contents = dict((i.filename, d) for i, d in members)
    members = _replace(_replace(members, first, contents[second]), second, contents[first])
    return _rezip(members), first


def _random_signature(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    forged = base64.b64encode(rng.randbytes(64)) + b"\n"
    return _rezip(_replace(_members(data), SIGNATURE, forged)), SIGNATURE


def _signed_by_another_key(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """The manifest changed and signed again by a forger's key, the bundle's key kept."""
    members = _members(data)
    contents = dict((i.filename, d) for i, d in members)
    manifest = json.loads(contents[MANIFEST])
    manifest["reason"] = "forged " + str(rng.random())
    raw = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
    forger = EvidenceKey(Ed25519PrivateKey.generate())
    members = _replace(_replace(members, MANIFEST, raw), SIGNATURE, forger.sign(raw).encode())
    return _rezip(members), SIGNATURE


def _key_swapped(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Re-signed whole by a forger who also put their own public key in: only the deployment's
    published key id tells it apart."""
    forger = EvidenceKey(Ed25519PrivateKey.generate())
    return _rezip(_resign(_members(data), forger, swap_key=True)), PUBLIC_KEY


def _truncated(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    return data[: rng.randrange(len(data) - 1)], BUNDLE_NAME


def _traversal_name(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    name = rng.choice(BAD_NAMES)
    members = _members(data)
    members.insert(rng.randrange(len(members) + 1), (zipfile.ZipInfo(name), b"x"))
    return _rezip(members), name or "(empty name)"


def _symlink(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    link = zipfile.ZipInfo(f"recordings/link-{rng.randrange(100)}.mkv")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    members = _members(data)
    members.insert(rng.randrange(len(members) + 1), (link, b"/etc/shadow"))
    return _rezip(members), link.filename


def _duplicate_name(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    members = _members(data)
    info, content = rng.choice(members)
    copy = zipfile.ZipInfo(rng.choice([info.filename, info.filename.upper()]))
    members.append((copy, _flip(content, rng)))
    return _rezip(members), copy.filename


def _added_file(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    name = rng.choice(["notes.txt", "recordings/segment-9999.mkv", "photos/extra.jpg"])
    members = _members(data)
    members.append((zipfile.ZipInfo(name), rng.randbytes(50)))
    return _rezip(members), name


MUTATIONS: list[tuple[str, Mutation, int]] = [
    ("changed byte of a file", _changed_byte, 220),
    ("changed byte of the zip", _raw_byte_in_a_member, 120),
    ("missing file", _missing_file, 80),
    ("swapped segments", _swapped_segments, 40),
    ("forged signature (random)", _random_signature, 20),
    ("forged signature (another key)", _signed_by_another_key, 20),
    ("forged signature (key swapped)", _key_swapped, 20),
    ("truncated zip", _truncated, 60),
    ("path-traversal name", _traversal_name, 40),
    ("symbolic link", _symlink, 10),
    ("duplicate name", _duplicate_name, 20),
    ("added file", _added_file, 20),
]


def _judge(tmp_path: Path, data: bytes, key_id: str) -> Verdict:
    path = tmp_path / BUNDLE_NAME
    path.write_bytes(data)
    return verify(path, key_id)


async def test_a_thousand_tampered_bundles_are_refused_and_clean_ones_pass(
    client: Client, clock: FrozenClock, tmp_path: Path
) -> None:
    services = services_of(client)
    key_id = services.evidence_key.key_id
    calls = [
        await recorded_call(client, services, clock, seed=seed, segments=2 + seed % 2)
        for seed in range(4)
    ]
    # 100 clean bundles, each a real export (each adds its entry and checkpoint): no false alarm.
    clean = [await _export(services, calls[n % 4], f"case {n}") for n in range(100)]
    assert len({hashlib.sha256(b).digest() for b in clean}) == 100
    for data in clean:
        verdict = _judge(tmp_path, data, key_id)
        assert verdict.ok, verdict.line()

    rng = random.Random(SEED)
    tried: dict[str, int] = {}
    for label, mutate, count in MUTATIONS:
        for _ in range(count):
            original = rng.choice(clean)
            tampered, expected = mutate(original, rng)
            assert tampered != original
            verdict = _judge(tmp_path, tampered, key_id)
            assert not verdict.ok, f"{label}: not detected"
            if label == "changed byte of the zip" and expected == MANIFEST:
                assert verdict.item in (MANIFEST, SIGNATURE), (label, verdict.line())
            else:
                assert verdict.item == expected, (label, expected, verdict.line())
            tried[label] = tried.get(label, 0) + 1
    assert sum(tried.values()) >= 650, tried
    # Unpinned, the swapped key still leaves the checkpoints signed by the deployment's key.
    forged, _ = _key_swapped(clean[0], rng)
    path = tmp_path / BUNDLE_NAME
    path.write_bytes(forged)
    unpinned = verify(path)
    assert not unpinned.ok and unpinned.item.startswith("audit/checkpoints.json"), unpinned


# --- the store ------------------------------------------------------------------------------

Rows = list[dict[str, Any]]


async def _table(services: Services, name: str) -> Rows:
    async with services.db.session() as session:
        if name == "audit_log":
            entries = await session.exec(select(AuditEntry).order_by(col(AuditEntry.seq)))
            return [row.model_dump() for row in entries.all()]
        points = await session.exec(select(AuditCheckpoint).order_by(col(AuditCheckpoint.seq)))
        return [row.model_dump() for row in points.all()]


async def _put_back(services: Services, name: str, rows: Rows) -> None:
    table = {"audit_log": AuditEntry, "audit_checkpoints": AuditCheckpoint}[name].__table__  # type: ignore[attr-defined]
    async with services.db.engine.begin() as conn:
        await conn.execute(table.delete())
        if rows:
            await conn.execute(table.insert(), rows)


async def _verdict(services: Services) -> str:
    report = await verify_custody(Custody.of(services), services.storage)
    return "ok" if report.ok else report.broken.item if report.broken else "?"


async def _a_used_store(client: Client, clock: FrozenClock) -> Services:
    services = services_of(client)
    await add_account(client, "olga", "operator")
    async with services.db.engine.connect() as conn:
        olga = (await conn.execute(text("SELECT id FROM users WHERE username = 'olga'"))).scalar()
    for seed in range(3):
        await recorded_call(client, services, clock, seed=seed, segments=2, taken_by=olga)
    await make_checkpoint(Custody.of(services))
    assert await _verdict(services) == "ok"
    return services


def _entry_at(rows: Rows, index: int) -> str:
    return f"audit entry {rows[index]['seq']}"


async def test_audit_rows_edited_deleted_reordered_or_cut_off_are_named(
    client: Client, clock: FrozenClock, settings: Settings
) -> None:
    services = await _a_used_store(client, clock)
    entries = await _table(services, "audit_log")
    points = await _table(services, "audit_checkpoints")
    file_lines = settings.checkpoint_file.read_text()
    assert len(entries) >= 15 and len(points) >= 3, (len(entries), len(points))
    rng = random.Random(SEED + 1)
    fields = ["actor", "action", "subject", "data", "prev_hash", "hash", "at"]
    tried: dict[str, int] = {}

    def edit() -> tuple[Rows, Rows, str]:
        rows = [dict(r) for r in entries]
        i, field = rng.randrange(len(rows)), rng.choice(fields)
        value = rows[i][field]
        if field == "at":
            rows[i][field] = value.replace(microsecond=(value.microsecond + 1) % 1_000_000)
        elif field in ("prev_hash", "hash"):
            rows[i][field] = hashlib.sha256(rng.randbytes(8)).hexdigest()
        else:
            rows[i][field] = value + rng.choice([" ", "x", "0"])
        return rows, points, _entry_at(entries, i)

    def delete() -> tuple[Rows, Rows, str]:
        i = rng.randrange(len(entries))
        return entries[:i] + entries[i + 1 :], points, _entry_at(entries, i)

    def reorder() -> tuple[Rows, Rows, str]:
        i, j = sorted(rng.sample(range(len(entries)), 2))
        rows = [dict(r) for r in entries]
        rows[i], rows[j] = (
            {**entries[j], "seq": entries[i]["seq"]},
            {
                **entries[i],
                "seq": entries[j]["seq"],
            },
        )
        return rows, points, _entry_at(entries, i)

    def truncate() -> tuple[Rows, Rows, str]:
        keep = rng.randrange(len(entries))
        return entries[:keep], points, _entry_at(entries, keep)

    def checkpoint_changed() -> tuple[Rows, Rows, str]:
        rows = [dict(p) for p in points]
        i = rng.randrange(len(rows))
        field = rng.choice(["head_hash", "signature", "key_id"])
        rows[i][field] = _flip(rows[i][field].encode(), rng).decode("latin-1")
        return entries, rows, f"checkpoint at audit entry {rows[i]['seq']}"

    def checkpoint_deleted() -> tuple[Rows, Rows, str]:
        i = rng.randrange(len(points))
        path = settings.checkpoint_file
        return (
            entries,
            points[:i] + points[i + 1 :],
            f"checkpoint file {path} line {i + 1} (audit entry {points[i]['seq']})",
        )

    kinds: list[tuple[str, Callable[[], tuple[Rows, Rows, str]], int]] = [
        ("edited", edit, 110),
        ("deleted", delete, 50),
        ("reordered", reorder, 50),
        ("cut off the end", truncate, 40),
        ("checkpoint changed", checkpoint_changed, 20),
        ("checkpoint deleted", checkpoint_deleted, 10),
    ]
    for label, mutate, count in kinds:
        for _ in range(count):
            rows, kept_points, expected = mutate()
            await _put_back(services, "audit_log", rows)
            await _put_back(services, "audit_checkpoints", kept_points)
            assert await _verdict(services) == expected, label
            tried[label] = tried.get(label, 0) + 1
        await _put_back(services, "audit_log", entries)
        await _put_back(services, "audit_checkpoints", points)
        assert await _verdict(services) == "ok"  # put back: no false alarm
    # The file outside the database: a line removed, or changed.
    lines = file_lines.splitlines(keepends=True)
    for _ in range(20):
        i = rng.randrange(len(lines))
        if rng.random() < 0.5:
            settings.checkpoint_file.write_text("".join(lines[:i] + lines[i + 1 :]))
            expected = f"checkpoint at audit entry {points[i]['seq']}"
        else:
            line = json.loads(lines[i])
            line["head_hash"] = hashlib.sha256(rng.randbytes(8)).hexdigest()
            changed = json.dumps(line, sort_keys=True, separators=(",", ":")) + "\n"
            settings.checkpoint_file.write_text("".join([*lines[:i], changed, *lines[i + 1 :]]))
            expected = f"checkpoint at audit entry {points[i]['seq']}"
        assert await _verdict(services) == expected
        tried["checkpoint file"] = tried.get("checkpoint file", 0) + 1
    settings.checkpoint_file.write_text(file_lines)
    assert await _verdict(services) == "ok"
    assert sum(tried.values()) >= 300, tried


async def test_stored_files_changed_on_disk_are_named(client: Client, clock: FrozenClock) -> None:
    services = await _a_used_store(client, clock)
    report = await verify_custody(Custody.of(services), services.storage)
    assert report.ok and report.files == 12  # 3 calls: 2 segments, a snapshot, a photo each
    async with services.db.engine.connect() as conn:
        stored = [
            (f"recording of call {r[0]} segment {r[1]} ({r[2]})", r[2])
            for r in await conn.execute(
                text("SELECT call_id, segment, path FROM recordings ORDER BY call_id, segment")
            )
        ]
        stored += [
            (f"snapshot {r[0]} of call {r[1]} ({r[2]})", r[2])
            for r in await conn.execute(text("SELECT id, call_id, path FROM snapshots"))
        ]
        stored += [
            (f"photo {r[0]} of call {r[1]} ({r[2]})", r[2])
            for r in await conn.execute(text("SELECT seq, call_id, path FROM call_photos"))
        ]
    assert len(stored) == 12
    rng = random.Random(SEED + 2)
    for n in range(120):
        name, key = rng.choice(stored)
        path = services.storage.path(key)
        original = path.read_bytes()
        how = n % 4
        if how == 0:
            path.write_bytes(_flip(original, rng))
        elif how == 1:
            path.write_bytes(original[: rng.randrange(len(original))])
        elif how == 2:
            path.write_bytes(original + rng.randbytes(1))
        else:
            path.unlink()
        assert await _verdict(services) == name
        path.write_bytes(original)
    assert await _verdict(services) == "ok"


async def test_an_unpacked_bundle_with_a_link_or_a_stray_file_is_refused(
    client: Client, clock: FrozenClock, tmp_path: Path
) -> None:
    """The folder form: nothing outside the folder is opened, no link followed."""
    services = services_of(client)
    key_id = services.evidence_key.key_id
    call_id = await recorded_call(client, services, clock, segments=2)
    folder = tmp_path / "unpacked"
    with zipfile.ZipFile(io.BytesIO(await _export(services, call_id, "case 1"))) as zipped:
        zipped.extractall(folder)
    assert verify(folder, key_id).ok
    outside = tmp_path / "outside.mkv"
    segment = folder / "recordings" / "segment-0002.mkv"
    outside.write_bytes(segment.read_bytes())  # the same bytes, but a link to outside
    segment.unlink()
    segment.symlink_to(outside)
    verdict = verify(folder, key_id)
    assert (verdict.item, verdict.reason) == (
        "recordings/segment-0002.mkv",
        "refused: a symbolic link",
    )
    segment.unlink()
    segment.write_bytes(outside.read_bytes())
    (folder / "photos" / "linked").symlink_to(tmp_path)
    assert verify(folder, key_id).item == "photos/linked"
    (folder / "photos" / "linked").unlink()
    (folder / "notes.txt").write_text("added")
    assert verify(folder, key_id).line() == (
        "BROKEN: notes.txt: not in the manifest (added to the bundle)"
    )
    (folder / "notes.txt").unlink()
    assert verify(folder, key_id).ok
