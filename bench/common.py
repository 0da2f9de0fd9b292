"""What every bench row shares: the row shape, percentiles, /proc readings, child processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# `/bench/results/*.tmp` is git-ignored: generated media lives in a `.tmp` directory.
CACHE_DIR = RESULTS_DIR / "media-cache.tmp"
LOOPBACK = "127.0.0.1"
CLOCK_TICKS_PER_SEC = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
CHILD_START_TIMEOUT_SECS = 60.0
CHILD_STOP_TIMEOUT_SECS = 15.0
Row = dict[str, Any]


REPLY_LINE_LIMIT_BYTES = 64 * 1024 * 1024


def pct(samples: Sequence[float], p: int) -> float:
    """The ``p``-th percentile (0 when there are no samples)."""
    if not samples:
        return 0.0
    if len(samples) == 1:
        return float(samples[0])
    return statistics.quantiles(samples, n=100, method="inclusive")[p - 1]


def row(name: str, ours: float, base: float, unit: str, baseline: str, note: str = "") -> Row:
    """One table row: our figure beside its baseline from the same run, and the ratio."""
    result: Row = {
        "metric": name,
        "ours": round(ours, 2),
        "baseline": round(base, 2),
        "unit": unit,
        "ratio": round(ours / base, 2) if base else None,
        "baseline_is": baseline,
    }
    if note:
        result["note"] = note
    return result


def na_row(name: str, unit: str, why: str) -> Row:
    """A row that could not be measured in this run: printed as n/a with the reason."""
    return {
        "metric": name,
        "ours": None,
        "baseline": None,
        "unit": unit,
        "ratio": None,
        "baseline_is": "n/a",
        "note": why,
    }


@dataclass(frozen=True)
class CpuSample:
    """A process's CPU time (all its threads) at a moment, read from /proc."""

    cpu_secs: float
    at: float


def cpu_sample(pid: int) -> CpuSample:
    """utime + stime of ``pid`` (fields 14 and 15 of /proc/PID/stat)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    # The command name may hold spaces and parentheses: split after its closing one.
    fields = raw[raw.rindex(")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12])
    return CpuSample(ticks / CLOCK_TICKS_PER_SEC, time.monotonic())


def cpu_percent(before: CpuSample, after: CpuSample) -> float:
    """% of one core used between two samples."""
    wall = after.at - before.at
    return 100.0 * (after.cpu_secs - before.cpu_secs) / wall if wall > 0 else 0.0


def children_of(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (a server's media workers, say), from /proc."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            raw = stat.read_text()
            ppid = int(raw[raw.rindex(")") + 2 :].split()[1])
            parents.setdefault(ppid, []).append(int(stat.parent.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cpu_samples(pids: Sequence[int]) -> dict[int, CpuSample]:
    """CPU samples of the processes still alive among ``pids``."""
    samples = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            samples[pid] = cpu_sample(pid)
    return samples


def cpu_percent_of(before: Mapping[int, CpuSample], after: Mapping[int, CpuSample]) -> float:
    """% of one core used by the processes sampled both times, together."""
    return sum(cpu_percent(before[pid], after[pid]) for pid in before.keys() & after.keys())


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (/proc/PID/statm, second field, in pages)."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES


@dataclass
class Child:
    """A child process that prints ``<key>: <value>`` lines when it is ready."""

    process: asyncio.subprocess.Process
    ready: dict[str, str]

    @property
    def pid(self) -> int:
        return self.process.pid


async def start_child(
    args: Sequence[str],
    *,
    ready_keys: Sequence[str],
    env: dict[str, str] | None = None,
    stdin: bool = False,
) -> Child:
    """Start ``python -m ...args`` and wait (bounded) for its ``key: value`` ready lines."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=None,  # the child's warnings and tracebacks show in the bench's own output
        # ``env``, when given, is the child's whole environment: merging os.environ back in
        # would hand a server child the test run's LIFELINE_DATABASE_URL its caller removed.
        env={**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"},
        # A reply is one JSON line; a long hold's latencies make it larger than asyncio's 64 KB.
        limit=REPLY_LINE_LIMIT_BYTES,
    )
    child = Child(process, {})
    assert process.stdout is not None
    deadline = time.monotonic() + CHILD_START_TIMEOUT_SECS
    try:
        while not all(key in child.ready for key in ready_keys):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{args} did not get ready; it printed {child.ready}")
            line = (await asyncio.wait_for(process.stdout.readline(), remaining)).decode()
            if not line:
                raise RuntimeError(f"{args} exited before it was ready ({child.ready})")
            if match := re.fullmatch(r"([\w -]+): (.+)", line.strip()):
                child.ready[match.group(1)] = match.group(2)
    except BaseException:
        await stop_child(child)
        raise
    return child


async def stop_child(child: Child) -> int:
    """SIGTERM, then SIGKILL after a bounded wait; returns the exit code."""
    process = child.process
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), CHILD_STOP_TIMEOUT_SECS)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    return process.returncode if process.returncode is not None else -1


@contextlib.asynccontextmanager
async def child_process(
    args: Sequence[str],
    *,
    ready_keys: Sequence[str],
    env: dict[str, str] | None = None,
    stdin: bool = False,
) -> AsyncIterator[Child]:
    child = await start_child(args, ready_keys=ready_keys, env=env, stdin=stdin)
    try:
        yield child
    finally:
        await stop_child(child)


Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


async def serve_commands(handlers: Mapping[str, Handler], last: str = "close") -> None:
    """A load process's loop: one JSON command a line on stdin, one JSON reply a line on
    stdout (``ready: 1`` first), until the ``last`` command or EOF. A failed command is
    reported, not raised: the orchestrator decides what a failure means."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("ready: 1", flush=True)
    while line := await reader.readline():
        command = json.loads(line)
        op = command.get("op")
        reply: dict[str, Any]
        try:
            handler = handlers.get(op or "")
            if handler is None:
                reply = {"ok": False, "error": f"unknown op {op!r}"}
            else:
                reply = {"ok": True, **await handler(command)}
        except Exception as exc:  # noqa: BLE001 - reported to the orchestrator, which decides
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(reply), flush=True)
        if op == last:
            break


async def ask(child: Child, command: dict[str, Any], timeout_secs: float) -> dict[str, Any]:
    """Send one command to a ``serve_commands`` child and read its reply."""
    process = child.process
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write((json.dumps(command) + "\n").encode())
    await process.stdin.drain()
    line = await asyncio.wait_for(process.stdout.readline(), timeout_secs)
    if not line:
        raise RuntimeError(f"the load process exited during {command}")
    reply: dict[str, Any] = json.loads(line)
    return reply
