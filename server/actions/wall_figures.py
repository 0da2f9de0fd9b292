"""Today's figures on the supervisor's wall, computed from the call transitions and nothing else
(docs/wall.md says exactly how): no counter is kept beside them that could drift from the record.

"Today" is the local day in ``TIME_ZONE``; a call belongs to the day (and the hour) it was
first offered, whatever happens to it afterwards.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import col, select

from server.core.events import HourFigures, WallFigures
from server.core.services import Services
from server.db.models import Call, CallState, CallTransition


@dataclass
class _CallTimes:
    """One offered call's moments, as its transitions tell them."""

    offered: datetime
    answered: datetime | None = None
    abandoned: datetime | None = None
    ended: datetime | None = None


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The first instant of ``day`` and of the next, in ``zone`` (a DST day is 23 or 25 h)."""
    start = datetime.combine(day, time(0), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return start, end


def _secs(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 1) if values else None


async def today_figures(services: Services, channel: str) -> WallFigures:
    """The channel's figures for the local day of the services' clock."""
    settings = services.settings
    zone = ZoneInfo(settings.TIME_ZONE)
    day = services.clock.now().astimezone(zone).date()
    start, end = day_bounds(day, zone)
    offered_today = (
        select(CallTransition.call_id)
        .join(Call, col(Call.id) == col(CallTransition.call_id))
        .where(
            col(CallTransition.from_state).is_(None),
            col(CallTransition.to_state) == CallState.QUEUED,
            col(CallTransition.at) >= start,
            col(CallTransition.at) < end,
            col(Call.channel) == channel,
        )
    )
    async with services.db.session() as session:
        rows = (
            await session.exec(
                select(
                    CallTransition.call_id,
                    CallTransition.from_state,
                    CallTransition.to_state,
                    CallTransition.at,
                )
                .where(col(CallTransition.call_id).in_(offered_today))
                .order_by(col(CallTransition.at), col(CallTransition.id))
            )
        ).all()
    calls: dict[str, _CallTimes] = {}
    for call_id, from_state, to_state, at in rows:
        if from_state is None:
            calls[call_id] = _CallTimes(offered=at)
            continue
        times = calls.get(call_id)
        if times is None:
            continue  # a transition before the offer: not in a well-formed record
        if to_state == CallState.ANSWERED and times.answered is None:
            times.answered = at
        elif to_state == CallState.ABANDONED and times.answered is None:
            times.abandoned = at
        elif to_state == CallState.ENDED:
            times.ended = at
    return figures_of(channel, day, settings.TIME_ZONE, settings.ANSWER_TARGET_SECS, calls)


def figures_of(
    channel: str, day: date, zone_name: str, target: float, calls: dict[str, _CallTimes]
) -> WallFigures:
    zone = ZoneInfo(zone_name)
    waits: list[float] = []
    abandoned_waits: list[float] = []
    talks: list[float] = []
    hours: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    for times in calls.values():
        hour = hours[times.offered.astimezone(zone).hour]
        hour[0] += 1
        if times.answered is not None:
            hour[1] += 1
            waits.append(_secs(times.answered, times.offered))
            if times.ended is not None:
                talks.append(_secs(times.ended, times.answered))
        elif times.abandoned is not None:
            hour[2] += 1
            abandoned_waits.append(_secs(times.abandoned, times.offered))
    in_target = sum(1 for wait in waits if wait <= target)
    finished = len(waits) + len(abandoned_waits)
    longest = max(waits + abandoned_waits, default=None)
    return WallFigures(
        channel=channel,
        day=day.isoformat(),
        time_zone=zone_name,
        target_secs=target,
        offered=len(calls),
        answered=len(waits),
        abandoned=len(abandoned_waits),
        answered_in_target=in_target,
        in_target_percent=round(100.0 * in_target / finished, 1) if finished else None,
        avg_wait_secs=_mean(waits),
        longest_wait_secs=round(longest, 1) if longest is not None else None,
        avg_talk_secs=_mean(talks),
        hours=[
            HourFigures(hour=h, offered=v[0], answered=v[1], abandoned=v[2])
            for h, v in sorted(hours.items())
        ],
    )
