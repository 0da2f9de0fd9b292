#!/usr/bin/env python3
"""Check a Lifeline evidence bundle without the server: python verify.py [BUNDLE.zip | FOLDER].

Needs only Python (3.11 or later) and the ``cryptography`` package. With no argument it checks
the folder this file lies in (a bundle unzipped); given a zip, it reads the zip in place and
writes nothing anywhere. It checks, in this order, and names the first item that fails:

1. every name in the bundle: no absolute path, no ``..``, no backslash, no symbolic link, no
   name twice (a zip that is cut short or damaged is refused as a whole);
2. ``public_key.pem``: the deployment's key (give ``--key-id`` or ``--key`` with what the
   deployment publishes at ``/.well-known/lifeline-evidence-key``; without either, the key id
   is printed for you to compare);
3. ``manifest.sig``: the Ed25519 signature of ``manifest.json`` by that key;
4. every file: listed in the manifest, present, and of the SHA-256 and size it lists;
5. ``audit/``: each checkpoint's signature, each audit entry's own hash, and each entry's link
   to the entry before it and to the checkpoints where the bundle holds both.

Exit status: 0 intact, 1 broken (one line naming the first broken item), 2 bad usage.

This file is the server's own verifier too (``python -m server evidence verify BUNDLE.zip``),
copied into every bundle byte for byte: the two cannot disagree.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import stat
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

BUNDLE_FORMAT = "lifeline-evidence-bundle/1"
CHECKPOINT_FORMAT = "lifeline-checkpoint/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
PUBLIC_KEY = "public_key.pem"
VERIFIER = "verify.py"
ENTRIES = "audit/entries.json"
CHECKPOINTS = "audit/checkpoints.json"
GENESIS_HASH = "0" * 64
# Files the verifier reads whole (the rest it hashes in chunks): far above any real one.
_MAX_SMALL_BYTES = 64 * 1024 * 1024
_CHUNK = 1024 * 1024


# --- what the server and the verifier compute alike ------------------------------------------


def entry_hash(
    *, seq: int, at: str, actor: str, action: str, subject: str, data: str, prev_hash: str
) -> str:
    """An audit entry's hash: SHA-256 over a canonical JSON of every field but the hash."""
    canonical = json.dumps(
        {
            "seq": seq,
            "at": at,
            "actor": actor,
            "action": action,
            "subject": subject,
            "data": data,
            "prev_hash": prev_hash,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def checkpoint_message(*, seq: int, head_hash: str, at: str, key_id: str) -> bytes:
    """The bytes a checkpoint's signature covers: the chain's head at entry ``seq``."""
    return json.dumps(
        {
            "format": CHECKPOINT_FORMAT,
            "seq": seq,
            "head_hash": head_hash,
            "at": at,
            "key_id": key_id,
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


def key_id_of(public_key: Ed25519PublicKey) -> str:
    """A key's id: the SHA-256 of its 32 raw bytes, in hex."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def signature_holds(public_key: Ed25519PublicKey, message: bytes, signature: str) -> bool:
    try:
        public_key.verify(base64.b64decode(signature, validate=True), message)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def name_problem(name: str) -> str | None:
    """Why ``name`` may not be a bundle's file name (None: it may): the name must stay inside
    the bundle's folder on any system that unpacks it."""
    if not name or len(name) > 255:
        return "not a file name"
    if "\\" in name or "\x00" in name or ":" in name:
        return "a name with a backslash, a colon or a NUL"
    if name.startswith("/"):
        return "an absolute path"
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "a path that climbs out of the bundle or is empty"
    return None


# --- the verdict -----------------------------------------------------------------------------


class Broken(Exception):
    """The first item that does not hold: ``item`` names it, ``reason`` says how."""

    def __init__(self, item: str, reason: str) -> None:
        super().__init__(f"{item}: {reason}")
        self.item = item
        self.reason = reason


@dataclass(frozen=True)
class Verdict:
    ok: bool
    item: str = ""
    reason: str = ""
    call_id: str = ""
    files: int = 0
    key_id: str = ""

    def line(self) -> str:
        if self.ok:
            return (
                f"bundle intact: call {self.call_id}, {self.files} files, "
                f"signed by key {self.key_id}"
            )
        return f"BROKEN: {self.item}: {self.reason}"


# --- reading a bundle: a zip in place, or an unpacked folder ---------------------------------


class _Zip:
    """The members of a zip, read where they are (nothing is extracted)."""

    def __init__(self, path: Path) -> None:
        self.label = path.name
        try:
            self._zip = zipfile.ZipFile(path)
        except Exception as exc:  # noqa: BLE001  (whatever a damaged zip makes zipfile raise)
            raise Broken(path.name, f"not a whole zip (cut short or damaged: {exc})") from None
        seen: dict[str, str] = {}
        self.names: list[str] = []
        for info in self._zip.infolist():
            name = info.filename
            problem = name_problem(name)
            if problem:
                raise Broken(name or "(empty name)", f"refused: {problem}")
            kind = stat.S_IFMT(info.external_attr >> 16)
            if kind == stat.S_IFLNK:
                raise Broken(name, "refused: a symbolic link")
            if info.is_dir() or (kind and kind != stat.S_IFREG):
                raise Broken(name, "refused: not a plain file")
            folded = name.casefold()
            if folded in seen:
                raise Broken(name, "refused: the name is in the zip twice")
            seen[folded] = name
            self.names.append(name)

    def open(self, name: str) -> IO[bytes]:
        return self._zip.open(name)

    def close(self) -> None:
        self._zip.close()


class _Folder:
    """The files of an unpacked bundle; nothing outside ``root`` is opened, no link followed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.label = str(root)
        self.names: list[str] = []
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            base = Path(dirpath)
            for entry in sorted(dirnames + filenames):
                full = base / entry
                name = full.relative_to(root).as_posix()
                mode = os.lstat(full).st_mode
                if stat.S_ISLNK(mode):
                    raise Broken(name, "refused: a symbolic link")
                if entry in dirnames:
                    continue
                if not stat.S_ISREG(mode):
                    raise Broken(name, "refused: not a plain file")
                problem = name_problem(name)
                if problem:
                    raise Broken(name, f"refused: {problem}")
                if name == "__pycache__" or name.startswith("__pycache__/"):
                    continue  # left by Python beside this script, never part of the bundle
                self.names.append(name)
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]

    def open(self, name: str) -> IO[bytes]:
        if name not in self.names:  # only the names found above, each checked
            raise FileNotFoundError(name)
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        return os.fdopen(os.open(self.root.joinpath(*name.split("/")), flags), "rb")

    def close(self) -> None:
        pass


def _read(source: _Zip | _Folder, name: str) -> bytes:
    if name not in source.names:
        raise Broken(name, "missing from the bundle")
    try:
        with source.open(name) as handle:
            data = handle.read(_MAX_SMALL_BYTES + 1)
    except Exception as exc:  # noqa: BLE001  (a bad CRC, a broken deflate stream, ...)
        raise Broken(name, f"unreadable ({exc})") from None
    if len(data) > _MAX_SMALL_BYTES:
        raise Broken(name, "too large for what it should hold")
    return data


def _digest(source: _Zip | _Folder, name: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    try:
        with source.open(name) as handle:
            for chunk in iter(lambda: handle.read(_CHUNK), b""):
                digest.update(chunk)
                size += len(chunk)
    except Exception as exc:  # noqa: BLE001  (a bad CRC, a broken deflate stream, ...)
        raise Broken(name, f"damaged ({exc})") from None
    return digest.hexdigest(), size


def _json(data: bytes, name: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Broken(name, f"not valid JSON ({exc})") from None


# --- the checks ------------------------------------------------------------------------------


def _public_key(source: _Zip | _Folder, expected_key_id: str | None) -> tuple[Any, str]:
    pem = _read(source, PUBLIC_KEY)
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError:
        raise Broken(PUBLIC_KEY, "not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise Broken(PUBLIC_KEY, "not an Ed25519 key")
    key_id = key_id_of(key)
    if expected_key_id is not None and key_id != expected_key_id.lower():
        raise Broken(
            PUBLIC_KEY, f"not the deployment's key (key id {key_id}, expected {expected_key_id})"
        )
    return key, key_id


def _manifest(source: _Zip | _Folder, key: Ed25519PublicKey, key_id: str) -> dict[str, Any]:
    raw = _read(source, MANIFEST)
    sig = _read(source, SIGNATURE)
    # Exactly the base64 and one newline: no byte of the file is left unchecked.
    signature = sig[:-1].decode("ascii", "replace") if sig.endswith(b"\n") else ""
    if not signature_holds(key, raw, signature):
        raise Broken(SIGNATURE, f"the signature does not match {MANIFEST} and {PUBLIC_KEY}")
    manifest = _json(raw, MANIFEST)
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != BUNDLE_FORMAT
        or not isinstance(files, list)
    ):
        raise Broken(MANIFEST, f"not a {BUNDLE_FORMAT} manifest")
    if manifest.get("key_id") != key_id:
        raise Broken(MANIFEST, f"names key {manifest.get('key_id')}, the bundle holds {key_id}")
    return manifest


def _listed(manifest: dict[str, Any]) -> list[tuple[str, str, int]]:
    listed: list[tuple[str, str, int]] = []
    seen: set[str] = set()
    for item in manifest["files"]:
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            raise Broken(MANIFEST, "a file without a name")
        problem = name_problem(name)
        if problem or name in (MANIFEST, SIGNATURE):
            raise Broken(name, f"refused in the manifest: {problem or 'the manifest itself'}")
        if name.casefold() in seen:
            raise Broken(name, "listed twice in the manifest")
        seen.add(name.casefold())
        sha256, size = item.get("sha256"), item.get("size")
        if not isinstance(sha256, str) or not isinstance(size, int):
            raise Broken(name, "listed without its SHA-256 and size")
        listed.append((name, sha256, size))
    return listed


def _files(source: _Zip | _Folder, listed: list[tuple[str, str, int]]) -> None:
    names = {name for name, _, _ in listed} | {MANIFEST, SIGNATURE}
    for name in source.names:
        if name not in names:
            raise Broken(name, "not in the manifest (added to the bundle)")
    for name, sha256, size in listed:
        if name not in source.names:
            raise Broken(name, "missing from the bundle")
        actual, actual_size = _digest(source, name)
        if actual != sha256 or actual_size != size:
            raise Broken(name, "does not match its SHA-256 in the manifest")


def _audit(source: _Zip | _Folder, key: Ed25519PublicKey, key_id: str) -> None:
    checkpoints = _json(_read(source, CHECKPOINTS), CHECKPOINTS)
    entries = _json(_read(source, ENTRIES), ENTRIES)
    if not isinstance(checkpoints, list) or not isinstance(entries, list):
        raise Broken(ENTRIES, "not a list of entries and checkpoints")
    heads: dict[int, str] = {}
    for point in checkpoints:
        try:
            message = checkpoint_message(
                seq=point["seq"], head_hash=point["head_hash"], at=point["at"], key_id=key_id
            )
            holds = point["key_id"] == key_id and signature_holds(key, message, point["signature"])
        except (KeyError, TypeError):
            holds = False
        if not holds:
            raise Broken(
                f"{CHECKPOINTS}: checkpoint at entry {point.get('seq', '?')}",
                "its signature does not verify with the deployment's key",
            )
        heads[point["seq"]] = point["head_hash"]
    last_checkpoint = max(heads, default=0)
    hashes: dict[int, str] = {}
    for entry in entries:
        try:
            seq = entry["seq"]
            fields = {k: entry[k] for k in ("at", "actor", "action", "subject", "data")}
            recomputed = entry_hash(seq=seq, prev_hash=entry["prev_hash"], **fields)
        except (KeyError, TypeError):
            raise Broken(ENTRIES, "an entry without its fields") from None
        if recomputed != entry.get("hash"):
            raise Broken(f"{ENTRIES}: audit entry {seq}", "its content does not match its hash")
        if seq - 1 in hashes and entry["prev_hash"] != hashes[seq - 1]:
            raise Broken(f"{ENTRIES}: audit entry {seq}", "does not link to the entry before it")
        if seq in heads and heads[seq] != entry["hash"]:
            raise Broken(f"{ENTRIES}: audit entry {seq}", "is not the one its checkpoint signed")
        if seq > last_checkpoint:
            raise Broken(f"{ENTRIES}: audit entry {seq}", "no checkpoint in the bundle covers it")
        hashes[seq] = entry["hash"]


def verify(path: Path, expected_key_id: str | None = None) -> Verdict:
    """The verdict on the bundle at ``path`` (a zip, or an unpacked bundle's folder)."""
    try:
        source: _Zip | _Folder = _Folder(path) if path.is_dir() else _Zip(path)
    except Broken as broken:
        return Verdict(False, broken.item, broken.reason)
    except OSError as exc:
        return Verdict(False, path.name, f"cannot be read ({exc})")
    try:
        key, key_id = _public_key(source, expected_key_id)
        manifest = _manifest(source, key, key_id)
        listed = _listed(manifest)
        _files(source, listed)
        _audit(source, key, key_id)
    except Broken as broken:
        return Verdict(False, broken.item, broken.reason)
    finally:
        source.close()
    return Verdict(True, call_id=str(manifest.get("call_id")), files=len(listed), key_id=key_id)


def _expected_key_id(args: argparse.Namespace) -> str | None:
    if args.key:
        key = serialization.load_pem_public_key(Path(args.key).read_bytes())
        if not isinstance(key, Ed25519PublicKey):
            raise SystemExit(f"error: {args.key} is not an Ed25519 public key")
        return key_id_of(key)
    return str(args.key_id) if args.key_id else None


def main(argv: list[str] | None = None, *, out: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(description="Check a Lifeline evidence bundle.")
    parser.add_argument(
        "bundle", nargs="?", type=Path, help="the zip, or an unpacked bundle (default: here)"
    )
    pin = parser.add_mutually_exclusive_group()
    pin.add_argument("--key-id", help="the deployment's published key id (64 hex digits)")
    pin.add_argument("--key", help="the deployment's published public key (a PEM file)")
    args = parser.parse_args(argv)
    path = args.bundle or Path(__file__).resolve().parent
    if not path.exists():
        parser.error(f"{path} does not exist")
    expected = _expected_key_id(args)
    verdict = verify(path, expected)
    out(verdict.line())
    if verdict.ok and expected is None:
        out("compare that key id with the one the deployment publishes, or pass --key-id")
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
