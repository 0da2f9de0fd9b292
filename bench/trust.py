"""What makes a bench figure worth reading: each row runs in a process of its own (its own
servers, databases and data directories, made and removed inside it), several times; what a
row left running is found and named; the machine's load is read before each run and said
plainly when it was not quiet; the table gives the median with the min-max of the runs.

A row inside a full run and the same row alone (``--rows X``) are then the same measurement:
nothing of an earlier row (a server, a grown database, a warm cache in the bench's own
process) is there when it starts.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import Row

# The bench's children and theirs carry this in their environment, so that whatever a row
# leaves running can be found after it (by /proc), whoever its parent became.
RUN_MARK = "LIFELINE_BENCH_RUN"
# A 1-minute load average above this per core is not a quiet machine.
QUIET_LOAD_PER_CPU = 0.25
ROW_TIMEOUT_SECS = 3600


@dataclass
class RunOfRow:
    """One run of one row in its own process."""

    name: str
    rows: list[Row]
    details: dict[str, Any]
    load_before: tuple[float, float, float]
    leftovers: list[str] = field(default_factory=list)
    failed: str = ""


def quiet(load: Sequence[float]) -> bool:
    return load[0] <= QUIET_LOAD_PER_CPU * (os.cpu_count() or 1)


def marked_processes(mark: str) -> list[int]:
    """Processes whose environment carries this run's mark (the bench itself excluded)."""
    found = []
    needle = f"{RUN_MARK}={mark}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def _describe(pid: int) -> str:
    try:
        cmdline = (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return f"{pid} (gone)"
    words = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
    return f"{pid} {words[:120]}"


def run_row(name: str, quick: bool, server_env: dict[str, str]) -> RunOfRow:
    """Run one row in a child ``python -m bench --inner``; then find and stop what it left."""
    load = os.getloadavg()
    mark = uuid.uuid4().hex
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        out = Path(tmp) / "row.json"
        command = [sys.executable, "-m", "bench", "--inner", "--rows", name, "--out", str(out)]
        if quick:
            command.append("--quick")
        for key, value in server_env.items():
            command += ["--server-env", f"{key}={value}"]
        env = {**os.environ, RUN_MARK: mark}
        failed = ""
        try:
            done = subprocess.run(command, env=env, timeout=ROW_TIMEOUT_SECS, check=False)
            if done.returncode != 0:
                failed = f"exit code {done.returncode}"
        except subprocess.TimeoutExpired:
            failed = f"no result after {ROW_TIMEOUT_SECS} s"
        leftovers = [_describe(pid) for pid in marked_processes(mark)]
        for pid in marked_processes(mark):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        result = json.loads(out.read_text()) if out.exists() else {"rows": [], "details": {}}
    return RunOfRow(name, result["rows"], result["details"], load, leftovers, failed)


def _spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 2),
        "min": round(min(values), 2),
        "max": round(max(values), 2),
    }


def combine(runs: list[RunOfRow]) -> list[Row]:
    """One table row per metric: the median of the runs, their min and max, the ratio of the
    medians (and the min-max of the runs' own ratios)."""
    order: list[str] = []
    by_metric: dict[str, list[Row]] = {}
    for run in runs:
        for row in run.rows:
            if row["metric"] not in by_metric:
                order.append(row["metric"])
            by_metric.setdefault(row["metric"], []).append(row)
    combined = []
    for metric in order:
        rows = by_metric[metric]
        first = dict(rows[0])
        ours = [r["ours"] for r in rows if r["ours"] is not None]
        base = [r["baseline"] for r in rows if r["baseline"] is not None]
        ratios = [r["ratio"] for r in rows if r.get("ratio") is not None]
        first["runs"] = len(rows)
        if ours:
            spread = _spread(ours)
            first["ours"], first["ours_min"], first["ours_max"] = (
                spread["median"],
                spread["min"],
                spread["max"],
            )
        if base:
            spread = _spread(base)
            first["baseline"], first["baseline_min"], first["baseline_max"] = (
                spread["median"],
                spread["min"],
                spread["max"],
            )
        if ours and base and first["baseline"]:
            first["ratio"] = round(first["ours"] / first["baseline"], 2)
        else:
            first["ratio"] = None
        if ratios:
            first["ratio_min"], first["ratio_max"] = min(ratios), max(ratios)
        combined.append(first)
    return combined


def load_line(name: str, run: int, runs: int, load: Sequence[float]) -> str:
    state = "quiet" if quiet(load) else "NOT QUIET: read its figures as from a busy machine"
    figures = " ".join(f"{value:.2f}" for value in load)
    return f"[{name} {run}/{runs}] load average {figures} ({state})"
