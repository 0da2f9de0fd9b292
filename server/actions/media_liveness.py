"""Whether a call's media node is still there: the rule behind the wall's "reconnecting".

Every media node reports each half second over the media namespace (a worker, or in scale-out
with no workers the node's own hub, which joins the bus). A node killed outright says no
goodbye, and the media registry forgets it only after its STALE_SECS; supervisors should not
wait that long to see which calls are hit. So a media node silent for LOST_SECS of the clock
(or for one report, once its home process has dropped its subscription to the bus: killed)
counts as lost for display: its calls show "reconnecting" until the caller's page places the
media anew (or the node reports again). Nothing is moved on this alone: a call moves when its
caller's page offers again and the silent node does not answer it within LOST_SECS either
(signaling/media_bus.py), so a node that is only slow under load costs a flicker on the wall.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.core.ports import Heard
from server.core.services import Services

# Three missed reports: a media node reports every half second (media/agent.py).
LOST_SECS = 1.5
# One missed report, where the node's home process no longer holds its subscription to the bus
# (server/state/media_nodes.py: home_channel): killed, not slow. A home whose listener is only
# subscribing again (Redis just back) still has its media nodes' reports on time.
HOME_GONE_SECS = 0.6


def silent(heard: Heard | None, now: float) -> bool:
    """A media node not to wait for: gone from the registry, silent for LOST_SECS, or its home
    process gone and one report missed."""
    if heard is None:
        return True
    quiet = now - heard.seen
    return quiet > LOST_SECS or (not heard.home_listening and quiet > HOME_GONE_SECS)


def home_gone(heard: Heard | None, now: float) -> bool:
    """Silent because its home process is gone (or the node left the registry): certain, not
    a guess from a late report, so a request need not wait LOST_SECS to give up."""
    return heard is None or (not heard.home_listening and now - heard.seen > HOME_GONE_SECS)


@dataclass(frozen=True)
class MediaSilence:
    """The media nodes heard from within LOST_SECS; ``known`` False when the registry did not
    answer (Redis away): then no call is said to be lost, since nothing can be told."""

    heard: frozenset[str]
    known: bool = True

    def lost(self, media_node: str | None) -> bool:
        """A call with media on a node not heard from lately (none yet: not lost)."""
        return self.known and media_node is not None and media_node not in self.heard


async def media_silence(services: Services) -> MediaSilence:
    seen = await services.media_nodes.last_seen()
    if seen is None:
        return MediaSilence(frozenset(), known=False)
    now = services.clock.now().timestamp()
    heard = {node for node, at in seen.items() if not silent(at, now)}
    if services.settings.MEDIA_WORKERS == 0:
        # Media in this very process (the embedded default): alive while this code runs.
        heard.add(services.settings.NODE_ID)
    return MediaSilence(frozenset(heard))
