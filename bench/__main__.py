"""``make bench``: every row is our figure beside its baseline, measured in the same run.

Rows (issue 6), each in its own module:

- ``media``: recorded calls per node, CPU and RSS per call, latency, frames recorded
  (bench/media_load.py; baseline bench/naive_relay.py);
- ``overload``: a media node offered far more calls than it carries, admission control on,
  beside the same ramp without it: admitted calls' fps, latency, RSS per call over a hold
  (bench/overload.py);
- ``setup``: tap-to-first-frame and accept-to-first-frame in real Chromium
  (bench/setup_chromium.py);
- ``fanout``: location fan-out to consoles with storage, 16 media calls live on the same server
  (bench/fanout.py); ``--server-env KEY=VALUE`` adds to that server's environment
  (``LIFELINE_MEDIA_WORKERS=2``, say; the bench's own environment is passed on too);
- ``storage``: audit appends/s and location events/s on SQLite and PostgreSQL (bench/storage.py);
- ``http``: GET latency through the middleware stack (bench/http_rows.py);
- ``map`` (issue 5): /map with 10,000 reports, load and cluster time in Chromium
  (bench/map_load.py).

Writes ``bench/results/<date>.json``. ``--quick`` runs tiny counts (a smoke test runs it).
Figures measured on a shared machine are noisy: read them beside their baseline, not alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR, Row
from bench.fanout import fanout_rows
from bench.http_rows import http_rows
from bench.map_load import map_load_row
from bench.media_load import media_rows
from bench.overload import overload_rows
from bench.setup_chromium import setup_rows
from bench.storage import storage_rows

ROWS = ("storage", "http", "fanout", "media", "overload", "setup", "map")


async def _main(
    quick: bool, only: list[str], server_env: dict[str, str]
) -> tuple[list[Row], dict[str, Any]]:
    rows: list[Row] = []
    details: dict[str, Any] = {"secs": {}}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp_name:
        tmp = Path(tmp_name)
        for name in only:
            started = time.monotonic()
            if name == "storage":
                rows += await storage_rows(tmp, quick)
            elif name == "http":
                rows += await http_rows(tmp / "http", quick)
            elif name == "fanout":
                found, details["fanout"] = await fanout_rows(tmp, quick, server_env)
                rows += found
            elif name == "media":
                found, details["media"] = await media_rows(quick)
                rows += found
            elif name == "overload":
                found, details["overload"] = await overload_rows(quick)
                rows += found
            elif name == "setup":
                found, details["setup"] = await setup_rows(tmp, quick)
                rows += found
            elif name == "map":
                # Sync Playwright and its own event loop: a thread of its own.
                rows.append(await asyncio.to_thread(map_load_row, quick))
            details["secs"][name] = round(time.monotonic() - started, 1)
    return rows, details


def _cell(value: Any) -> str:
    return "n/a" if value is None else str(value)


def _print(rows: list[Row]) -> None:
    header = f"{'metric':58} {'ours':>9} {'baseline':>9} {'ratio':>7}  {'unit':6} baseline is"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['metric']:58} {_cell(r['ours']):>9} {_cell(r['baseline']):>9} "
            f"{_cell(r['ratio']):>7}  {r['unit']:6} {r['baseline_is']}"
        )
        if r.get("note"):
            print(f"{'':60}({r['note']})")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="tiny counts: a smoke run")
    parser.add_argument("--out", type=Path, help="where to write the JSON results")
    parser.add_argument(
        "--rows", default=",".join(ROWS), help=f"comma-separated subset of {','.join(ROWS)}"
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="added to the fan-out row's server environment (repeatable)",
    )
    args = parser.parse_args()
    server_env = dict(item.split("=", 1) for item in args.server_env if "=" in item)
    if len(server_env) != len(args.server_env):
        parser.error("--server-env takes KEY=VALUE")
    only = [name for name in args.rows.split(",") if name]
    unknown = set(only) - set(ROWS)
    if unknown:
        parser.error(f"unknown rows: {sorted(unknown)}")
    rows, details = asyncio.run(_main(args.quick, only, server_env))
    _print(rows)
    out = args.out or RESULTS_DIR / f"{datetime.now(UTC):%Y-%m-%d}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "when": datetime.now(UTC).isoformat(),
        "quick": args.quick,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "rows": rows,
        "details": details,
    }
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"\nwritten: {out}")


main()
