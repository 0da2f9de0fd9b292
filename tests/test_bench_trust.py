"""The bench's trust rules on their own: a process a row leaves behind is found by its mark,
whoever its parent became; several runs of a row combine into median and min-max, with the
ratio of the medians; a busy machine is told from a quiet one."""

from __future__ import annotations

import os
import subprocess
import time
import uuid

import pytest

from bench.trust import RUN_MARK, RunOfRow, combine, marked_processes, quiet

pytestmark = pytest.mark.one_pass


def test_a_process_left_running_is_found_by_its_mark_even_when_orphaned() -> None:
    mark = uuid.uuid4().hex
    # A shell that starts a sleeper in the background and exits: the sleeper is re-parented.
    subprocess.run(
        ["sh", "-c", "sleep 30 >/dev/null 2>&1 &"], env={**os.environ, RUN_MARK: mark}, check=True
    )
    # The shell has exited; its child may still be between fork and exec (CI once saw none at
    # the first look, under load): looked for until it is the sleeper, for a bounded time.
    found: list[int] = []
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            found = marked_processes(mark)
            if len(found) == 1 and _cmdline(found[0]).startswith(b"sleep"):
                break
            time.sleep(0.05)
        assert len(found) == 1, found
        assert _cmdline(found[0]).startswith(b"sleep")
        assert marked_processes(uuid.uuid4().hex) == []
    finally:
        for pid in found:
            os.kill(pid, 9)


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read()
    except OSError:
        return b""


def _run(ours: float, base: float) -> RunOfRow:
    row = {"metric": "m", "ours": ours, "baseline": base, "unit": "ms", "baseline_is": "b"}
    row["ratio"] = round(ours / base, 2)
    return RunOfRow("x", [row], {}, (0.0, 0.0, 0.0))


def test_runs_combine_into_median_and_spread() -> None:
    (row,) = combine([_run(10, 5), _run(30, 6), _run(20, 4)])
    assert (row["ours"], row["ours_min"], row["ours_max"]) == (20, 10, 30)
    assert (row["baseline"], row["baseline_min"], row["baseline_max"]) == (5, 4, 6)
    assert row["ratio"] == 4.0 and (row["ratio_min"], row["ratio_max"]) == (2.0, 5.0)
    assert row["runs"] == 3


def test_quiet_is_per_core() -> None:
    cores = os.cpu_count() or 1
    assert quiet((0.2 * cores, 5.0, 5.0))
    assert not quiet((0.3 * cores, 0.0, 0.0))
