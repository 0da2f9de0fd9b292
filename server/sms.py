"""The SMS gateways behind ``SmsGateway`` (server/core/ports.py): an operator's invite link
reaches the caller's phone through one of them.

``HttpSmsGateway`` is a deployment's: it posts one request per message to the operator's SMS
provider, the body a template the deployment writes for its provider (``{to}`` and ``{text}``
filled in, JSON-escaped), with its Authorization header, and waits at most
``SMS_HTTP_TIMEOUT_SECS``. ``FileSmsSink`` appends each message as a line of JSON to a file:
local use (read the link from the file) and the tests, which read the SMS from it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import aiohttp

from config import Settings
from server.core.clock import Clock
from server.core.ports import SmsGateway, SmsNotSent

log = logging.getLogger("lifeline.sms")


class FileSmsSink:
    """Each message a line ``{"to", "text", "at"}`` appended to one file (made if missing)."""

    def __init__(self, path: Path, clock: Clock) -> None:
        self.path = path
        self._clock = clock
        self._lock = asyncio.Lock()

    async def send(self, to: str, text: str) -> None:
        line = json.dumps(
            {"to": to, "text": text, "at": self._clock.now().isoformat()}, ensure_ascii=False
        )
        async with self._lock:
            await asyncio.to_thread(self._append, line)

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    async def close(self) -> None:
        return None


def fill_body(template: str, to: str, text: str, *, json_escape: bool) -> str:
    """The provider's body: ``{to}`` and ``{text}`` replaced (not str.format: a JSON template
    is full of braces), each escaped for a JSON string when the body is JSON."""

    def escaped(value: str) -> str:
        return json.dumps(value, ensure_ascii=False)[1:-1] if json_escape else value

    return template.replace("{to}", escaped(to)).replace("{text}", escaped(text))


class HttpSmsGateway:
    """One POST per message; a 2xx answer is sent, anything else (an error status, no answer
    in time, no connection) is ``SmsNotSent`` and logged without the message's text."""

    def __init__(
        self,
        url: str,
        *,
        auth: str,
        body: str,
        content_type: str,
        timeout_secs: float,
    ) -> None:
        self._url = url
        self._auth = auth
        self._body = body
        self._content_type = content_type
        self._timeout = aiohttp.ClientTimeout(total=timeout_secs)
        self._session: aiohttp.ClientSession | None = None

    async def send(self, to: str, text: str) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        headers = {"Content-Type": self._content_type}
        if self._auth:
            headers["Authorization"] = self._auth
        body = fill_body(self._body, to, text, json_escape="json" in self._content_type)
        try:
            async with self._session.post(
                self._url, data=body.encode(), headers=headers
            ) as response:
                if response.status // 100 != 2:
                    log.warning("sms gateway refused", extra={"status": response.status})
                    raise SmsNotSent("refused", f"HTTP {response.status}")
        except TimeoutError:
            log.warning("sms gateway did not answer in time")
            raise SmsNotSent("timeout") from None
        except aiohttp.ClientError as exc:
            log.warning("sms gateway unreachable", extra={"error": type(exc).__name__})
            raise SmsNotSent("unreachable", type(exc).__name__) from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def sms_gateway_from_settings(settings: Settings, clock: Clock) -> SmsGateway:
    if settings.SMS_GATEWAY == "http":
        return HttpSmsGateway(
            settings.SMS_HTTP_URL,
            auth=settings.SMS_HTTP_AUTH,
            body=settings.SMS_HTTP_BODY,
            content_type=settings.SMS_HTTP_CONTENT_TYPE,
            timeout_secs=settings.SMS_HTTP_TIMEOUT_SECS,
        )
    return FileSmsSink(settings.sms_file, clock)
