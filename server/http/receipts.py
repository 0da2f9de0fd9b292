"""HTTP side of the caller's receipt: the caller fetches it by their call token; anyone checks
one on the public ``/receipt`` page, which learns only "matches" or "does not match"."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, StringConstraints

from server.actions import call_seal
from server.core.errors import AppError, ErrorCode
from server.http.bodies import read_json
from server.http.calls import CALL_TOKEN_HEADER
from server.http.client_address import client_address
from server.http.keys import PAGES_KEY, SERVICES_KEY

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


@routes.get(r"/api/calls/{call_id}/receipt")
async def receipt(request: web.Request) -> web.StreamResponse:
    """The caller's receipt of their ended call (token header): 409 receipt_pending until the
    seal is made."""
    services = request.app[SERVICES_KEY]
    found = await call_seal.citizen_receipt(
        services, request.headers.get(CALL_TOKEN_HEADER, ""), request.match_info["call_id"]
    )
    return web.json_response(found.as_json(), headers=NO_STORE)


@routes.post("/api/receipts/check")
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
