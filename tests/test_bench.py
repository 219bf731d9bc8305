"""scripts/bench.py --quick: the service benchmark runs end to end and prints its table."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

ROWS = (
    "READY after start (s)",
    "Burst throughput",
    "Seed-style loop",
    "Latency p50",
    "Latency p95",
    "Latency p99",
    "Peak RSS",
    "Steady RSS",
    "RSS growth",
    "Files failed",
)


def test_bench_quick(repo_root, tmp_path):
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, str(repo_root / "scripts" / "bench.py"), "--quick", "--out", str(out)],
        capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for row in ROWS:
        assert f"| {row}" in proc.stdout, row
    assert "| pictures | no pictures |" in proc.stdout
    md = (out / "results.md").read_text()
    for row in ROWS:
        assert f"| {row}" in md, row
    assert (out / "bench.png").stat().st_size > 0
    assert (out / "results.json").is_file()
