"""A key's answer checked with py_webauthn, whatever the browser (or an attacker) sent.

py_webauthn raises on every wrong answer (another origin, another challenge, a bad signature),
and a malformed one can raise Python's own errors on the way; both become one ``Refused`` with
the detail for the audit chain, never an error the request would turn into a 500.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, TypeVar

from webauthn.helpers.exceptions import WebAuthnException

T = TypeVar("T")
DETAIL_CHARS = 200
# What a broken answer (not JSON of the right shape, bad base64url, short CBOR) raises.
MALFORMED = (WebAuthnException, ValueError, TypeError, KeyError, IndexError, AttributeError)


class Refused(Exception):
    """A key's answer that does not open anything: ``reason`` is its audit entry's reason."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail[:DETAIL_CHARS]


def checked(verify: Callable[..., T], **arguments: Any) -> T:
    """``verify(**arguments)``, or ``Refused("invalid")`` with what it objected to."""
    try:
        return verify(**arguments)
    except (*MALFORMED, struct.error) as exc:
        raise Refused("invalid", f"{type(exc).__name__}: {exc}") from None


def credential_id_of(credential: dict[str, Any]) -> str:
    """The answer's credential id as sent (base64url), or ``Refused("invalid")``."""
    value = credential.get("id") if isinstance(credential, dict) else None
    if not isinstance(value, str) or not 1 <= len(value) <= 1400:
        raise Refused("invalid", "no credential id")
    return value


def sign_count_goes_on(stored: int, new: int) -> bool:
    """Whether ``new`` may follow ``stored``: a key that counts must count up (a clone signing
    with the count the original had passed is refused); one that never counts stays at 0."""
    return not (new > 0 or stored > 0) or new > stored
