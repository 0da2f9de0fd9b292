"""A PostgreSQL server of a test's own: initdb into a temporary directory, on a free loopback
port, started and stopped by the test. Never the machine's shared server (the other test pass
uses it): restarting that would fail the other pass's tests."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from server.db.migrate import upgrade

START_TIMEOUT_SECS = 30


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    assert found, f"no {name} under /usr/lib/postgresql/*/bin: install PostgreSQL"
    return found[-1]


class OwnPostgres:
    """initdb'd once; ``start``/``stop`` as often as a test likes (``stop`` is a fast
    shutdown: every connection is cut, as a restart does)."""

    def __init__(self) -> None:
        # Under /tmp itself: the postgres user cannot enter pytest's root-only tmp_path.
        directory = Path(tempfile.mkdtemp(prefix="lifeline-pg-", dir="/tmp"))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self._root = directory
        self.data = directory / "pgdata"
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"
        # As root, the server runs as the postgres user (it refuses to run as root).
        self._as: list[str] = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            user = pwd.getpwnam("postgres")
            shutil.chown(directory, user.pw_uid, user.pw_gid)
        self._run(_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--no-sync")  # fmt: skip

    def _run(self, *argv: str) -> None:
        subprocess.run([*self._as, *argv], check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self._root} -c fsync=off"
        log = str(self._root / "postgres.log")
        wait = str(START_TIMEOUT_SECS)
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-w", "-t", wait, "-l", log,
                  "start")  # fmt: skip

    def stop(self) -> None:
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def running(self) -> bool:
        result = subprocess.run(
            [*self._as, _bin("pg_ctl"), "-D", str(self.data), "status"], capture_output=True
        )
        return result.returncode == 0

    def migrate(self) -> None:
        upgrade(self.url)

    def remove(self) -> None:
        if self.running():
            self.stop()
        shutil.rmtree(self._root, ignore_errors=True)
