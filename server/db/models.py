"""The tables. Every timestamp is aware UTC; every state change is a row of its own."""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from server.db.map_grid import default_grid_x, default_grid_y
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
    # Signed in at an OpenID Connect provider that showed no second factor: Lifeline's TOTP.
    VERIFY_TOTP = "verify_totp"
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
    # What a caller is shown of the operator who answers (set on /admin): a display name and a
    # badge number; neither set, the username.
    display_name: str | None = Field(default=None, max_length=80)
    badge: str | None = Field(default=None, max_length=32)
    # The languages the operator speaks (en, ru, kk, pl), comma-separated, set on /admin: a
    # waiting call rings one who speaks its caller's (docs/routing.md).
    skills: str = Field(default="", max_length=32, sa_column_kwargs={"server_default": ""})
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


class OidcLogin(SQLModel, table=True):
    """A sign-in started at an OpenID Connect provider, until its callback: the ``state`` (its
    hash is the key), the ``nonce`` and the PKCE verifier stay here, never in the browser, and
    bound to the browser that started it (the hash of its ``lifeline_oidc`` cookie). The
    callback deletes the row: a state is good once."""

    __tablename__ = "oidc_logins"
    __table_args__ = (Index("ix_oidc_logins_created_at", "created_at"),)

    state_hash: str = Field(primary_key=True, max_length=64)
    browser_hash: str = Field(max_length=64)
    provider: str = Field(max_length=32)
    nonce: str = Field(max_length=128)
    code_verifier: str = Field(max_length=128)
    next_path: str = Field(default="", max_length=512)
    created_at: datetime = Field(sa_column=_ts())


class WebAuthnCredential(SQLModel, table=True):
    """A staff member's hardware key or passkey (WebAuthn), named by them: its public key, the
    count it last signed with (a count that goes back is a cloned key) and its transports."""

    __tablename__ = "webauthn_credentials"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    # The authenticator's credential id, base64url: unique across every account.
    credential_id: str = Field(max_length=1400, unique=True)
    public_key: bytes = Field(sa_column=Column(sa.LargeBinary, nullable=False))
    sign_count: int = Field(default=0, sa_column=Column(sa.BigInteger, nullable=False))
    transports: str = Field(default="", max_length=200)
    name: str = Field(max_length=60)
    created_at: datetime = Field(sa_column=_ts())
    last_used_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class WebAuthnChallenge(SQLModel, table=True):
    """A challenge handed to a browser, kept here until its one use or its expiry: every node
    of a deployment sees it, whichever node the answer reaches."""

    __tablename__ = "webauthn_challenges"

    id: str = Field(primary_key=True, max_length=64)
    # "register" (a signed-in user adds a key), "second_factor" (after a password), "passkey".
    purpose: str = Field(max_length=16)
    challenge: bytes = Field(sa_column=Column(sa.LargeBinary, nullable=False))
    user_id: int | None = Field(default=None, foreign_key="users.id", index=True)
    # The username a second factor's challenge was asked for (the account need not exist).
    username: str = Field(default="", max_length=64)
    expires_at: datetime = Field(sa_column=_ts())


class Call(SQLModel, table=True):
    __tablename__ = "calls"
    __table_args__ = (
        Index("ix_calls_state_channel", "state", "channel"),
        # One ring per operator at a time, whichever node rings (docs/routing.md).
        Index(
            "ux_calls_ringing_operator",
            "ringing_operator_id",
            unique=True,
            sqlite_where=sa.text("ringing_operator_id IS NOT NULL"),
            postgresql_where=sa.text("ringing_operator_id IS NOT NULL"),
        ),
    )

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
    # What the caller said is happening (server/actions/situations.py); None: not said.
    situation: str | None = Field(default=None, max_length=32)
    created_at: datetime = Field(sa_column=_ts())
    answered_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    ended_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    # Since when its media node records nothing of it (the recording volume low on space), as
    # that node last reported; None while it records (server/actions/recording_state.py).
    recording_paused_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    # A legal hold (server/actions/legal_holds.py): while set, retention deletes nothing of the
    # call. Who set it and why; every setting and lifting is also in the audit chain.
    held_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    held_by: str | None = Field(default=None, max_length=80)
    hold_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # The ring of a queued call (server/actions/routing.py): the operator it rings, until when.
    # Set and cleared only by conditional UPDATEs, so two nodes never ring two operators at once
    # for one call, and a node that dies mid-ring strands nothing: any node's sweep ends it.
    ringing_operator_id: int | None = Field(default=None, foreign_key="users.id")
    ring_until: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    # Since when a queued call's caller has had no page connected (none yet, from its creation):
    # every node sweeps these past ABANDON_GRACE_SECS (server/actions/abandonment.py).
    caller_away_since: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class InviteSms(enum.StrEnum):
    """Where an invite's text message is: none asked for (a link to copy), being sent, taken by
    the gateway, or not (the gateway refused or did not answer; the link still works)."""

    NONE = "none"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class Invite(SQLModel, table=True):
    """An operator's single-use link that drops a caller into a video call with them. The link's
    token is stored only as its hash; ``used_at`` and ``call_id`` are set once, by the one
    conditional UPDATE that redeems it."""

    __tablename__ = "invites"

    id: str = Field(primary_key=True, max_length=36)
    token_hash: str = Field(max_length=64, unique=True)
    operator_id: int = Field(foreign_key="users.id", index=True)
    channel: str = Field(max_length=32)
    # E.164; None for a link the operator copies and passes on themselves.
    phone: str | None = Field(default=None, max_length=20)
    language: str = Field(max_length=8)
    sms: str = Field(max_length=16)
    sms_failure: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(sa_column=_ts())
    expires_at: datetime = Field(sa_column=_ts())
    used_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    call_id: str | None = Field(default=None, foreign_key="calls.id", max_length=36)


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


class OfferKind(enum.StrEnum):
    """How a call is handed on (server/actions/transfers.py)."""

    WARM = "warm"  # the first operator stays until the target has joined, then leaves
    COLD = "cold"  # the first operator leaves at once; the target takes it, or the queue does
    CONFERENCE = "conference"  # the target joins beside the operator, who stays


class OfferState(enum.StrEnum):
    OFFERED = "offered"
    ACCEPTED = "accepted"  # the target is on the call (warm: until the first completes)
    DECLINED = "declined"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    COMPLETED = "completed"  # a warm transfer the first operator finished: the call is the target's


class CallOffer(SQLModel, table=True):
    """A call offered to a named operator or supervisor: in the database, so a node that dies
    leaves it to be settled by another; every change of ``state`` is a conditional UPDATE."""

    __tablename__ = "call_offers"

    id: int | None = Field(default=None, primary_key=True)
    call_id: str = Field(foreign_key="calls.id", index=True, max_length=36)
    kind: str = Field(max_length=16)
    from_user_id: int = Field(foreign_key="users.id")
    to_user_id: int = Field(foreign_key="users.id", index=True)
    note: str = Field(default="", max_length=255)
    state: str = Field(max_length=16)
    created_at: datetime = Field(sa_column=_ts())
    expires_at: datetime = Field(sa_column=_ts())
    settled_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class CallParticipant(SQLModel, table=True):
    """A staff member on a call's media and chat, from when to when: its operator, a warm
    transfer's target, a conference's second operator or supervisor. The archive record shows
    them beside the transitions."""

    __tablename__ = "call_participants"

    id: int | None = Field(default=None, primary_key=True)
    call_id: str = Field(foreign_key="calls.id", index=True, max_length=36)
    user_id: int = Field(foreign_key="users.id")
    role: str = Field(max_length=32)
    # How they came: answered, invite, warm, cold, conference.
    joined_by: str = Field(max_length=16)
    joined_at: datetime = Field(sa_column=_ts())
    left_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


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
    # When retention deleted the file (server/actions/retention.py); the row and its hash stay.
    purged_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    # Left open by a process that died, and closed after it (media/recovery.py); the file at
    # ``path`` is as its writer left it, ``playable_path`` a remuxed copy of its whole clusters.
    recovered: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    playable_path: str | None = Field(default=None, max_length=512)
    playable_sha256: str | None = Field(default=None, max_length=64)
    playable_size_bytes: int | None = None


class AuditEntry(SQLModel, table=True):
    """One link of the append-only hash chain; ``hash`` covers every other column."""

    __tablename__ = "audit_log"

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    at: datetime = Field(sa_column=_ts())
    actor: str = Field(max_length=80)
    action: str = Field(max_length=64, index=True)
    # "call:<id>" and the like: a call's entries (its seal among them) found without a scan.
    subject: str = Field(default="", max_length=128, index=True)
    data: str = Field(sa_column=Column(Text, nullable=False))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64, unique=True)


class AuditCheckpoint(SQLModel, table=True):
    """The chain's head at entry ``seq``, signed with the deployment's key: rewriting the chain
    up to there, or cutting entries off its end, no longer matches it. Each is also a line of
    the checkpoint file outside the database (server/actions/checkpoints.py)."""

    __tablename__ = "audit_checkpoints"

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    head_hash: str = Field(max_length=64)
    at: datetime = Field(sa_column=_ts())
    key_id: str = Field(max_length=64)
    signature: str = Field(max_length=128)


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
    # When retention deleted the file (server/actions/retention.py); the row and its hash stay.
    purged_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


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
    # When retention deleted the file (server/actions/retention.py); the row and its hash stay.
    purged_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class RedactionState(enum.StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class Redaction(SQLModel, table=True):
    """A redacted copy of one recording segment, for disclosure: faces blurred, audio kept.

    Made on request (server/actions/redactions.py), stored and hashed beside the original,
    which is never touched; ``source_sha256`` is the original's hash when the copy was made.
    """

    __tablename__ = "redactions"

    id: int | None = Field(default=None, primary_key=True)
    call_id: str = Field(foreign_key="calls.id", index=True, max_length=36)
    segment: int
    source_sha256: str = Field(max_length=64)
    state: str = Field(max_length=16)
    requested_by: str = Field(max_length=80)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    requested_at: datetime = Field(sa_column=_ts())
    path: str | None = Field(default=None, max_length=512)
    sha256: str | None = Field(default=None, max_length=64)
    size_bytes: int | None = None
    frames: int | None = None
    # Video frames in which at least one face was found and blurred.
    frames_with_faces: int | None = None
    done_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    purged_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class RecordView(SQLModel, table=True):
    """One justified look at a call's record from the archive: who, why, from where, until when.

    The page holds the token (the table only its hash); the recording, snapshots and photos it
    shows are fetched with it, so each fetch carries the reason given when the record was opened.
    """

    __tablename__ = "record_views"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    call_id: str = Field(foreign_key="calls.id", index=True, max_length=36)
    user_id: int = Field(foreign_key="users.id")
    reason: str = Field(sa_column=Column(Text, nullable=False))
    remote: str = Field(default="", max_length=64)
    # The record_viewed entry of the audit chain that this view's later entries point back to.
    audit_seq: int
    at: datetime = Field(sa_column=_ts())
    expires_at: datetime = Field(sa_column=_ts())


class RecordPlay(SQLModel, table=True):
    """A segment played within a view: the chain gets one entry per segment per view, however
    many range requests the player makes."""

    __tablename__ = "record_plays"

    view_id: int = Field(foreign_key="record_views.id", primary_key=True)
    segment: int = Field(primary_key=True)
    audit_seq: int
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
        Index("ix_threat_reports_grid", "grid_x", "grid_y"),
        # A partner's reports of the last day, counted against its key's limit.
        Index("ix_threat_reports_open311_key", "open311_key_id", "created_at"),
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
    # The public point's cell on the map's grid (server/db/map_grid.py), set on insert; a
    # change of ``sensitive`` sets it again.
    grid_x: int | None = Field(
        default=None, sa_column=Column(sa.Integer, default=default_grid_x, nullable=False)
    )
    grid_y: int | None = Field(
        default=None, sa_column=Column(sa.Integer, default=default_grid_y, nullable=False)
    )
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
    # Open311: the partner's key it came with, and the address it named beside the point.
    open311_key_id: int | None = Field(default=None, foreign_key="open311_keys.id")
    address: str | None = Field(default=None, max_length=250)


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
    # When retention deleted the file (server/actions/retention.py); the row and its hash stay.
    purged_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


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


class Open311Key(SQLModel, table=True):
    """A partner app's Open311 API key, issued on /admin: only the secret's SHA-256 is kept.
    Its reports count against its own daily limit instead of the per-address one."""

    __tablename__ = "open311_keys"

    id: int | None = Field(default=None, primary_key=True)
    partner: str = Field(max_length=80)
    secret_hash: str = Field(max_length=64, unique=True)
    daily_limit: int
    reason: str = Field(sa_column=Column(Text, nullable=False))
    created_by: str = Field(max_length=80)
    created_at: datetime = Field(sa_column=_ts())
    # When it last brought a report that was stored.
    last_used_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    revoked_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    revoked_by: str | None = Field(default=None, max_length=80)
    revoke_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class ThreadState(enum.StrEnum):
    OPEN = "open"  # waiting for an operator
    CLAIMED = "claimed"  # one operator answers it
    CLOSED = "closed"  # closed with a disposition; the citizen's page reads it, may not add


class MessageThread(SQLModel, table=True):
    """A citizen's message thread without a call ("102"): text, photos and clips both ways.

    Its capability token is stored only as a hash, as a call's. ``last_seq`` numbers its
    messages; ``unread`` counts the citizen's messages since its operator last answered or
    read it. Claiming it is one conditional UPDATE (``open`` -> ``claimed``).
    """

    __tablename__ = "message_threads"
    __table_args__ = (Index("ix_message_threads_state_channel", "state", "channel"),)

    id: str = Field(primary_key=True, max_length=36)
    channel: str = Field(max_length=32)
    language: str = Field(max_length=8)
    state: str = Field(max_length=16)
    token_hash: str = Field(max_length=64, unique=True)
    claimed_by: int | None = Field(default=None, foreign_key="users.id")
    claimed_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    closed_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    disposition: str | None = Field(default=None, max_length=64)
    note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # "flooding", "suspected_abuse": comma-separated, shown, never a refusal of the thread.
    marks: str = Field(default="", max_length=255, sa_column_kwargs={"server_default": ""})
    contact: str | None = Field(default=None, max_length=200)
    lat: float | None = None
    lon: float | None = None
    accuracy_m: float | None = None
    last_seq: int = 0
    unread: int = 0
    created_at: datetime = Field(sa_column=_ts())
    last_at: datetime = Field(sa_column=_ts())
    # What the thread was turned into, if anything: a threat report.
    report_id: int | None = Field(default=None, foreign_key="threat_reports.id")


class ThreadMessage(SQLModel, table=True):
    """One message of a thread, the citizen's or an operator's: a text and at most one photo
    or video clip (evidence, kept as sent, with its hash)."""

    __tablename__ = "thread_messages"
    __table_args__ = (
        UniqueConstraint("thread_id", "seq"),
        # A resend (a lost answer, a reload) carries the same client id and is stored once.
        UniqueConstraint("thread_id", "client_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    thread_id: str = Field(foreign_key="message_threads.id", index=True, max_length=36)
    seq: int
    sender: str = Field(max_length=16)
    sender_user_id: int | None = Field(default=None, foreign_key="users.id")
    client_id: str = Field(max_length=64)
    body: str = Field(sa_column=Column(Text, nullable=False))
    kind: str | None = Field(default=None, max_length=8)  # "photo", "video", or none
    path: str | None = Field(default=None, max_length=512)
    content_type: str | None = Field(default=None, max_length=32)
    sha256: str | None = Field(default=None, max_length=64)
    size_bytes: int | None = None
    width: int | None = None
    height: int | None = None
    at: datetime = Field(sa_column=_ts())


class OperatorStatus(SQLModel, table=True):
    """The state an operator set on the console (available, away with a note) and since when;
    no row: available. Ringing, in a call, wrap-up and offline are worked out from the calls and
    the console's presence (server/actions/routing.py: operator_states)."""

    __tablename__ = "operator_statuses"

    user_id: int = Field(foreign_key="users.id", primary_key=True)
    state: str = Field(max_length=16)
    note: str = Field(default="", max_length=200)
    since: datetime = Field(sa_column=_ts())
    # Set away by a ring they let pass: when (the note says it too, in the centre's time).
    missed_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class CallDecline(SQLModel, table=True):
    """An operator declined a call's ring: it is not offered to them again (they may still pick
    it from the queue)."""

    __tablename__ = "call_declines"

    call_id: str = Field(foreign_key="calls.id", primary_key=True, max_length=36)
    user_id: int = Field(foreign_key="users.id", primary_key=True)
    at: datetime = Field(sa_column=_ts())


class CadDeliveryState(enum.StrEnum):
    PENDING = "pending"  # due at ``next_at`` (a node claims it before it posts)
    DELIVERED = "delivered"
    DEAD = "dead"  # every try failed: on /admin's dead-letter list until retried


class CadDelivery(SQLModel, table=True):
    """One post of a call's EIDO document to the CAD webhook (docs/cad.md), kept until it is
    delivered, so a node that restarts or dies loses none. A node claims a due one with a
    conditional UPDATE that sets ``claimed_until`` (a lease past the post's timeout): two
    nodes never post the same try. ``body`` is the document as first posted, so every retry
    sends the same bytes."""

    __tablename__ = "cad_deliveries"
    __table_args__ = (Index("ix_cad_deliveries_state_next_at", "state", "next_at"),)

    id: int | None = Field(default=None, primary_key=True)
    call_id: str = Field(foreign_key="calls.id", index=True, max_length=36)
    event: str = Field(max_length=16)  # "answered", "ended"
    state: str = Field(max_length=16)
    attempts: int = 0
    next_at: datetime = Field(sa_column=_ts())
    claimed_until: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    body: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    last_error: str = Field(default="", max_length=255)
    created_at: datetime = Field(sa_column=_ts())
    delivered_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    dead_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
