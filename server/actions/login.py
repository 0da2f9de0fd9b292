"""Checking a sign-in: the address's allowance, the password, the wait after failures, TOTP.

Every try that is not a success gets one and the same answer, whatever went wrong (no such
user, a wrong password or code, a disabled account, an address that must still wait): the
answer must not tell an outsider which accounts exist or which password was right. The audit
chain keeps the real reason.

Failures count per account *and* address: after ``LOGIN_MAX_FAILURES`` from one address, that
address waits before its next try on that account (``LOGIN_FIRST_DELAY_SECS``, doubling with
each further failure, at most ``LOGIN_LOCKOUT_SECS``), while the operator at their own desk
signs in as usual. Above all that, one address gets ``LOGIN_RATE_LIMIT`` tries whatever the
account; the rest are refused before any password is checked (a flood must not buy argon2).

A password may be judged elsewhere than against the account's hash (the centre's directory:
``server/actions/directory_login.py``); the rest of the decision, the account, the wait, TOTP,
the one answer, stays the same.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from config import Settings
from server.actions.access import check_account_change
from server.core.clock import Clock
from server.core.errors import AppError, ErrorCode
from server.db.audit import AuditLog
from server.db.models import LoginFailure, Role, User
from server.security.passwords import verify_password
from server.security.totp import accepted_step
from server.state.ratelimit import RateLimits, parse_rules

log = logging.getLogger("lifeline.auth")

# A throttled address is entered in the audit chain once a minute, not once a try: a flood
# must not become a flood of writes.
THROTTLE_AUDIT_RULE = "1/minute"
# The hash of an account whose one-time password a judge made needless: not an argon2 hash, so
# no password matches it (verify_password).
NO_PASSWORD = "!judged-elsewhere"
# Longer waits than this are the cap anyway; it only keeps 2 ** n small.
_MAX_DOUBLINGS = 40


# A hardware key as the second factor (server/actions/webauthn_login.py): after the password
# matched, in the sign-in's transaction, whether the key's answer opens this account.
KeyCheck = Callable[[AsyncSession, User], Awaitable[bool]]


class Outcome(enum.StrEnum):
    OK = "ok"
    FAILED = "failed"


@dataclass(frozen=True)
class LoginResult:
    outcome: Outcome
    user: User | None = None


@dataclass(frozen=True)
class Judged:
    """A password judged elsewhere than against the account's hash: ``ok``, else the chain's
    ``reason``; a failure that is nobody's guess (a directory that does not answer) does not
    ``count`` toward the address's wait. ``role``: the role that judge gives the account."""

    ok: bool
    reason: str = "bad_password"
    counts: bool = True
    role: str | None = None
    facts: dict[str, object] = field(default_factory=dict)


# The account's name and the password typed; ``None``: not this judge's account, its own hash.
PasswordJudge = Callable[[str, str], Awaitable[Judged | None]]
# The account's name alone, for a sign-in without a password (a passkey): whether the judge
# still stands behind the account; ``None``: not this judge's account.
StandingJudge = Callable[[str], Awaitable[Judged | None]]


def address_key(remote: str) -> str:
    """The address tries are counted against: the client's IP address, or its /64 for IPv6
    (one subscriber is given a whole /64, and could otherwise take a new address per try)."""
    try:
        ip = ipaddress.ip_address(remote)
    except ValueError:
        return remote[:64] or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def wait_after(failures: int, settings: Settings) -> float:
    """Seconds an address waits on an account after its ``failures``-th failure there."""
    beyond = failures - settings.LOGIN_MAX_FAILURES
    if beyond < 0:
        return 0.0
    doubled = settings.LOGIN_FIRST_DELAY_SECS * 2 ** min(beyond, _MAX_DOUBLINGS)
    return min(float(settings.LOGIN_LOCKOUT_SECS), doubled)


async def check_allowance(
    audit: AuditLog, limits: RateLimits, settings: Settings, address: str
) -> None:
    """Count one try from ``address``; refuse it (RATE_LIMITED, with Retry-After) past
    ``LOGIN_RATE_LIMIT``, before the try costs a password hash or a database write."""
    try:
        await limits.hit(parse_rules(settings.LOGIN_RATE_LIMIT), "login", address)
    except AppError as refused:
        if refused.code is not ErrorCode.RATE_LIMITED:
            raise
        retry_after = int(refused.data.get("headers", {}).get("Retry-After", "60"))
        log.info("login throttled", extra={"address": address, "retry_after": retry_after})
        try:
            await limits.hit(parse_rules(THROTTLE_AUDIT_RULE), "login-throttled", address)
        except AppError:
            pass  # entered in the chain already this minute
        else:
            await audit.append(
                actor="-",
                action="login_throttled",
                subject=f"address:{address}",
                data={"limit": settings.LOGIN_RATE_LIMIT, "retry_after": retry_after},
            )
        raise AppError(
            ErrorCode.RATE_LIMITED,
            f"Too many sign-in attempts from this address: try again in {retry_after} s",
            data={"headers": {"Retry-After": str(retry_after)}, "retry_after": retry_after},
        ) from None


def _take_role(user: User, role: str | None) -> dict[str, object]:
    """The judge's role on the account, as an admin could set it: never into or out of
    internal security, the unit's own (access.py); such an account keeps its role."""
    if role is None or role == user.role:
        return {}
    try:
        check_account_change(Role.ADMIN, before=user.role, after=role)
    except AppError:
        return {"role_kept": user.role, "role_offered": role}
    previous, user.role = user.role, role
    return {"role": role, "previous_role": previous}


async def authenticate(
    audit: AuditLog,
    clock: Clock,
    settings: Settings,
    limits: RateLimits,
    *,
    username: str,
    password: str,
    totp: str,
    remote: str,
    key: KeyCheck | None = None,
    judge: PasswordJudge | None = None,
) -> LoginResult:
    """Decide a sign-in attempt and record it in the audit chain, in one transaction.

    Past the address's allowance, every try costs one argon2 verification, whatever its
    outcome (against a stand-in hash for an unknown user), so the time an answer takes tells
    nothing either. It runs in a thread and outside the transaction: a flood of tries must
    neither stall the event loop (and the calls on it) nor hold the chain's write lock.

    With ``key``, a hardware key's answer is the second factor instead of the TOTP code, and
    it alone decides (a refused key is not made up for by an account without TOTP).

    Raises:
        AppError: ``RATE_LIMITED``, the address has used its allowance of tries.
    """
    address = address_key(remote)
    await check_allowance(audit, limits, settings, address)
    name = username.strip().lower()[:64]
    async with audit.db.session() as session:
        found = (await session.exec(select(User).where(col(User.username) == name))).first()
    checked_hash = found.password_hash if found is not None else None
    judged = await judge(name, password) if judge is not None else None
    password_matches = judged is None and await asyncio.to_thread(
        verify_password, checked_hash, password
    )
    elsewhere = judged.facts if judged is not None else {}
    now = clock.now()
    failed = LoginResult(Outcome.FAILED)
    async with audit.transaction() as session:
        user = (await session.exec(select(User).where(col(User.username) == name))).first()

        async def record(action: str, **data: object) -> None:
            await audit.record(
                session,
                actor=name or "-",
                action=action,
                subject=f"user:{name}",
                data={"remote": remote, **elsewhere, **data},
            )

        if user is None or user.id is None:
            await record("login_failed", reason="unknown_user")
            log.info("login failed", extra={"user": name, "reason": "unknown_user"})
            return failed
        if user.disabled:
            await record("login_refused", reason="disabled")
            log.info("login failed", extra={"user": name, "reason": "disabled"})
            return failed
        pair, left = await _failures_here(session, user.id, address, now, settings)
        failures = pair.failures if pair is not None else 0
        if left:
            await record("login_refused", reason="waiting", failures=failures, wait_secs=left)
            log.info("login failed", extra={"user": name, "reason": "waiting"})
            return failed

        if judged is not None and not judged.ok and not judged.counts:
            await record("login_refused", reason=judged.reason)
            log.info("login failed", extra={"user": name, "reason": judged.reason})
            return failed
        # A password changed between the check and now was not the one checked.
        password_ok = password_matches and user.password_hash == checked_hash
        if judged is not None:
            password_ok = judged.ok
        step = None
        if password_ok and user.totp_confirmed and user.totp_secret:
            step = accepted_step(user.totp_secret, totp, now, user.totp_last_step)
        needs_totp = user.totp_confirmed and bool(user.totp_secret)
        second_ok = step is not None or not needs_totp
        if key is not None:
            second_ok = password_ok and await key(session, user)
        if password_ok and second_ok:
            if pair is not None:
                await session.delete(pair)
            user.failed_logins, user.locked_until = 0, None
            if step is not None:
                user.totp_last_step = step
            granted: dict[str, object] = {}
            if judged is not None:
                granted = _take_role(user, judged.role)
                if user.must_change_password:
                    # The password is the judge's: the one-time password is never needed, and
                    # left, it would open the account without the change if the judge went.
                    user.password_hash, user.must_change_password = NO_PASSWORD, False
                    granted["one_time_password_dropped"] = True
            session.add(user)
            await record("login", **granted, **({"method": "webauthn"} if key is not None else {}))
            log.info("login", extra={"user": name})
            return LoginResult(Outcome.OK, user)

        second = "bad_key" if key is not None else "bad_totp"
        reason = second if password_ok else judged.reason if judged else "bad_password"
        failures, wait = await _count_failure(session, user, pair, address, now, settings)
        await record("login_failed", reason=reason, failures=failures, wait_secs=wait)
        log.info("login failed", extra={"user": name, "reason": reason})
        if wait:
            log.warning(
                "sign-ins from one address wait",
                extra={"user": name, "address": address, "seconds": wait},
            )
        return failed


async def _failures_here(
    session: AsyncSession, user_id: int, address: str, now: datetime, settings: Settings
) -> tuple[LoginFailure | None, float]:
    """This account's failures from ``address`` (those long enough ago forgotten), and the
    seconds the address must still wait on it (0: none)."""
    memory = timedelta(seconds=settings.LOGIN_FAILURE_MEMORY_SECS)
    pair = await session.get(LoginFailure, (user_id, address))
    if pair is not None and pair.last_failure_at + memory <= now:
        await session.delete(pair)  # long enough ago: forgotten
        pair = None
    if pair is None:
        return None, 0.0
    wait_until = pair.last_failure_at + timedelta(seconds=wait_after(pair.failures, settings))
    if now < wait_until:
        return pair, round((wait_until - now).total_seconds(), 1)
    return pair, 0.0


async def _count_failure(
    session: AsyncSession,
    user: User,
    pair: LoginFailure | None,
    address: str,
    now: datetime,
    settings: Settings,
) -> tuple[int, float]:
    """One more failure on ``user`` from ``address``: the count, and the wait it now costs."""
    assert user.id is not None
    memory = timedelta(seconds=settings.LOGIN_FAILURE_MEMORY_SECS)
    if pair is None:
        pair = LoginFailure(user_id=user.id, address=address, last_failure_at=now)
    pair.failures, pair.last_failure_at = pair.failures + 1, now
    session.add(pair)
    # This account's other addresses' failures, from long ago: forgotten.
    await session.exec(
        delete(LoginFailure).where(
            col(LoginFailure.user_id) == user.id,
            col(LoginFailure.address) != address,
            col(LoginFailure.last_failure_at) < now - memory,
        )
    )
    user.failed_logins += 1
    session.add(user)
    return pair.failures, wait_after(pair.failures, settings)


async def verify_second_factor(
    audit: AuditLog,
    clock: Clock,
    settings: Settings,
    limits: RateLimits,
    *,
    user_id: int,
    totp: str,
    remote: str,
    key: KeyCheck | None = None,
) -> bool:
    """Lifeline's TOTP code after a single sign-on whose provider showed no second factor
    (server/actions/oidc_login.py): the address's allowance, the wait after failures and the
    one use of a code are those of a local sign-in, and so are the audit entries (marked
    ``via: oidc``; the chain's ``oidc_login`` before them names the provider). With ``key``,
    a hardware key's answer is the second factor instead, and it alone decides.

    Raises:
        AppError: ``RATE_LIMITED``, the address has used its allowance of tries.
    """
    address = address_key(remote)
    await check_allowance(audit, limits, settings, address)
    now = clock.now()
    async with audit.transaction() as session:
        user = await session.get(User, user_id)
        if user is None or user.id is None:
            return False
        name = user.username

        async def record(action: str, **data: object) -> None:
            await audit.record(
                session,
                actor=name,
                action=action,
                subject=f"user:{name}",
                data={"remote": remote, "via": "oidc", **data},
            )

        if user.disabled:
            await record("login_refused", reason="disabled")
            return False
        pair, left = await _failures_here(session, user.id, address, now, settings)
        if left:
            await record("login_refused", reason="waiting", wait_secs=left)
            return False
        step = None
        if key is None and user.totp_confirmed and user.totp_secret:
            step = accepted_step(user.totp_secret, totp, now, user.totp_last_step)
        if step is not None or (key is not None and await key(session, user)):
            if pair is not None:
                await session.delete(pair)
            user.failed_logins, user.locked_until = 0, None
            if step is not None:
                user.totp_last_step = step
            session.add(user)
            await record("login", second_factor="totp" if key is None else "webauthn")
            log.info("login", extra={"user": name, "via": "oidc"})
            return True
        failures, wait = await _count_failure(session, user, pair, address, now, settings)
        reason = "bad_totp" if key is None else "bad_key"
        await record("login_failed", reason=reason, failures=failures, wait_secs=wait)
        log.info("login failed", extra={"user": name, "reason": reason})
        return False
