"""Closing what a dead process left open: a recording segment whose writer died with it.

Which segments those are, and that their writers are dead, the claims say
(media/segment_claims.py). The file as its writer left it is the evidence and is never
rewritten: it is hashed as it lies. The recorder writes a Matroska cluster whole every second
(media/recorder.py: CONTAINER_OPTIONS), so such a file plays up to its last complete cluster;
but it has no index and no duration, which players need to seek. So a copy of its complete
clusters, remuxed (stream copy: nothing is decoded or encoded), is written beside it as
``segment-NNNN.playable.mkv`` and hashed too. Both hashes go to the node, which stores the
segment as recovered after a crash and enters it in the audit chain.

Everything here blocks on disk: it runs in a thread.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path

import av

from media.segment_claims import Claim
from server.core.media_rpc import ClosedSegment, RecordingFailure, Recovery
from server.core.storage import FileStorage

logger = logging.getLogger(__name__)

HASH_CHUNK_BYTES = 1 << 20
PLAYABLE_SUFFIX = ".playable.mkv"


def sha256_of(path: Path) -> tuple[str, int]:
    """The file's SHA-256 and its size in bytes."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as file:
        while chunk := file.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def playable_key(key: str) -> str:
    """``recordings/<call>/segment-0001.mkv`` -> ``recordings/<call>/segment-0001.playable.mkv``."""
    stem = key.removesuffix(".mkv")
    return f"{stem}{PLAYABLE_SUFFIX}"


def describe(exc: BaseException, call_id: str, log_as: str) -> str:
    """What went wrong, for the chain and the logs: never a path, which holds the call's id (an
    internal-security call's id is never logged)."""
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{type(exc).__name__}: {exc.strerror}"
        if exc.errno is not None:
            text += f" (errno {exc.errno})"
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if call_id:
        text = text.replace(call_id, log_as or "(call)")
    return text[:300]


def recover(claim: Claim, *, root: Path, recovered_by: str) -> ClosedSegment | RecordingFailure:
    """Close the segment of a dead writer's claim (now this process's).

    A segment its writer had closed and hashed (its report lost with the process) is reported
    as it was closed, once its file still has that hash. One left open is hashed as it lies and
    reported as recovered, with its playable copy. A claim without a file (the writer died
    before it began writing) is a failure to report.
    """
    info = claim.info
    storage = FileStorage(root)
    path = storage.path(info.key)
    started_at = datetime.fromisoformat(info.started_at)
    if not path.is_file():
        return RecordingFailure(
            call_id=info.call_id,
            segment=info.segment,
            stage="recovering",
            cause="its writer died before the segment's file was made",
            log_as=info.log_as,
        )
    sha256, size = sha256_of(path)
    ended_at = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    if info.state == "closed" and info.sha256 == sha256:
        counts = info.counts or {}
        return ClosedSegment(
            call_id=info.call_id,
            segment=info.segment,
            key=info.key,
            path=path,
            started_at=started_at,
            ended_at=max(ended_at, started_at),
            size_bytes=size,
            sha256=sha256,
            video_frames=counts.get("video", 0),
            audio_frames=counts.get("audio", 0),
            operator_audio_frames=counts.get("operator_audio", 0),
            log_as=info.log_as,
        )
    copy_key = playable_key(info.key)
    copy = storage.path(copy_key)
    try:
        counts = remux(path, copy)
    except Exception as exc:  # noqa: BLE001 - the original is kept and stored all the same
        logger.warning(
            "no playable copy of a recovered segment",
            extra={
                "call_id": info.log_as or info.call_id,
                "segment": info.segment,
                "reason": describe(exc, info.call_id, info.log_as),
            },
        )
        counts = count_frames(path)
    playable: tuple[str, int] | None = sha256_of(copy) if copy.is_file() else None
    return ClosedSegment(
        call_id=info.call_id,
        segment=info.segment,
        key=info.key,
        path=path,
        started_at=started_at,
        ended_at=max(ended_at, started_at),
        size_bytes=size,
        sha256=sha256,
        video_frames=counts["video"],
        audio_frames=counts["audio"],
        operator_audio_frames=counts["operator_audio"],
        log_as=info.log_as,
        recovered=Recovery(
            writer=info.writer[:64],
            recovered_by=recovered_by[:64],
            playable_key=copy_key if playable else None,
            playable_sha256=playable[0] if playable else None,
            playable_size_bytes=playable[1] if playable else None,
        ),
    )


def _track(stream: av.stream.Stream) -> str:
    title = stream.metadata.get("title", "")
    if stream.type == "video":
        return "video"
    return "operator_audio" if title == "operator_audio" else "audio"


def _packets(container: av.container.InputContainer) -> list[av.Packet]:
    """Every whole packet, up to where the file is cut short."""
    packets = []
    try:
        for packet in container.demux():
            if packet.size and packet.dts is not None:
                packets.append(packet)
    except (av.error.FFmpegError, EOFError):
        pass  # the cluster being written when the writer died
    return packets


def count_frames(path: Path) -> dict[str, int]:
    """Frames per track that the file holds whole."""
    counts = {"video": 0, "audio": 0, "operator_audio": 0}
    with av.open(str(path)) as container:
        for packet in _packets(container):
            counts[_track(packet.stream)] += 1
    return counts


def remux(source: Path, target: Path) -> dict[str, int]:
    """Copy the whole packets of ``source`` into a new Matroska file ``target`` (with its index
    and duration); nothing is written when there are none. Returns the frames per track."""
    counts = {"video": 0, "audio": 0, "operator_audio": 0}
    with av.open(str(source)) as container:
        packets = _packets(container)
        if not packets:
            return counts
        draft = target.with_name(f".{target.name}.{secrets.token_hex(6)}.part")
        try:
            # bitexact: no random UIDs, so a second recovery writes the very same bytes.
            out = av.open(
                str(draft), "w", format="matroska", container_options={"fflags": "+bitexact"}
            )
            try:
                streams = {}
                for stream in container.streams:
                    copy = out.add_stream_from_template(stream)
                    copy.metadata.update(stream.metadata)
                    streams[stream.index] = copy
                for packet in packets:
                    counts[_track(packet.stream)] += 1
                    packet.stream = streams[packet.stream.index]
                    out.mux(packet)
            finally:
                out.close()
            with draft.open("rb") as file:
                os.fsync(file.fileno())
            os.replace(draft, target)
        finally:
            draft.unlink(missing_ok=True)
    return counts
