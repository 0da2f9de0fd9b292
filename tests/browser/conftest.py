"""Browser tests: a real ``python -m server run`` process and one headless Chromium per module."""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests import stores
from tests.browser.chromium import CHROMIUM, CHROMIUM_ARGS

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
START_TIMEOUT_SECS = 60.0


@dataclass
class RunningServer:
    """A server process started the way `make run` starts it, and what it printed.

    ``env`` is the process's environment: a CLI command run with it (``users add``) works on the
    same database.
    """

    process: subprocess.Popen[str]
    env: dict[str, str]
    urls: dict[str, str]
    lines: list[str] = field(default_factory=list)
    output: queue.Queue[str] = field(default_factory=queue.Queue)
    admin_password: str | None = None

    @property
    def base(self) -> str:
        return self.urls["citizen"].rstrip("/")


def start_server(
    data_dir: Path,
    extra_env: dict[str, str] | None = None,
    *,
    port: int = 0,
    fresh_stores: bool = True,
    own_group: bool = False,
) -> RunningServer:
    """Start `python -m server run --port PORT` on a fresh database; wait for its URL lines.

    ``fresh_stores=False``: another node of the same deployment, on the database and Redis the
    first one prepared (or the same node started again). A database or Redis URL in
    ``extra_env`` is used in either mode. ``own_group``: the node and its media workers in a
    process group of their own, which a test can kill whole (``os.killpg``)."""
    if fresh_stores:
        if stores.SCALE_OUT:
            stores.reset_postgres_schema()  # a fresh deployment: `run` migrates it itself
        stores.flush_redis()
    env = {
        **os.environ,
        "LIFELINE_DATA_DIR": str(data_dir),
        "LIFELINE_LOG_FORMAT": "text",
        "PYTHONUNBUFFERED": "1",
        # Media stays on loopback: gathered, announced and accepted (docs/media.md).
        "LIFELINE_MEDIA_ADDRESSES": "127.0.0.1",
        "LIFELINE_MEDIA_PEER_NETWORKS": "127.0.0.0/8",
        # A CI machine running Chromium beside the server is busy: admission control has its
        # own test (test_admission.py) and must not refuse these calls' media at random.
        "LIFELINE_MEDIA_MAX_CPU_PERCENT": "100000",
        "LIFELINE_MEDIA_MAX_HOST_CPU_PERCENT": "100000",
        "LIFELINE_MEDIA_MAX_LOOP_LAG_MS": "100000",
        # Operators pick calls by hand unless a test is about automatic distribution
        # (tests/browser/test_routing.py asks for "auto").
        "LIFELINE_ROUTING_MODE": "manual",
        **(extra_env or {}),
    }
    if not stores.SCALE_OUT:
        for name in ("LIFELINE_DATABASE_URL", "LIFELINE_REDIS_URL"):
            if name not in (extra_env or {}):
                env.pop(name, None)
    process = subprocess.Popen(
        [sys.executable, "-m", "server", "run", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=own_group,
    )
    server = RunningServer(process, env, {})
    assert process.stdout is not None
    threading.Thread(target=_pump, args=(process.stdout, server.output), daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT_SECS
    while "admin" not in server.urls:
        line = _next_line(server, deadline)
        if match := re.fullmatch(r"(citizen|console|wall|map|stats|admin): (http\S+)", line):
            server.urls[match.group(1)] = match.group(2)
    # On a first start the one-time password line follows the URLs at once.
    deadline = time.monotonic() + 3.0
    while server.admin_password is None and time.monotonic() < deadline:
        try:
            line = _next_line(server, deadline, fail=False)
        except TimeoutError:
            break
        if match := re.search(r"one-time password: (\S+)", line):
            server.admin_password = match.group(1)
    return server


def _next_line(server: RunningServer, deadline: float, fail: bool = True) -> str:
    """The next line the server printed, read by a thread (a pipe's buffer hides lines from
    ``select``)."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            line = server.output.get(timeout=min(remaining, 0.2))
        except queue.Empty:
            if server.process.poll() is not None and server.output.empty():
                break
            continue
        server.lines.append(line)
        return line
    if not fail:
        raise TimeoutError
    stop_server(server)
    raise AssertionError(f"server did not start; it printed: {server.lines}")


def _pump(stream: IO[str], sink: queue.Queue[str]) -> None:
    for line in stream:
        sink.put(line.rstrip("\n"))


def stop_server(server: RunningServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
    if server.process.stdout is not None:
        server.process.stdout.close()


# The call's media node and recordings, read with the server's own settings: each segment's
# storage key, and the file it names under the server's STORAGE_DIR.
CALL_MEDIA_PY = """
import asyncio, json, sys
from sqlmodel import col, select
from config import load_settings
from server.core.storage import FileStorage
from server.db.engine import Database
from server.db.models import Call, Recording

async def main() -> None:
    settings = load_settings()
    storage = FileStorage(settings.storage_dir)
    db = Database(settings.database_url)
    async with db.session() as session:
        call = await session.get(Call, sys.argv[1])
        rows = (await session.exec(select(Recording).where(col(Recording.call_id) == sys.argv[1])
                .order_by(col(Recording.segment)))).all()
    await db.close()
    print(json.dumps({"media_node": call.media_node, "recordings": [
        {"segment": r.segment, "media_node": r.media_node, "key": r.path,
         "path": str(storage.path(r.path)), "sha256": r.sha256, "recovered": r.recovered,
         "playable_path": str(storage.path(r.playable_path)) if r.playable_path else None,
         "playable_sha256": r.playable_sha256}
        for r in rows]}))

asyncio.run(main())
"""


def read_with_server_settings(server: RunningServer, script: str, *args: str) -> Any:
    """What a Python ``script`` prints as JSON, run with the server's own environment (its
    database, its storage): how a browser test reads what the server stored."""
    out = subprocess.run(
        [sys.executable, "-c", script, *args],
        env=server.env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return json.loads(out)


def call_media(server: RunningServer, call_id: str) -> dict[str, Any]:
    result: dict[str, Any] = read_with_server_settings(server, CALL_MEDIA_PY, call_id)
    return result


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start_server(tmp_path_factory.mktemp("live"))
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "Debian's chromium is required: apt-get install chromium"
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def page_errors() -> list[str]:
    """Uncaught exceptions in the pages' scripts (pages report here with ``page.on``)."""
    return []


@pytest.fixture(autouse=True)
def _no_page_errors(page_errors: list[str]) -> Iterator[None]:
    page_errors.clear()
    yield
    assert page_errors == [], "uncaught errors in the pages' scripts"
