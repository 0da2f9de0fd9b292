"""Issue 11, T1: a whole node killed under live calls, 16 calls, 5 rounds (each on a centre of
its own: two nodes behind nginx, PostgreSQL database ``bench_node_death``, Redis db 8). The
scenario is tests/node_death.py; each round prints its figures and the load average.

    python -m bench.node_death [--calls 16] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from pathlib import Path

from tests.edge import run_centre
from tests.node_death import node_death_round

DATABASE = "bench_node_death"
REDIS_DB = 8


async def one_round(root: Path, calls: int) -> str:
    with run_centre(
        root,
        database=DATABASE,
        redis_db=REDIS_DB,
        media_workers={"a": "1", "b": "1"},
        own_stores=True,
    ) as centre:
        figures = await node_death_round(
            centre, calls, centre.nodes["a"].env["LIFELINE_DATABASE_URL"]
        )
    return figures.line()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    failed = 0
    for n in range(args.rounds):
        load = os.getloadavg()
        with tempfile.TemporaryDirectory(prefix="node-death-") as tmp:
            try:
                line = asyncio.run(one_round(Path(tmp), args.calls))
            except AssertionError as exc:
                # A round that does not come back is a figure too: said, counted, and the
                # others still run.
                failed += 1
                line = f"FAILED: {exc}"
        print(
            f"ROUND {n + 1}/{args.rounds} load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}: {line}",
            flush=True,
        )
    print(f"rounds {args.rounds}, failed {failed}", flush=True)
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
