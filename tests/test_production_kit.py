"""The production kit, each piece checked as a centre would use it: the systemd units (verified
by systemd itself), ``run`` telling systemd it is ready, the backup and its restore, the
environment file, ``make install-prod`` and ``make setup``'s system packages."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from config import Settings, load_settings
from server.notify import sd_notify

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "deploy" / "systemd"
INSTALLED = "/opt/lifeline"


def _unit(name: str) -> dict[str, list[str]]:
    """``Section.Key`` -> every value it is given (systemd keys may repeat)."""
    entries: dict[str, list[str]] = {}
    section = ""
    for line in (UNITS / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        entries.setdefault(f"{section}.{key}", []).append(value)
    return entries


@pytest.fixture
def units_here(tmp_path: Path) -> Path:
    """The units as installed on this checkout: systemd checks that ExecStart exists."""
    for unit in UNITS.glob("*.service"):
        text = unit.read_text().replace(f"{INSTALLED}/.venv/bin/python", sys.executable)
        (tmp_path / unit.name).write_text(text.replace(INSTALLED, str(ROOT)))
    return tmp_path


def _systemd_analyze(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze is missing: `make setup` installs it (package systemd)"
    return subprocess.run(
        [tool, *args], capture_output=True, text=True, timeout=60, check=False, cwd="/"
    )


def test_units_pass_systemd_analyze_verify(units_here: Path) -> None:
    result = _systemd_analyze(
        "verify", str(units_here / "lifeline.service"), str(units_here / "lifeline-migrate.service")
    )
    # verify exits 0 on unknown keys too, saying so: a clean unit prints nothing.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.parametrize("name", ["lifeline.service", "lifeline-migrate.service"])
def test_units_are_hardened(units_here: Path, name: str) -> None:
    result = _systemd_analyze("security", "--offline=yes", str(units_here / name))
    assert result.returncode == 0, result.stderr
    exposure = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", result.stdout)
    assert exposure, result.stdout
    # systemd's scale: 0 (locked down) to 10 (unprotected); a default service is 9.6 UNSAFE.
    assert float(exposure.group(1)) <= 2.0, result.stdout
    unit = _unit(name)
    for key in ("NoNewPrivileges", "PrivateTmp", "PrivateDevices", "ProtectHome"):
        assert unit[f"Service.{key}"] == ["yes"], key
    assert unit["Service.ProtectSystem"] == ["strict"]
    # The only place it writes is DATA_DIR, and that is where the settings point.
    assert unit["Service.ReadWritePaths"] == ["/var/lib/lifeline"]
    assert "LIFELINE_DATA_DIR=/var/lib/lifeline" in unit["Service.Environment"][0].split()
    assert unit["Service.User"] == ["lifeline"]


def test_the_node_waits_for_its_migrations() -> None:
    node, migrate = _unit("lifeline.service"), _unit("lifeline-migrate.service")
    assert node["Service.Type"] == ["notify"]
    assert node["Service.ExecStart"] == [f"{INSTALLED}/.venv/bin/python -m server run"]
    # SIGTERM to the node alone: it stops its media workers itself (their last segments).
    assert node["Service.KillMode"] == ["mixed"]
    assert "lifeline-migrate.service" in node["Unit.Requires"][0].split()
    assert "lifeline-migrate.service" in node["Unit.After"][0].split()
    assert migrate["Service.Type"] == ["oneshot"]
    assert migrate["Service.ExecStart"] == [f"{INSTALLED}/.venv/bin/python -m server migrate"]
    assert migrate["Unit.Before"] == ["lifeline.service"]


def test_the_env_example_names_real_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every LIFELINE_ name in it, set or commented out, is a setting; what it sets loads."""
    lines = (UNITS / "lifeline.env.example").read_text().splitlines()
    named = {m.group(1) for line in lines if (m := re.match(r"#?LIFELINE_(\w+)=", line))}
    assert named, "no settings in the example"
    assert named <= set(Settings.model_fields), named - set(Settings.model_fields)
    for name in list(os.environ):
        if name.startswith("LIFELINE_"):
            monkeypatch.delenv(name)
    for line in lines:
        if line.startswith("LIFELINE_"):
            key, _, value = line.partition("=")
            monkeypatch.setenv(key, value)
    settings = load_settings()
    assert settings.PUBLIC_URL == "https://lifeline.example"


# --- sd_notify -------------------------------------------------------------------------------


@pytest.fixture(params=["path", "abstract"])
def notify_socket(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[socket.socket, str]]:
    """A unix datagram socket listening the way systemd's does: at a path, or at ``@name`` in
    Linux's abstract namespace."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        address = str(tmp_path / "notify")
        sock.bind(address)
    else:
        name = f"lifeline-test-{os.getpid()}-{time.monotonic_ns()}"
        sock.bind("\0" + name)
        address = "@" + name
    sock.settimeout(0.2)
    yield sock, address
    sock.close()


def _embedded_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "LIFELINE_DATA_DIR": str(data_dir),
        "LIFELINE_LOG_FORMAT": "text",
        "LIFELINE_LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    # sd_notify and the SQLite backup do not depend on the storage mode under test.
    env.pop("LIFELINE_DATABASE_URL", None)
    env.pop("LIFELINE_REDIS_URL", None)
    env.pop("NOTIFY_SOCKET", None)
    env.update(extra)
    return env


def _datagram(sock: socket.socket, process: subprocess.Popen[str], secs: float) -> bytes:
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        try:
            return sock.recv(4096)
        except TimeoutError:
            assert process.poll() is None, f"the node exited ({process.returncode})"
    raise AssertionError("no datagram on NOTIFY_SOCKET")


def test_run_tells_systemd_once_it_listens(
    notify_socket: tuple[socket.socket, str], tmp_path: Path
) -> None:
    sock, address = notify_socket
    process = subprocess.Popen(
        [sys.executable, "-m", "server", "run", "--host", "127.0.0.1", "--port", "0"],
        env=_embedded_env(tmp_path / "data", NOTIFY_SOCKET=address),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    try:
        assert _datagram(sock, process, 90) == b"READY=1"
        # Ready means listening: the URLs are out and the port answers at once.
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.fullmatch(r"citizen: http://127\.0\.0\.1:(\d+)/\n", line)
        assert match, line
        with socket.create_connection(("127.0.0.1", int(match.group(1))), timeout=5) as http:
            http.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert http.recv(64).startswith(b"HTTP/1.1 200")
        process.terminate()
        assert _datagram(sock, process, 30) == b"STOPPING=1"
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_sd_notify_without_systemd_does_nothing(tmp_path: Path) -> None:
    assert sd_notify("READY=1", {}) is False
    # A socket that is gone is said in the log, never an exception that stops the node.
    assert sd_notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "gone")}) is False


# --- backup and restore ----------------------------------------------------------------------


def _cli(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        cwd=ROOT,
    )


def _used_database(env: dict[str, str]) -> None:
    """A migrated database with entries in its audit chain, made by the command line."""
    assert _cli("migrate", env=env).returncode == 0
    added = _cli(
        "users", "add", "anna", "--role", "operator", "--password-stdin",
        env=env, stdin="correct horse battery staple 42\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr


@pytest.fixture(scope="module")
def used_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("used") / "data"
    _used_database(_embedded_env(data))
    return data


@pytest.fixture
def data_dir(used_data_dir: Path, tmp_path: Path) -> Path:
    """A DATA_DIR of its own for each test, holding an embedded database that has been used."""
    return Path(shutil.copytree(used_data_dir, tmp_path / "data"))


def test_backup_copies_the_database_while_it_is_written(tmp_path: Path, data_dir: Path) -> None:
    env = _embedded_env(data_dir)
    source = data_dir / "lifeline.db"
    # Another connection is mid-transaction (WAL mode, as the nodes write): the copy is the
    # committed state, whole, and the writer is not held up.
    writer = sqlite3.connect(source, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 1")
    try:
        result = _cli("backup", str(tmp_path / "copy.db"), env=env)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "audit chain intact: 1 entries, 0 checkpoints",
        f"database copied to {tmp_path / 'copy.db'}",
    ]
    # One self-contained file: no -wal beside it that a copy to tape would miss.
    assert sorted(p.name for p in tmp_path.glob("copy.db*")) == ["copy.db"]
    with sqlite3.connect(tmp_path / "copy.db") as copy:
        assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)

    # Restore: the copy as a new node's database; the evidence check passes there.
    restored = tmp_path / "restored"
    restored.mkdir()
    shutil.copy(tmp_path / "copy.db", restored / "lifeline.db")
    verify = _cli("evidence", "verify", env=_embedded_env(restored))
    assert (verify.returncode, verify.stdout.strip()) == (
        0,
        "audit chain intact: 1 entries, 0 checkpoints, 0 files re-hashed",
    )

    # It never overwrites: the name must be new.
    again = _cli("backup", str(tmp_path / "copy.db"), env=env)
    assert again.returncode == 2
    assert "exists" in again.stderr


def test_backup_of_a_broken_chain_says_so(tmp_path: Path, data_dir: Path) -> None:
    env = _embedded_env(data_dir)
    with sqlite3.connect(data_dir / "lifeline.db") as db:
        db.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 1")
    result = _cli("backup", str(tmp_path / "copy.db"), env=env)
    assert result.returncode == 1
    assert "evidence BROKEN at audit entry 1: content altered" in result.stdout


def test_backup_points_postgresql_at_pg_dump(tmp_path: Path) -> None:
    env = _embedded_env(
        tmp_path, LIFELINE_DATABASE_URL="postgresql+asyncpg://nobody@127.0.0.1:1/none"
    )
    result = _cli("backup", str(tmp_path / "copy.db"), env=env)
    assert result.returncode == 2
    assert "pg_dump" in result.stderr
    assert not (tmp_path / "copy.db").exists()


async def _postgres(*statements: str) -> None:
    conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


BACKUP_GUIDE = ROOT / "docs" / "backup.md"


def _guide_commands(*programs: str) -> list[str]:
    """The guide's command lines that start with these programs, in its order."""
    lines = BACKUP_GUIDE.read_text().splitlines()
    return [line for line in lines if line.split(" ", 1)[0] in programs]


def _guide_hash_query() -> str:
    text = BACKUP_GUIDE.read_text()
    match = re.search(r"```sql\n(.*?)```", text, re.DOTALL)
    assert match, "docs/backup.md has no sql block"
    return match.group(1)


def test_the_guides_hash_query_checks_the_stored_files(data_dir: Path) -> None:
    """The query piped to ``sha256sum --check`` in STORAGE_DIR, as docs/backup.md says."""
    storage = data_dir / "files"
    key = "snapshots/c1/20261201T000000-ab.jpg"
    (storage / key).parent.mkdir(parents=True)
    (storage / key).write_bytes(b"a snapshot")
    digest = hashlib.sha256(b"a snapshot").hexdigest()
    with sqlite3.connect(data_dir / "lifeline.db") as db:  # foreign keys off: a bare row
        db.execute(
            "INSERT INTO snapshots (call_id, taken_by, path, sha256, size_bytes, at)"
            " VALUES ('c1', 1, ?, ?, 10, '2026-12-01 00:00:00')",
            (key, digest),
        )
    check = f"sqlite3 {data_dir / 'lifeline.db'} | sha256sum --check --quiet"

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", check], input=_guide_hash_query(), cwd=storage,
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    assert (run().returncode, run().stdout) == (0, "")
    (storage / key).write_bytes(b"a snapshot, retouched")
    changed = run()
    assert changed.returncode == 1
    assert f"{key}: FAILED" in changed.stdout


def test_the_guides_pg_dump_and_pg_restore_keep_the_chain(tmp_path: Path) -> None:
    """docs/backup.md's PostgreSQL commands, as written, on databases made and dropped here."""
    commands = _guide_commands("pg_dump", "createdb", "pg_restore")
    assert [c.split(" ", 1)[0] for c in commands] == ["pg_dump", "createdb", "pg_restore"]
    db, new_db = (f"lifeline_backup_{role}_{os.getpid()}" for role in ("src", "dst"))
    asyncio.run(_postgres(*(f'DROP DATABASE IF EXISTS "{n}"' for n in (db, new_db))))
    asyncio.run(_postgres(f'CREATE DATABASE "{db}"'))
    try:
        url = "postgresql+asyncpg://postgres@127.0.0.1:5432/{}"
        env = {**_embedded_env(tmp_path), "LIFELINE_DATABASE_URL": url.format(db)}
        _used_database(env)
        shell = {
            **os.environ,
            "PGHOST": "127.0.0.1",
            "PGUSER": "postgres",
            "DB": db,
            "NEW_DB": new_db,
            "DUMP": str(tmp_path / "lifeline.dump"),
        }
        for command in commands:
            subprocess.run(["bash", "-c", command], env=shell, check=True, timeout=60)
        restored = {**env, "LIFELINE_DATABASE_URL": url.format(new_db)}
        verify = _cli("evidence", "verify", env=restored)
        assert (verify.returncode, verify.stdout.strip()) == (
            0,
            "audit chain intact: 1 entries, 0 checkpoints, 0 files re-hashed",
        )
        query = subprocess.run(
            ["psql", "--no-align", "--tuples-only", "--set=ON_ERROR_STOP=1", new_db],
            input=_guide_hash_query(), env=shell, capture_output=True, text=True, timeout=60,
            check=False,
        )  # fmt: skip
        assert (query.returncode, query.stdout, query.stderr) == (0, "", "")
    finally:
        asyncio.run(
            _postgres(*(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)' for n in (db, new_db)))
        )


# --- make install-prod and make setup's system packages ---------------------------------------


def test_install_prod_wants_the_vendored_libraries(tmp_path: Path) -> None:
    """A node installed without them would serve pages that cannot load their scripts.

    The install itself (runtime only, no dev tool, the node imports and migrates from it) is
    run by .ci/run on the other supported Pythons, where it costs no extra install.
    """
    (tmp_path / "vendor").mkdir()
    result = subprocess.run(
        ["make", "install-prod", f"VENDOR={tmp_path / 'vendor'}", f"VENV={tmp_path / 'venv'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "is empty: run 'make vendor'" in result.stderr
    assert not (tmp_path / "venv").exists()


@pytest.fixture
def sysroot() -> Iterator[Path]:
    """An empty system, which the user the check runs as (nobody) can read."""
    path = Path(tempfile.mkdtemp(prefix="lifeline-sysroot-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def _system_packages(sysroot: Path) -> subprocess.CompletedProcess[str]:
    """tools/system-packages.sh as a user who is not root (nobody, when the tests are root)."""
    script = (ROOT / "tools" / "system-packages.sh").read_text()
    command = ["sh", "-s"]
    if os.geteuid() == 0:
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    return subprocess.run(
        command, input=script, env={**os.environ, "SYSROOT": str(sysroot)},
        capture_output=True, text=True, timeout=60, check=False, cwd="/",
    )  # fmt: skip


def test_setup_names_the_missing_system_packages(sysroot: Path) -> None:
    result = _system_packages(sysroot)  # everything missing
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "make setup: missing system packages; as root run: apt-get install -y "
        "chromium fonts-noto-core nginx coturn systemd sqlite3 nodejs npm slapd ldap-utils"
    ]
    for path in (
        "usr/bin/chromium",
        "usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
        "usr/sbin/nginx",
        "usr/bin/node",
        "usr/bin/npm",
        "usr/bin/systemd-analyze",
        "usr/bin/sqlite3",
        "usr/sbin/slapd",
        "usr/bin/ldapsearch",
    ):
        (sysroot / path).parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        (sysroot / path).touch()
    result = _system_packages(sysroot)
    assert result.returncode == 1
    assert result.stderr.strip().endswith("apt-get install -y coturn")
    (sysroot / "usr/bin/turnserver").touch()
    result = _system_packages(sysroot)
    assert (result.returncode, result.stderr) == (0, "")
