"""The WebAuthn relying party: which site a key's signature must name.

Both halves come from ``PUBLIC_URL``, the origin the browsers open: its host is the RP id, the
URL itself the one origin a key's answer may carry. A browser refuses an IP address as an RP id,
so a deployment named only by its address (or by nothing) has no keys.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from config import Settings

RP_NAME = "Lifeline"


@dataclass(frozen=True)
class RelyingParty:
    id: str
    origin: str
    name: str = RP_NAME


def relying_party(settings: Settings) -> RelyingParty | None:
    """The deployment's relying party, or None when PUBLIC_URL names no host a key accepts."""
    if not settings.PUBLIC_URL:
        return None
    parts = urlsplit(settings.PUBLIC_URL)
    host = (parts.hostname or "").lower()
    if not host:
        return None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return RelyingParty(id=host, origin=f"{parts.scheme}://{parts.netloc}".lower())
    return None


def key_sign_in_offers(settings: Settings) -> dict[str, bool]:
    """What the login page offers besides the password form: a key after the password (where
    there is a relying party), and a passkey alone (where WEBAUTHN_PASSWORDLESS says so)."""
    available = relying_party(settings) is not None
    return {"keys_available": available, "passkeys": available and settings.WEBAUTHN_PASSWORDLESS}
