"""Photos sent by the caller during a call: kept byte for byte as evidence, with their hash.

The original is what the caller sent (EXIF location included: it may matter to the case); it
is served only to the call's own token holder and to staff who may see the call.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web
from sqlmodel import col, select

from server.actions.calls import call_by_token, check_call_for_staff, next_seq
from server.actions.uploads import sniff_image
from server.core.errors import AppError, ErrorCode
from server.db.models import Call, CallPhoto
from server.http.auth.access import CONSOLE_ROLES, require_staff
from server.http.keys import AUDIT_KEY, CLOCK_KEY, DB_KEY, SETTINGS_KEY, SIO_KEY
from server.http.uploads import stored_file_response
from signaling.events import PhotoEvent
from signaling.fanout import to_call_watchers, to_citizen

routes = web.RouteTableDef()
CALL_TOKEN_HEADER = "X-Call-Token"


def photo_event(photo: CallPhoto) -> PhotoEvent:
    return PhotoEvent(
        call_id=photo.call_id,
        seq=photo.seq,
        url=f"/api/calls/{photo.call_id}/photos/{photo.seq}",
        sha256=photo.sha256,
        width=photo.width,
        height=photo.height,
        at=photo.at,
    )


async def _citizen_call(request: web.Request) -> Call:
    call = await call_by_token(request.app[DB_KEY], request.headers.get(CALL_TOKEN_HEADER, ""))
    if call is None or call.id != request.match_info["call_id"]:
        raise AppError(ErrorCode.BAD_CALL_TOKEN, "This call's token is needed")
    return call


@routes.post(r"/api/calls/{call_id}/photos")
async def upload_photo(request: web.Request) -> web.StreamResponse:
    call = await _citizen_call(request)
    if call.state not in ("queued", "answered"):
        raise AppError(ErrorCode.CALL_ENDED, "The call has ended")
    if not request.content_type.startswith("multipart/"):
        raise AppError(
            ErrorCode.PHOTO_REQUIRED, "Send the photo as multipart/form-data, field 'photo'"
        )
    form = await request.post()
    field = form.get("photo")
    if not isinstance(field, web.FileField):
        raise AppError(
            ErrorCode.PHOTO_REQUIRED, "Send the photo as multipart/form-data, field 'photo'"
        )
    image = await asyncio.to_thread(sniff_image, field.file.read())
    app = request.app
    directory = app[SETTINGS_KEY].DATA_DIR / "photos" / call.id
    audit = app[AUDIT_KEY]
    async with audit.transaction() as session:
        seq = await next_seq(session, call.id)
        path = directory / f"{seq:06d}-{image.sha256[:12]}.{image.extension}"
        await asyncio.to_thread(_write, path, image.data)
        photo = CallPhoto(
            call_id=call.id,
            seq=seq,
            path=str(path),
            content_type=image.content_type,
            sha256=image.sha256,
            size_bytes=len(image.data),
            width=image.width,
            height=image.height,
            at=app[CLOCK_KEY].now(),
        )
        session.add(photo)
        await audit.record(
            session,
            actor="citizen",
            action="call_photo_received",
            subject=f"call:{call.id}",
            data={"seq": seq, "sha256": image.sha256, "size_bytes": len(image.data)},
        )
    event = photo_event(photo)
    await to_call_watchers(app[SIO_KEY], call.id, event)
    await to_citizen(app[SIO_KEY], call.id, event)
    return web.json_response(event.model_dump(mode="json"), status=201)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@routes.get(r"/api/calls/{call_id}/photos/{seq:\d+}")
async def photo_file(request: web.Request) -> web.StreamResponse:
    """For the caller (token header) or staff who may see the call; staff views are audited."""
    call_id = request.match_info["call_id"]
    if request.headers.get(CALL_TOKEN_HEADER):
        await _citizen_call(request)
        viewer = None
    else:
        viewer = require_staff(request, CONSOLE_ROLES)
        await check_call_for_staff(
            request.app[DB_KEY], call_id, viewer.role, viewer.user_id, must_own=True
        )
    async with request.app[DB_KEY].session() as session:
        photo = (
            await session.exec(
                select(CallPhoto).where(
                    col(CallPhoto.call_id) == call_id,
                    col(CallPhoto.seq) == int(request.match_info["seq"]),
                )
            )
        ).first()
    if photo is None:
        raise AppError(ErrorCode.PHOTO_NOT_FOUND, "No such photo")
    if viewer is not None:
        await request.app[AUDIT_KEY].append(
            actor=viewer.username,
            action="call_photo_viewed",
            subject=f"call:{call_id}",
            data={"seq": photo.seq, "sha256": photo.sha256},
        )
    return await stored_file_response(photo.path, photo.content_type, photo.sha256)


async def photos_since(
    request_app: web.Application, call_id: str, last_seq: int
) -> list[CallPhoto]:
    async with request_app[DB_KEY].session() as session:
        return list(
            (
                await session.exec(
                    select(CallPhoto)
                    .where(col(CallPhoto.call_id) == call_id, col(CallPhoto.seq) > last_seq)
                    .order_by(col(CallPhoto.seq))
                )
            ).all()
        )
