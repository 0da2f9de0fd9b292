"""The node's media nodes outside its Socket.IO loop, started once the node listens.

``MEDIA_WORKERS=N``: N worker processes (media/worker.py), ``<NODE_ID>.m1`` ... ``.mN``, each a
media node with its own event loop and core; one that dies is started again (its calls' pages
reconnect and their media is placed anew). ``MEDIA_WORKERS=0`` in scale-out: the node's own hub
joins the bus as ``<NODE_ID>``, so consoles on other nodes reach its calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time

from aiohttp import web

from media.agent import MediaAgent
from media.worker import SECRET_ENV
from server.http.keys import SERVICES_KEY
from server.node import MEDIA_HUB_KEY, MEDIA_SECRET_KEY

log = logging.getLogger(__name__)

READY_TIMEOUT_SECS = 30.0
STOP_TIMEOUT_SECS = 20.0
RESTART_DELAY_SECS = 1.0


def loopback_url(host: str, port: int) -> str:
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class MediaWorkers:
    def __init__(self, *, count: int, node_id: str, secret: str) -> None:
        self.ids = [f"{node_id}.m{i}" for i in range(1, count + 1)]
        self._node_id = node_id
        self._secret = secret
        self._processes: dict[str, asyncio.subprocess.Process] = {}
        self._keepers: list[asyncio.Task[None]] = []
        self._stopping = False

    async def start(self, node_url: str) -> None:
        self._keepers = [
            asyncio.create_task(self._keep(worker, node_url), name=f"media-{worker}")
            for worker in self.ids
        ]

    async def _spawn(self, worker: str, node_url: str) -> asyncio.subprocess.Process:
        env = {**os.environ, SECRET_ENV: self._secret}
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "media.worker",
            "--node",
            node_url,
            "--id",
            worker,
            "--home",
            self._node_id,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
        )

    async def _keep(self, worker: str, node_url: str) -> None:
        while not self._stopping:
            process = await self._spawn(worker, node_url)
            self._processes[worker] = process
            code = await process.wait()
            if self._stopping:
                return
            log.error(
                "media worker died; starting it again", extra={"worker": worker, "code": code}
            )
            await asyncio.sleep(RESTART_DELAY_SECS)

    async def stop(self) -> None:
        """SIGTERM: each closes its calls and reports their last segments before it exits."""
        self._stopping = True
        for process in self._processes.values():
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
        for worker, process in self._processes.items():
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT_SECS)
            except TimeoutError:
                log.error("media worker did not stop; killed", extra={"worker": worker})
                process.kill()
                await process.wait()
        for task in self._keepers:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class NodeMedia:
    """What ``server run`` starts beside the app: workers, or the own hub's agent."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._workers: MediaWorkers | None = None
        self._agent: MediaAgent | None = None

    async def start(self, port: int) -> None:
        settings = self._app[SERVICES_KEY].settings
        url = loopback_url(settings.HOST, port)
        secret = self._app[MEDIA_SECRET_KEY]
        hub = self._app[MEDIA_HUB_KEY]
        expected: list[str] = []
        if settings.MEDIA_WORKERS:
            self._workers = MediaWorkers(
                count=settings.MEDIA_WORKERS, node_id=settings.NODE_ID, secret=secret
            )
            await self._workers.start(url)
            expected = self._workers.ids
        elif settings.REDIS_URL and hub is not None:
            self._agent = MediaAgent(
                hub,
                node_id=settings.NODE_ID,
                home=settings.NODE_ID,
                secret=secret,
                admission=hub.admission,
                owns_hub=False,
            )
            await self._agent.connect(url)
            expected = [settings.NODE_ID]
        await self._ready(expected)

    async def _ready(self, expected: list[str]) -> None:
        """Until every media node has joined: a printed URL means calls get media."""
        deadline = time.monotonic() + READY_TIMEOUT_SECS
        while expected:
            alive = {node.id for node in await self._app[SERVICES_KEY].media_nodes.alive()}
            if alive.issuperset(expected):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"media nodes did not join: {sorted(set(expected) - alive)}")
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self._workers is not None:
            await self._workers.stop()
        if self._agent is not None:
            await self._agent.close()
