"""The phone-call scenario on a busy machine: how many calls show video at the operator within
2 s of "Accept", with Chromium on the same host and two CPU-bound processes beside the node
(a backup, a transcode). The node keeps the deployment's own admission thresholds here (the
other rows lift the host-CPU one: their load generators share the machine).

    python -m bench.busy_machine [--runs 20] [--burners 2] [--unit-priority]

prints one line per call and the count within the bound, with the load average.
``--unit-priority`` runs the node at the priority its systemd unit gives it
(deploy/systemd/lifeline.service: ``Nice=-5``; the unit's ``CPUWeight=1000`` is a cgroup's,
which a bench child does not get): every thread of the node and its media workers is reniced
once the node is up (root only).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

from bench.common import children_of
from bench.server_proc import add_staff, running_server
from bench.setup_chromium import _run_calls

BOUND_MS = 2000.0
BURN = "while True: pass"
UNIT_NICE = -5  # deploy/systemd/lifeline.service


def renice(pid: int, nice: int) -> int:
    """Every thread of ``pid`` and of its descendants at ``nice``; how many were set."""
    done = 0
    for process in [pid, *children_of(pid)]:
        for task in Path(f"/proc/{process}/task").iterdir():
            try:
                os.setpriority(os.PRIO_PROCESS, int(task.name), nice)
            except ProcessLookupError:
                continue  # a thread that ended meanwhile
            done += 1
    return done


async def scenario(
    runs: int, burners: int, unit_priority: bool = False
) -> tuple[list[float], list[dict[str, float | None]], tuple[float, float, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        # The deployment's defaults, not the bench's lifted host-CPU threshold.
        async with running_server(
            Path(tmp) / "busy", {"LIFELINE_MEDIA_MAX_HOST_CPU_PERCENT": "95"}
        ) as server:
            await add_staff(server, "busyop", "operator")
            if unit_priority:
                renice(server.child.pid, UNIT_NICE)
            procs = [
                await asyncio.create_subprocess_exec(sys.executable, "-c", BURN)
                for _ in range(burners)
            ]
            try:
                result = await asyncio.to_thread(_run_calls, server.base, "busyop", runs, False)
                load = os.getloadavg()
            finally:
                for proc in procs:
                    proc.kill()
                    await proc.wait()
    return result["accept_to_operator_ms"], result["accept_phases_ms"], load


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--burners", type=int, default=2)
    parser.add_argument("--unit-priority", action="store_true")
    args = parser.parse_args()
    try:
        times, phases, load = asyncio.run(scenario(args.runs, args.burners, args.unit_priority))
    except TimeoutError as exc:
        print(f"a call showed no video at the operator: {exc}")
        sys.exit(1)
    for n, (ms, phase) in enumerate(zip(times, phases, strict=True), 1):
        steps = ", ".join(
            f"{name} {'-' if at is None else f'{at:.0f}'}" for name, at in (phase or {}).items()
        )
        print(f"call {n:2d}: accept-to-first-frame {ms:7.0f} ms ({steps})")
    within = sum(1 for ms in times if ms <= BOUND_MS)
    print(
        f"{within} of {len(times)} within {BOUND_MS:.0f} ms, {args.burners} CPU burners, "
        f"node at nice {UNIT_NICE if args.unit_priority else 0}, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )


if __name__ == "__main__":
    main()
