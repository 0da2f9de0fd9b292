"""Acceptance item 3 of issue 12: the ``verify.py`` of an exported bundle, in a fresh virtual
environment with only ``cryptography`` installed (the repository's pin, from PyPI), with the
server stopped: it passes on the bundle and fails, naming the file, on a tampered copy."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from server.core.clock import FrozenClock
from server.http.keys import SERVICES_KEY
from tests.evidence_calls import recorded_call
from tests.staff import Client, add_account, another_browser, sign_in

ROOT = Path(__file__).resolve().parent.parent
PIP_TIMEOUT_SECS = 300


def _pin(name: str) -> str:
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.split("==")[0].strip().lower() == name:
            return line.strip()
    raise AssertionError(f"{name} is not pinned in constraints.txt")


@pytest.fixture(scope="module")
def fresh_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment holding cryptography (and what it needs: cffi, pycparser) at
    the repository's pins, and nothing else."""
    where = tmp_path_factory.mktemp("fresh-venv") / "venv"
    venv.create(where, with_pip=True, clear=True)
    python = where / "bin" / "python"
    installed = subprocess.run(
        [
            str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "--no-cache-dir", "-c", str(ROOT / "constraints.txt"), _pin("cryptography"),
        ],
        capture_output=True, text=True, timeout=PIP_TIMEOUT_SECS, check=False,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    names = {line.split("==")[0].lower() for line in listed.splitlines()}
    assert names - {"pip", "setuptools", "wheel"} == {"cryptography", "cffi", "pycparser"}
    return python


def _run(python: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # -I: isolated, so neither the repository nor the test's environment can be imported.
    return subprocess.run(
        [str(python), "-I", *args], cwd=cwd, capture_output=True, text=True, timeout=60,
        check=False, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip


async def test_verify_py_alone_passes_and_names_a_tampered_file(
    client: Client, clock: FrozenClock, tmp_path: Path, fresh_python: Path
) -> None:
    assert client.app is not None
    services = client.app[SERVICES_KEY]
    call_id = await recorded_call(client, services, clock, segments=2)
    browser = await another_browser(client)
    csrf = await sign_in(browser, await add_account(client, "sofia", "supervisor"), clock)
    response = await browser.post(
        f"/api/calls/{call_id}/export",
        json={"reason": "court order 12/2026"},
        headers={"X-CSRF-Token": csrf},
    )
    assert response.status == 200, await response.text()
    bundle = tmp_path / "bundle.zip"
    bundle.write_bytes(await response.read())
    key_id = services.evidence_key.key_id
    await browser.close()
    await client.close()  # the server is stopped from here on

    # The venv has no server: not even its web framework.
    assert _run(fresh_python, "-c", "import aiohttp", cwd=tmp_path).returncode == 1
    folder = tmp_path / "unpacked"
    with zipfile.ZipFile(bundle) as zipped:
        zipped.extractall(folder)  # our own bundle: its names were checked by the test above
    verifier = folder / "verify.py"

    as_zip = _run(fresh_python, str(verifier), str(bundle), "--key-id", key_id, cwd=tmp_path)
    assert as_zip.returncode == 0, as_zip.stdout + as_zip.stderr
    assert as_zip.stdout.splitlines()[0].startswith(f"bundle intact: call {call_id}, ")
    in_folder = _run(fresh_python, "verify.py", "--key-id", key_id, cwd=folder)
    assert in_folder.returncode == 0, in_folder.stdout + in_folder.stderr
    unpinned = _run(fresh_python, "verify.py", cwd=folder)
    assert unpinned.returncode == 0
    assert f"signed by key {key_id}" in unpinned.stdout
    assert "compare that key id" in unpinned.stdout

    # A tampered copy: one byte of the first segment, rewritten into a new zip.
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(bundle) as source, zipfile.ZipFile(tampered, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "recordings/segment-0001.mkv":
                data = data[:10] + bytes([data[10] ^ 0x40]) + data[11:]
            target.writestr(info, data)
    broken = _run(fresh_python, str(verifier), str(tampered), "--key-id", key_id, cwd=tmp_path)
    assert (broken.returncode, broken.stdout.strip()) == (
        1,
        "BROKEN: recordings/segment-0001.mkv: does not match its SHA-256 in the manifest",
    )
    # ... and in the unpacked folder, a photo changed on disk; a key that is not the deployment's.
    photo = next((folder / "photos").glob("*.jpg"))
    photo.write_bytes(photo.read_bytes() + b"\x00")
    changed = _run(fresh_python, "verify.py", "--key-id", key_id, cwd=folder)
    assert (changed.returncode, changed.stdout.strip()) == (
        1,
        f"BROKEN: photos/{photo.name}: does not match its SHA-256 in the manifest",
    )
    other = _run(fresh_python, str(verifier), str(bundle), "--key-id", "0" * 64, cwd=tmp_path)
    assert other.returncode == 1
    assert other.stdout.startswith("BROKEN: public_key.pem: not the deployment's key")
    assert sys.executable not in (as_zip.args[0], broken.args[0])
