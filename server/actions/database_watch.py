"""Whether this node's database answers, asked each ``DATABASE_WATCH_SECS`` of its clock.

While PostgreSQL restarts, a call's media and recording go on (the recorder writes to disk and
stores each segment's row when it closes) and the pages keep what they could not store and send
it again; the operator must see that what is said now is not yet stored. The watch reports the
outage to ``Outages`` (the log line once, the ``lifeline_degraded{store="database"}`` metric) and
tells this node's consoles, when it starts and when it ends (``node.degraded``).
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from server.core.events import DegradedEvent
from server.core.outages import Outages, reason_of
from server.core.services import Services

log = logging.getLogger("lifeline.database_watch")

DATABASE_WATCH_SECS = 1.0
PING_TIMEOUT_SECS = 2.0
PART = "database"
WATCH_TIMER = "database-watch"


async def do_check_database(services: Services, outages: Outages) -> bool:
    """Ping once; on a change, say so to the outages and this node's consoles. True if up."""
    was_down = outages.is_down("database")
    try:
        await asyncio.wait_for(services.db.ping(), PING_TIMEOUT_SECS)
    except Exception as exc:  # noqa: BLE001 - whatever the driver raises, the database is away
        outages.failed("database", PART, reason_of(exc))
        up = False
    else:
        outages.answered("database", PART)
        up = True
    if was_down == up:
        await services.notifier.to_own_consoles(DegradedEvent(stores=outages.stores()))
    return up


def is_database_away(exc: BaseException) -> bool:
    """Whether a failure was the database not answering (refused, cut, timed out), not a bug:
    the request is refused as ``database_unavailable`` and the page sends it again."""
    return isinstance(exc, OperationalError | InterfaceError | OSError | TimeoutError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


def schedule_database_watch(services: Services, outages: Outages) -> None:
    """The node's watch, each DATABASE_WATCH_SECS of its clock, from its start."""

    async def round_() -> None:
        try:
            await do_check_database(services, outages)
        except Exception:
            log.exception("database watch failed")  # tried again at the next round
        schedule_database_watch(services, outages)

    services.background.later(services.clock, DATABASE_WATCH_SECS, round_, name=WATCH_TIMER)
