"""The deployment's Ed25519 signing key: it signs the audit chain's checkpoints and every export
bundle's manifest, so that whoever holds only the public key can tell the record is ours and
whole.

It is made once, at the first start, in a file readable by the server's user only
(``EVIDENCE_KEY_FILE``, default ``DATA_DIR/evidence.key``); a node that finds one uses it, and
every node of a deployment must use the same one. Losing it loses nothing recorded, but
checkpoints it signed can then only be checked against its public key kept elsewhere: it
belongs in the backups (docs/backup.md).
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from server.evidence.verify_bundle import key_id_of, signature_holds


class EvidenceKeyError(Exception):
    """The key file is there but holds no Ed25519 private key."""


class EvidenceKey:
    """The private key and what the world may know of it (its public PEM and key id)."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private = private_key
        self.public_key: Ed25519PublicKey = private_key.public_key()
        self.key_id = key_id_of(self.public_key)
        self.public_pem = self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")

    def sign(self, message: bytes) -> str:
        """The Ed25519 signature of ``message``, in base64."""
        return base64.b64encode(self._private.sign(message)).decode("ascii")

    def holds(self, message: bytes, signature: str) -> bool:
        """Whether ``signature`` is this key's over ``message``."""
        return signature_holds(self.public_key, message, signature)


def read_evidence_key(path: Path) -> EvidenceKey | None:
    """The key in ``path``, None when there is none (a machine that only checks).

    Raises:
        EvidenceKeyError: the file holds something else.
    """
    return load_evidence_key(path) if path.exists() else None


def load_evidence_key(path: Path) -> EvidenceKey:
    """The key in ``path``, made there first when missing.

    Two nodes starting at once on a shared directory agree on one key: it is written whole under
    another name and linked into place only if none is there yet (as the pseudonym key is).

    Raises:
        EvidenceKeyError: the file holds something else.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        draft = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # another node was first: its key is the deployment's
        finally:
            draft.unlink()
    try:
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise EvidenceKeyError(f"{path} holds no usable private key ({exc})") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise EvidenceKeyError(f"{path} holds a key that is not Ed25519")
    return EvidenceKey(private)
