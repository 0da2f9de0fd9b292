"""Each node's watch on the media of the live calls: the wall learns which calls lost theirs.

Every WATCH_SECS of its clock a node works out which live calls' media node is lost
(server/actions/media_liveness.py) and tells the queue of each call whose state changed since
its last round: lost (the wall shows "reconnecting"), or back (the media placed anew, or the
node heard from again). A call whose media moved to another node is told again too: a worker
that exits is told at once (server/actions/media.py: media_node_left), and its call may be
placed anew before this round could see it lost. Every node watches, so the wall hears of a
killed node from whichever survives; a call told twice is told the same thing twice.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from sqlmodel import col, select

from server.actions.media_liveness import media_silence
from server.actions.queue import LIVE_STATES, summary_of
from server.core.events import QueueCallUpdated
from server.core.services import Services
from server.db.models import Call

log = logging.getLogger("lifeline.media_watch")

WATCH_SECS = 0.5
MEDIA_WATCH_TIMER = "media-watch"


@dataclass
class MediaWatch:
    """What the last round saw: the live calls whose media was lost, and each live call's
    media node."""

    lost: set[str] = field(default_factory=set)
    nodes: dict[str, str] = field(default_factory=dict)


def schedule_media_watch(services: Services, watch: MediaWatch) -> None:
    """The node's round, every WATCH_SECS of its clock, from its start."""

    async def round_() -> None:
        try:
            await do_watch_media(services, watch)
        except Exception:
            log.exception("media watch failed")  # tried again at the next round
        schedule_media_watch(services, watch)

    services.background.later(services.clock, WATCH_SECS, round_, name=MEDIA_WATCH_TIMER)


async def do_watch_media(services: Services, watch: MediaWatch) -> list[str]:
    """One round; returns the calls whose media state the queue was told of."""
    silence = await media_silence(services)
    if not silence.known:
        return []  # the registry is away: nothing to tell, and nothing forgotten
    async with services.db.session() as session:
        calls = (
            await session.exec(
                select(Call.id, Call.media_node).where(
                    col(Call.state).in_(LIVE_STATES), col(Call.media_node).is_not(None)
                )
            )
        ).all()
    nodes = {call_id: node for call_id, node in calls if node is not None}
    lost = {call_id for call_id, node in nodes.items() if silence.lost(node)}
    moved = {c for c, node in nodes.items() if watch.nodes.get(c, node) != node}
    changed = sorted(((lost ^ watch.lost) | moved) & nodes.keys())
    watch.lost, watch.nodes = lost, nodes
    if changed:
        # All at once: a killed node's calls reach the wall together, not one after another
        # behind each one's reads (8 calls in turn took seconds on a loaded node).
        async with services.db.session() as session:
            found = (await session.exec(select(Call).where(col(Call.id).in_(changed)))).all()
        live = [call for call in found if call.state in LIVE_STATES]
        summaries = await asyncio.gather(*(summary_of(services, c, silence) for c in live))
        await asyncio.gather(
            *(
                services.notifier.to_queue(summary.channel, QueueCallUpdated(call=summary))
                for summary in summaries
            )
        )
    if changed:
        log.info(
            "calls' media lost or back",
            extra={"lost": len(lost & set(changed)), "back": len(set(changed) - lost)},
        )
    return changed
