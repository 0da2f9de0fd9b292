"""Callers and an operator's console that reach a centre (``tests/edge.py``) through its nginx,
as browsers do: each caller from an address of its own, a console signed in through /login.

Used by the tests and by ``make bench`` (its ``flood`` row) alike.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pyotp
import socketio

from tests.browser.staff import STAFF_PASSWORD, add_staff
from tests.edge import PIN_COOKIE, Centre

WAIT_SECS = 30.0
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


@asynccontextmanager
async def from_address(
    address: str, pin: str = "", *, cookies: bool = True
) -> AsyncIterator[aiohttp.ClientSession]:
    """A browser on its own address: nginx sees it as its peer (and writes it as the forwarded
    address); its own cookie jar, which keeps cookies of an IP-address host as a browser does
    (``cookies=False``: a script that keeps none)."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0), ssl=False)
    jar: aiohttp.abc.AbstractCookieJar = (
        aiohttp.CookieJar(unsafe=True) if cookies else aiohttp.DummyCookieJar()
    )
    async with aiohttp.ClientSession(connector=connector, cookie_jar=jar) as session:
        if pin:
            jar.update_cookies({PIN_COOKIE: pin})
        yield session


async def start_call(centre: Centre, session: aiohttp.ClientSession) -> dict[str, Any]:
    """The page's ``POST /api/calls``; an emergency call is never refused, so anything but 201
    fails the test."""
    async with session.post(
        f"{centre.base}/api/calls",
        json={"channel": "police", "language": "en", "mode": "video"},
        headers={"Origin": centre.base},
    ) as response:
        assert response.status == 201, await response.text()
        started: dict[str, Any] = await response.json()
        return started


@dataclass
class Console:
    """An operator's console socket and the calls its queue has shown."""

    sio: socketio.AsyncClient
    added: dict[str, dict[str, Any]] = field(default_factory=dict)
    seen: dict[str, asyncio.Event] = field(default_factory=dict)

    def arrived(self, call_id: str) -> asyncio.Event:
        return self.seen.setdefault(call_id, asyncio.Event())


async def signed_in(
    centre: Centre, session: aiohttp.ClientSession, secret: str, username: str = "op1"
) -> None:
    """Through /login as a browser: the form's CSRF token, the password and a TOTP code."""
    async with session.get(f"{centre.base}/login") as form:
        match = CSRF_RE.search(await form.text())
    assert match, "the login page has no CSRF token"
    async with session.post(
        f"{centre.base}/login",
        data={
            "username": username,
            "password": STAFF_PASSWORD,
            "totp": pyotp.TOTP(secret).now(),
            "csrf_token": match.group(1),
            "next": "",
        },
        headers={"Origin": centre.base},
        allow_redirects=False,
    ) as response:
        assert response.status == 303, await response.text()


@asynccontextmanager
async def console(centre: Centre) -> AsyncIterator[Console]:
    """Operator op1's console, pinned to node B (the callers are balanced across both)."""
    secret = add_staff(centre.nodes["b"], "op1", "operator")
    async with from_address("127.0.0.2", pin="b") as session:
        await signed_in(centre, session, secret)
        sio = socketio.AsyncClient(reconnection=False, http_session=session, ssl_verify=False)
        desk = Console(sio)

        def on_event(data: dict[str, Any]) -> None:
            if data.get("type") == "queue.call_added":
                call = data["call"]
                desk.added[call["call_id"]] = call
                desk.arrived(call["call_id"]).set()

        sio.on("event", on_event, namespace="/console")
        await sio.connect(
            centre.base,
            namespaces=["/console"],
            transports=["websocket"],
            headers={"Origin": centre.base},
            wait_timeout=WAIT_SECS,
        )
        try:
            yield desk
        finally:
            await sio.disconnect()


async def caller_queued(centre: Centre, session: aiohttp.ClientSession, token: str) -> str:
    """The caller's page connects with its call's token and asks where the call is."""
    sio = socketio.AsyncClient(reconnection=False, http_session=session, ssl_verify=False)
    await sio.connect(
        centre.base,
        namespaces=["/citizen"],
        transports=["websocket"],
        auth={"token": token, "last_seq": 0},
        headers={"Origin": centre.base},
        wait_timeout=WAIT_SECS,
    )
    try:
        reply = await sio.call("resume", {"last_seq": 0}, namespace="/citizen", timeout=WAIT_SECS)
    finally:
        await sio.disconnect()
    assert reply["ok"], reply
    state: str = reply["call"]["state"]
    return state


async def genuine_call(centre: Centre, desk: Console, address: str) -> dict[str, Any]:
    """A caller's whole setup: the tap (``POST /api/calls``), the page's socket told "queued",
    and the call in the operator's queue; the call as the queue shows it, with ``state`` (the
    page's) and ``setup_secs`` (from the tap until both)."""
    tapped = time.monotonic()
    async with from_address(address) as session:
        started = await start_call(centre, session)
        state = await caller_queued(centre, session, started["token"])
    await asyncio.wait_for(desk.arrived(started["call_id"]).wait(), WAIT_SECS)
    setup_secs = time.monotonic() - tapped
    return {"state": state, "setup_secs": setup_secs, **desk.added[started["call_id"]]}


async def queue_of(desk: Console) -> list[dict[str, Any]]:
    reply = await desk.sio.call("queue", {}, namespace="/console", timeout=WAIT_SECS)
    assert reply["ok"], reply
    calls: list[dict[str, Any]] = reply["calls"]
    return calls


async def flood(centre: Centre, address: str, calls: int, streams: int) -> list[dict[str, Any]]:
    """``calls`` calls from one address as fast as a script makes them: ``streams`` at a time,
    each one after the other, keeping no device cookie (the address is the caller)."""
    async with from_address(address, cookies=False) as session:

        async def stream() -> list[dict[str, Any]]:
            return [await start_call(centre, session) for _ in range(calls // streams)]

        made = await asyncio.gather(*(stream() for _ in range(streams)))
        return [call for some in made for call in some]
