"""A call as a NENA EIDO document (NENA-STA-021, the Emergency Incident Data Object): what a
CAD takes over when the centre hands a call on (docs/cad.md).

Built only from what the database holds for the call, and no more of the caller than the
record has: no name, no number, no address (a citizen calls from a browser and tells none);
the caller of an internal-security call is named by a keyed hash, as the logs name it. The
caller's track is one location component per fix, each a PIDF-LO ``presence`` document holding
a point, or a circle whose radius is the fix's accuracy (RFC 5491), and its time. Recording
segments, photos and snapshots are media components: the staff URL that serves each file and
its SHA-256. The chat, the operator's end note and every state transition (when, by whom)
are notes; the disposition is the incident's.

A message thread is exported the same way (``thread_document``): its messages, attachments,
position, steps and disposition; the contact its citizen chose to give is a note on the caller.

The project's JSON Schema of the fields the standard requires is ``eido.schema.json`` beside
this module (tests/test_eido.py validates every document a test call makes against it).
"""

from __future__ import annotations

import hashlib
import html
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import col, select

from server.actions.access import call_log_name, caller_address
from server.actions.staff_sessions import StaffContext
from server.core.services import Services
from server.db.models import (
    AuditEntry,
    Call,
    CallPhoto,
    CallState,
    CallTransition,
    Channel,
    ChatMessage,
    LocationSample,
    MessageThread,
    Recording,
    Role,
    Snapshot,
    ThreadMessage,
    ThreadState,
    User,
)

EIDO_VERSION = "1.0"
# What this document carries beyond the standard's fields: each media component's ``sha256``
# (EIDO's media type has a URI and a label, no hash).
MEDIA_HASH_EXTENSION = "urn:lifeline:eido:media-sha256"
# The Agent Role registry's words for the roles that touch a call.
AGENT_ROLES = {
    Role.OPERATOR: "Call Taking",
    Role.SUPERVISOR: "Supervisor",
    Role.INTERNAL_SECURITY: "Investigator",
    Role.ADMIN: "Administrator",
}
# The call's state as the Call States registry names it, when the document is made.
CALL_STATES = {
    CallState.QUEUED: "callBegin",
    CallState.ANSWERED: "callAnswered",
    CallState.TRANSFERRED: "callAnswered",
    CallState.ENDED: "callEnd",
    CallState.ABANDONED: "callEnd",
    CallState.FAILED: "callEnd",
}
OPEN_STATES = (CallState.QUEUED, CallState.ANSWERED, CallState.TRANSFERRED)
# The PIDF-LO shapes' coordinate system (WGS 84, latitude first) and the radius' unit (metres).
WGS84 = "urn:ogc:def:crs:EPSG::4326"
METRES = "urn:ogc:def:uom:EPSG::9001"


@dataclass(frozen=True)
class EidoDocument:
    """The document as sent: its bytes (compact JSON, UTF-8) and their SHA-256."""

    body: bytes
    sha256: str

    def parsed(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.body)
        return result


def _iso(value: datetime) -> str:
    return value.isoformat()


def _ref(target: str) -> dict[str, str]:
    return {"$ref": target}


class _Ids:
    """Every component's ``$id`` for one call: globally unique, under this centre's agency."""

    def __init__(self, agency: str, call_name: str, caller_name: str) -> None:
        self.agency = agency
        self.call_name = call_name
        self.caller_name = caller_name

    @property
    def document(self) -> str:
        return f"urn:lifeline:eido:{self.call_name}:{self.agency}"

    @property
    def incident(self) -> str:
        return f"urn:emergency:uid:incidentid:{self.call_name}:{self.agency}"

    @property
    def call(self) -> str:
        return f"urn:emergency:uid:callid:{self.call_name}:{self.agency}"

    @property
    def caller(self) -> str:
        return f"urn:lifeline:caller:{self.caller_name}:{self.agency}"

    def agent(self, username: str) -> str:
        return f"{username}@{self.agency}"

    def part(self, kind: str, n: int | str) -> str:
        return f"urn:lifeline:{kind}:{self.call_name}:{n}:{self.agency}"

    def prologue(
        self, component_id: str, at: datetime, agent: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        """The head every component carries, then its own fields."""
        head: dict[str, Any] = {
            "$id": component_id,
            "lastUpdateTimeStamp": _iso(at),
            "updatedByAgencyReference": _ref(self.agency),
        }
        if agent is not None:
            head["updatedByAgentReference"] = _ref(self.agent(agent))
        return {**head, **fields}


def pidf_lo(entity: str, lat: float, lon: float, radius_m: float | None, at: datetime) -> str:
    """One fix as a PIDF-LO presence document: a circle of the fix's accuracy (RFC 5491), or a
    point when the browser gave none, and the time it was measured."""
    pos = f"<gml:pos>{lat:.7f} {lon:.7f}</gml:pos>"
    shape = (
        f'<gml:Point srsName="{WGS84}">{pos}</gml:Point>'
        if radius_m is None
        else f'<gs:Circle srsName="{WGS84}">{pos}'
        f'<gs:radius uom="{METRES}">{radius_m:.1f}</gs:radius></gs:Circle>'
    )
    return (
        '<presence xmlns="urn:ietf:params:xml:ns:pidf"'
        ' xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"'
        ' xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10"'
        ' xmlns:gml="http://www.opengis.net/gml"'
        ' xmlns:gs="http://www.opengis.net/pidflo/1.0"'
        f' entity="{html.escape(entity, quote=True)}">'
        '<dm:device id="caller"><gp:geopriv><gp:location-info>'
        f"{shape}"
        "</gp:location-info><gp:usage-rules/></gp:geopriv>"
        f"<dm:timestamp>{_iso(at)}</dm:timestamp></dm:device></presence>"
    )


@dataclass(frozen=True)
class _Record:
    """What the database holds for the call, read in one session."""

    transitions: list[CallTransition]
    chat: list[ChatMessage]
    track: list[LocationSample]
    segments: list[Recording]
    photos: list[CallPhoto]
    snapshots: list[Snapshot]
    users: dict[int, User]
    by_name: dict[str, User]


async def _read(services: Services, call: Call) -> _Record:
    async with services.db.session() as session:
        transitions = list(
            (
                await session.exec(
                    select(CallTransition)
                    .where(col(CallTransition.call_id) == call.id)
                    .order_by(col(CallTransition.at), col(CallTransition.id))
                )
            ).all()
        )
        chat = list(
            (
                await session.exec(
                    select(ChatMessage)
                    .where(col(ChatMessage.call_id) == call.id)
                    .order_by(col(ChatMessage.seq))
                )
            ).all()
        )
        track = list(
            (
                await session.exec(
                    select(LocationSample)
                    .where(col(LocationSample.call_id) == call.id)
                    .order_by(col(LocationSample.measured_at), col(LocationSample.seq))
                )
            ).all()
        )
        segments = list(
            (
                await session.exec(
                    select(Recording)
                    .where(col(Recording.call_id) == call.id)
                    .order_by(col(Recording.segment))
                )
            ).all()
        )
        photos = list(
            (
                await session.exec(
                    select(CallPhoto)
                    .where(col(CallPhoto.call_id) == call.id)
                    .order_by(col(CallPhoto.seq))
                )
            ).all()
        )
        snapshots = list(
            (
                await session.exec(
                    select(Snapshot)
                    .where(col(Snapshot.call_id) == call.id)
                    .order_by(col(Snapshot.at), col(Snapshot.id))
                )
            ).all()
        )
        ids = {m.sender_user_id for m in chat if m.sender_user_id is not None}
        ids |= {s.taken_by for s in snapshots}
        if call.operator_id is not None:
            ids.add(call.operator_id)
        actors = {t.actor for t in transitions}
        users = (
            await session.exec(
                select(User).where(col(User.id).in_(ids) | col(User.username).in_(actors))
            )
        ).all()
    return _Record(
        transitions=transitions,
        chat=chat,
        track=track,
        segments=segments,
        photos=photos,
        snapshots=snapshots,
        users={u.id: u for u in users if u.id is not None},
        by_name={u.username: u for u in users},
    )


def _media_url(services: Services, path: str) -> str:
    """A staff URL of one stored file: absolute under PUBLIC_URL, else from the site's root
    (fetching it takes a staff session that may read the call; recordings a view's reason)."""
    return f"{services.settings.PUBLIC_URL}{path}"


async def call_document(services: Services, call: Call) -> EidoDocument:
    """The EIDO of ``call`` as the database holds it now (already checked against the reader,
    or a police call posted to the CAD)."""
    record = await _read(services, call)
    agency = services.settings.CAD_AGENCY_ID
    # The caller is known by the call alone; an internal-security caller by a keyed hash.
    ids = _Ids(agency, call.id, call_log_name(services.pseudonyms, call.channel, call.id))
    now = services.clock.now()
    by_agency = _ref(agency)
    prologue = ids.prologue

    # Staff who touched the call: its operator, whoever moved it, wrote in its chat, took a
    # snapshot. A system actor (a sweep, the citizen) is no agent.
    agents, agent_refs = _agents(ids, record.users.values())

    locations = [
        prologue(
            ids.part("location", s.seq),
            s.measured_at,
            locationTypeDescriptionRegistryText="Caller",
            locationByValue=pidf_lo(ids.caller, s.lat, s.lon, s.accuracy_m, s.measured_at),
            localIdentifier=[f"seq:{s.seq}"],
        )
        for s in record.track
    ]
    location_refs = [_ref(loc["$id"]) for loc in locations]

    notes: list[dict[str, Any]] = []
    for t in record.transitions:
        actor = record.by_name.get(t.actor)
        text = f"Call {t.from_state or 'created'} \u2192 {t.to_state} by {t.actor}"
        if t.reason:
            text += f": {t.reason}"
        note = prologue(
            ids.part("transition", t.id or 0),
            t.at,
            actor.username if actor else None,
            notesActionComments=f"<p>{html.escape(text)}</p>",
        )
        if actor is not None:
            note["agentReference"] = _ref(ids.agent(actor.username))
        notes.append(note)
    for m in record.chat:
        writer = record.users.get(m.sender_user_id) if m.sender_user_id else None
        who = writer.username if writer else m.sender
        note = prologue(
            ids.part("chat", m.seq),
            m.at,
            writer.username if writer else None,
            notesActionComments=f"<p><b>{html.escape(who)}</b>: {html.escape(m.body)}</p>",
        )
        if writer is not None:
            note["agentReference"] = _ref(ids.agent(writer.username))
        notes.append(note)
    call_note_refs = [_ref(n["$id"]) for n in notes]
    incident_note_refs: list[dict[str, str]] = []
    operator = record.users.get(call.operator_id) if call.operator_id else None
    if call.note:
        end_note = prologue(
            ids.part("note", "end"),
            call.ended_at or now,
            operator.username if operator else None,
            notesActionComments=f"<p>{html.escape(call.note)}</p>",
        )
        notes.append(end_note)
        incident_note_refs.append(_ref(end_note["$id"]))

    media: list[dict[str, Any]] = []
    for r in record.segments:
        media.append(
            _media(
                prologue(ids.part("recording", r.segment), r.ended_at or r.started_at),
                _media_url(services, f"/api/calls/{call.id}/recordings/{r.segment}"),
                "video/x-matroska",
                f"recording segment {r.segment}",
                r.sha256,
                r.purged_at,
            )
        )
    for p in record.photos:
        kind = "video clip" if p.content_type.startswith("video/") else "photo"
        media.append(
            _media(
                prologue(ids.part("photo", p.seq), p.at),
                _media_url(services, f"/api/calls/{call.id}/photos/{p.seq}"),
                p.content_type,
                f"caller's {kind} {p.seq}",
                p.sha256,
                p.purged_at,
            )
        )
    for s in record.snapshots:
        taker = record.users.get(s.taken_by)
        media.append(
            _media(
                prologue(ids.part("snapshot", s.id or 0), s.at, taker.username if taker else None),
                _media_url(services, f"/api/calls/{call.id}/snapshots/{s.id}"),
                "image/jpeg",
                f"snapshot {s.id}",
                s.sha256,
                s.purged_at,
            )
        )

    caller = prologue(
        ids.caller,
        call.created_at,
        personIncidentRoleRegistryText=["Caller"],
        callIdentifier=[ids.call],
        locationReference=location_refs,
    )
    call_component = prologue(
        ids.call,
        call.ended_at or call.answered_at or call.created_at,
        operator.username if operator else None,
        callStateRegistryText=CALL_STATES.get(CallState(call.state), "callEnd"),
        standardPrimaryCallType="emergency",
        localCallType=f"{call.channel}/{call.mode}",
        direction="incoming",
        queueIdentifier=call.channel,
        callStartTimestamp=_iso(call.created_at),
        agentReference=agent_refs,
        locationReference=location_refs,
        personReference=[_ref(ids.caller)],
        notesReference=call_note_refs,
        agencyReference=[by_agency],
    )
    if call.answered_at is not None:
        call_component["answerDate"] = _iso(call.answered_at)
    incident = prologue(
        ids.incident,
        now,
        incidentTypeCommonRegistryText="Law Enforcement",
        incidentTypeInternalCode=call.situation or "unspecified",
        incidentStatusCommonRegistryText=["Open" if call.state in OPEN_STATES else "Closed"],
        incidentStatusInternalText=[call.state],
        internalIncidentId=ids.call_name,
        agentReference=agent_refs,
        locationReference=location_refs[-1:],  # where the caller was last
        personReference=[_ref(ids.caller)],
        notesReference=incident_note_refs,
    )
    if call.disposition:
        incident["dispositionComponent"] = [
            prologue(
                ids.part("disposition", call.disposition),
                call.ended_at or now,
                operator.username if operator else None,
                dispositionCommonRegistryCode=call.disposition,
                dispositionPrimaryIndicator=True,
                notesReference=incident_note_refs,
            )
        ]
    return _assemble(
        ids,
        now,
        incidentComponent=incident,
        callComponent=[call_component],
        agentComponent=agents,
        personComponent=[caller],
        locationComponent=locations,
        notesComponent=notes,
        mediaComponent=media,
    )


def _agents(ids: _Ids, users: Iterable[User]) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """The staff as agent components, by name, and references to them."""
    staff = sorted(users, key=lambda u: u.username)
    agents = [
        ids.prologue(
            ids.agent(u.username),
            u.updated_at,
            agentRoleRegistryText=[AGENT_ROLES.get(Role(u.role), "Call Taking")],
            agencyReference=_ref(ids.agency),
        )
        for u in staff
    ]
    return agents, [_ref(ids.agent(u.username)) for u in staff]


def _assemble(ids: _Ids, now: datetime, **components: Any) -> EidoDocument:
    """The document around its components: this centre as the one agency, and its bytes."""
    agency = ids.prologue(
        ids.agency,
        now,
        agencyRoleDescriptionRegistryText=["CallReceiving"],
        agencyType=["police"],
        incidentOwningAgencyIndicator=True,
    )
    document = ids.prologue(
        ids.document,
        now,
        eidoVersion=EIDO_VERSION,
        eidoExtensionId=[MEDIA_HASH_EXTENSION],
        issuingElementIdentification=f"lifeline@{ids.agency}",
        agencyComponent=[agency],
        **components,
    )
    body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    return EidoDocument(body=body, sha256=hashlib.sha256(body).hexdigest())


def _media(
    head: dict[str, Any],
    uri: str,
    content_type: str,
    label: str,
    sha256: str | None,
    purged_at: datetime | None,
) -> dict[str, Any]:
    """One stored file as a media component; one retention deleted keeps its hash and says so."""
    if purged_at is not None:
        label += f" (deleted by retention at {_iso(purged_at)})"
    if sha256:
        label += f", sha256 {sha256}"
    return {
        **head,
        "uri": uri,
        "contentType": content_type,
        "label": label,
        **({"sha256": sha256} if sha256 else {}),
    }


async def do_export_call(
    services: Services,
    staff: StaffContext,
    call: Call,
    remote: str,
    *,
    justified: dict[str, Any] | None = None,
) -> EidoDocument:
    """A staff member takes the call's EIDO (the console's operator, or a reader of the
    archive under the reason its record was opened for: ``justified``): entered in the chain
    as ``eido_exported`` with the document's hash, before it is sent."""
    document = await call_document(services, call)
    address = caller_address(services.pseudonyms, call.channel, remote)
    if justified is not None and call.channel == Channel.INTERNAL_SECURITY:
        justified = {k: v for k, v in justified.items() if k != "remote"}
    await services.audit.append(
        actor=staff.username,
        action="eido_exported",
        subject=f"call:{call.id}",
        data={
            "role": staff.role,
            "sha256": document.sha256,
            "bytes": len(document.body),
            **address,
            **(justified or {}),
        },
    )
    return document


# --- a message thread ------------------------------------------------------------------------

THREAD_STATES = {
    ThreadState.OPEN: "callBegin",
    ThreadState.CLAIMED: "callAnswered",
    ThreadState.CLOSED: "callEnd",
}
# A thread's steps are its audit chain's entries (it has no transitions table).
THREAD_STEPS = {"thread_created": "created", "thread_claimed": "claimed", "thread_closed": "closed"}


async def thread_document(services: Services, thread: MessageThread) -> EidoDocument:
    """A message thread as an EIDO (already checked against the reader): its messages as notes,
    its attachments as media with their hashes, its one position, its steps (made, claimed,
    closed: when, by whom) and its disposition. The contact the citizen chose to give is the
    only personal data it holds, a note on the caller."""
    subject = f"thread:{thread.id}"
    async with services.db.session() as session:
        messages = (
            await session.exec(
                select(ThreadMessage)
                .where(col(ThreadMessage.thread_id) == thread.id)
                .order_by(col(ThreadMessage.seq))
            )
        ).all()
        steps = (
            await session.exec(
                select(AuditEntry)
                .where(
                    col(AuditEntry.subject) == subject,
                    col(AuditEntry.action).in_(list(THREAD_STEPS)),
                )
                .order_by(col(AuditEntry.seq))
            )
        ).all()
        ids_of = {m.sender_user_id for m in messages if m.sender_user_id is not None}
        if thread.claimed_by is not None:
            ids_of.add(thread.claimed_by)
        users = (await session.exec(select(User).where(col(User.id).in_(ids_of)))).all()
    names = {u.id: u.username for u in users}
    ids = _Ids(
        services.settings.CAD_AGENCY_ID,
        thread.id,
        call_log_name(services.pseudonyms, thread.channel, thread.id),
    )
    now = services.clock.now()
    prologue = ids.prologue
    agents, agent_refs = _agents(ids, users)
    holder = names.get(thread.claimed_by) if thread.claimed_by else None

    notes: list[dict[str, Any]] = []
    for step in steps:
        staff = step.actor if step.actor in names.values() else None
        note = prologue(
            ids.part("step", step.seq),
            step.at,
            staff,
            notesActionComments=(
                f"<p>{html.escape(f'Thread {THREAD_STEPS[step.action]} by {step.actor}')}</p>"
            ),
        )
        if staff is not None:
            note["agentReference"] = _ref(ids.agent(staff))
        notes.append(note)
    media: list[dict[str, Any]] = []
    for m in messages:
        writer = names.get(m.sender_user_id) if m.sender_user_id else None
        if m.body:
            note = prologue(
                ids.part("message", m.seq),
                m.at,
                writer,
                notesActionComments=(
                    f"<p><b>{html.escape(writer or m.sender)}</b>: {html.escape(m.body)}</p>"
                ),
            )
            if writer is not None:
                note["agentReference"] = _ref(ids.agent(writer))
            notes.append(note)
        if m.path and m.content_type:
            media.append(
                _media(
                    prologue(ids.part("attachment", m.seq), m.at),
                    _media_url(services, f"/api/threads/{thread.id}/attachments/{m.seq}"),
                    m.content_type,
                    f"citizen's {'video clip' if m.kind == 'video' else 'photo'} {m.seq}",
                    m.sha256,
                    None,
                )
            )
    message_refs = [_ref(n["$id"]) for n in notes]
    caller_notes: list[dict[str, str]] = []
    if thread.contact:
        contact = prologue(
            ids.part("contact", "given"),
            thread.created_at,
            notesActionComments=f"<p>Contact given: {html.escape(thread.contact)}</p>",
        )
        notes.append(contact)
        caller_notes.append(_ref(contact["$id"]))
    incident_notes: list[dict[str, str]] = []
    if thread.note:
        closing = prologue(
            ids.part("note", "close"),
            thread.closed_at or now,
            holder,
            notesActionComments=f"<p>{html.escape(thread.note)}</p>",
        )
        notes.append(closing)
        incident_notes.append(_ref(closing["$id"]))

    locations = []
    if thread.lat is not None and thread.lon is not None:
        locations.append(
            prologue(
                ids.part("location", 1),
                thread.created_at,
                locationTypeDescriptionRegistryText="Caller",
                locationByValue=pidf_lo(
                    ids.caller, thread.lat, thread.lon, thread.accuracy_m, thread.created_at
                ),
            )
        )
    location_refs = [_ref(loc["$id"]) for loc in locations]
    caller = prologue(
        ids.caller,
        thread.created_at,
        personIncidentRoleRegistryText=["Caller"],
        callIdentifier=[ids.call],
        locationReference=location_refs,
        notesReference=caller_notes,
    )
    exchange = prologue(
        ids.call,
        thread.closed_at or thread.claimed_at or thread.created_at,
        holder,
        callStateRegistryText=THREAD_STATES.get(ThreadState(thread.state), "callEnd"),
        standardPrimaryCallType="emergency",
        localCallType=f"{thread.channel}/thread",
        direction="incoming",
        queueIdentifier=thread.channel,
        callStartTimestamp=_iso(thread.created_at),
        agentReference=agent_refs,
        locationReference=location_refs,
        personReference=[_ref(ids.caller)],
        notesReference=message_refs,
        agencyReference=[_ref(ids.agency)],
    )
    if thread.claimed_at is not None:
        exchange["answerDate"] = _iso(thread.claimed_at)
    incident = prologue(
        ids.incident,
        now,
        incidentTypeCommonRegistryText="Law Enforcement",
        incidentStatusCommonRegistryText=[
            "Closed" if thread.state == ThreadState.CLOSED else "Open"
        ],
        incidentStatusInternalText=[thread.state],
        internalIncidentId=thread.id,
        agentReference=agent_refs,
        locationReference=location_refs,
        personReference=[_ref(ids.caller)],
        notesReference=incident_notes,
    )
    if thread.disposition:
        incident["dispositionComponent"] = [
            prologue(
                ids.part("disposition", thread.disposition),
                thread.closed_at or now,
                holder,
                dispositionCommonRegistryCode=thread.disposition,
                dispositionPrimaryIndicator=True,
                notesReference=incident_notes,
            )
        ]
    return _assemble(
        ids,
        now,
        incidentComponent=incident,
        callComponent=[exchange],
        agentComponent=agents,
        personComponent=[caller],
        locationComponent=locations,
        notesComponent=notes,
        mediaComponent=media,
    )


async def do_export_thread(
    services: Services, staff: StaffContext, thread: MessageThread, remote: str
) -> EidoDocument:
    """A console's export of a thread its role sees: ``eido_exported`` in the chain first."""
    document = await thread_document(services, thread)
    await services.audit.append(
        actor=staff.username,
        action="eido_exported",
        subject=f"thread:{thread.id}",
        data={
            "role": staff.role,
            "sha256": document.sha256,
            "bytes": len(document.body),
            **caller_address(services.pseudonyms, thread.channel, remote),
        },
    )
    return document
