"""What every namespace shares: payload validation, error events, origin checks.

A bad payload never drops the connection: the client gets an ``error`` event naming the event
and the reason, and the acknowledgement ``{"ok": false, "error": {...}}``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import socketio
from pydantic import BaseModel, ValidationError

from server.actions.database_watch import is_database_away
from server.core.errors import AppError, ErrorCode
from server.core.events import ErrorEvent
from server.core.services import Services
from server.security.origins import is_own_origin
from signaling.acks import Ack, Refusal, RefusalDetail
from signaling.payloads import CitizenHello

log = logging.getLogger("lifeline.signaling")

Reply = dict[str, Any]
M = TypeVar("M", bound=BaseModel)
N = TypeVar("N", bound="LifelineNamespace")


# How many requests of one kind a socket may send at once, and how fast that allowance comes
# back: a person chats, a phone sends a fix a second, a browser trickles a few dozen candidates
# at the start. A page that sends hundreds is flooding: its excess is refused (``rate_limited``)
# before any work, so other calls' events stay quick.
EVENT_BURST = 30
EVENT_BURST_BY_NAME = {"media_ice": 64}
EVENT_REFILL_PER_SEC = 5.0

# Every socket of a namespace is looked at again this often (the node's clock): a staff session
# that ran out is closed, and the presence of the live ones renewed well inside its TTL. Under a
# short idle limit it is a third of that limit, so an on-shift console's session is renewed
# before it could run out.
RECHECK_SECS = 30.0


class LifelineNamespace(socketio.AsyncNamespace):
    """A namespace bound to one node's services (namespaces are singletons per server).

    It keeps its own connected sockets (``track``) and re-checks each every ``RECHECK_SECS``
    (``recheck``), while any is connected.
    """

    def __init__(self, namespace: str, services: Services) -> None:
        super().__init__(namespace)
        self.services = services
        self._live: dict[str, Any] = {}
        self._rechecking = False
        # Per socket, per request name: (tokens left, the clock's monotonic time of the count).
        self._allowance: dict[str, dict[str, tuple[float, float]]] = {}
        # Per socket, the request names it already had refused (it is marked once, not each time).
        self._flooded: dict[str, set[str]] = {}

    def track(self, sid: str, what: Any) -> None:
        self._live[sid] = what
        if not self._rechecking:
            self._schedule_recheck()

    def untrack(self, sid: str) -> Any:
        self._allowance.pop(sid, None)
        self._flooded.pop(sid, None)
        return self._live.pop(sid, None)

    def first_refusal(self, sid: str, name: str) -> bool:
        """The first request ``sid`` had refused for ``name`` since it connected?"""
        flooded = self._flooded.setdefault(sid, set())
        if name in flooded:
            return False
        flooded.add(name)
        return True

    def allow(self, sid: str, name: str) -> bool:
        """One more request ``name`` from ``sid``, within its token bucket?"""
        burst = float(EVENT_BURST_BY_NAME.get(name, EVENT_BURST))
        now = self.services.clock.monotonic()
        buckets = self._allowance.setdefault(sid, {})
        tokens, then = buckets.get(name, (burst, now))
        tokens = min(burst, tokens + (now - then) * EVENT_REFILL_PER_SEC)
        if tokens < 1.0:
            buckets[name] = (tokens, now)
            return False
        buckets[name] = (tokens - 1.0, now)
        return True

    async def flooding(self, sid: str, name: str) -> None:
        """``sid`` went over its allowance for ``name`` (once per burst: its excess is refused)."""

    def _schedule_recheck(self) -> None:
        self._rechecking = True
        self.services.background.later(
            self.services.clock,
            min(RECHECK_SECS, self.services.settings.SESSION_IDLE_SECS / 3),
            self._recheck_all,
            name=f"recheck:{self.namespace}",
        )

    async def _recheck_all(self) -> None:
        try:
            for sid, what in list(self._live.items()):
                if sid not in self._live:
                    continue
                try:
                    await self.recheck(sid, what)
                except Exception:
                    log.exception("re-checking a socket failed", extra={"sid": sid})
        finally:
            if self._live:
                self._schedule_recheck()
            else:
                self._rechecking = False

    async def recheck(self, sid: str, what: Any) -> None:
        """Look at one connected socket again (what ``track`` was given for it)."""

    async def trigger_event(self, event: str, *args: Any) -> Any:
        """Unknown events (a citizen trying a staff event, say) get an error, not silence."""
        if event not in ("connect", "disconnect") and not hasattr(self, f"on_{event}"):
            sid = args[0] if args else ""
            return await self.refuse(
                sid, event, ErrorCode.UNKNOWN_EVENT, f"No such event {event!r}"
            )
        return await super().trigger_event(event, *args)

    async def refuse(self, sid: str, event: str, code: ErrorCode, message: str) -> Reply:
        error = ErrorEvent(code=code.value, message=message, event=event)
        log.info("event refused", extra={"event": event, "code": code, "reason": message})
        await self.emit("error", error.model_dump(), to=sid)
        return Refusal(error=RefusalDetail(code=code.value, message=message)).model_dump()

    def hello_of(self, auth: Any, what: str) -> CitizenHello:
        """A citizen page's ``auth`` at connect (its capability token), or the refusal that
        names ``what`` the token is of (a call, a thread)."""
        try:
            return CitizenHello.model_validate(auth or {})
        except ValidationError:
            raise connection_refused(
                ErrorCode.TOKEN_REQUIRED, f"Connect with the {what}'s token"
            ) from None

    def check_origin(self, environ: dict[str, Any]) -> None:
        """Only our own pages connect (server/security/origins.py); a missing Origin is refused
        too (no browser omits it)."""
        request = environ.get("aiohttp.request")
        origin = request.headers.get("Origin", "") if request is not None else ""
        if not origin:
            raise connection_refused(ErrorCode.ORIGIN_REQUIRED, "Connect from the Lifeline pages")
        transport = request.transport if request is not None else None
        local = transport.get_extra_info("sockname") if transport is not None else None
        if not is_own_origin(self.services.settings, origin, local):
            raise connection_refused(ErrorCode.FOREIGN_ORIGIN, "Foreign origin")


def event(
    model: type[M],
) -> Callable[[Callable[[N, str, M], Awaitable[Ack]]], Callable[[N, str, Any], Awaitable[Reply]]]:
    """Validate the payload into ``model``; answer with the handler's acknowledgement, or turn a
    refusal into an error event and a refusal ack."""

    def wrap(
        handler: Callable[[N, str, M], Awaitable[Ack]],
    ) -> Callable[[N, str, Any], Awaitable[Reply]]:
        name = handler.__name__.removeprefix("on_")

        @functools.wraps(handler)
        async def run(self: N, sid: str, data: Any = None, *_extra: Any) -> Reply:
            if not self.allow(sid, name):
                if self.first_refusal(sid, name):
                    try:
                        await self.flooding(sid, name)
                    except Exception:
                        log.exception("marking a flooding socket failed", extra={"event": name})
                return await self.refuse(
                    sid, name, ErrorCode.RATE_LIMITED, f"Too many {name!r} at once: slow down"
                )
            try:
                payload = model.model_validate(data if data is not None else {})
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "payload"
                return await self.refuse(sid, name, ErrorCode.INVALID, f"{where}: {first['msg']}")
            try:
                return (await handler(self, sid, payload)).wire()
            except AppError as exc:
                return await self.refuse(sid, name, exc.code, exc.message)
            except Exception as exc:
                if is_database_away(exc):
                    log.warning("event not stored: the database is away", extra={"event": name})
                    return await self.refuse(
                        sid,
                        name,
                        ErrorCode.DATABASE_UNAVAILABLE,
                        "Not stored: the database does not answer. Send it again shortly",
                    )
                log.exception("event failed", extra={"event": name})
                return await self.refuse(
                    sid, name, ErrorCode.INTERNAL, "Something went wrong on our side"
                )

        return run

    return wrap


def connection_refused(
    code: ErrorCode, message: str, **data: str
) -> socketio.exceptions.ConnectionRefusedError:
    """What a client refused at connect receives: its ``connect_error`` carries ``message`` and
    ``data`` (``{"code": ..., ...}``), as the pages read it (``error.data.code``)."""
    return socketio.exceptions.ConnectionRefusedError(message, {"code": code.value, **data})
