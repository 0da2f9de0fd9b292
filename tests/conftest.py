"""Shared fixtures: a real app on a real database of the mode under test, a clock to move."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from config import Settings
from server.app import create_app
from server.core.clock import FrozenClock
from tests import stores
from tests.staff import add_account, another_browser, sign_in

ClientFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A ``one_pass`` test touches neither store, or brings its own whatever the pass: the
    scale-out pass would repeat it unchanged, so only the embedded pass runs it (deselected,
    never skipped: ``make test`` still runs it once)."""
    if not stores.SCALE_OUT:
        return
    kept = [item for item in items if item.get_closest_marker("one_pass") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


@pytest.fixture(scope="session")
def db_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    return stores.migrated_template(tmp_path_factory.mktemp("template"))


@pytest.fixture
def database_url(db_template: str, tmp_path: Path) -> str:
    return stores.fresh_database(db_template, tmp_path / "data")


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        DATA_DIR=tmp_path / "data",
        DATABASE_URL=database_url,
        REDIS_URL=stores.REDIS_URL,
        LOG_FORMAT="text",
        # Media stays on loopback: gathered, announced and accepted (docs/media.md).
        MEDIA_ADDRESSES=["127.0.0.1"],
        MEDIA_PEER_NETWORKS=["127.0.0.0/8"],
        # Tests run peers and server in one loaded process: admission control is tested on
        # its own (test_admission.py), not left to refuse other tests' media at random.
        MEDIA_MAX_CPU_PERCENT=100_000,
        MEDIA_MAX_HOST_CPU_PERCENT=100_000,
        MEDIA_MAX_LOOP_LAG_MS=100_000,
        # ... and a test that lowers a threshold sees its effect at once, whatever the count.
        MEDIA_GUARANTEED_SESSIONS=0,
        MEDIA_OVERLOAD_SUSTAINED_SECS=0,
        # Operators pick calls from the queue by hand in the tests about the queue itself;
        # tests of automatic distribution ask for "auto" (tests/test_routing.py).
        ROUTING_MODE="manual",
    )


@pytest.fixture
def app(settings: Settings, clock: FrozenClock) -> web.Application:
    return create_app(settings, clock)


@pytest.fixture
async def client(
    app: web.Application, aiohttp_client: ClientFactory
) -> TestClient[web.Request, web.Application]:
    return await aiohttp_client(app)


@pytest.fixture
async def operator_desk(
    client: TestClient[web.Request, web.Application], clock: FrozenClock
) -> AsyncIterator[tuple[TestClient[web.Request, web.Application], str]]:
    """A second browser signed in as operator ``olga`` on the same app as ``client``, and its
    session's CSRF token (for the staff API's X-CSRF-Token)."""
    browser = await another_browser(client)
    csrf = await sign_in(browser, await add_account(client, "olga", "operator"), clock)
    yield browser, csrf
    await browser.close()


@pytest.fixture
def operator(
    operator_desk: tuple[TestClient[web.Request, web.Application], str],
) -> TestClient[web.Request, web.Application]:
    """The signed-in operator's browser."""
    return operator_desk[0]
