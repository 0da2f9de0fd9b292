"""The tables. Every timestamp is aware UTC; every state change is a row of its own."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from server.db.types import UTCDateTime


class Role(enum.StrEnum):
    OPERATOR = "operator"
    SUPERVISOR = "supervisor"
    INTERNAL_SECURITY = "internal_security"
    ADMIN = "admin"


class CallState(enum.StrEnum):
    QUEUED = "queued"
    ANSWERED = "answered"
    ENDED = "ended"
    ABANDONED = "abandoned"
    TRANSFERRED = "transferred"
    FAILED = "failed"


class Channel(enum.StrEnum):
    POLICE = "police"
    INTERNAL_SECURITY = "internal_security"


class SessionStage(enum.StrEnum):
    """How far a staff login has got: a session only reaches ``active`` after every step."""

    CHANGE_PASSWORD = "change_password"
    ENROL_TOTP = "enrol_totp"
    ACTIVE = "active"


def _ts(nullable: bool = False) -> Column[datetime]:
    return Column(UTCDateTime(), nullable=nullable)


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True, index=True)
    role: str = Field(max_length=32)
    password_hash: str = Field(max_length=255)
    must_change_password: bool = True
    totp_secret: str | None = Field(default=None, max_length=64)
    totp_confirmed: bool = False
    # The last 30-second step a code was accepted for: a code is good once (RFC 6238 5.2).
    totp_last_step: int | None = None
    disabled: bool = False
    failed_logins: int = 0
    locked_until: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    language: str = Field(default="en", max_length=8)
    created_at: datetime = Field(sa_column=_ts())
    updated_at: datetime = Field(sa_column=_ts())


class StaffSession(SQLModel, table=True):
    """Server-side session: the cookie holds a random token, the table only its hash."""

    __tablename__ = "staff_sessions"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    stage: str = Field(max_length=32)
    csrf_token: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=_ts())
    last_seen_at: datetime = Field(sa_column=_ts())
    remote: str = Field(default="", max_length=64)


class LoginFailure(SQLModel, table=True):
    """Failed sign-ins on one account from one address (an IPv6 /64 counts as one): that
    address, and only it, waits before its next try; a success from it forgets them."""

    __tablename__ = "login_failures"

    user_id: int = Field(foreign_key="users.id", primary_key=True)
    address: str = Field(primary_key=True, max_length=64)
    failures: int = 0
    last_failure_at: datetime = Field(sa_column=_ts())


class Call(SQLModel, table=True):
    __tablename__ = "calls"
    __table_args__ = (Index("ix_calls_state_channel", "state", "channel"),)

    id: str = Field(primary_key=True, max_length=36)
    channel: str = Field(max_length=32)
    mode: str = Field(max_length=16)
    language: str = Field(max_length=8)
    state: str = Field(max_length=16)
    token_hash: str = Field(max_length=64, unique=True)
    operator_id: int | None = Field(default=None, foreign_key="users.id")
    media_node: str | None = Field(default=None, max_length=64)
    last_seq: int = 0
    disposition: str | None = Field(default=None, max_length=64)
    note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # What the system noticed about the call ("flooding", ...), comma-separated: a marked call
    # is shown as such and queued after unmarked ones, never refused (server/actions/call_marks.py).
    marks: str = Field(default="", max_length=255, sa_column_kwargs={"server_default": ""})
    created_at: datetime = Field(sa_column=_ts())
    answered_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    ended_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class CallTransition(SQLModel, table=True):
    """Who moved a call from which state to which, and when: wait times come from these."""

    __tablename__ = "call_transitions"

    id: int | None = Field(default=None, primary_key=True)
    call_id: str = Field(foreign_key="calls.id", index=True, max_length=36)
    from_state: str | None = Field(default=None, max_length=16)
    to_state: str = Field(max_length=16)
    actor: str = Field(max_length=80)
    reason: str = Field(default="", max_length=255)
    at: datetime = Field(sa_column=_ts())


class LocationSample(SQLModel, table=True):
    __tablename__ = "location_samples"
    __table_args__ = (UniqueConstraint("call_id", "seq"),)

    id: int | None = Field(default=None, primary_key=True)
    call_id: str = Field(foreign_key="calls.id", index=True, max_length=36)
    seq: int
    lat: float
    lon: float
    accuracy_m: float | None = None
    heading_deg: float | None = None
    speed_mps: float | None = None
    measured_at: datetime = Field(sa_column=_ts())
    received_at: datetime = Field(sa_column=_ts())


class ChatMessage(SQLModel, table=True):
    __tablename__ = "chat_messages"
    __table_args__ = (
        UniqueConstraint("call_id", "seq"),
        # A resend after a reconnect carries the same client id and is stored once.
        UniqueConstraint("call_id", "client_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    call_id: str = Field(foreign_key="calls.id", index=True, max_length=36)
    seq: int
    sender: str = Field(max_length=16)
    sender_user_id: int | None = Field(default=None, foreign_key="users.id")
    client_id: str = Field(max_length=64)
    body: str = Field(sa_column=Column(Text, nullable=False))
    at: datetime = Field(sa_column=_ts())


class Recording(SQLModel, table=True):
    __tablename__ = "recordings"
    __table_args__ = (UniqueConstraint("call_id", "segment"),)

    id: int | None = Field(default=None, primary_key=True)
    call_id: str = Field(foreign_key="calls.id", index=True, max_length=36)
    segment: int
    path: str = Field(max_length=512)
    media_node: str = Field(max_length=64)
    started_at: datetime = Field(sa_column=_ts())
    ended_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    size_bytes: int | None = None
    sha256: str | None = Field(default=None, max_length=64)


class AuditEntry(SQLModel, table=True):
    """One link of the append-only hash chain; ``hash`` covers every other column."""

    __tablename__ = "audit_log"

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    at: datetime = Field(sa_column=_ts())
    actor: str = Field(max_length=80)
    action: str = Field(max_length=64, index=True)
    subject: str = Field(default="", max_length=128)
    data: str = Field(sa_column=Column(Text, nullable=False))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64, unique=True)


class Snapshot(SQLModel, table=True):
    """A still taken by an operator from the live video: evidence, hashed like a recording."""

    __tablename__ = "snapshots"

    id: int | None = Field(default=None, primary_key=True)
    call_id: str = Field(foreign_key="calls.id", index=True, max_length=36)
    taken_by: int = Field(foreign_key="users.id")
    path: str = Field(max_length=512)
    sha256: str = Field(max_length=64)
    size_bytes: int
    at: datetime = Field(sa_column=_ts())


class CallPhoto(SQLModel, table=True):
    """A photo the caller sent during the call: evidence, kept as sent, with its hash.

    It takes a sequence number from the call's counter like a chat message, so a reconnecting
    client catches up on photos the same way.
    """

    __tablename__ = "call_photos"
    __table_args__ = (UniqueConstraint("call_id", "seq"),)

    id: int | None = Field(default=None, primary_key=True)
    call_id: str = Field(foreign_key="calls.id", index=True, max_length=36)
    seq: int
    path: str = Field(max_length=512)
    content_type: str = Field(max_length=32)
    sha256: str = Field(max_length=64)
    size_bytes: int
    width: int
    height: int
    at: datetime = Field(sa_column=_ts())


# --- Threat map (KMZB): citizens' reports of non-urgent threats, verified by the police ---


class ReportStatus(enum.StrEnum):
    NEW = "new"
    VERIFYING = "verifying"
    CONFIRMED = "confirmed"
    NOT_CONFIRMED = "not_confirmed"
    JOKE_OR_MISTAKE = "joke_or_mistake"
    ELIMINATED = "eliminated"


class ReportCategory(SQLModel, table=True):
    """A KMZB category, stored as a code; its names live in the i18n catalogues."""

    __tablename__ = "report_categories"

    code: str = Field(primary_key=True, max_length=64)
    position: int = 0
    active: bool = True


class ThreatReport(SQLModel, table=True):
    __tablename__ = "threat_reports"
    __table_args__ = (
        Index("ix_threat_reports_status_category", "status", "category"),
        Index("ix_threat_reports_lat_lon", "lat", "lon"),
    )

    id: int | None = Field(default=None, primary_key=True)
    category: str = Field(foreign_key="report_categories.code", max_length=64)
    status: str = Field(max_length=16)
    lat: float
    lon: float
    description: str = Field(sa_column=Column(Text, nullable=False))
    days: str = Field(default="", max_length=32)
    time_of_day: str = Field(default="any", max_length=16)
    contact: str | None = Field(default=None, max_length=200)
    # Sensitive reports (a victim's home, say) are shown publicly only at ~100 m.
    sensitive: bool = False
    public_note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    confirmations: int = 0
    # "web", "open311" or "call"; a report made from a call keeps the call's id.
    source: str = Field(default="web", max_length=16)
    call_id: str | None = Field(default=None, foreign_key="calls.id", max_length=36)
    created_by: int | None = Field(default=None, foreign_key="users.id")
    follow_token_hash: str | None = Field(default=None, max_length=64, unique=True)
    remote: str = Field(default="", max_length=64)
    created_at: datetime = Field(sa_column=_ts())
    updated_at: datetime = Field(sa_column=_ts())
    read_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    # When verification ended (confirmed, not confirmed, joke or mistake): KMZB's 5-day target.
    verified_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    # When an officer last invited the author to a video call (shown on the follow page).
    invited_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class ReportPhoto(SQLModel, table=True):
    """A citizen's photo: the original kept as sent (with its hash), a public EXIF-free copy."""

    __tablename__ = "report_photos"
    __table_args__ = (UniqueConstraint("report_id", "n"),)

    id: int | None = Field(default=None, primary_key=True)
    report_id: int = Field(foreign_key="threat_reports.id", index=True)
    n: int
    original_path: str = Field(max_length=512)
    content_type: str = Field(max_length=32)
    sha256: str = Field(max_length=64)
    size_bytes: int
    public_path: str = Field(max_length=512)
    public_sha256: str = Field(max_length=64)
    width: int
    height: int
    at: datetime = Field(sa_column=_ts())


class ReportHistory(SQLModel, table=True):
    """Every change of a report (status, forwarding, an invitation to a call), by whom, with its
    notes."""

    __tablename__ = "report_history"

    id: int | None = Field(default=None, primary_key=True)
    report_id: int = Field(foreign_key="threat_reports.id", index=True)
    kind: str = Field(max_length=16)
    actor: str = Field(max_length=80)
    from_status: str | None = Field(default=None, max_length=16)
    to_status: str | None = Field(default=None, max_length=16)
    forwarded_to: str | None = Field(default=None, max_length=32)
    public_note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    internal_note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    at: datetime = Field(sa_column=_ts())


class ReportConfirmation(SQLModel, table=True):
    """A "me too": one per client (hashed cookie, hashed address) per report."""

    __tablename__ = "report_confirmations"
    __table_args__ = (UniqueConstraint("report_id", "client_key"),)

    id: int | None = Field(default=None, primary_key=True)
    report_id: int = Field(foreign_key="threat_reports.id", index=True)
    client_key: str = Field(max_length=80)
    at: datetime = Field(sa_column=_ts())
