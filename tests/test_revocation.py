"""A staff session that ends stops its open consoles at once, on every node: a disabled, signed
out or idle account receives nothing more (not even events it did not ask for), and a role change
makes the console connect again with what the new role may see."""

from __future__ import annotations

import pytest

from config import Settings
from server.app import create_app
from server.core.clock import FrozenClock
from server.http.keys import SERVICES_KEY
from signaling.namespace import RECHECK_SECS
from tests import stores
from tests.conftest import ClientFactory
from tests.sockets import console, start_call
from tests.staff import Client, add_account, sign_in

BUS_REDIS_URL = stores.REDIS_URL or "redis://127.0.0.1:6379/13"


@pytest.fixture
async def admin_csrf(client: Client, clock: FrozenClock) -> str:
    return await sign_in(client, await add_account(client, "root", "admin"), clock)


async def _user_id(client: Client, username: str) -> int:
    users = (await (await client.get("/api/users")).json())["users"]
    return int(next(u["id"] for u in users if u["username"] == username))


async def test_a_disabled_operators_console_is_closed_and_gets_no_next_call(
    client: Client, operator: Client, admin_csrf: str
) -> None:
    async with console(operator) as desk:
        olga = await _user_id(client, "olga")
        changed = await client.patch(
            f"/api/users/{olga}", json={"disabled": True}, headers={"X-CSRF-Token": admin_csrf}
        )
        assert changed.status == 200
        ended = await desk.next_event("session.ended")
        assert ended["reason"] == "disabled"
        await desk.until_closed()
        await start_call(client)  # the next caller: nothing of it reaches the closed console
        assert desk.received("queue.call_added") == []
    assert (await operator.get("/console", allow_redirects=False)).status == 303


async def test_signing_out_closes_that_sessions_console(
    operator_desk: tuple[Client, str],
) -> None:
    browser, csrf = operator_desk
    async with console(browser) as desk:
        out = await browser.post("/logout", data={"csrf_token": csrf}, allow_redirects=False)
        assert out.status == 303
        assert (await desk.next_event("session.ended"))["reason"] == "signed_out"
        await desk.until_closed()


async def test_a_role_change_reconnects_the_console_with_the_new_role(
    client: Client, operator: Client, admin_csrf: str
) -> None:
    async with console(operator) as desk:
        olga = await _user_id(client, "olga")
        changed = await client.patch(
            f"/api/users/{olga}", json={"role": "supervisor"}, headers={"X-CSRF-Token": admin_csrf}
        )
        assert changed.status == 200
        assert (await desk.next_event("session.ended"))["reason"] == "role_changed"
        await desk.until_closed()
    # The session itself goes on: the page reloads as a supervisor.
    assert (await operator.get("/wall")).status == 200
    async with console(operator) as desk:
        assert (await desk.call("operators", {}))["ok"]


async def test_an_idle_console_is_closed_though_it_sends_nothing(
    client: Client, operator: Client, clock: FrozenClock
) -> None:
    """The console's socket is re-checked on the clock: past the idle limit it is closed, with
    no event from it to notice that."""
    assert client.app is not None
    services = client.app[SERVICES_KEY]
    async with console(operator) as desk:
        clock.advance(RECHECK_SECS)
        await services.background.drain()
        assert (await desk.call("queue", {}))["ok"]  # active a moment ago: still open
        clock.advance(services.settings.SESSION_IDLE_SECS + 1)
        await services.background.drain()
        assert (await desk.next_event("session.ended"))["reason"] == "expired"
        await desk.until_closed()


async def test_the_presence_of_a_connected_console_is_renewed(
    client: Client, operator: Client, clock: FrozenClock
) -> None:
    """In Redis a presence key has a TTL; the re-check renews it while the console is open, so
    a connected operator never turns "offline" on the wall."""
    assert client.app is not None
    services = client.app[SERVICES_KEY]
    async with console(operator) as desk:
        assert (await desk.call("queue", {}))["ok"]
        states = await _states(client)
        assert states == {"olga": "available"}
        if stores.SCALE_OUT:  # as if the TTL were nearly out
            await _shorten_presence_ttls(stores.REDIS_URL)
        clock.advance(RECHECK_SECS)
        await services.background.drain()
        if stores.SCALE_OUT:
            assert await _shortest_presence_ttl(stores.REDIS_URL) > 60
        assert await _states(client) == {"olga": "available"}


async def _states(client: Client) -> dict[str, str]:
    from server.actions.queue import operator_states

    assert client.app is not None
    found = await operator_states(client.app[SERVICES_KEY], "operator")
    return {s.username: s.state for s in found}


async def _shorten_presence_ttls(url: str) -> None:
    from redis.asyncio import Redis

    redis = Redis.from_url(url)
    try:
        async for key in redis.scan_iter("lifeline:presence:*"):
            await redis.expire(key, 5)
    finally:
        await redis.aclose()


async def _shortest_presence_ttl(url: str) -> int:
    from redis.asyncio import Redis

    redis = Redis.from_url(url)
    try:
        ttls = [await redis.ttl(key) async for key in redis.scan_iter("lifeline:presence:*")]
    finally:
        await redis.aclose()
    assert ttls
    return min(ttls)


@pytest.fixture
async def two_nodes(
    aiohttp_client: ClientFactory, settings: Settings, clock: FrozenClock
) -> tuple[Client, Client]:
    """Two nodes on one database and one Redis bus (in both test modes)."""
    stores.flush_redis(BUS_REDIS_URL)
    on_bus = settings.model_copy(update={"REDIS_URL": BUS_REDIS_URL})
    node_a = await aiohttp_client(create_app(on_bus, clock))
    node_b = await aiohttp_client(create_app(on_bus.model_copy(update={"NODE_ID": "b"}), clock))
    return node_a, node_b


async def test_disabling_on_one_node_closes_a_console_on_the_other(
    two_nodes: tuple[Client, Client], clock: FrozenClock
) -> None:
    node_a, node_b = two_nodes
    admin = await add_account(node_a, "root", "admin")
    admin_csrf = await sign_in(node_a, admin, clock)
    await sign_in(node_b, await add_account(node_a, "olga", "operator"), clock)
    async with console(node_b) as desk:
        assert (await desk.call("queue", {}))["ok"]
        olga = await _user_id(node_a, "olga")
        changed = await node_a.patch(
            f"/api/users/{olga}", json={"disabled": True}, headers={"X-CSRF-Token": admin_csrf}
        )
        assert changed.status == 200
        assert (await desk.next_event("session.ended"))["reason"] == "disabled"
        await desk.until_closed()
