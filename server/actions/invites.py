"""Invites: the operator, on the phone with a caller, sends them a link by SMS (or copies one to
pass on) that drops them straight into a video call answered by that operator.

A link is good once and for ``INVITE_TTL_SECS``; its token is stored only as its hash. The SMS
goes through the ``SmsGateway`` port; a gateway that refuses or does not answer leaves the
invite stored, its ``sms`` state ``failed`` (the operator sees it and may copy the link), and
nothing else changed. Redeeming it creates the call already answered by the inviting operator,
in one transaction whose conditional UPDATE is what makes the link single-use.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import phonenumbers
from sqlalchemy import update
from sqlmodel import col, select

from server.actions import participants
from server.actions.access import caller_address, check_may_answer
from server.actions.calls import NewCall, _transition, about, check_language
from server.actions.queue import summary_of
from server.actions.staff_sessions import StaffContext
from server.core.errors import AppError, ErrorCode
from server.core.events import QueueCallUpdated
from server.core.ports import SmsNotSent
from server.core.services import Services
from server.db.models import Call, CallState, Channel, Invite, InviteSms, Role, User
from server.security.tokens import new_token, token_hash
from server.state.ratelimit import parse_rules

log = logging.getLogger("lifeline.invites")

MAX_PHONE_CHARS = 40
MAX_TOKEN_CHARS = 128
# The page the link opens; the token rides after '#', which browsers never send to a server
# (so no access log or proxy log ever holds it), and the page posts it to redeem.
INVITE_PATH = "/invite"


@dataclass(frozen=True)
class NewInvite:
    invite: Invite
    link: str


def check_phone(services: Services, raw: str) -> str:
    """The number in E.164 (``+48601234567``), or ``invalid_phone``: one typed without its
    country is read as ``PHONE_REGION``'s."""
    text = raw.strip()
    if not text or len(text) > MAX_PHONE_CHARS:
        raise AppError(ErrorCode.INVALID_PHONE, "Type the caller's phone number")
    try:
        number = phonenumbers.parse(text, services.settings.PHONE_REGION)
    except phonenumbers.NumberParseException:
        raise AppError(ErrorCode.INVALID_PHONE, "That is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise AppError(ErrorCode.INVALID_PHONE, "That is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _channel_of(role: str) -> str:
    """The channel an invite's call goes to: the inviting role's own."""
    check_may_answer(role)
    if role == Role.OPERATOR:
        return Channel.POLICE
    if role == Role.INTERNAL_SECURITY:
        return Channel.INTERNAL_SECURITY
    raise AppError(ErrorCode.ROLE_FORBIDDEN, "Only operators invite callers")


def invite_link(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}{INVITE_PATH}#{token}"


async def do_create_invite(
    services: Services,
    staff: StaffContext,
    *,
    phone: str | None,
    language: str,
    base_url: str,
    message: Callable[[str], str],
) -> NewInvite:
    """Make a link and, given a number, text it (``message(link)`` is the SMS, in the caller's
    language). Counted against the operator's ``INVITE_RATE_LIMIT`` before anything is stored."""
    channel = _channel_of(staff.role)
    number = check_phone(services, phone) if phone is not None else None
    language = check_language(language)
    over = await services.limits.take(
        parse_rules(services.settings.INVITE_RATE_LIMIT), "invites", str(staff.user_id)
    )
    if over is not None:
        raise AppError(
            ErrorCode.RATE_LIMITED,
            f"At most {over.rule} invites: try again in {over.retry_after_secs} s",
            data={"headers": {"Retry-After": str(over.retry_after_secs)}},
        )
    token = new_token()
    now = services.clock.now()
    invite = Invite(
        id=str(uuid.uuid4()),
        token_hash=token_hash(token),
        operator_id=staff.user_id,
        channel=channel,
        phone=number,
        language=language,
        sms=InviteSms.SENDING if number else InviteSms.NONE,
        created_at=now,
        expires_at=now + timedelta(seconds=services.settings.INVITE_TTL_SECS),
    )
    audit = services.audit
    async with audit.transaction() as session:
        session.add(invite)
        await audit.record(
            session,
            actor=staff.username,
            action="invite_created",
            subject=f"invite:{invite.id}",
            data={"by_sms": number is not None, "expires_at": invite.expires_at.isoformat()},
        )
    link = invite_link(base_url, token)
    if number is not None:
        await _send(services, staff, invite, number, message(link))
    return NewInvite(invite, link)


async def _send(
    services: Services, staff: StaffContext, invite: Invite, number: str, text: str
) -> None:
    """Text the link; whatever the gateway does, the invite stays and says how it went."""
    failure: str | None = None
    try:
        await services.sms.send(number, text)
    except SmsNotSent as exc:
        failure = exc.reason
        log.warning("invite sms not sent", extra={"reason": exc.reason, "detail": exc.detail})
    state = InviteSms.FAILED if failure else InviteSms.SENT
    audit = services.audit
    async with audit.transaction() as session:
        await session.exec(
            update(Invite).where(col(Invite.id) == invite.id).values(sms=state, sms_failure=failure)
        )
        await audit.record(
            session,
            actor=staff.username,
            action="invite_sms_sent" if failure is None else "invite_sms_failed",
            subject=f"invite:{invite.id}",
            data={"reason": failure} if failure else {},
        )
    invite.sms, invite.sms_failure = state, failure


async def do_redeem_invite(services: Services, token: str, *, remote: str) -> NewCall:
    """The caller opened the link: their video call, answered by the inviting operator at
    once. A link used before, too old, or never made is refused and changes nothing."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        raise AppError(ErrorCode.INVITE_INVALID, "This link is not an invitation")
    now = services.clock.now()
    call_token = new_token()
    audit = services.audit
    async with audit.transaction() as session:
        found = (
            await session.exec(select(Invite).where(col(Invite.token_hash) == token_hash(token)))
        ).first()
        if found is None:
            raise AppError(ErrorCode.INVITE_INVALID, "This link is not an invitation")
        if found.used_at is not None:
            raise AppError(ErrorCode.INVITE_USED, "This link was used already")
        if found.expires_at <= now:
            raise AppError(ErrorCode.INVITE_EXPIRED, "This link has expired")
        operator = await session.get(User, found.operator_id)
        if operator is None or operator.disabled:
            raise AppError(ErrorCode.INVITE_INVALID, "This invitation no longer stands")
        call = Call(
            id=str(uuid.uuid4()),
            channel=found.channel,
            mode="video",
            language=found.language,
            state=CallState.ANSWERED,
            token_hash=token_hash(call_token),
            operator_id=found.operator_id,
            created_at=now,
            answered_at=now,
        )
        session.add(call)
        await session.flush()
        used = await session.exec(
            update(Invite)
            .where(col(Invite.id) == found.id, col(Invite.used_at).is_(None))
            .values(used_at=now, call_id=call.id)
        )
        if used.rowcount != 1:
            raise AppError(ErrorCode.INVITE_USED, "This link was used already")
        # The same transitions as any call, at one instant: the figures count it as offered and
        # answered with no wait, by whom it was answered.
        await _transition(session, call.id, None, CallState.QUEUED, "citizen", now, "invite")
        await _transition(
            session, call.id, CallState.QUEUED, CallState.ANSWERED, operator.username, now, "invite"
        )
        await participants.joined(session, call.id, operator.id or 0, operator.role, "invite", now)
        await audit.record(
            session,
            actor="citizen",
            action="call_created",
            subject=f"call:{call.id}",
            data={
                "channel": call.channel,
                "mode": call.mode,
                "invite": found.id,
                **caller_address(services.pseudonyms, call.channel, remote),
            },
        )
        await audit.record(
            session,
            actor=operator.username,
            action="call_answered",
            subject=f"call:{call.id}",
            data={"invite": found.id},
        )
    about(services, call.channel, call.id)
    log.info("invited call created", extra={"channel": call.channel})
    services.telemetry.call_created(call.channel)
    services.telemetry.call_outcome(call.channel, "answered")
    services.telemetry.call_waited(call.channel, 0.0)
    # The inviting operator's console opens it (and the wall shows it) from this update.
    summary = await summary_of(services, call)
    await services.notifier.to_queue(call.channel, QueueCallUpdated(call=summary))
    return NewCall(call, call_token)
