"""`make bench` runs: a quick pass with tiny counts, every row beside its baseline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_quick_run_writes_every_row(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "baseline" in result.stdout
    rows = json.loads(out.read_text())["rows"]
    metrics = {row["metric"] for row in rows}
    assert {"audit appends/s, SQLite", "audit appends/s, PostgreSQL"} <= metrics
    for row in rows:
        assert row["ours"] > 0, row
        assert row["baseline"] > 0, row
        assert (
            row["ratio"] == round(row["ours"] / row["baseline"], 2)
            or abs(row["ratio"] - row["ours"] / row["baseline"]) < 0.02
        ), row
