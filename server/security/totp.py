"""TOTP second factor (RFC 6238): secrets, provisioning URIs with QR codes, one-use checks."""

from __future__ import annotations

from datetime import datetime

import pyotp
import segno

ISSUER = "Lifeline"
STEP_SECS = 30


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, username: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def qr_svg(uri: str) -> str:
    """An inline SVG, drawn here: the page loads nothing from outside."""
    svg: str = segno.make(uri, error="m").svg_inline(scale=5, dark="#000", light="#fff")
    return svg


def accepted_step(secret: str, code: str, now: datetime, last_step: int | None) -> int | None:
    """The time step ``code`` is valid for (one step of drift allowed), unless already used."""
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    current = int(now.timestamp()) // STEP_SECS
    for step in (current, current - 1, current + 1):
        if pyotp.utils.strings_equal(totp.generate_otp(step), code):
            if last_step is not None and step <= last_step:
                return None
            return step
    return None
