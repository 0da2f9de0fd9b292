"""Stored files (recordings, snapshots, photos) by key, under one root every node shares.

The database keeps a file's key, a relative path such as ``photos/<call>/000003-ab12.jpg``,
never where one node happened to write it: any node or media worker that mounts the same root
(``STORAGE_DIR``; NFS or the like in scale-out) reads what another wrote, whatever its working
directory. The interface is what an object store could give as well (put, open, exists, and a
local file to serve); the filesystem is its one implementation.

Evidence is never overwritten: every key names its content (a hash or a segment number that is
never reused), so a second ``put`` of a key must bring the same bytes or is refused.
"""

from __future__ import annotations

import os
import re
import secrets
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol

# What may appear in a key: relative, '/'-separated, each part a plain file name (no '..', no
# hidden files, nothing a shell or a URL would need to quote).
KEY_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MAX_KEY_CHARS = 512  # the columns' length

RECORDINGS = "recordings"
SNAPSHOTS = "snapshots"
PHOTOS = "photos"
REPORTS = "reports"
REDACTIONS = "redactions"
THREADS = "threads"
# Not keys: the claims of the recording segments open now (media/segment_claims.py).
OPEN_SEGMENTS = "open-segments"


class StorageConflict(Exception):
    """A key already holds other bytes: evidence is never overwritten."""


def check_key(key: str) -> str:
    """The key, if it is one; else ValueError (a key never climbs out of its root)."""
    parts = key.split("/")
    if len(key) > MAX_KEY_CHARS or not all(KEY_PART.fullmatch(part) for part in parts):
        raise ValueError(f"not a storage key: {key!r}")
    return key


class Storage(Protocol):
    """Where the node's files go. ``put`` and ``open`` block: call them in a thread."""

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` whole under ``key`` (readers never see part of it).

        Raises:
            StorageConflict: the key holds other bytes.
        """

    def open(self, key: str) -> BinaryIO:
        """The stored bytes, for reading. Raises FileNotFoundError when there are none."""

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> bool:
        """Remove the file of ``key`` (retention, once the row says it is purged); False when
        there was none. The only way a stored file ever goes."""

    def path(self, key: str) -> Path:
        """The file that holds ``key`` on this node (what HTTP serves, and where the recorder
        muxes a segment in place)."""


class FileStorage:
    """Keys as files under ``root`` (made absolute once: the working directory may change).

    Rows written before keys (migration 0008) whose files lay outside the root still hold their
    absolute path; reading accepts one as it is, writing never does.
    """

    def __init__(self, root: Path) -> None:
        self.root = root.absolute()

    def path(self, key: str) -> Path:
        if key.startswith("/"):
            return Path(key)  # an old row's file, read where it lies
        return self.root.joinpath(*check_key(key).split("/"))

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def open(self, key: str) -> BinaryIO:
        return self.path(key).open("rb")

    def delete(self, key: str) -> bool:
        path = self.path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def put(self, key: str, data: bytes) -> None:
        target = self.root.joinpath(*check_key(key).split("/"))
        if target.is_file():
            if target.read_bytes() != data:
                raise StorageConflict(f"{key} is stored with other bytes")
            return  # the same bytes again: a retried write
        target.parent.mkdir(parents=True, exist_ok=True)
        # Written whole under another name, then renamed into place: a reader (another node)
        # never sees half a file. Two writers of one key write the same bytes.
        draft = target.with_name(f".{target.name}.{secrets.token_hex(6)}.part")
        try:
            with draft.open("xb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(draft, target)
        finally:
            draft.unlink(missing_ok=True)


# -- the keys ----------------------------------------------------------------------------------


def recording_key(call_id: str, segment: int) -> str:
    return f"{RECORDINGS}/{call_id}/segment-{segment:04d}.mkv"


def snapshot_key(call_id: str, at: datetime, sha256: str) -> str:
    return f"{SNAPSHOTS}/{call_id}/{at:%Y%m%dT%H%M%S%f}-{sha256[:12]}.jpg"


def photo_key(call_id: str, seq: int, sha256: str, extension: str) -> str:
    return f"{PHOTOS}/{call_id}/{seq:06d}-{sha256[:12]}.{extension}"


def thread_file_key(thread_id: str, seq: int, sha256: str, extension: str) -> str:
    """A photo or video clip of a message thread."""
    return f"{THREADS}/{thread_id}/{seq:06d}-{sha256[:12]}.{extension}"


def redaction_key(call_id: str, segment: int, sha256: str) -> str:
    """A redacted copy of a segment; its hash in the key, as a second copy (made later, with
    a better detector) has other bytes."""
    return f"{REDACTIONS}/{call_id}/segment-{segment:04d}-{sha256[:12]}.mkv"


def report_photo_key(report_id: int, n: int, sha256: str, name: str) -> str:
    """``name``: ``original.<ext>`` or ``public.jpg``; the hash keeps a key from ever meeting
    other bytes (a report id can come round again after a rolled-back insert)."""
    return f"{REPORTS}/{report_id}/{n}-{sha256[:12]}-{name}"


def key_of(path: Path, root: Path) -> str | None:
    """The key of a file under ``root`` (both taken as they are, made absolute); None when it
    lies elsewhere."""
    try:
        relative = PurePosixPath(
            Path(os.path.normpath(path.absolute())).relative_to(os.path.normpath(root.absolute()))
        )
    except ValueError:
        return None
    key = relative.as_posix()
    try:
        return check_key(key)
    except ValueError:
        return None
