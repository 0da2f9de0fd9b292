"""The ``flood`` row (issue 19): genuine callers' setup while one address floods the line.

A centre as it runs (``tests/edge.py``: two nodes behind nginx, which they trust), an operator's
console on node B, callers each from an address of their own (``tests/edge_callers.py``). A
caller's setup is the tap (``POST /api/calls``) until both its page is told "queued" and the
call is in the operator's queue. Ours: ten genuine callers while one address makes 100 calls as
fast as four parallel streams go (the default allowance is 6 a minute: the rest are marked);
baseline: the same ten callers, same centre, no flood, measured just before.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from bench.common import Row, pct, row
from tests.edge import run_centre
from tests.edge_callers import console, flood, genuine_call

GENUINE = [f"127.0.1.{10 + n}" for n in range(10)]
BASELINE = [f"127.0.3.{10 + n}" for n in range(10)]
FLOODER = "127.0.2.99"
FLOOD_CALLS = 100
FLOOD_STREAMS = 4
EMBEDDED_DATABASE = "lifeline_bench_flood"
EMBEDDED_REDIS_DB = 10


async def flood_rows(tmp: Path, quick: bool) -> tuple[list[Row], dict[str, Any]]:
    genuine, baseline_callers = (GENUINE[:3], BASELINE[:3]) if quick else (GENUINE, BASELINE)
    calls = 12 if quick else FLOOD_CALLS
    with run_centre(
        tmp / "flood",
        database=EMBEDDED_DATABASE,
        redis_db=EMBEDDED_REDIS_DB,
        # The quick pass (a smoke test in make test) starts one node behind nginx, not two.
        media_workers={"b": "0"} if quick else {"a": "0", "b": "0"},
        own_stores=True,
    ) as centre:
        async with console(centre) as desk:
            quiet = await asyncio.gather(*(genuine_call(centre, desk, a) for a in baseline_callers))
            started = time.monotonic()
            flooded, *during = await asyncio.gather(
                flood(centre, FLOODER, calls, FLOOD_STREAMS),
                *(genuine_call(centre, desk, a) for a in genuine),
            )
            flood_secs = time.monotonic() - started
    quiet_secs = [call["setup_secs"] for call in quiet]
    during_secs = [call["setup_secs"] for call in during]
    unmarked_genuine = sum(1 for call in during if not call["marks"])
    details = {
        "setup_secs_during_flood": [round(s, 3) for s in during_secs],
        "setup_secs_quiet": [round(s, 3) for s in quiet_secs],
        "flood_calls": len(flooded),
        "flood_secs": round(flood_secs, 2),
        "genuine_unmarked": unmarked_genuine,
    }
    note = (
        f"{len(flooded)} flood calls in {flood_secs:.1f} s, all 201; "
        f"{unmarked_genuine}/{len(during)} genuine unmarked; "
        f"p50 {pct(during_secs, 50):.2f} s vs {pct(quiet_secs, 50):.2f} s"
    )
    return [
        row(
            "flood: genuine caller setup p95, 100 calls/min from one address",
            pct(during_secs, 95),
            pct(quiet_secs, 95),
            "s",
            "the same callers, no flood",
            note,
        )
    ], details
