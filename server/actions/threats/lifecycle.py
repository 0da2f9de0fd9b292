"""A report's life: the statuses it may move between, where it may be forwarded, and KMZB's
targets for reading and verifying it. Pure rules, no queries: the writes in ``desk`` and the
views in ``views`` both ask them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from server.core.errors import AppError, ErrorCode
from server.db.models import ReportStatus, ThreatReport

FORWARD_TARGETS = ("road_authority", "city_guard", "other")
OPEN_STATUSES = (ReportStatus.NEW, ReportStatus.VERIFYING, ReportStatus.CONFIRMED)
VERDICTS = (ReportStatus.CONFIRMED, ReportStatus.NOT_CONFIRMED, ReportStatus.JOKE_OR_MISTAKE)
TRANSITIONS: dict[str, frozenset[str]] = {
    ReportStatus.NEW: frozenset({ReportStatus.VERIFYING}),
    ReportStatus.VERIFYING: frozenset(VERDICTS),
    ReportStatus.CONFIRMED: frozenset({ReportStatus.ELIMINATED}),
}
# KMZB's targets: a report is read within 2 days and verified within 5.
READ_TARGET_SECS = 2 * 86_400
VERIFY_TARGET_SECS = 5 * 86_400


def check_statuses(value: str) -> list[str]:
    """A comma-separated filter of statuses, each one that exists."""
    statuses = [s.strip() for s in value.split(",") if s.strip()]
    for status in statuses:
        if status not in ReportStatus.__members__.values():
            raise AppError(ErrorCode.INVALID_STATUS, f"Unknown status {status!r}")
    return statuses


def check_transition(old: str, new: str) -> None:
    if new not in ReportStatus.__members__.values():
        raise AppError(ErrorCode.INVALID_STATUS, f"Unknown status {new!r}")
    if new not in TRANSITIONS.get(old, frozenset()):
        raise AppError(ErrorCode.ILLEGAL_TRANSITION, f"A report cannot go from {old} to {new}")


def check_forward_target(to: str) -> None:
    if to not in FORWARD_TARGETS:
        raise AppError(ErrorCode.INVALID_FORWARD_TARGET, f"to: use {', '.join(FORWARD_TARGETS)}")


def check_invitable(report: ThreatReport) -> None:
    """Only the author sees an invitation, on the follow page: a report made by an officer from
    a call has no follow link, so nobody would see it."""
    if report.follow_token_hash is None:
        raise AppError(
            ErrorCode.NO_FOLLOW_LINK,
            "This report has no author's follow link to show an invitation on",
        )


def overdue_read(report: ThreatReport, now: datetime) -> bool:
    """Not read by anyone and older than the 2-day target."""
    return report.read_at is None and now - report.created_at > timedelta(seconds=READ_TARGET_SECS)


def overdue_verify(report: ThreatReport, now: datetime) -> bool:
    """Still waiting for a verdict and older than the 5-day target."""
    return (
        report.verified_at is None
        and report.status in (ReportStatus.NEW, ReportStatus.VERIFYING)
        and now - report.created_at > timedelta(seconds=VERIFY_TARGET_SECS)
    )
