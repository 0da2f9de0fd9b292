"""The real server for the fan-out and setup rows: ``python -m server run`` on a fresh DATA_DIR,
staff added with the CLI and signed in over HTTP, as a browser does."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.common import LOOPBACK, Child, child_process

STAFF_PASSWORD = "Sturdy violet 93 harbour"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
CLI_TIMEOUT_SECS = 60.0


@dataclass
class Server:
    child: Child
    env: dict[str, str]

    @property
    def base(self) -> str:
        return self.child.ready["citizen"].rstrip("/")


def server_env(data_dir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The server child's whole environment: ours, less the test run's stores, plus the
    bench's settings, then ``extra`` (a row's own, e.g. ``LIFELINE_MEDIA_WORKERS``) on top."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("LIFELINE_DATABASE_URL", "LIFELINE_REDIS_URL")
    }
    return {
        **env,
        "LIFELINE_DATA_DIR": str(data_dir),
        "LIFELINE_LOG_FORMAT": "text",
        "LIFELINE_LOG_LEVEL": "WARNING",
        # Media stays on loopback: gathered, announced and accepted (docs/media.md).
        "LIFELINE_MEDIA_ADDRESSES": LOOPBACK,
        "LIFELINE_MEDIA_PEER_NETWORKS": "127.0.0.0/8",
        "LIFELINE_CALL_RATE_LIMIT": "100000/minute",
        # The load generators share this machine (a real node's callers do not): the machine's
        # CPU says nothing of the node's own load here, so it may not refuse the rows' calls.
        "LIFELINE_MEDIA_MAX_HOST_CPU_PERCENT": "100000",
        # Staff sign in with a password only: the bench measures calls, not logins.
        "LIFELINE_REQUIRE_TOTP": "false",
        **(extra or {}),
    }


@contextlib.asynccontextmanager
async def running_server(
    data_dir: Path, extra_env: Mapping[str, str] | None = None
) -> AsyncIterator[Server]:
    env = server_env(data_dir, extra_env)
    async with child_process(
        ["-m", "server", "run", "--host", LOOPBACK, "--port", "0"],
        ready_keys=["citizen", "console", "admin"],
        env=env,
    ) as child:
        yield Server(child, env)


async def add_staff(server: Server, name: str, role: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        "users",
        "add",
        name,
        "--role",
        role,
        "--password-stdin",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=server.env,
    )
    out, _ = await asyncio.wait_for(
        process.communicate(f"{STAFF_PASSWORD}\n".encode()), CLI_TIMEOUT_SECS
    )
    if process.returncode != 0:
        raise RuntimeError(f"users add {name} failed: {out.decode()[-500:]}")


async def sign_in(server: Server, name: str) -> str:
    """The staff session cookie's value, from a real sign-in over HTTP."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.get(f"{server.base}/login") as page:
            match = CSRF_RE.search(await page.text())
            if match is None:
                raise RuntimeError("the login page has no CSRF token")
        form = {
            "username": name,
            "password": STAFF_PASSWORD,
            "totp": "",
            "csrf_token": match.group(1),
            "next": "",
        }
        async with http.post(f"{server.base}/login", data=form, allow_redirects=False) as reply:
            if reply.status != 303:
                raise RuntimeError(f"sign-in of {name}: HTTP {reply.status}")
        for cookie in jar:
            if cookie.key == "lifeline_session":
                return cookie.value
    raise RuntimeError(f"sign-in of {name} set no session cookie")


async def start_call(http: aiohttp.ClientSession, server: Server) -> tuple[str, str]:
    """A call as the citizen's page starts it: (call id, token)."""
    body = {"channel": "police", "language": "en", "mode": "video"}
    async with http.post(f"{server.base}/api/calls", json=body) as reply:
        if reply.status != 201:
            raise RuntimeError(f"POST /api/calls: HTTP {reply.status}: {await reply.text()}")
        started = await reply.json()
    return str(started["call_id"]), str(started["token"])
