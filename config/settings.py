"""Settings: every knob of a deployment, validated once at start-up.

The names are part of the stable surface (docs/interfaces.md). Defaults are the embedded mode:
one process, SQLite under ``DATA_DIR``, in-process fan-out, nothing else to run.
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from config.pmtiles_header import read_header

Language = Literal["en", "ru", "kk", "pl"]
LANGUAGES: tuple[Language, ...] = ("en", "ru", "kk", "pl")
# The staff roles' names (server/db/models.py: Role), which settings may name.
STAFF_ROLES = ("operator", "supervisor", "internal_security", "admin")


class SettingsError(Exception):
    """A setting has a bad value; the message is one line naming it."""


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class OidcProvider(BaseModel):
    """One OpenID Connect provider staff may sign in with (``OIDC_PROVIDERS``, docs/staff.md).

    ``group_roles`` maps a group (in the ``groups_claim`` of the ID token) to a Lifeline role;
    when set, a sign-in is let through only if one of the member's groups maps to the role the
    account has in Lifeline: the provider vouches for the role, it never changes it. MFA counts
    as done at the provider when the token's ``acr`` is one of ``mfa_acr`` or its ``amr`` has
    one of ``mfa_amr``; else Lifeline asks for its own TOTP code.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")
    name: str = Field(min_length=1, max_length=60)
    issuer: str = Field(min_length=8, max_length=512)
    client_id: str = Field(min_length=1, max_length=256)
    client_secret_file: Path
    username_claim: str = Field(default="preferred_username", min_length=1, max_length=64)
    scopes: str = Field(default="openid profile", max_length=256)
    groups_claim: str = Field(default="groups", min_length=1, max_length=64)
    group_roles: dict[str, Literal["operator", "supervisor", "internal_security", "admin"]] = Field(
        default_factory=dict
    )
    mfa_acr: list[str] = Field(default_factory=list)
    mfa_amr: list[str] = Field(default_factory=lambda: ["mfa"])

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError(
                "use the provider's issuer URL, e.g. https://sso.example/realms/police"
            )
        return value.rstrip("/")

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: str) -> str:
        if "openid" not in value.split():
            raise ValueError("the scopes must include openid")
        return value

    @property
    def client_secret(self) -> str:
        """Read anew each time, so a rotated secret takes effect without a restart."""
        return self.client_secret_file.read_text().strip()


class Settings(BaseSettings):
    """One deployment's configuration, read from ``LIFELINE_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="LIFELINE_", extra="ignore", frozen=True)

    HOST: str = "127.0.0.1"
    PORT: int = Field(default=8080, ge=0, le=65535)
    DATA_DIR: Path = Path("./var")
    # Recordings, snapshots and photos, by key (server/core/storage.py); unset: DATA_DIR/files.
    # In scale-out every node and media worker mounts the same one (NFS or the like).
    STORAGE_DIR: Path | None = None
    DATABASE_URL: str = ""
    REDIS_URL: str = ""
    REQUIRE_TOTP: bool = True
    PUBLIC_URL: str = ""
    # Other origins whose pages may connect (another name of the same deployment, say). With
    # neither this nor PUBLIC_URL, only the address a connection reached counts as ours.
    ALLOWED_ORIGINS: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # The centre's own reverse proxies (CIDRs): only a peer among them is believed when it says
    # X-Forwarded-For / X-Forwarded-Proto. Unset: the TCP peer is the client.
    TRUSTED_PROXIES: Annotated[list[str], NoDecode] = Field(default_factory=list)
    ICE_SERVERS: list[dict[str, Any]] = Field(default_factory=list)
    TURN_SECRET: str = ""
    # The pages' RTCPeerConnection iceTransportPolicy: "relay" sends all browser media through
    # the TURN servers of ICE_SERVERS (none there: no media at all).
    ICE_TRANSPORT_POLICY: Literal["all", "relay"] = "all"
    # The key of the keyed hashes that stand in for internal-security callers' addresses (audit
    # chain) and call ids (logs); empty: DATA_DIR/pseudonym.key, made on first start.
    PSEUDONYM_KEY: str = ""
    # The deployment's Ed25519 signing key (checkpoints of the audit chain, export bundles):
    # unset, DATA_DIR/evidence.key, made on first start. Every node of a deployment uses one.
    EVIDENCE_KEY_FILE: Path | None = None
    # The append-only file each signed checkpoint is also written to, one JSON line each,
    # outside the database; unset, DATA_DIR/checkpoints.jsonl (in scale-out: one shared file).
    CHECKPOINT_FILE: Path | None = None
    # A checkpoint of the chain's head once this many entries were added, and at least this
    # often while entries come (the clock's seconds).
    CHECKPOINT_EVERY_ENTRIES: int = Field(default=100, ge=1)
    CHECKPOINT_EVERY_SECS: float = Field(default=600.0, ge=1)
    # Where checkpoints also go as syslog lines: "HOST:PORT" (UDP) or a socket path such as
    # /dev/log; empty: nowhere.
    CHECKPOINT_SYSLOG: str = ""
    MAP_TILE_URL: str = ""
    # The street basemap (docs/map.md): one PMTiles file of vector tiles in the Protomaps
    # basemap schema, served by the node itself at /api/map/basemap.pmtiles and drawn before
    # MAP_TILE_URL; unset: MAP_TILE_URL, else country outlines only. A missing file, or one
    # that is not PMTiles v3 of vector tiles, stops start-up. MAP_ATTRIBUTION is the plain
    # text shown in the maps' corner whenever street detail is drawn (the data's licence).
    MAP_PMTILES: Path | None = None
    MAP_ATTRIBUTION: str = Field(default="© OpenStreetMap contributors", max_length=300)
    NODE_ID: str = ""
    MEDIA_ADDRESSES: Annotated[list[str], NoDecode] = Field(default_factory=list)
    MEDIA_PEER_NETWORKS: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # "LOW-HIGH": the UDP ports the media nodes' ICE sockets bind, one per peer connection and
    # address (the firewall opens these); empty: any port the kernel gives.
    MEDIA_PORT_RANGE: str = ""

    DEFAULT_LANGUAGE: Language = "en"
    MAX_BODY_BYTES: int = Field(default=1_048_576, ge=1024)
    # Photos (during a call, on threat reports) may be larger than any other body.
    MAX_UPLOAD_BYTES: int = Field(default=10 * 1_048_576, ge=1024)
    SESSION_IDLE_SECS: int = Field(default=15 * 60, ge=10)
    SESSION_MAX_AGE_SECS: int = Field(default=12 * 3600, ge=60)
    # Sign-in (docs/operations.md): failures from one address for one account before that
    # address waits, first LOGIN_FIRST_DELAY_SECS, doubling, at most LOGIN_LOCKOUT_SECS.
    LOGIN_MAX_FAILURES: int = Field(default=5, ge=1)
    LOGIN_LOCKOUT_SECS: int = Field(default=10 * 60, ge=1)
    LOGIN_FIRST_DELAY_SECS: float = Field(default=1.0, gt=0)
    # An address's failures on an account are forgotten this long after its last one.
    LOGIN_FAILURE_MEMORY_SECS: int = Field(default=24 * 3600, ge=60)
    # Tries from one address, any account: beyond this, 429 before any password is checked.
    LOGIN_RATE_LIMIT: str = "30/minute;300/hour"
    # Single sign-on (docs/staff.md): the OpenID Connect providers, as a JSON list of objects
    # (OidcProvider's fields). A sign-in started at one must come back within OIDC_LOGIN_SECS;
    # each request to a provider waits at most OIDC_TIMEOUT_SECS.
    OIDC_PROVIDERS: list[OidcProvider] = Field(default_factory=list)
    OIDC_LOGIN_SECS: int = Field(default=600, ge=30, le=3600)
    OIDC_TIMEOUT_SECS: float = Field(default=10.0, gt=0, le=60)
    # Hardware keys and passkeys (docs/staff.md): their relying party is PUBLIC_URL's host (a
    # name, not an IP address). PASSWORDLESS: a registered passkey alone signs in (the key
    # verifies its user: PIN or fingerprint). A challenge is good once, for CHALLENGE_SECS.
    WEBAUTHN_PASSWORDLESS: bool = False
    WEBAUTHN_CHALLENGE_SECS: int = Field(default=120, ge=10, le=600)
    # Calls per caller (device, else network) before a call is marked suspected_abuse: never
    # refused. And how many device cookies one network is handed.
    CALL_RATE_LIMIT: str = "6/minute;30/hour"
    DEVICE_RATE_LIMIT: str = "30/hour"
    ABANDON_GRACE_SECS: float = Field(default=30.0, ge=0)
    # Every node sweeps the queue this often for calls whose caller has been away (or never
    # connected) past the grace: the net under the leaving page's timer (a node that restarts
    # or dies loses that).
    ABANDON_SWEEP_SECS: float = Field(default=5.0, ge=0.5, le=60)
    RECORDING_SEGMENT_SECS: float = Field(default=60.0, ge=5, le=60)
    # Below this much free space on the recording volume, calls go on unrecorded (their open
    # segments closed and stored) and every screen says so; 0: never pause (docs/media.md).
    RECORDING_MIN_FREE_MB: int = Field(default=512, ge=0)
    # Admission control: above either, a node answers no NEW call's media (chat still works).
    MEDIA_MAX_LOOP_LAG_MS: float = Field(default=100.0, ge=0)
    MEDIA_MAX_CPU_PERCENT: float = Field(default=85.0, ge=0)
    # ... and above this share of the whole machine's CPU (other processes starving this one).
    MEDIA_MAX_HOST_CPU_PERCENT: float = Field(default=95.0, ge=0)
    # Below this many sessions a media node always takes a new call's media (its measured share
    # of the calls: set it from `make bench`'s media rows); above it a signal refuses only when
    # it has stayed over its threshold for MEDIA_OVERLOAD_SUSTAINED_SECS.
    MEDIA_GUARANTEED_SESSIONS: int = Field(default=4, ge=0)
    MEDIA_OVERLOAD_SUSTAINED_SECS: float = Field(default=5.0, ge=0)
    # Media worker processes per node (one per core on a busy node): each is a media node of
    # its own, addressed as ``node:<NODE_ID>.m<i>``. 0: media in the server process.
    MEDIA_WORKERS: int = Field(default=0, ge=0, le=64)
    # Who may scrape /metrics (CIDRs), judged by the connection's own peer address; empty:
    # nobody.
    METRICS_NETWORKS: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.0/8", "::1/128"]
    )
    LOG_FORMAT: Literal["json", "text"] = "json"
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Threat map (KMZB): one new report per client per day is KMZB's own rule.
    REPORT_RATE_LIMIT: str = "1/day"
    CONFIRM_RATE_LIMIT: str = "10/day"
    # The deployment's area, "min_lon,min_lat,max_lon,max_lat"; reports outside it are refused.
    REPORT_AREA: str = "-180,-90,180,90"
    # The statistics' areas by name: a GeoJSON FeatureCollection of (Multi)Polygons, each with
    # a STATS_AREAS_NAME_PROPERTY property (a district's name); unset: cells of a grid.
    STATS_AREAS_FILE: Path | None = None
    STATS_AREAS_NAME_PROPERTY: str = Field(default="name", min_length=1)
    MAX_REPORT_PHOTOS_BYTES: int = Field(default=5 * 1_048_576, ge=1024)
    # All photos of one report together, as their headers declare them, read before decoding.
    MAX_REPORT_PIXELS: int = Field(default=80_000_000, ge=1)
    # Uploaded images are decoded on this many threads of the node (each holds up to ~260 MB
    # while it decodes an image at the 52-megapixel limit; one leaves the other cores to the
    # calls' media); the rest wait in a line this long, at most this many seconds, and beyond
    # either get 503.
    IMAGE_WORKERS: int = Field(default=1, ge=1, le=32)
    IMAGE_QUEUE_MAX: int = Field(default=16, ge=0)
    IMAGE_QUEUE_WAIT_SECS: float = Field(default=15.0, gt=0)
    # A call's photos: how many, and how many megabytes, per call (its token opens only it).
    CALL_PHOTO_RATE_LIMIT: str = "10/minute;40/hour"
    CALL_PHOTO_MEGABYTES_LIMIT: str = "50/10 minutes;150/hour"
    # Video clips (during a call, in a message thread): the largest accepted, and how long
    # reading one to check it may take. A clip counts against its call's photo quota.
    MAX_CLIP_BYTES: int = Field(default=25 * 1_048_576, ge=1024)
    CLIP_PROBE_SECS: float = Field(default=5.0, gt=0)
    # Message threads (docs/messages.md): new threads per caller before one is marked
    # suspected_abuse (never refused, as calls); messages per thread before the next is
    # refused (429) and the thread marked flooding; megabytes of photos and clips per thread.
    THREAD_RATE_LIMIT: str = "6/minute;30/hour"
    THREAD_MESSAGE_RATE_LIMIT: str = "20/minute;200/hour"
    THREAD_UPLOAD_MEGABYTES_LIMIT: str = "100/10 minutes;300/hour"
    # Retention (docs/retention.md): a call's recordings, snapshots, photos and redacted copies
    # are deleted this many days after it ended, unless the call is under a legal hold. Three
    # years for police calls, as Poland's law on the 112 system keeps call recordings.
    RETENTION_POLICE_DAYS: int = Field(default=1095, ge=1)
    RETENTION_INTERNAL_SECURITY_DAYS: int = Field(default=1095, ge=1)
    # A threat report's photos when the report was not confirmed (or was a joke or a mistake),
    # counted from that verdict; any other report's photos are kept RETENTION_POLICE_DAYS.
    RETENTION_UNCONFIRMED_REPORT_DAYS: int = Field(default=30, ge=1)
    # How often a node looks for what has expired (one node at a time purges).
    RETENTION_PURGE_INTERVAL_SECS: float = Field(default=24 * 3600, ge=60)
    # Checks of a receipt on the public /receipt page, per client network (an IPv6 /64).
    RECEIPT_CHECK_RATE_LIMIT: str = "20/minute;200/hour"
    # The archive (docs/archive.md): an operator finds only their own calls of the last shift,
    # this long; results come this many to a page; a reason given to open a call's record covers
    # playing its recording for this long (the page view), then it is asked again.
    ARCHIVE_SHIFT_HOURS: float = Field(default=12.0, gt=0, le=168)
    ARCHIVE_PAGE_SIZE: int = Field(default=20, ge=1, le=100)
    ARCHIVE_VIEW_SECS: int = Field(default=4 * 3600, ge=60)
    # Invites by SMS (docs/invites.md): how long a link stays good, how many an operator may
    # send, where a number typed without +country is (ISO 3166 region), and the gateway: "file"
    # appends each message to SMS_FILE (default DATA_DIR/sms-outbox.jsonl: local use, tests),
    # "http" posts SMS_HTTP_BODY ({to} and {text} filled in, JSON-escaped) to SMS_HTTP_URL with
    # SMS_HTTP_AUTH as its Authorization header.
    INVITE_TTL_SECS: int = Field(default=30 * 60, ge=60, le=7 * 24 * 3600)
    INVITE_RATE_LIMIT: str = "10/hour;40/day"
    PHONE_REGION: str = Field(default="KZ", pattern=r"^[A-Z]{2}$")
    SMS_GATEWAY: Literal["file", "http"] = "file"
    SMS_FILE: Path | None = None
    SMS_HTTP_URL: str = ""
    SMS_HTTP_AUTH: str = ""
    SMS_HTTP_BODY: str = '{"to": "{to}", "text": "{text}"}'
    SMS_HTTP_CONTENT_TYPE: str = "application/json"
    SMS_HTTP_TIMEOUT_SECS: float = Field(default=10.0, gt=0, le=120)
    # The supervisor wall (docs/wall.md): a call answered within this many seconds of being
    # offered is "answered in time"; a waiting call turns red past it. "Today" on the wall is
    # the day in this IANA time zone.
    ANSWER_TARGET_SECS: float = Field(default=10.0, gt=0, le=3600)
    TIME_ZONE: str = "UTC"
    # How often the wall's live thumbnail of every ongoing call is renewed.
    THUMBNAIL_INTERVAL_SECS: float = Field(default=2.0, ge=0.5, le=60)
    # The public pages (docs/citizen.md): the emergency number they name and dial (tel:), and
    # where the quick-exit button leaves for: a neutral page, by default one this server serves.
    EMERGENCY_NUMBER: str = Field(default="112", pattern=r"^[0-9]{2,6}$")
    QUICK_EXIT_URL: str = Field(default="/leave", pattern=r"^(/[^/\\]|https://)\S*$")
    # Routing (docs/routing.md): "auto" rings the longest-idle available operator who speaks
    # the caller's language, for RING_SECS (15 s: long enough to finish a sentence, short
    # enough that a caller does not wait long on an empty desk); "manual" leaves the
    # pick from the queue to the operators. After a call, WRAP_UP_SECS of wrap-up (0: none)
    # unless the operator presses Ready. Every node sweeps due rings each ROUTING_SWEEP_SECS.
    ROUTING_MODE: Literal["auto", "manual"] = "auto"
    RING_SECS: float = Field(default=15.0, ge=3, le=120)
    WRAP_UP_SECS: float = Field(default=30.0, ge=0, le=3600)
    ROUTING_SWEEP_SECS: float = Field(default=1.0, ge=0.2, le=30)
    # The CAD hand-off (docs/cad.md): each police call's EIDO document is posted to
    # CAD_WEBHOOK_URL (unset: nothing is posted) when it is answered and when it ends, signed
    # with HMAC-SHA256 under the secret in CAD_WEBHOOK_SECRET_FILE. A post that fails is tried
    # again after CAD_WEBHOOK_BACKOFF_SECS, doubling each time, CAD_WEBHOOK_ATTEMPTS tries in
    # all; then it waits on /admin's dead-letter list. Every node sweeps due posts each
    # CAD_WEBHOOK_SWEEP_SECS. CAD_AGENCY_ID is this centre's agency identifier in the EIDO.
    CAD_WEBHOOK_URL: str = ""
    CAD_WEBHOOK_SECRET_FILE: Path | None = None
    CAD_WEBHOOK_ATTEMPTS: int = Field(default=5, ge=1, le=20)
    CAD_WEBHOOK_BACKOFF_SECS: float = Field(default=10.0, gt=0, le=3600)
    CAD_WEBHOOK_TIMEOUT_SECS: float = Field(default=10.0, gt=0, le=120)
    CAD_WEBHOOK_SWEEP_SECS: float = Field(default=1.0, ge=0.2, le=60)
    CAD_AGENCY_ID: str = Field(default="lifeline.local", pattern=r"^[A-Za-z0-9._:@-]{1,128}$")
    # Directory sign-in (docs/staff.md): with LDAP_URL set (ldap:// or ldaps://; LDAP_STARTTLS
    # upgrades ldap://, LDAP_CA_FILE the CAs that vouch for the directory, unset: the system's),
    # the login form's password of every account not named in LDAP_LOCAL_ACCOUNTS is checked
    # by binding as the entry that LDAP_USER_FILTER ({username} filled in, escaped) finds under
    # LDAP_USER_BASE, searched as LDAP_BIND_DN with the password in LDAP_BIND_PASSWORD_FILE
    # (no DN: anonymously). An entry that LDAP_DISABLED_FILTER also matches is refused.
    # LDAP_GROUP_ROLES ({"group DN": "role", ...}; empty: the role set in Lifeline) gives the
    # role of the first group listed whose member the entry is. The whole exchange of one
    # sign-in with the directory takes at most LDAP_TIMEOUT_SECS.
    LDAP_URL: str = ""
    LDAP_STARTTLS: bool = False
    LDAP_CA_FILE: Path | None = None
    LDAP_BIND_DN: str = ""
    LDAP_BIND_PASSWORD_FILE: Path | None = None
    LDAP_USER_BASE: str = ""
    LDAP_USER_FILTER: str = "(uid={username})"
    LDAP_DISABLED_FILTER: str = ""
    LDAP_GROUP_ROLES: dict[str, str] = Field(default_factory=dict)
    LDAP_TIMEOUT_SECS: int = Field(default=5, ge=1, le=60)
    LDAP_LOCAL_ACCOUNTS: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator(
        "MEDIA_ADDRESSES",
        "MEDIA_PEER_NETWORKS",
        "ALLOWED_ORIGINS",
        "TRUSTED_PROXIES",
        mode="before",
    )
    @classmethod
    def _commas(cls, value: Any) -> Any:
        return _split_commas(value)

    @field_validator("ALLOWED_ORIGINS")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for item in value:
            if not re.fullmatch(r"https?://[^/\s]+", item.rstrip("/")):
                raise ValueError(f"{item!r} is not an origin (scheme://host[:port])")
        return value

    @field_validator("TIME_ZONE")
    @classmethod
    def _time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (Europe/Warsaw, UTC)") from None
        return value

    @field_validator("MEDIA_ADDRESSES")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_address(item)
        return value

    @field_validator("MEDIA_PEER_NETWORKS", "TRUSTED_PROXIES")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)
        return value

    @field_validator("MEDIA_PORT_RANGE")
    @classmethod
    def _port_range(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return value
        match = re.fullmatch(r"(\d{1,5})\s*-\s*(\d{1,5})", value)
        if match is None or not 1024 <= int(match[1]) <= int(match[2]) <= 65535:
            raise ValueError("use LOW-HIGH, ports 1024..65535, e.g. 40000-40199")
        return f"{int(match[1])}-{int(match[2])}"

    @field_validator("METRICS_NETWORKS", mode="before")
    @classmethod
    def _metrics_networks(cls, value: Any) -> Any:
        value = _split_commas(value)
        for item in value if isinstance(value, list) else []:
            ipaddress.ip_network(item, strict=False)
        return value

    @field_validator("ICE_SERVERS", mode="before")
    @classmethod
    def _ice_json(cls, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else []
        return value

    @field_validator("ICE_SERVERS")
    @classmethod
    def _ice_shape(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for server in value:
            urls = server.get("urls")
            if not urls:
                raise ValueError("each ICE server needs 'urls'")
            for url in [urls] if isinstance(urls, str) else urls:
                if not str(url).startswith(("stun:", "stuns:", "turn:", "turns:")):
                    raise ValueError(f"not a STUN/TURN URL: {url}")
        return value

    @field_validator("STORAGE_DIR", mode="before")
    @classmethod
    def _storage_dir(cls, value: Any) -> Any:
        return None if value == "" else value  # LIFELINE_STORAGE_DIR= : the default

    @field_validator("MAP_PMTILES", mode="before")
    @classmethod
    def _map_pmtiles_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("MAP_PMTILES")
    @classmethod
    def _map_pmtiles(cls, value: Path | None) -> Path | None:
        if value is not None:
            read_header(value)  # NotABasemap is a ValueError: one line naming the setting
        return value

    @field_validator("EVIDENCE_KEY_FILE", "CHECKPOINT_FILE", "STATS_AREAS_FILE", mode="before")
    @classmethod
    def _unset_paths(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("CHECKPOINT_SYSLOG")
    @classmethod
    def _checkpoint_syslog(cls, value: str) -> str:
        value = value.strip()
        if value and not value.startswith("/"):
            host, _, port = value.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError("use HOST:PORT (UDP) or a socket path such as /dev/log")
        return value

    @field_validator("PSEUDONYM_KEY")
    @classmethod
    def _pseudonym_key(cls, value: str) -> str:
        if value and len(value) < 32:
            raise ValueError("use at least 32 random characters (or leave it empty)")
        return value

    @field_validator("DATABASE_URL")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if value and not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("use sqlite+aiosqlite:///PATH or postgresql+asyncpg://HOST/DB")
        return value

    @field_validator("REDIS_URL")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("use redis://HOST:PORT/DB")
        return value

    @field_validator(
        "CALL_RATE_LIMIT", "DEVICE_RATE_LIMIT", "LOGIN_RATE_LIMIT", "THREAD_RATE_LIMIT"
    )
    @classmethod
    def _rate(cls, value: str) -> str:
        from limits import parse_many

        parse_many(value)
        return value

    @field_validator(
        "REPORT_RATE_LIMIT",
        "CONFIRM_RATE_LIMIT",
        "CALL_PHOTO_RATE_LIMIT",
        "CALL_PHOTO_MEGABYTES_LIMIT",
        "RECEIPT_CHECK_RATE_LIMIT",
        "INVITE_RATE_LIMIT",
        "THREAD_MESSAGE_RATE_LIMIT",
        "THREAD_UPLOAD_MEGABYTES_LIMIT",
    )
    @classmethod
    def _report_rates(cls, value: str) -> str:
        from limits import parse_many

        parse_many(value)
        return value

    @field_validator("REPORT_AREA")
    @classmethod
    def _report_area(cls, value: str) -> str:
        parts = [float(part) for part in value.split(",")]
        if len(parts) != 4:
            raise ValueError("use min_lon,min_lat,max_lon,max_lat")
        min_lon, min_lat, max_lon, max_lat = parts
        if not (-180 <= min_lon < max_lon <= 180 and -90 <= min_lat < max_lat <= 90):
            raise ValueError("use min_lon,min_lat,max_lon,max_lat within -180..180, -90..90")
        return value

    @field_validator("PUBLIC_URL")
    @classmethod
    def _public_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("use the full URL the browsers open, e.g. https://lifeline.example")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _passwordless(self) -> Settings:
        if self.WEBAUTHN_PASSWORDLESS and not self.PUBLIC_URL:
            raise ValueError("WEBAUTHN_PASSWORDLESS needs PUBLIC_URL (the keys' relying party)")
        return self

    @field_validator("SMS_HTTP_URL")
    @classmethod
    def _sms_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("use the gateway's full URL, e.g. https://sms.example/send")
        return value

    @model_validator(mode="after")
    def _sms_gateway(self) -> Settings:
        if self.SMS_GATEWAY == "http" and not self.SMS_HTTP_URL:
            raise ValueError("SMS_GATEWAY=http needs SMS_HTTP_URL")
        return self

    @field_validator("CAD_WEBHOOK_URL")
    @classmethod
    def _cad_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("use the CAD's full URL, e.g. https://cad.example/eido")
        return value

    @field_validator("CAD_WEBHOOK_SECRET_FILE", mode="before")
    @classmethod
    def _cad_secret_file(cls, value: Any) -> Any:
        return None if value == "" else value

    @model_validator(mode="after")
    def _cad_webhook(self) -> Settings:
        """A webhook is signed or not sent: its URL needs a secret file that holds one."""
        if not self.CAD_WEBHOOK_URL:
            return self
        if self.CAD_WEBHOOK_SECRET_FILE is None:
            raise ValueError("CAD_WEBHOOK_URL needs CAD_WEBHOOK_SECRET_FILE")
        try:
            secret = self.CAD_WEBHOOK_SECRET_FILE.read_bytes().strip()
        except OSError as exc:
            raise ValueError(f"CAD_WEBHOOK_SECRET_FILE: cannot read it ({exc.strerror})") from None
        if len(secret) < 16:
            raise ValueError("CAD_WEBHOOK_SECRET_FILE: the secret must be 16 bytes or more")
        return self

    @field_validator("OIDC_PROVIDERS", mode="before")
    @classmethod
    def _oidc_unset(cls, value: Any) -> Any:
        return [] if value == "" else value

    @model_validator(mode="after")
    def _oidc_providers(self) -> Settings:
        """Ids are unique (they are in the routes) and each secret file can be read now."""
        ids = [provider.id for provider in self.OIDC_PROVIDERS]
        if len(set(ids)) != len(ids):
            raise ValueError("OIDC_PROVIDERS: each provider needs an id of its own")
        for provider in self.OIDC_PROVIDERS:
            try:
                secret = provider.client_secret
            except OSError as exc:
                raise ValueError(
                    f"OIDC_PROVIDERS {provider.id}: cannot read client_secret_file ({exc.strerror})"
                ) from None
            if not secret:
                raise ValueError(f"OIDC_PROVIDERS {provider.id}: client_secret_file is empty")
        return self

    def oidc_provider(self, provider_id: str) -> OidcProvider | None:
        return next((p for p in self.OIDC_PROVIDERS if p.id == provider_id), None)

    @field_validator("LDAP_LOCAL_ACCOUNTS", mode="before")
    @classmethod
    def _local_accounts(cls, value: Any) -> Any:
        value = _split_commas(value)
        return [str(name).strip().lower() for name in value] if isinstance(value, list) else value

    @field_validator("LDAP_CA_FILE", "LDAP_BIND_PASSWORD_FILE", mode="before")
    @classmethod
    def _ldap_paths(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("LDAP_USER_FILTER", "LDAP_DISABLED_FILTER")
    @classmethod
    def _ldap_filter(cls, value: str) -> str:
        value = value.strip()
        if value and not (value.startswith("(") and value.endswith(")")):
            raise ValueError("an LDAP filter in parentheses, e.g. (uid={username})")
        if value.count("(") != value.count(")"):
            raise ValueError("the filter's parentheses do not pair up")
        return value

    @field_validator("LDAP_GROUP_ROLES")
    @classmethod
    def _ldap_group_roles(cls, value: dict[str, str]) -> dict[str, str]:
        for group, role in value.items():
            if role not in STAFF_ROLES:
                raise ValueError(f"{group!r}: {role!r} is not a role ({', '.join(STAFF_ROLES)})")
        return value

    @model_validator(mode="after")
    def _ldap(self) -> Settings:
        """Directory sign-in is whole or off: a URL, where to look, how to look, a password."""
        if not self.LDAP_URL:
            return self
        if not self.LDAP_URL.startswith(("ldap://", "ldaps://")):
            raise ValueError("LDAP_URL: use ldap://HOST[:PORT] or ldaps://HOST[:PORT]")
        if self.LDAP_STARTTLS and self.LDAP_URL.startswith("ldaps://"):
            raise ValueError("LDAP_STARTTLS is for ldap:// (ldaps:// is TLS from the start)")
        if not self.LDAP_USER_BASE:
            raise ValueError("LDAP_URL needs LDAP_USER_BASE (where the staff's entries are)")
        if "{username}" not in self.LDAP_USER_FILTER:
            raise ValueError("LDAP_USER_FILTER must contain {username}")
        if self.LDAP_BIND_DN:
            if self.LDAP_BIND_PASSWORD_FILE is None:
                raise ValueError("LDAP_BIND_DN needs LDAP_BIND_PASSWORD_FILE")
            try:
                self.LDAP_BIND_PASSWORD_FILE.read_bytes()
            except OSError as exc:
                raise ValueError(
                    f"LDAP_BIND_PASSWORD_FILE: cannot read it ({exc.strerror})"
                ) from None
        return self

    @model_validator(mode="after")
    def _node_id(self) -> Settings:
        if not self.NODE_ID:
            import socket

            object.__setattr__(self, "NODE_ID", socket.gethostname() or "node")
        return self

    @property
    def database_url(self) -> str:
        """The configured URL, or SQLite in ``DATA_DIR`` for the embedded mode."""
        if self.DATABASE_URL:
            return self.DATABASE_URL
        return f"sqlite+aiosqlite:///{(self.DATA_DIR / 'lifeline.db').resolve()}"

    @property
    def sms_file(self) -> Path:
        """Where the file sink writes: ``SMS_FILE``, else ``sms-outbox.jsonl`` in ``DATA_DIR``."""
        return self.SMS_FILE if self.SMS_FILE is not None else self.DATA_DIR / "sms-outbox.jsonl"

    @property
    def storage_dir(self) -> Path:
        """Where stored files live: ``STORAGE_DIR``, else ``files`` under ``DATA_DIR``."""
        return self.STORAGE_DIR if self.STORAGE_DIR is not None else self.DATA_DIR / "files"

    @property
    def evidence_key_file(self) -> Path:
        return self.EVIDENCE_KEY_FILE or self.DATA_DIR / "evidence.key"

    @property
    def cad_webhook_secret(self) -> bytes:
        """The shared secret of the CAD webhook's signature (checked at start-up), read anew
        each time so that a rotated file takes effect without a restart."""
        if self.CAD_WEBHOOK_SECRET_FILE is None:
            return b""
        return self.CAD_WEBHOOK_SECRET_FILE.read_bytes().strip()

    @property
    def ldap_bind_password(self) -> str:
        """The service account's password (its file's first line), read anew each time so that
        a rotated file takes effect without a restart."""
        if self.LDAP_BIND_PASSWORD_FILE is None:
            return ""
        lines = self.LDAP_BIND_PASSWORD_FILE.read_text().splitlines()
        return lines[0] if lines else ""

    @property
    def checkpoint_file(self) -> Path:
        return self.CHECKPOINT_FILE or self.DATA_DIR / "checkpoints.jsonl"

    @property
    def report_area(self) -> tuple[float, float, float, float]:
        """``REPORT_AREA`` as (min_lon, min_lat, max_lon, max_lat)."""
        a, b, c, d = (float(part) for part in self.REPORT_AREA.split(","))
        return a, b, c, d

    @property
    def media_port_range(self) -> tuple[int, int] | None:
        if not self.MEDIA_PORT_RANGE:
            return None
        low, high = self.MEDIA_PORT_RANGE.split("-")
        return int(low), int(high)

    @property
    def scale_out(self) -> bool:
        return bool(self.REDIS_URL)

    @property
    def cookies_secure(self) -> bool:
        return self.PUBLIC_URL.startswith("https://")


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment; a bad value raises one line naming the setting."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(part) for part in first["loc"]) or "settings"
        raise SettingsError(f"LIFELINE_{name}: {first['msg']}") from None
    except ValueError as exc:  # pydantic-settings' own error: a JSON setting that does not parse
        match = re.search(r'field "(\w+)"', str(exc))
        name = match.group(1) if match else "settings"
        raise SettingsError(f"LIFELINE_{name}: not valid JSON") from None
