"""The wall's live thumbnails: every THUMBNAIL_INTERVAL_SECS, a small JPEG of each ongoing video
call's picture, sent to the walls that may see the call's channel and to nobody else.

Each node does this for the calls whose media is on its own media nodes (its hub or its
workers), so no call is done twice and no JPEG crosses the bus for nothing; and only for a
channel some wall (on any node) is open on. The media node decodes one fresh keyframe per call
and resizes it (media/session.py: thumbnail), never the stream.
"""

from __future__ import annotations

import asyncio
import base64
import logging

from sqlmodel import col, select

from server.actions.queue import LIVE_STATES
from server.actions.wall import watched
from server.core.errors import AppError
from server.core.events import ThumbnailEvent
from server.core.services import Services
from server.db.models import Call, Channel

log = logging.getLogger("lifeline.thumbnails")

THUMBNAIL_TIMER = "wall-thumbnails"


def schedule_thumbnails(services: Services) -> None:
    """The node's thumbnail round, every interval of its clock."""

    async def round_() -> None:
        try:
            await do_thumbnails(services)
        except Exception:
            log.exception("wall thumbnails failed")  # tried again at the next round
        schedule_thumbnails(services)

    services.background.later(
        services.clock, services.settings.THUMBNAIL_INTERVAL_SECS, round_, name=THUMBNAIL_TIMER
    )


async def do_thumbnails(services: Services) -> int:
    """One round: a thumbnail of each ongoing video call of this node's media, to the walls.
    Returns how many were sent."""
    channels = [c.value for c in Channel if await watched(services, c.value)]
    if not channels:
        return 0
    home = services.settings.NODE_ID
    # This node's own hub goes by its NODE_ID; its workers report with it as their home.
    mine = {home} | {node.id for node in await services.media_nodes.alive() if node.home == home}
    async with services.db.session() as session:
        calls = (
            await session.exec(
                select(Call.id, Call.channel).where(
                    col(Call.state).in_(LIVE_STATES),
                    col(Call.mode) == "video",
                    col(Call.channel).in_(channels),
                    col(Call.media_node).in_(mine),
                )
            )
        ).all()
    sent = await asyncio.gather(*(_one(services, call_id, channel) for call_id, channel in calls))
    return sum(sent)


async def _one(services: Services, call_id: str, channel: str) -> int:
    try:
        jpeg = await services.media.thumbnail(call_id)
    except AppError:
        return 0  # no picture yet, or the call's media is gone: nothing to show
    event = ThumbnailEvent(
        call_id=call_id,
        jpeg_base64=base64.b64encode(jpeg).decode("ascii"),
        at=services.clock.now(),
    )
    await services.notifier.to_wall(channel, event)
    return 1
