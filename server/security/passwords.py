"""Argon2id password hashes and the rules for new passwords."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256

_hasher = PasswordHasher()
# Verified against when the user does not exist, so both paths take the same time.
_DUMMY_HASH = _hasher.hash("lifeline-no-such-user")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password[:MAX_PASSWORD_LENGTH])
    except (VerificationError, InvalidHashError):
        return False


def one_time_password() -> str:
    """A password an admin hands over once; it must be changed at first login."""
    return secrets.token_urlsafe(12)


def password_problem(password: str, confirm: str, username: str) -> str | None:
    """The catalogue key of what is wrong with a new password, or None."""
    if password != confirm:
        return "password.error.mismatch"
    if len(password) < MIN_PASSWORD_LENGTH:
        return "password.error.too_short"
    if len(password) > MAX_PASSWORD_LENGTH:
        return "password.error.too_long"
    if username.lower() in password.lower():
        return "password.error.contains_username"
    return None
