"""HTTP side of the caller's receipt: the caller fetches it by their call token; anyone checks
one on the public ``/receipt`` page, which learns only "matches" or "does not match"."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, StringConstraints

from server.actions import call_seal
from server.core.errors import AppError, ErrorCode
from server.http.bodies import read_json
from server.http.calls import CALL_TOKEN_HEADER
from server.http.client_address import client_address
from server.http.keys import PAGES_KEY, SERVICES_KEY
from server.http.openapi import CALL_TOKEN, documented

routes = web.RouteTableDef()

CallId = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
]
Seal = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
# Neither a receipt nor a check's answer is for a cache or a proxy's log.
NO_STORE = {"Cache-Control": "no-store"}


class CheckBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    call_id: CallId
    seal: Seal


class ReceiptView(BaseModel):
    """The caller's receipt: the call's times and its seal (a SHA-256 in the audit chain)."""

    model_config = ConfigDict(extra="forbid")
    call_id: str
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    sealed_at: datetime
    seal: str
    form: Any


class CheckResult(BaseModel):
    """Whether that seal is this call's: nothing more."""

    model_config = ConfigDict(extra="forbid")
    valid: bool


@routes.get(r"/api/calls/{call_id}/receipt")
@documented(replies={200: ReceiptView}, access=CALL_TOKEN)
async def receipt(request: web.Request) -> web.StreamResponse:
    """The caller's receipt of their ended call (token header): 409 receipt_pending until the
    seal is made."""
    services = request.app[SERVICES_KEY]
    found = await call_seal.citizen_receipt(
        services, request.headers.get(CALL_TOKEN_HEADER, ""), request.match_info["call_id"]
    )
    return web.json_response(found.as_json(), headers=NO_STORE)


@routes.post("/api/receipts/check")
@documented(body=CheckBody, replies={200: CheckResult})
async def check(request: web.Request) -> web.StreamResponse:
    """``{"call_id", "seal"}`` -> ``{"valid": bool}``, and nothing more. The values come in the
    body, never the query, so that no access log keeps them; each well-formed check counts
    against the client's allowance (a malformed one costs no look-up)."""
    services = request.app[SERVICES_KEY]
    address = client_address(request)
    try:
        body: CheckBody = await read_json(request, CheckBody)
    except AppError as exc:
        if exc.code is not ErrorCode.INVALID:
            raise
        raise AppError(
            ErrorCode.INVALID_RECEIPT,
            "A receipt is a call id (8-4-4-4-12 hex digits) and a seal (64 hex digits)",
        ) from None
    valid = await call_seal.check_receipt(
        services, call_id=body.call_id, seal=body.seal, address=address
    )
    return web.json_response({"valid": valid}, headers=NO_STORE)


@routes.get("/receipt")
async def receipt_page(request: web.Request) -> web.StreamResponse:
    """The public check page; a receipt's link carries its values after ``#``, which no
    request sends."""
    return request.app[PAGES_KEY].render(request, "receipt.html")
