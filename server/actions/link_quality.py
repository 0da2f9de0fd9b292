"""The degradation ladder's reports: each side of a call tells the other what it measures.

The pages decide (console_ui/static/js/link_quality.js: the caller's page, which sends the
video, picks the rung from its own getStats and the operator's report); the server only checks
that the call is live and forwards. Nothing is stored: a rung lasts seconds, and the caller's
page says it again whenever it changes and when the call is answered.
"""

from __future__ import annotations

from server.actions.calls import check_live_call
from server.actions.queue import LIVE_STATES
from server.core.errors import AppError, ErrorCode
from server.core.events import CallLinkEvent, LinkQuality, LinkRung
from server.core.services import Services
from server.db.models import Call


async def do_caller_link(
    services: Services, call_id: str, rung: LinkRung, quality: LinkQuality
) -> None:
    """The caller's rung and quality, to the consoles on the call."""
    call = await check_live_call(services, call_id)
    await services.notifier.to_call_watchers(
        call.id, CallLinkEvent(call_id=call.id, side="caller", rung=rung, quality=quality)
    )


async def do_operator_link(services: Services, call: Call, quality: LinkQuality) -> None:
    """The quality of the caller's media at the operator's console, to the caller's page."""
    if call.state not in LIVE_STATES:
        raise AppError(ErrorCode.CALL_ENDED, "The call has ended")
    await services.notifier.to_citizen(
        call.id, CallLinkEvent(call_id=call.id, side="operator", rung=None, quality=quality)
    )
