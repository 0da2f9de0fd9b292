"""Whether a call's media node is still there: the rule behind the wall's "reconnecting".

Every media node reports each second (a worker over the media namespace, a node's own hub
from its media watch: server/actions/media_watch.py). A node killed outright says no goodbye,
and the media registry forgets it only after its STALE_SECS; supervisors should not wait that
long to see which calls are hit. So a media node silent for LOST_SECS of the clock counts as
lost for display: its calls show "reconnecting" until the caller's page places the media anew
(or the node reports again). Nothing is moved on this alone: placement keeps its own, longer
limit, so a node that is only slow under load costs a flicker on the wall, never a call.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.core.services import Services

# Two missed reports: a media node reports every second.
LOST_SECS = 2.0


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
    return MediaSilence(frozenset(node for node, at in seen.items() if now - at <= LOST_SECS))
