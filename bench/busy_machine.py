"""The phone-call scenario on a busy machine: how many calls show video at the operator within
2 s of "Accept", with Chromium on the same host and two CPU-bound processes beside the node
(a backup, a transcode). The node keeps the deployment's own admission thresholds here (the
other rows lift the host-CPU one: their load generators share the machine).

    python -m bench.busy_machine [--runs 20] [--burners 2]

prints one line per call and the count within the bound, with the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

from bench.server_proc import add_staff, running_server
from bench.setup_chromium import _run_calls

BOUND_MS = 2000.0
BURN = "while True: pass"


async def scenario(runs: int, burners: int) -> tuple[list[float], tuple[float, float, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        # The deployment's defaults, not the bench's lifted host-CPU threshold.
        async with running_server(
            Path(tmp) / "busy", {"LIFELINE_MEDIA_MAX_HOST_CPU_PERCENT": "95"}
        ) as server:
            await add_staff(server, "busyop", "operator")
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
    return result["accept_to_operator_ms"], load


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--burners", type=int, default=2)
    args = parser.parse_args()
    try:
        times, load = asyncio.run(scenario(args.runs, args.burners))
    except TimeoutError as exc:
        print(f"a call showed no video at the operator: {exc}")
        sys.exit(1)
    for n, ms in enumerate(times, 1):
        print(f"call {n:2d}: accept-to-first-frame {ms:7.0f} ms")
    within = sum(1 for ms in times if ms <= BOUND_MS)
    print(
        f"{within} of {len(times)} within {BOUND_MS:.0f} ms, {args.burners} CPU burners, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )


if __name__ == "__main__":
    main()
