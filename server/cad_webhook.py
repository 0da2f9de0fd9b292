"""The CAD webhook behind ``CadWebhook`` (server/core/ports.py): one POST per delivery of a
call's EIDO document to ``CAD_WEBHOOK_URL``, waiting at most ``CAD_WEBHOOK_TIMEOUT_SECS``.

What is posted, when, how it is signed and retried are the actions' (server/actions/
cad_deliveries.py); this only carries the bytes and says whether the CAD took them.
"""

from __future__ import annotations

import logging

import aiohttp

from config import Settings
from server.core.ports import CadPostFailed, CadWebhook

log = logging.getLogger("lifeline.cad")


class HttpCadWebhook:
    """A 2xx answer is delivered; an error status, a time-out or no connection is
    ``CadPostFailed``, logged without the document."""

    def __init__(self, url: str, *, timeout_secs: float) -> None:
        self._url = url
        self._timeout = aiohttp.ClientTimeout(total=timeout_secs)
        self._session: aiohttp.ClientSession | None = None

    async def post(self, body: bytes, headers: dict[str, str]) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(self._url, data=body, headers=headers) as response:
                if response.status // 100 != 2:
                    log.warning("cad webhook refused", extra={"status": response.status})
                    raise CadPostFailed(f"HTTP {response.status}")
        except TimeoutError:
            log.warning("cad webhook did not answer in time")
            raise CadPostFailed("timeout") from None
        except aiohttp.ClientError as exc:
            log.warning("cad webhook unreachable", extra={"error": type(exc).__name__})
            raise CadPostFailed(f"unreachable: {type(exc).__name__}") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class NoCadWebhook:
    """No ``CAD_WEBHOOK_URL``: nothing is queued, so nothing is posted (a delivery left from
    a run that had one stays pending, and is said to have failed)."""

    async def post(self, body: bytes, headers: dict[str, str]) -> None:
        raise CadPostFailed("CAD_WEBHOOK_URL is not set")

    async def close(self) -> None:
        return None


def cad_webhook_from_settings(settings: Settings) -> CadWebhook:
    if settings.CAD_WEBHOOK_URL:
        return HttpCadWebhook(
            settings.CAD_WEBHOOK_URL, timeout_secs=settings.CAD_WEBHOOK_TIMEOUT_SECS
        )
    return NoCadWebhook()
