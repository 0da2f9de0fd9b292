"""A call's export bundle: everything recorded of the call, in one zip a court can check without
our server.

The zip holds the recordings in order, the chat as JSON and as a readable transcript, the
location track as GeoJSON, the snapshots and the caller's photos, the call's transitions, its
audit entries with the signed checkpoints that cover them, ``manifest.json`` with the SHA-256
and size of every file, ``manifest.sig`` (the deployment key's Ed25519 signature of the
manifest's bytes), ``public_key.pem`` and ``verify.py`` (server/evidence/verify_bundle.py, byte
for byte). The export is itself an audit entry (who, when, what, why, from where), made before
the first byte leaves, and a checkpoint is signed right after it so that every entry in the
bundle is covered.

Building is two steps: ``plan_export`` (async: the rules, the entry, the rows) and
``write_bundle`` (blocking: the files streamed from the storage into the zip, hashed as they
go), so HTTP streams the zip as it is written and the command line writes it to a file.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from sqlmodel import col, select

from server.actions.access import COMMAND_LINE, caller_address, evidence_channels_for
from server.actions.checkpoints import Custody, checkpoint_fields, make_checkpoint
from server.actions.evidence import check_reason
from server.core.errors import AppError, ErrorCode
from server.core.storage import Storage
from server.db.models import (
    AuditCheckpoint,
    AuditEntry,
    Call,
    CallPhoto,
    CallTransition,
    Channel,
    ChatMessage,
    LocationSample,
    Recording,
    Snapshot,
    User,
)
from server.evidence import verify_bundle
from server.evidence.verify_bundle import (
    BUNDLE_FORMAT,
    CHECKPOINTS,
    ENTRIES,
    MANIFEST,
    PUBLIC_KEY,
    SIGNATURE,
    VERIFIER,
)
from server.security.evidence_key import EvidenceKey
from server.security.pseudonyms import Pseudonyms

_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class _Item:
    """One file of the bundle: its bytes, or a stored file's key."""

    name: str
    data: bytes | None = None
    key: str | None = None


@dataclass
class ExportPlan:
    """What one bundle will hold, gathered and audited; ``write_bundle`` writes it."""

    call_id: str
    created_at: datetime
    exported_by: str
    reason: str
    export_entry: int
    key: EvidenceKey
    items: list[_Item] = field(default_factory=list)
    recordings: list[str] = field(default_factory=list)

    @property
    def file_name(self) -> str:
        return f"call-{self.call_id}-evidence.zip"


async def check_call_for_export(custody: Custody, call_id: str, role: str) -> Call:
    """The call, if ``role`` may export it: the roles that hold evidence (supervisors and admins
    the police channel's calls, internal security its own channel's only; the command line any);
    for the others the call does not exist.

    Raises:
        AppError: ``ROLE_FORBIDDEN``, a role that exports nothing; ``CALL_NOT_FOUND``.
    """
    allowed: frozenset[str]
    if role == COMMAND_LINE:
        allowed = frozenset(channel.value for channel in Channel)
    else:
        allowed = evidence_channels_for(role)
        if not allowed:
            raise AppError(ErrorCode.ROLE_FORBIDDEN, "Your role may not do this")
    async with custody.db.session() as session:
        call = (
            await session.exec(
                select(Call).where(col(Call.id) == call_id, col(Call.channel).in_(allowed))
            )
        ).first()
    if call is None:
        raise AppError(ErrorCode.CALL_NOT_FOUND, "No such call")
    return call


async def plan_export(
    custody: Custody,
    storage: Storage,
    pseudonyms: Pseudonyms,
    call: Call,
    *,
    actor: str,
    role: str,
    reason: str,
    remote: str | None,
) -> ExportPlan:
    """Audit the export, sign a checkpoint over it, and gather the call's record. ``remote``:
    the address the request came from (None: the command line).

    Raises:
        AppError: ``REASON_REQUIRED`` / ``REASON_TOO_LONG``; ``FILE_UNAVAILABLE``, a stored file
            of the call is not in this node's storage (nothing is audited then).
    """
    reason = check_reason(reason)
    key = custody.key
    if key is None:
        raise RuntimeError("no evidence key on this node: bundles cannot be signed")
    async with custody.db.session() as session:
        recordings = (
            await session.exec(
                select(Recording)
                .where(col(Recording.call_id) == call.id)
                .order_by(col(Recording.segment))
            )
        ).all()
        snapshots = (
            await session.exec(
                select(Snapshot).where(col(Snapshot.call_id) == call.id).order_by(col(Snapshot.id))
            )
        ).all()
        photos = (
            await session.exec(
                select(CallPhoto)
                .where(col(CallPhoto.call_id) == call.id)
                .order_by(col(CallPhoto.seq))
            )
        ).all()
    # Files deleted when their retention ended are not in the bundle (the entries of their
    # deletion are, with the call's other entries).
    recordings = [r for r in recordings if r.purged_at is None]
    snapshots = [s for s in snapshots if s.purged_at is None]
    photos = [p for p in photos if p.purged_at is None]
    stored = [r.path for r in recordings] + [s.path for s in snapshots] + [p.path for p in photos]
    if not await asyncio.to_thread(lambda: all(storage.exists(key) for key in stored)):
        raise AppError(
            ErrorCode.FILE_UNAVAILABLE, "A file of this call is not in this node's storage"
        )
    now = custody.clock.now()
    entry = await custody.audit.append(
        actor=actor,
        action="evidence_exported",
        subject=f"call:{call.id}",
        data={
            "reason": reason,
            "role": role,
            "segments": len(recordings),
            "snapshots": len(snapshots),
            "photos": len(photos),
            **(
                caller_address(pseudonyms, call.channel, remote)
                if remote is not None
                else {"from": "command_line"}
            ),
        },
    )
    await make_checkpoint(custody)
    plan = ExportPlan(
        call_id=call.id,
        created_at=now,
        exported_by=actor,
        reason=reason,
        export_entry=entry.seq,
        key=key,
    )
    await _gather(custody, call, plan, recordings, snapshots, photos)
    return plan


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="microseconds") if moment is not None else None


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


async def _gather(
    custody: Custody,
    call: Call,
    plan: ExportPlan,
    recordings: Any,
    snapshots: Any,
    photos: Any,
) -> None:
    async with custody.db.session() as session:
        users = {u.id: u.username for u in (await session.exec(select(User))).all()}
        transitions = (
            await session.exec(
                select(CallTransition)
                .where(col(CallTransition.call_id) == call.id)
                .order_by(col(CallTransition.at), col(CallTransition.id))
            )
        ).all()
        chat = (
            await session.exec(
                select(ChatMessage)
                .where(col(ChatMessage.call_id) == call.id)
                .order_by(col(ChatMessage.seq))
            )
        ).all()
        track = (
            await session.exec(
                select(LocationSample)
                .where(col(LocationSample.call_id) == call.id)
                .order_by(col(LocationSample.seq))
            )
        ).all()
        entries = (
            await session.exec(
                select(AuditEntry)
                .where(col(AuditEntry.subject) == f"call:{call.id}")
                .order_by(col(AuditEntry.seq))
            )
        ).all()
        points = (
            await session.exec(select(AuditCheckpoint).order_by(col(AuditCheckpoint.seq)))
        ).all()

    items = plan.items
    items.append(
        _Item(
            "call.json",
            _json_bytes(
                {
                    "call_id": call.id,
                    "channel": call.channel,
                    "mode": call.mode,
                    "language": call.language,
                    "state": call.state,
                    "operator": users.get(call.operator_id) if call.operator_id else None,
                    "disposition": call.disposition,
                    "note": call.note,
                    "marks": [m for m in call.marks.split(",") if m],
                    "created_at": _iso(call.created_at),
                    "answered_at": _iso(call.answered_at),
                    "ended_at": _iso(call.ended_at),
                    "exported_at": _iso(plan.created_at),
                    "exported_by": plan.exported_by,
                    "reason": plan.reason,
                }
            ),
        )
    )
    for rec in recordings:
        name = f"recordings/segment-{rec.segment:04d}.mkv"
        plan.recordings.append(name)
        items.append(_Item(name, key=rec.path))
    items.append(
        _Item(
            "recordings/segments.json",
            _json_bytes(
                [
                    {
                        "file": f"recordings/segment-{rec.segment:04d}.mkv",
                        "segment": rec.segment,
                        "started_at": _iso(rec.started_at),
                        "ended_at": _iso(rec.ended_at),
                        "media_node": rec.media_node,
                        "size_bytes": rec.size_bytes,
                        "sha256": rec.sha256,
                    }
                    for rec in recordings
                ]
            ),
        )
    )
    messages = [
        {
            "seq": m.seq,
            "at": _iso(m.at),
            "sender": m.sender,
            "staff": users.get(m.sender_user_id) if m.sender_user_id else None,
            "body": m.body,
        }
        for m in chat
    ]
    items.append(_Item("chat.json", _json_bytes(messages)))
    items.append(_Item("chat.txt", _transcript(call, messages).encode()))
    items.append(_Item("location.geojson", _json_bytes(_geojson(track))))
    items.append(
        _Item(
            "transitions.json",
            _json_bytes(
                [
                    {
                        "at": _iso(t.at),
                        "from": t.from_state,
                        "to": t.to_state,
                        "actor": t.actor,
                        "reason": t.reason,
                    }
                    for t in transitions
                ]
            ),
        )
    )
    shots = []
    for shot in snapshots:
        name = f"snapshots/{shot.id:06d}-{shot.sha256[:12]}.jpg"
        items.append(_Item(name, key=shot.path))
        shots.append(
            {
                "file": name,
                "at": _iso(shot.at),
                "taken_by": users.get(shot.taken_by),
                "sha256": shot.sha256,
            }
        )
    items.append(_Item("snapshots/snapshots.json", _json_bytes(shots)))
    sent = []
    for photo in photos:
        extension = photo.path.rsplit(".", 1)[-1] if "." in photo.path else "bin"
        name = f"photos/{photo.seq:06d}-{photo.sha256[:12]}.{extension}"
        items.append(_Item(name, key=photo.path))
        sent.append(
            {"file": name, "seq": photo.seq, "at": _iso(photo.at), "sha256": photo.sha256,
             "content_type": photo.content_type, "width": photo.width, "height": photo.height}
        )  # fmt: skip
    items.append(_Item("photos/photos.json", _json_bytes(sent)))
    audit = [
        {
            "seq": e.seq,
            "at": e.at.isoformat(timespec="microseconds"),
            "actor": e.actor,
            "action": e.action,
            "subject": e.subject,
            "data": e.data,
            "prev_hash": e.prev_hash,
            "hash": e.hash,
        }
        for e in entries
    ]
    items.append(_Item(ENTRIES, _json_bytes(audit)))
    covering = sorted({seq for e in entries if (seq := _cover(points, e.seq)) is not None})
    by_seq = {p.seq: p for p in points}
    items.append(_Item(CHECKPOINTS, _json_bytes([checkpoint_fields(by_seq[s]) for s in covering])))
    items.append(_Item(PUBLIC_KEY, plan.key.public_pem.encode()))
    verifier = await asyncio.to_thread(Path(verify_bundle.__file__).read_bytes)
    items.append(_Item(VERIFIER, verifier))
    items.append(_Item("README.txt", _readme(plan).encode()))


def _cover(points: Any, seq: int) -> int | None:
    """The first checkpoint at or after entry ``seq``: it anchors that entry."""
    return next((p.seq for p in points if p.seq >= seq), None)


def _transcript(call: Call, messages: list[dict[str, Any]]) -> str:
    lines = [f"Chat of call {call.id} ({call.channel}), times in UTC", ""]
    for m in messages:
        who = m["sender"] if not m["staff"] else f"{m['sender']} {m['staff']}"
        at = datetime.fromisoformat(m["at"]).strftime("%Y-%m-%d %H:%M:%S")
        body = m["body"].replace("\n", "\n    ")
        lines.append(f"[{at}] {who}: {body}")
    if not messages:
        lines.append("(no messages)")
    return "\n".join(lines) + "\n"


def _geojson(track: Any) -> dict[str, Any]:
    points = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [s.lon, s.lat]},
            "properties": {
                "seq": s.seq,
                "measured_at": _iso(s.measured_at),
                "received_at": _iso(s.received_at),
                "accuracy_m": s.accuracy_m,
                "heading_deg": s.heading_deg,
                "speed_mps": s.speed_mps,
            },
        }
        for s in track
    ]
    features: list[dict[str, Any]] = []
    if len(track) > 1:
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": [[s.lon, s.lat] for s in track]},
                "properties": {"kind": "track"},
            }
        )
    return {"type": "FeatureCollection", "features": features + points}


def _readme(plan: ExportPlan) -> str:
    return f"""Lifeline evidence bundle: call {plan.call_id}
Exported {_iso(plan.created_at)} by {plan.exported_by}; reason: {plan.reason}
Signed with the deployment's Ed25519 key, key id {plan.key.key_id}

To check it, with Python 3.11+ and the cryptography package (pip install cryptography):

    python verify.py BUNDLE.zip --key-id KEY_ID
    python verify.py --key-id KEY_ID            (inside the unpacked folder)

KEY_ID is the key id the deployment publishes (/.well-known/lifeline-evidence-key.json, and
on its /admin page), obtained from the deployment itself, not from this bundle. verify.py
checks every name, the signature of manifest.json, the SHA-256 of every file, and the signed
checkpoints and audit entries in audit/; it prints "bundle intact" and exits 0, or names the
first item that does not match and exits 1. It never writes or extracts anything.
"""


# --- writing ---------------------------------------------------------------------------------


def _info(name: str, when: datetime, size: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=when.timetuple()[:6])
    # Stored, never deflated: every byte of a member is the file's own (media is compressed
    # already), so a changed byte is always a changed file; a deflate stream has bits a
    # decoder ignores.
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o100644 << 16  # a plain file, rw-r--r--
    info.file_size = size
    return info


def write_bundle(plan: ExportPlan, storage: Storage, sink: IO[bytes]) -> str:
    """Write the zip to ``sink`` (any writable, seekable or not: a file, an HTTP response's
    bridge); returns the manifest's SHA-256. Blocking: run it in a thread."""
    listed: list[dict[str, Any]] = []
    with zipfile.ZipFile(sink, "w") as bundle:
        for item in plan.items:
            digest, size = hashlib.sha256(), 0
            if item.data is not None:
                digest.update(item.data)
                size = len(item.data)
                bundle.writestr(_info(item.name, plan.created_at, size), item.data)
            else:
                assert item.key is not None
                length = storage.path(item.key).stat().st_size
                info = _info(item.name, plan.created_at, length)
                with (
                    storage.open(item.key) as source,
                    bundle.open(info, "w", force_zip64=length > 2**31) as target,
                ):
                    for chunk in iter(lambda: source.read(_CHUNK), b""):
                        digest.update(chunk)
                        size += len(chunk)
                        target.write(chunk)
            listed.append({"name": item.name, "sha256": digest.hexdigest(), "size": size})
        manifest = _json_bytes(
            {
                "format": BUNDLE_FORMAT,
                "call_id": plan.call_id,
                "created_at": _iso(plan.created_at),
                "exported_by": plan.exported_by,
                "reason": plan.reason,
                "export_entry": plan.export_entry,
                "key_id": plan.key.key_id,
                "recordings": plan.recordings,
                "files": listed,
            }
        )
        bundle.writestr(_info(MANIFEST, plan.created_at, len(manifest)), manifest)
        signature = (plan.key.sign(manifest) + "\n").encode()
        bundle.writestr(_info(SIGNATURE, plan.created_at, len(signature)), signature)
    sink.flush()
    return hashlib.sha256(manifest).hexdigest()
