"""Who a caller is, and what calling too often costs: a mark and a place at the back of the
queue, never a refusal. Behind the centre's proxies the caller is the forwarded address."""

from __future__ import annotations

import logging

import pytest
from aiohttp import web
from sqlmodel import col, select

from config import Settings
from server.actions.call_limits import network_of
from server.actions.queue import live_calls
from server.app import create_app
from server.core.clock import FrozenClock
from server.db.models import AuditEntry, Call
from server.http.calls import DEVICE_COOKIE
from server.http.keys import SERVICES_KEY
from tests.conftest import ClientFactory
from tests.staff import Client, another_browser

POLICE = {"channel": "police", "language": "en", "mode": "video"}


async def _tight(
    aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock, **more: object
) -> Client:
    tight = settings.model_copy(update={"CALL_RATE_LIMIT": "3/minute", **more})
    app: web.Application = create_app(tight, clock)
    return await aiohttp_client(app)


async def _call(client: Client, headers: dict[str, str] | None = None) -> dict[str, object]:
    response = await client.post("/api/calls", json=POLICE, headers=headers or {})
    assert response.status == 201, await response.text()  # never a 429 for a call
    body: dict[str, object] = await response.json()
    return body


async def _marks(client: Client) -> dict[str, str]:
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        return {c.id: c.marks for c in (await session.exec(select(Call))).all()}


async def test_over_the_limit_a_call_is_marked_and_queued_last_not_refused(
    aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock
) -> None:
    client = await _tight(aiohttp_client, settings, clock)
    client.session.cookie_jar.clear()
    calls = []
    for _ in range(4):
        calls.append(await _call(client))
        client.session.cookie_jar.clear()  # no device: one network, one allowance
    marks = await _marks(client)
    assert [marks[str(c["call_id"])] for c in calls] == ["", "", "", "suspected_abuse"]
    assert client.app is not None
    queue = await live_calls(client.app[SERVICES_KEY], "operator")
    assert queue[-1].call_id == calls[-1]["call_id"] and queue[-1].marks == ["suspected_abuse"]


async def test_a_device_cookie_keeps_callers_behind_one_address_apart(
    aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock
) -> None:
    """A carrier's NAT puts many phones behind one address: each phone's cookie is its own
    allowance, so one busy phone does not mark its neighbours' calls."""
    client = await _tight(aiohttp_client, settings, clock)
    neighbour = await another_browser(client)
    try:
        first = await client.post("/api/calls", json=POLICE)
        assert DEVICE_COOKIE in first.cookies and "." in first.cookies[DEVICE_COOKIE].value
        busy = [await _call(client) for _ in range(4)]  # 1 by network, then 4 by device
        calm = [await _call(neighbour) for _ in range(3)]
        marks = await _marks(client)
        assert [marks[str(c["call_id"])] for c in busy] == ["", "", "", "suspected_abuse"]
        assert [marks[str(c["call_id"])] for c in calm] == ["", "", ""]
    finally:
        await neighbour.close()


async def test_a_made_up_device_cookie_counts_as_none(
    aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock
) -> None:
    client = await _tight(aiohttp_client, settings, clock)
    calls = []
    for n in range(4):
        client.session.cookie_jar.clear()
        forged = {"Cookie": f"{DEVICE_COOKIE}=device{n}.{'0' * 32}"}
        calls.append(await _call(client, forged))
    marks = await _marks(client)
    assert marks[str(calls[-1]["call_id"])] == "suspected_abuse"


def test_an_ipv6_caller_is_its_64_and_an_ipv4_caller_its_address() -> None:
    assert network_of("2001:db8:1:2:aaaa::1") == network_of("2001:db8:1:2:bbbb::9")
    assert network_of("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert network_of("2001:db8:1:3::1") != network_of("2001:db8:1:2::1")
    assert network_of("::ffff:192.0.2.7") == "192.0.2.7"
    assert network_of("192.0.2.7") == "192.0.2.7"
    assert network_of("not an address") == "unknown"


async def test_behind_a_trusted_proxy_each_forwarded_address_is_its_own_caller(
    aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock
) -> None:
    """Eight callers through the proxy, each from its own address: eight plain calls (before,
    the whole city shared the proxy's allowance)."""
    client = await _tight(aiohttp_client, settings, clock, TRUSTED_PROXIES=["127.0.0.0/8"])
    calls = []
    for n in range(8):
        client.session.cookie_jar.clear()
        forwarded = {"X-Forwarded-For": f"198.51.100.{n + 1}", "X-Forwarded-Proto": "https"}
        calls.append(await _call(client, forwarded))
    assert set((await _marks(client)).values()) == {""}
    assert client.app is not None
    async with client.app[SERVICES_KEY].db.session() as session:
        created = (
            await session.exec(select(AuditEntry).where(col(AuditEntry.action) == "call_created"))
        ).all()
    assert sorted(e.data for e in created)[0].count("198.51.100.") == 1  # the caller's, stored


async def test_a_forwarded_header_from_an_untrusted_peer_is_ignored(
    aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock
) -> None:
    """Anyone can write X-Forwarded-For: from a peer that is not one of our proxies, it does not
    buy a fresh allowance per made-up address."""
    client = await _tight(aiohttp_client, settings, clock, TRUSTED_PROXIES=["10.0.0.0/8"])
    calls = []
    for n in range(4):
        client.session.cookie_jar.clear()
        calls.append(await _call(client, {"X-Forwarded-For": f"198.51.100.{n + 1}"}))
    assert (await _marks(client))[str(calls[-1]["call_id"])] == "suspected_abuse"


async def test_a_mangled_forwarded_header_never_turns_a_caller_away(
    aiohttp_client: ClientFactory,
    settings: Settings,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = await _tight(aiohttp_client, settings, clock, TRUSTED_PROXIES=["127.0.0.0/8"])
    with caplog.at_level(logging.WARNING, "lifeline.http"):
        for mangled in ("unknown, 198.51.100.9", "not-an-address", "198.51.100.9,,"):
            client.session.cookie_jar.clear()
            await _call(client, {"X-Forwarded-For": mangled})
    said = [r for r in caplog.records if "forwarded-for header" in r.getMessage()]
    assert len(said) == 1  # said once, not per request
