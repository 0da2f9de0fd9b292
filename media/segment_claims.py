"""Which recording segments are open, and whose: one claim file per open segment, locked by the
process that writes it for as long as that process lives.

A writer takes a segment's claim before it opens the segment's file, and gives it up only once
its node has stored the closed segment (or refused it for good). The claim is a small JSON file
in ``STORAGE_DIR/open-segments/`` (one flat directory, so finding the open segments never walks
every call's recordings) holding an exclusive ``flock(2)``. The kernel drops that lock when the
process dies, however it dies (``kill -9``, the OOM killer, a crash in a codec), so "is its
writer alive?" is one non-blocking ``flock``: no timestamps, no heartbeats, no guess. A claim
whose lock can be taken was left by a dead process, and whoever takes the lock (any media node
sweeping the directory, media/recovery.py) closes the segment; two sweepers never both do, and
a live writer's segment is never touched.

Why not the media-node registry (server/state/media_nodes.py): a worker restarted after a crash
comes back under the same id a second later, while a dead node's registry entry lives on for
5 s: the registry cannot tell a dead writer from its successor, nor a slow one from a dead one.
The lock is held by the very process that writes, and goes with it.

A shared ``STORAGE_DIR`` across nodes must honour ``flock`` between machines: Linux's NFS
client (v4, or v3 with lockd; not ``nolock`` or ``local_lock``) turns it into byte-range locks
the server keeps for every client, and releases a dead machine's once its lease runs out (90 s
by default), after which the next sweep recovers its segments. Such emulated locks belong to the
process, not to the open file, so a process never tests its own claims with ``flock``: it looks
them up in its own table first.

A claim appears whole and already locked: it is written and locked under a draft name, then
hard-linked into place, so a sweeper never finds one half written or not yet locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

logger = logging.getLogger(__name__)

SUFFIX = ".claim"
DRAFT_PREFIX = ".draft-"
DRAFT_STALE_SECS = 60.0  # a draft lives milliseconds; one this old lost its taker

ClaimState = Literal["open", "closed"]


@dataclass(frozen=True)
class ClaimInfo:
    """What a claim file says: the segment, its writer, and (once closed) its hash."""

    call_id: str
    segment: int
    key: str
    writer: str  # the media node id of the process that writes it
    pid: int
    host: str
    started_at: str  # ISO 8601, UTC
    log_as: str
    state: ClaimState = "open"
    # Set when the writer closed and hashed the file (its report may still be unconfirmed).
    sha256: str | None = None
    size_bytes: int | None = None
    counts: dict[str, int] | None = None

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> ClaimInfo:
        data: dict[str, Any] = json.loads(raw)
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


class Claim:
    """A claim this process holds: its file's descriptor keeps the lock."""

    def __init__(self, path: Path, fd: int, info: ClaimInfo) -> None:
        self.path = path
        self.info = info
        self._fd = fd

    def mark_closed(self, *, sha256: str, size_bytes: int, counts: dict[str, int]) -> None:
        """The file is closed and hashed: should the report be lost, the hash is known."""
        self.info = replace(
            self.info, state="closed", sha256=sha256, size_bytes=size_bytes, counts=counts
        )
        data = self.info.to_json()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)
        os.fsync(self._fd)

    def give_up(self) -> None:
        """Remove the file, then let go of the lock (a sweeper that waited sees it gone)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.close()

    def close(self) -> None:
        """Let go of the lock, keeping the file (a later sweep takes it up)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class SegmentClaims:
    """The claims of one media node (one process), under one directory every node shares.

    ``writer``: the media node's id, written into its claims. Thread-safe: recorder threads
    take claims while the event loop gives them up.
    """

    def __init__(self, directory: Path, *, writer: str) -> None:
        self.directory = directory.absolute()
        self.writer = writer
        self._held: dict[str, Claim] = {}
        self._lock = threading.Lock()

    def file_of(self, call_id: str, segment: int) -> Path:
        return self.directory / f"{call_id}.{segment:04d}{SUFFIX}"

    def exists(self, call_id: str, segment: int) -> bool:
        """A claim for that segment, anyone's (its number is taken even without a file)."""
        return self.file_of(call_id, segment).exists()

    def holds(self, key: str) -> bool:
        with self._lock:
            return key in self._held

    def take(self, *, call_id: str, segment: int, key: str, started_at: str, log_as: str) -> Claim:
        """Claim a segment about to be written; blocks on disk: call it off the event loop.

        Raises:
            FileExistsError: someone claimed it already (its number is not free).
        """
        info = ClaimInfo(
            call_id=call_id,
            segment=segment,
            key=key,
            writer=self.writer,
            pid=os.getpid(),
            host=socket.gethostname(),
            started_at=started_at,
            log_as=log_as,
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.file_of(call_id, segment)
        draft = self.directory / f"{DRAFT_PREFIX}{secrets.token_hex(8)}"
        fd = os.open(draft, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, info.to_json())
            os.fsync(fd)
            os.link(draft, target)  # FileExistsError when the number is claimed
        except BaseException:
            os.close(fd)
            raise
        finally:
            draft.unlink(missing_ok=True)
        claim = Claim(target, fd, info)
        with self._lock:
            self._held[key] = claim
        return claim

    def release(self, key: str) -> None:
        """The segment is stored (or refused for good): its claim is no longer needed."""
        with self._lock:
            claim = self._held.pop(key, None)
        if claim is not None:
            claim.give_up()

    def let_go(self, key: str) -> None:
        """Keep the claim file but drop its lock: the segment is left for a sweep to close."""
        with self._lock:
            claim = self._held.pop(key, None)
        if claim is not None:
            claim.close()

    def held(self, key: str) -> Claim | None:
        with self._lock:
            return self._held.get(key)

    def abandoned(self) -> Iterator[Claim]:
        """Take over every claim whose writer is dead (blocking: off the event loop). Each one
        yielded is this process's until ``release``d or ``let_go``ne."""
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return
        for name in names:
            path = self.directory / name
            if name.startswith(DRAFT_PREFIX):
                self._remove_dead_draft(path)
                continue
            if not name.endswith(SUFFIX):
                continue
            claim = self._take_over(path)
            if claim is not None:
                yield claim

    def _take_over(self, path: Path) -> Claim | None:
        with self._lock:
            if any(claim.path == path for claim in self._held.values()):
                return None  # ours (NFS would let this process take its own lock again)
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return None  # given up meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None  # its writer is alive (or another sweeper has it)
        try:
            if os.fstat(fd).st_ino != os.stat(path).st_ino:
                raise FileNotFoundError  # given up and claimed anew while we waited
            info = ClaimInfo.from_json(os.pread(fd, 1 << 16, 0))
        except FileNotFoundError:
            os.close(fd)
            return None
        except (ValueError, TypeError, KeyError):
            os.close(fd)
            logger.error("unreadable segment claim left as it is", extra={"claim": path.name})
            return None
        claim = Claim(path, fd, info)
        with self._lock:
            if info.key in self._held:  # this process's after all
                claim.close()
                return None
            self._held[info.key] = claim
        return claim

    @staticmethod
    def _remove_dead_draft(path: Path) -> None:
        """A draft whose taker died before linking it: nothing refers to it. (A young one may
        be between its creation and its lock: left alone.)"""
        try:
            if time.time() - path.stat().st_mtime < DRAFT_STALE_SECS:
                return
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # being written now
        else:
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)
