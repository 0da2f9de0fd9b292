"""The HTTP to OpenID Connect providers behind ``OidcHttp`` (server/core/ports.py): one aiohttp
session, each request waiting at most ``OIDC_TIMEOUT_SECS``, each answer at most
``MAX_ANSWER_BYTES`` (a discovery document, a key set or a token answer is a few kilobytes).

What is asked and what is believed (PKCE, the ID token's signature and claims) is the actions'
(server/actions/oidc_login.py); this only carries the requests and reads JSON objects back.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp

from server.core.ports import OidcHttpFailed

log = logging.getLogger("lifeline.oidc")

MAX_ANSWER_BYTES = 256 * 1024


class AiohttpOidc:
    def __init__(self, *, timeout_secs: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_secs)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def get_json(self, url: str) -> dict[str, Any]:
        return await self._send("GET", url)

    async def post_form(
        self, url: str, form: dict[str, str], *, basic_auth: tuple[str, str]
    ) -> dict[str, Any]:
        authorization = aiohttp.encode_basic_auth(basic_auth[0], basic_auth[1])
        return await self._send("POST", url, data=form, headers={"Authorization": authorization})

    async def _send(
        self, method: str, url: str, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        try:
            async with self._client().request(
                method, url, headers={"Accept": "application/json", **(headers or {})}, **kwargs
            ) as response:
                body = await response.content.read(MAX_ANSWER_BYTES + 1)
                status = response.status
        except TimeoutError:
            log.warning("oidc provider did not answer in time", extra={"url": url})
            raise OidcHttpFailed("timeout") from None
        except aiohttp.ClientError as exc:
            log.warning(
                "oidc provider unreachable", extra={"url": url, "error": type(exc).__name__}
            )
            raise OidcHttpFailed(f"unreachable: {type(exc).__name__}") from None
        if len(body) > MAX_ANSWER_BYTES:
            raise OidcHttpFailed("answer too large")
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if status // 100 != 2:
            error = answer.get("error") if isinstance(answer, dict) else None
            log.warning("oidc provider refused", extra={"url": url, "status": status})
            raise OidcHttpFailed(f"HTTP {status}" + (f" {str(error)[:64]}" if error else ""))
        if not isinstance(answer, dict):
            raise OidcHttpFailed("not a JSON object")
        return answer

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
