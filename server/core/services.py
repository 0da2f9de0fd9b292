"""Everything an action may use, in one object the app factory builds and hands to each.

In the spirit of Synapse's ``HomeServer``: no action reaches for a global or for the web app;
what it needs comes in here, so a test builds real services on a frozen clock and a real
database, and the same action runs behind HTTP, Socket.IO or the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from config import Settings
from server.core.background import Background
from server.core.clock import Clock
from server.core.named_areas import NamedAreas
from server.core.ports import (
    CadWebhook,
    ClipProbe,
    Media,
    MediaNodes,
    Notifier,
    OidcHttp,
    Presence,
    Redactor,
    SmsGateway,
    Telemetry,
)
from server.core.storage import Storage
from server.core.work_pool import WorkPool

if TYPE_CHECKING:  # the store sits above the core: the core names its types, never imports them
    from server.db.audit import AuditLog
    from server.db.engine import Database
    from server.security.evidence_key import EvidenceKey
    from server.security.pseudonyms import Pseudonyms
    from server.state.ratelimit import RateLimits


@dataclass(frozen=True)
class Services:
    settings: Settings
    clock: Clock
    db: Database
    audit: AuditLog
    notifier: Notifier
    media: Media
    media_nodes: MediaNodes
    presence: Presence
    limits: RateLimits
    background: Background
    pseudonyms: Pseudonyms
    # Decoding and re-encoding uploaded images: a few threads of the node and a bounded line.
    image_pool: WorkPool
    # Recordings, snapshots and photos by key, under the root every node shares.
    storage: Storage
    # Counts of what happens (calls' outcomes, segments stored): the metrics' events.
    telemetry: Telemetry
    # Redacted copies for disclosure (faces blurred): made on a thread of their own, minutes
    # of work each, so they never hold up the image pool's uploads.
    redactor: Redactor
    redaction_pool: WorkPool
    # Reading uploaded video clips through (PyAV, on the image pool).
    clip_probe: ClipProbe
    # The deployment's Ed25519 key: it signs the audit chain's checkpoints and export bundles.
    evidence_key: EvidenceKey
    # Text messages to phones: the operator's invite links (an HTTP gateway, or a file).
    sms: SmsGateway
    # The centre's CAD: each police call's EIDO document, posted at its answer and its end.
    cad: CadWebhook
    # The OpenID Connect providers of single sign-on (OIDC_PROVIDERS): their HTTP.
    oidc: OidcHttp
    # The statistics' named areas (STATS_AREAS_FILE); none: grid cells.
    areas: NamedAreas = field(default_factory=NamedAreas.none)
