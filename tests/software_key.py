"""A hardware key in software, for the tests that need no browser: an ES256 credential that
answers ``navigator.credentials.create`` and ``get`` options as a key would (attestation
"none"), and can be told to lie (another origin, another challenge, its count set back)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

USER_PRESENT, USER_VERIFIED, ATTESTED = 0x01, 0x04, 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SoftwareKey:
    def __init__(self, rp_id: str, origin: str, *, verifies_user: bool = True) -> None:
        self.rp_id = rp_id
        self.origin = origin
        self.verifies_user = verifies_user
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = secrets.token_bytes(16)
        self.counter = 0
        self.user_handle = b""

    @property
    def id(self) -> str:
        return b64url(self.credential_id)

    def _flags(self, extra: int) -> bytes:
        return bytes([USER_PRESENT | extra | (USER_VERIFIED if self.verifies_user else 0)])

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin or self.origin}
        ).encode()

    def _cose(self) -> bytes:
        numbers = self.private.public_key().public_numbers()
        return cbor2.dumps(
            {
                1: 2,
                3: -7,
                -1: 1,
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )

    def create(self, options: dict[str, Any], *, origin: str | None = None) -> dict[str, Any]:
        """The answer to registration options (``{"challenge_id", "publicKey"}``)."""
        public = options["publicKey"]
        self.user_handle = unb64url(public["user"]["id"])
        client_data = self._client_data("webauthn.create", public["challenge"], origin)
        auth_data = (
            hashlib.sha256(self.rp_id.encode()).digest()
            + self._flags(ATTESTED)
            + self.counter.to_bytes(4, "big")
            + bytes(16)
            + len(self.credential_id).to_bytes(2, "big")
            + self.credential_id
            + self._cose()
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": self.id,
            "rawId": self.id,
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["usb"],
            },
            "clientExtensionResults": {},
        }

    def get(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        challenge: str | None = None,
        count: int | None = None,
    ) -> dict[str, Any]:
        """The answer to sign-in options; its count is the next one unless ``count`` says."""
        self.counter = self.counter + 1 if count is None else count
        client_data = self._client_data(
            "webauthn.get", challenge or options["publicKey"]["challenge"], origin
        )
        auth_data = (
            hashlib.sha256(self.rp_id.encode()).digest()
            + self._flags(0)
            + self.counter.to_bytes(4, "big")
        )
        signature = self.private.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        return {
            "id": self.id,
            "rawId": self.id,
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": b64url(self.user_handle),
            },
            "clientExtensionResults": {},
        }
