"""HTTP side of the evidence: the deployment's public key where anyone finds it (a court checks
a bundle's signature against it), and the export of a call's bundle."""

from __future__ import annotations

import asyncio
import io
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from server.actions import evidence_export
from server.actions.access import EVIDENCE_ROLES
from server.actions.checkpoints import Custody
from server.http.auth.access import require_staff_change
from server.http.bodies import read_json
from server.http.client_address import client_address
from server.http.keys import SERVICES_KEY
from server.http.openapi import File, documented, staff_change

routes = web.RouteTableDef()
KEY_PATH = "/.well-known/lifeline-evidence-key"


@routes.get(KEY_PATH)
async def evidence_key_pem(request: web.Request) -> web.StreamResponse:
    """The public key as PEM (SubjectPublicKeyInfo): what ``verify.py --key`` takes."""
    key = request.app[SERVICES_KEY].evidence_key
    return web.Response(
        text=key.public_pem,
        content_type="application/x-pem-file",
        headers={"X-Key-Id": key.key_id},
    )


@routes.get(KEY_PATH + ".json")
async def evidence_key_json(request: web.Request) -> web.StreamResponse:
    """The key id (SHA-256 of the raw 32-byte key, what ``verify.py --key-id`` takes) and PEM."""
    key = request.app[SERVICES_KEY].evidence_key
    return web.json_response(
        {"algorithm": "Ed25519", "key_id": key.key_id, "public_key_pem": key.public_pem}
    )


class ExportBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    reason: str = Field(max_length=10_000)  # held to MAX_REASON_CHARS by the action


class _ResponseSink(io.RawIOBase):
    """The zip's bytes, from the writer's thread into the streaming response: each write waits
    until the response has taken it, so a slow reader slows the writer and nothing piles up."""

    def __init__(self, response: web.StreamResponse, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._response = response
        self._loop = loop

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        asyncio.run_coroutine_threadsafe(self._response.write(chunk), self._loop).result()
        return len(chunk)


@routes.post(r"/api/calls/{call_id}/export")
@documented(
    body=ExportBody, replies={200: File(("application/zip",))}, access=staff_change(EVIDENCE_ROLES)
)
async def export_call(request: web.Request) -> web.StreamResponse:
    """The call's signed evidence bundle, streamed as it is written: for supervisors and admins
    (police calls) and internal security (its own channel's), with the reason in the body; the
    export is in the audit chain (who, when, what, why, from where) before the first byte."""
    services = request.app[SERVICES_KEY]
    staff = require_staff_change(request, EVIDENCE_ROLES)
    body: ExportBody = await read_json(request, ExportBody)
    custody = Custody.of(services)
    call = await evidence_export.check_call_for_export(
        custody, request.match_info["call_id"], staff.role
    )
    plan = await evidence_export.plan_export(
        custody,
        services.storage,
        services.pseudonyms,
        call,
        actor=staff.username,
        role=staff.role,
        reason=body.reason,
        remote=client_address(request),
    )
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/zip",
            "Content-Disposition": f'attachment; filename="{plan.file_name}"',
        }
    )
    await response.prepare(request)
    sink = io.BufferedWriter(_ResponseSink(response, asyncio.get_running_loop()), 256 * 1024)
    await asyncio.to_thread(evidence_export.write_bundle, plan, services.storage, sink)
    await response.write_eof()
    return response
