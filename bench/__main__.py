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
- ``map``: /map with 10,000 and 100,000 reports, clustered on the server: the first view and a
  zoom's redraw in Chromium (bench/map_load.py);
- ``flood`` (issue 19): genuine callers' setup through nginx while one address floods the line
  (bench/flood.py);
- ``bad_offers``: one bad SDP offer a second beside 16 live calls: their fps and the media
  node's loop lag, beside the same calls before (bench/bad_offers.py).

Each row runs in a process of its own, 3 times (``--repeat``; once with ``--quick``), and the
table gives the median with the runs' min-max; the load average is printed before each run and
a run that started on a busy machine is said to have (bench/trust.py). Whatever a row leaves
running is found, named and killed, and fails the bench.

Writes ``bench/results/<date>.json``. ``--quick`` runs tiny counts (a smoke test runs it).
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

from bench.bad_offers import bad_offer_rows
from bench.common import RESULTS_DIR, Row
from bench.fanout import fanout_rows
from bench.flood import flood_rows
from bench.http_rows import http_rows
from bench.map_load import map_load_rows
from bench.media_load import media_rows
from bench.overload import overload_rows
from bench.setup_chromium import setup_rows
from bench.storage import storage_rows
from bench.trust import QUIET_LOAD_PER_CPU, RunOfRow, combine, load_line, quiet, run_row

ROWS = ("storage", "http", "fanout", "media", "overload", "setup", "map", "flood", "bad_offers")


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
                rows += await asyncio.to_thread(map_load_rows, quick)
            elif name == "flood":
                found, details["flood"] = await flood_rows(tmp, quick)
                rows += found
            elif name == "bad_offers":
                found, details["bad_offers"] = await bad_offer_rows(tmp, quick)
                rows += found
            details["secs"][name] = round(time.monotonic() - started, 1)
    return rows, details


def _cell(value: Any) -> str:
    return "n/a" if value is None else str(value)


def _figure(row: Row, key: str) -> str:
    """The median, and the runs' min-max when there were several that differ."""
    low, high = row.get(f"{key}_min"), row.get(f"{key}_max")
    if low is None or high is None or low == high:
        return _cell(row[key])
    return f"{_cell(row[key])} [{low}-{high}]"


def _print(rows: list[Row]) -> None:
    header = (
        f"{'metric':58} {'ours (median [min-max])':>24} {'baseline':>24} {'ratio':>7}  "
        f"{'unit':6} baseline is"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['metric']:58} {_figure(r, 'ours'):>24} {_figure(r, 'baseline'):>24} "
            f"{_cell(r['ratio']):>7}  {r['unit']:6} {r['baseline_is']}"
        )
        if r.get("note"):
            print(f"{'':60}({r['note']})")


def _isolated(
    quick: bool, only: list[str], repeat: int, server_env: dict[str, str]
) -> tuple[list[Row], dict[str, Any], bool]:
    """Every row in a process of its own, ``repeat`` times; the table of their medians."""
    runs: list[RunOfRow] = []
    for name in only:
        for n in range(1, repeat + 1):
            print(load_line(name, n, repeat, os.getloadavg()), flush=True)
            run = run_row(name, quick, server_env)
            for leftover in run.leftovers:
                print(f"[{name} {n}/{repeat}] LEFT RUNNING, killed: {leftover}", flush=True)
            if run.failed:
                print(f"[{name} {n}/{repeat}] FAILED: {run.failed}", flush=True)
            runs.append(run)
    busy = [r for r in runs if not quiet(r.load_before)]
    details = {
        "runs": [
            {
                "row": r.name,
                "load_before": r.load_before,
                "quiet": quiet(r.load_before),
                "leftovers": r.leftovers,
                "failed": r.failed,
                "details": r.details,
            }
            for r in runs
        ],
        "not_quiet_runs": len(busy),
    }
    if busy:
        print(
            f"\nNOT QUIET: {len(busy)} of {len(runs)} runs started with the load above "
            f"{QUIET_LOAD_PER_CPU} per core; their figures say little.",
            flush=True,
        )
    clean = not any(r.failed or r.leftovers for r in runs)
    return combine(runs), details, clean


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="tiny counts: a smoke run")
    parser.add_argument("--out", type=Path, help="where to write the JSON results")
    parser.add_argument(
        "--rows", default=",".join(ROWS), help=f"comma-separated subset of {','.join(ROWS)}"
    )
    parser.add_argument(
        "--repeat", type=int, help="runs of each row, each in its own process (3; 1 with --quick)"
    )
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
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
    repeat = args.repeat or (1 if args.quick else 3)
    if repeat < 1:
        parser.error("--repeat takes 1 or more")
    if args.inner:
        # One run of the rows asked, in this process: the parent reads the file it writes.
        rows, details = asyncio.run(_main(args.quick, only, server_env))
        clean = True
    else:
        rows, details, clean = _isolated(args.quick, only, repeat, server_env)
        _print(rows)
    out = args.out or RESULTS_DIR / f"{datetime.now(UTC):%Y-%m-%d}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "when": datetime.now(UTC).isoformat(),
        "quick": args.quick,
        "repeat": 1 if args.inner else repeat,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "rows": rows,
        "details": details,
    }
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    if not args.inner:
        print(f"\nwritten: {out}")
    if not clean:
        raise SystemExit("a row failed or left processes running (above)")


main()
