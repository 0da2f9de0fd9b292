"""Which shared stores this node is working without, right now.

A dispatch centre must keep taking calls when Redis goes away: each part that uses it (rate
limits, presence, the media-node registry) falls back to this node's own view and reports the
outage here (the database, which nothing replaces, too), so it is said once in the log (not per
request), naming the store and the part, shown by ``/readyz`` and the
``lifeline_degraded`` metric, and cleared by the first answer after the store returns.
"""

from __future__ import annotations

import logging

log = logging.getLogger("lifeline.outages")


def reason_of(exc: BaseException) -> str:
    """The exception's class and message: redis-py 8's ``repr`` says only
    ``network:ConnectionError``, which does not tell a refused connect from a closed one."""
    return f"{type(exc).__name__}: {exc}"


class Outages:
    def __init__(self) -> None:
        self._down: dict[str, set[str]] = {}

    def failed(self, store: str, part: str, reason: str) -> None:
        """``part`` (limits, presence, ...) found ``store`` not answering and works without it."""
        parts = self._down.setdefault(store, set())
        if part not in parts:
            log.warning(
                f"{store} does not answer ({part})",
                extra={"store": store, "part": part, "reason": reason},
            )
            parts.add(part)

    def answered(self, store: str, part: str) -> None:
        parts = self._down.get(store)
        if parts is not None and part in parts:
            parts.discard(part)
            log.info(f"{store} answers again ({part})", extra={"store": store, "part": part})
            if not parts:
                del self._down[store]

    def is_down(self, store: str, part: str | None = None) -> bool:
        parts = self._down.get(store, set())
        return bool(parts) if part is None else part in parts

    def stores(self) -> list[str]:
        """The stores some part of this node works without."""
        return sorted(self._down)
