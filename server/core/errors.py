"""Every refusal the system can give, as one enum: the wire code, and the HTTP status with it.

A transport never invents a code: the HTTP middleware answers ``{"error": {"code", "message"}}``
with ``code.status``; a Socket.IO handler sends an ``error`` event and an ``{"ok": false}`` ack
with the same code; a media node's refusal crosses the bus as the code and comes back as the
same ``AppError``. A test holds that every member has a status (tests/test_errors.py).
"""

from __future__ import annotations

import enum
from typing import Any


class ErrorCode(enum.StrEnum):
    """A refusal's machine-readable code: its value is what clients see (in the HTTP error body,
    the Socket.IO ``error`` event and the ``{"ok": false}`` ack alike), ``status`` its HTTP
    status."""

    status: int

    def __new__(cls, code: str, status: int) -> ErrorCode:
        member = str.__new__(cls, code)
        member._value_ = code
        member.status = status
        return member

    # Generic, one per HTTP status a client can cause.
    BAD_REQUEST = "bad_request", 400
    UNAUTHORIZED = "unauthorized", 401
    FORBIDDEN = "forbidden", 403
    NOT_FOUND = "not_found", 404
    METHOD_NOT_ALLOWED = "method_not_allowed", 405
    CONFLICT = "conflict", 409
    BODY_TOO_LARGE = "body_too_large", 413
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type", 415
    INVALID = "invalid", 422
    RATE_LIMITED = "rate_limited", 429
    HTTP_ERROR = "http_error", 400
    INTERNAL = "internal", 500

    # Request bodies and forms.
    MALFORMED_JSON = "malformed_json", 400
    BAD_FORM = "bad_form", 400
    UNKNOWN_FIELD = "unknown_field", 422
    EMPTY_UPDATE = "empty_update", 400
    INVALID_DATE = "invalid_date", 400
    INVALID_SINCE = "invalid_since", 422
    INVALID_ZOOM = "invalid_zoom", 422
    INVALID_LANGUAGE = "invalid_language", 400
    INVALID_SITUATION = "invalid_situation", 400
    UNKNOWN_LANGUAGE = "unknown_language", 404
    UNKNOWN_EVENT = "unknown_event", 400

    # Staff sign-in, sessions and roles.
    SESSION_EXPIRED = "session_expired", 401
    SIGN_IN_INCOMPLETE = "sign_in_incomplete", 403
    ROLE_FORBIDDEN = "role_forbidden", 403
    CSRF_FAILED = "csrf_failed", 403
    OIDC_UNKNOWN_PROVIDER = "oidc_unknown_provider", 404
    OIDC_PROVIDER_UNAVAILABLE = "oidc_provider_unavailable", 502
    BAD_CODE = "bad_code", 422
    # Every refused sign-in, whatever went wrong (server/actions/login.py).
    LOGIN_FAILED = "login_failed", 401
    # Hardware keys and passkeys (server/actions/webauthn_*.py).
    WEBAUTHN_UNAVAILABLE = "webauthn_unavailable", 409
    WEBAUTHN_REFUSED = "webauthn_refused", 400
    PASSKEYS_OFF = "passkeys_off", 403
    INVALID_KEY_NAME = "invalid_key_name", 422
    KEY_NOT_FOUND = "key_not_found", 404
    PASSWORD_REFUSED = "password_refused", 422
    ORIGIN_REQUIRED = "origin_required", 403
    FOREIGN_ORIGIN = "foreign_origin", 403

    # Accounts.
    USER_NOT_FOUND = "user_not_found", 404
    USER_EXISTS = "user_exists", 409
    INVALID_USERNAME = "invalid_username", 400
    INVALID_USER_ID = "invalid_user_id", 400
    INVALID_ROLE = "invalid_role", 400
    LAST_ADMIN = "last_admin", 409
    CANNOT_DISABLE_SELF = "cannot_disable_self", 409
    INTERNAL_SECURITY_ONLY = "internal_security_only", 403
    # An admin's own account is recovered by another admin or the command line
    # (docs/staff.md): a stolen session must not turn into the account itself.
    OWN_ACCOUNT = "own_account", 409

    # Calls.
    TOKEN_REQUIRED = "token_required", 401
    BAD_CALL_TOKEN = "bad_call_token", 401
    CALL_NOT_FOUND = "call_not_found", 404
    NOT_YOUR_CALL = "not_your_call", 403
    CALL_GONE = "call_gone", 409
    CALL_CHANGED = "call_changed", 409
    CALL_ENDED = "call_ended", 409
    CALL_NOT_LIVE = "call_not_live", 409
    # A supervisor's media offer or barge-in on a call they have not said they monitor.
    NOT_MONITORING = "not_monitoring", 409
    CHAT_CONFLICT = "chat_conflict", 409
    # Transfers and conferences (docs/transfers.md).
    TARGET_NOT_FOUND = "target_not_found", 404
    TARGET_DISABLED = "target_disabled", 409
    TARGET_OFFLINE = "target_offline", 409
    TARGET_BUSY = "target_busy", 409
    TARGET_FORBIDDEN = "target_forbidden", 403
    OFFER_NOT_FOUND = "offer_not_found", 404
    OFFER_GONE = "offer_gone", 409
    OFFER_PENDING = "offer_pending", 409
    SNAPSHOT_NOT_FOUND = "snapshot_not_found", 404
    PHOTO_NOT_FOUND = "photo_not_found", 404
    RECORDING_NOT_FOUND = "recording_not_found", 404
    # Legal holds, redacted copies (docs/retention.md).
    REASON_REQUIRED = "reason_required", 400
    REASON_TOO_LONG = "reason_too_long", 422
    ALREADY_HELD = "already_held", 409
    NOT_HELD = "not_held", 409
    NOTHING_TO_REDACT = "nothing_to_redact", 409
    REDACTION_NOT_FOUND = "redaction_not_found", 404
    REDACTION_NOT_READY = "redaction_not_ready", 409
    # Retention deleted the file; its row, hash and the chain's entry for the deletion stay.
    EVIDENCE_PURGED = "evidence_purged", 410
    PHOTO_REQUIRED = "photo_required", 400
    NO_LOCATION = "no_location", 409
    # The call's receipt: not sealed yet (live, or its seal is being made).
    RECEIPT_PENDING = "receipt_pending", 409
    INVALID_RECEIPT = "invalid_receipt", 400

    # Invites by SMS: a number that is not one; a link nobody made, used already, or too old.
    INVALID_PHONE = "invalid_phone", 400
    INVALID_IDENTITY = "invalid_identity", 400
    INVITE_INVALID = "invite_invalid", 404
    INVITE_USED = "invite_used", 410
    INVITE_EXPIRED = "invite_expired", 410

    # Routing: a call that rings another operator (accepting it, by hand too); declining a call
    # that does not ring you; an operator state or a skill that is not one.
    CALL_RINGING_ELSEWHERE = "call_ringing_elsewhere", 409
    NOT_RINGING = "not_ringing", 409
    INVALID_OPERATOR_STATE = "invalid_operator_state", 400
    INVALID_SKILLS = "invalid_skills", 400

    # Media: refusals a media node gives, and what the way to it can fail with.
    MEDIA_BUSY = "media_busy", 503
    NO_MEDIA = "no_media", 409
    NO_VIDEO = "no_video", 409
    INVALID_SDP = "invalid_sdp", 400
    INVALID_CANDIDATE = "invalid_candidate", 400
    MEDIA_UNREACHABLE = "media_unreachable", 503
    MEDIA_FAILED = "media_failed", 502
    SEGMENT_CONFLICT = "segment_conflict", 409
    # A stored file the database names is not in this node's storage (STORAGE_DIR unshared).
    FILE_UNAVAILABLE = "file_unavailable", 503
    # The database does not answer (restarting): nothing was stored; send the same again.
    DATABASE_UNAVAILABLE = "database_unavailable", 503

    # Uploads.
    NOT_AN_IMAGE = "not_an_image", 400
    IMAGE_TOO_LARGE = "image_too_large", 413
    PHOTOS_TOO_LARGE = "photos_too_large", 413
    TOO_MANY_PHOTOS = "too_many_photos", 400
    PHOTOS_TOO_MANY_PIXELS = "photos_too_many_pixels", 413
    UPLOADS_BUSY = "uploads_busy", 503
    PHOTO_LIMIT = "photo_limit", 429
    NOT_A_VIDEO = "not_a_video", 400
    VIDEO_TOO_LARGE = "video_too_large", 413
    CLIP_REQUIRED = "clip_required", 400

    # Message threads (server/actions/threads.py).
    BAD_THREAD_TOKEN = "bad_thread_token", 401
    THREAD_NOT_FOUND = "thread_not_found", 404
    THREAD_CLOSED = "thread_closed", 409
    THREAD_TAKEN = "thread_taken", 409
    THREAD_NOT_YOURS = "thread_not_yours", 409
    THREAD_CONFLICT = "thread_conflict", 409
    MESSAGE_LIMIT = "message_limit", 429
    MESSAGE_EMPTY = "message_empty", 400

    # The archive and a call's record (a look at a record gives its reason: reason_required).
    INVALID_CHANNEL = "invalid_channel", 422
    INVALID_DISPOSITION = "invalid_disposition", 422
    INVALID_WORDS = "invalid_words", 422
    INVALID_AREA = "invalid_area", 422
    INVALID_PAGE = "invalid_page", 422
    VIEW_EXPIRED = "view_expired", 403

    # Threat reports.
    REPORT_NOT_FOUND = "report_not_found", 404
    INVALID_REPORT_ID = "invalid_report_id", 400
    INVALID_REQUEST_ID = "invalid_request_id", 400
    REPORT_CHANGED = "report_changed", 409
    REPORT_CLOSED = "report_closed", 409
    ALREADY_CONFIRMED = "already_confirmed", 409
    POSSIBLE_DUPLICATE = "possible_duplicate", 409
    ILLEGAL_TRANSITION = "illegal_transition", 409
    INVALID_STATUS = "invalid_status", 422
    UNKNOWN_CATEGORY = "unknown_category", 422
    CATEGORY_NOT_FOUND = "category_not_found", 404
    POINT_REQUIRED = "point_required", 400
    INVALID_POINT = "invalid_point", 422
    OUTSIDE_AREA = "outside_area", 422
    INVALID_BBOX = "invalid_bbox", 422
    INVALID_DAYS = "invalid_days", 422
    INVALID_TIME_OF_DAY = "invalid_time_of_day", 422
    INVALID_FORWARD_TARGET = "invalid_forward_target", 422
    NO_FOLLOW_LINK = "no_follow_link", 409
    DESCRIPTION_TOO_LONG = "description_too_long", 422
    INVALID_DESCRIPTION = "invalid_description", 422
    CONTACT_TOO_LONG = "contact_too_long", 422
    INVALID_CONTACT = "invalid_contact", 422
    NOTE_TOO_LONG = "note_too_long", 422
    INVALID_NOTE = "invalid_note", 422
    PUBLIC_NOTE_TOO_LONG = "public_note_too_long", 422
    INVALID_PUBLIC_NOTE = "invalid_public_note", 422
    INTERNAL_NOTE_TOO_LONG = "internal_note_too_long", 422
    INVALID_INTERNAL_NOTE = "invalid_internal_note", 422

    # The CAD hand-off (docs/cad.md): a delivery of the webhook, and "retry now" on /admin.
    DELIVERY_NOT_FOUND = "delivery_not_found", 404
    DELIVERY_NOT_DEAD = "delivery_not_dead", 409

    # The street basemap (server/http/basemap.py).
    RANGE_NOT_SATISFIABLE = "range_not_satisfiable", 416
    BASEMAP_UNAVAILABLE = "basemap_unavailable", 503

    # Open311 partners' API keys (issued on /admin) and what they post.
    INVALID_API_KEY = "invalid_api_key", 403
    ADDRESS_TOO_LONG = "address_too_long", 422
    INVALID_ADDRESS = "invalid_address", 422
    INVALID_PARTNER = "invalid_partner", 422
    INVALID_DAILY_LIMIT = "invalid_daily_limit", 422
    API_KEY_NOT_FOUND = "api_key_not_found", 404
    API_KEY_REVOKED = "api_key_revoked", 409


# What an HTTP exception of aiohttp's own (a 404 route, a 405, a 413 body) is called.
CODE_BY_STATUS: dict[int, ErrorCode] = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.BODY_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    422: ErrorCode.INVALID,
    429: ErrorCode.RATE_LIMITED,
}


class AppError(Exception):
    """A refusal: its code (and so its status), a message for people, optional data.

    ``data["headers"]`` is added to an HTTP answer (``Retry-After`` on a rate limit).
    """

    def __init__(
        self, code: ErrorCode, message: str, *, data: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data or {}

    @property
    def status(self) -> int:
        return self.code.status

    def to_wire(self) -> dict[str, str]:
        return {"code": self.code.value, "message": self.message}
