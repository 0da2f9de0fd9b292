"""Probes and metrics, against a real server; readiness names the store that is down."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from config import Settings
from server.app import create_app
from tests.conftest import ClientFactory
from tests.staff import Client


async def test_healthz_and_readyz(client: Client) -> None:
    health = await client.get("/healthz")
    assert health.status == 200
    assert await health.json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status == 200, await ready.text()


async def test_metrics_count_requests(client: Client) -> None:
    await client.get("/healthz")
    await client.get("/no-such-page")
    metrics = await client.get("/metrics")
    assert metrics.status == 200
    body = await metrics.text()
    assert 'lifeline_http_requests_total{method="GET",route="/healthz",status="200"}' in body
    assert 'status="404"' in body


async def test_readyz_names_what_is_down(tmp_path: Path, aiohttp_client: ClientFactory) -> None:
    settings = Settings(
        DATA_DIR=tmp_path,
        # Nothing listens on port 9 of loopback: both stores refuse at once.
        DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1:9/none",
        REDIS_URL="redis://127.0.0.1:9/0",
        LOG_FORMAT="text",
    )
    app: web.Application = create_app(settings)
    client = await aiohttp_client(app)
    ready = await client.get("/readyz")
    assert ready.status == 503
    assert await ready.json() == {"status": "unavailable", "down": ["database"]}
    assert (await client.get("/healthz")).status == 200


async def test_security_headers_on_pages(client: Client) -> None:
    page = await client.get("/")
    assert page.status == 200
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    # Sockets reach our own origin only ('self' covers ws:/wss: to it), no other host.
    assert "connect-src 'self';" in csp and "ws:" not in csp
    assert "Strict-Transport-Security" not in page.headers  # plain HTTP here
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    login = await client.get("/login")
    assert login.headers["Cache-Control"] == "no-store"
    cookie = login.headers.getall("Set-Cookie")
    assert any("lifeline_csrf=" in c and "HttpOnly" in c and "SameSite=Strict" in c for c in cookie)


async def test_behind_tls_browsers_are_told_to_stay_on_it(
    aiohttp_client: ClientFactory, settings: Settings
) -> None:
    secure = settings.model_copy(update={"PUBLIC_URL": "https://lifeline.example"})
    client = await aiohttp_client(create_app(secure))
    page = await client.get("/")
    assert page.headers["Strict-Transport-Security"] == "max-age=31536000"
