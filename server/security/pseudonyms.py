"""Keyed hashes (HMAC-SHA256) that stand in for what must not be written in the clear: an
internal-security caller's address in the shared audit chain, an internal-security call's id in
the logs.

A plain hash of an IPv4 address is reversed by hashing all 2^32 of them; with a key that lives
outside the database (the environment, or a file in ``DATA_DIR``), whoever reads the database
or the logs learns nothing, while whoever holds the key can still check a suspected value.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

KEY_FILE = "pseudonym.key"
LOG_NAME_CHARS = 16


class Pseudonyms:
    """One node's keyed hash; every node of a deployment must hold the same key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a pseudonym key is at least 16 bytes")
        self._key = key

    def of(self, kind: str, value: str) -> str:
        """The pseudonym of ``value``; ``kind`` ("remote", "call") keeps the kinds apart."""
        message = f"{kind}:{value}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def call_log_name(self, call_id: str) -> str:
        """How the logs name a call whose id they must not carry."""
        return "is-" + self.of("call", call_id)[:LOG_NAME_CHARS]


def load_pseudonyms(configured: str, data_dir: Path) -> Pseudonyms:
    """The configured key (``PSEUDONYM_KEY``), else the one in ``DATA_DIR``, made on first use
    (readable by the server's user only). Two processes starting at once agree on one file: it
    is written whole under another name and linked into place only if none is there yet."""
    if configured:
        return Pseudonyms(configured.encode())
    path = data_dir / KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        draft = data_dir / f".{KEY_FILE}.{secrets.token_hex(8)}"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(32) + "\n")
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # another process was first: its key is the one
        finally:
            draft.unlink()
    return Pseudonyms(path.read_text(encoding="ascii").strip().encode())
