"""Argon2id password hashes and the rules for new passwords."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn

from server.core.errors import AppError, ErrorCode

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256
# zxcvbn's score 3: about 10^8 guesses or more. Below it are the common passwords and their
# usual variations (password1234, P@ssw0rd2024, qwertyuiop12, a word and a year, repeats).
MIN_STRENGTH = 3
# zxcvbn refuses longer input (and its time grows with the length): the first 72 characters
# decide, which no common password outlasts.
_STRENGTH_CHARS = 72
# Words anyone guessing at a Lifeline account would try first.
_SITE_WORDS = ("lifeline", "police", "operator", "admin", "emergency")

# What each refusal means, for the command line and the API (pages say it from the catalogue).
PROBLEM_TEXTS = {
    "password.error.mismatch": "the two passwords differ",
    "password.error.too_short": f"it is shorter than {MIN_PASSWORD_LENGTH} characters",
    "password.error.too_long": f"it is longer than {MAX_PASSWORD_LENGTH} characters",
    "password.error.contains_username": "it contains the username",
    "password.error.common": "it is a common password, or too close to one to be safe",
}

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
    if is_common(password, username):
        return "password.error.common"
    return None


def is_common(password: str, username: str) -> bool:
    """Whether a password is one of the common ones or a small variation of one.

    zxcvbn's lists (bundled with the package, nothing is fetched: the most common passwords,
    English words, names) and its patterns (keyboard walks, sequences, dates, l33t, repeats)
    estimate how many guesses it would take. It costs up to ~0.1 s of CPU: async callers run
    it in a thread.
    """
    estimate = zxcvbn(password[:_STRENGTH_CHARS], user_inputs=[username, *_SITE_WORDS])
    return int(estimate["score"]) < MIN_STRENGTH


def check_new_password(password: str, username: str) -> None:
    """Refuse (PASSWORD_REFUSED) a password that may not be set for ``username``."""
    problem = password_problem(password, password, username)
    if problem is not None:
        raise AppError(
            ErrorCode.PASSWORD_REFUSED,
            f"The password is refused: {PROBLEM_TEXTS.get(problem, problem)}",
            data={"problem": problem},
        )
