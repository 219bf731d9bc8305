#!/usr/bin/env python3
"""Before and after in one run: scripts/bench.py and scripts/bench_predict.py for a
git revision and for this checkout, alternated, their figures side by side.

    python scripts/bench_against.py REV [--rounds 2] [--n 2000] [--seconds 10]
                                        [--predict-n 1000 (0: the service only)]

REV is checked out in a temporary git worktree; both sides run this
checkout's copy of both scripts (one method of measuring) with this venv's
Python and their own ``daemon/`` first on the path (so the venv must hold what
both sides import). Rounds alternate REV and this
checkout so that a busy machine slows both alike; the table shows each side's
median over the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PREDICT_FIGURES = {  # bench_predict.py's printed lines -> figure names
    r"start-up \(run over 1 file\)\s+([\d.]+) s": "start-up, 1 file (s)",
    r"images/s after start-up\s+(\d+)": "images/s",
    r"images/s, whole run\s+(\d+)": "images/s, start-up included",
}


def run_predict_bench(tree: Path, n: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_predict.py"), "--n", str(n)],
                         env={**os.environ, "PYTHONPATH": str(tree / "daemon")},
                         capture_output=True, text=True, check=False)
    figures: dict[str, float] = {}
    for block in re.split(r"\n(?=\S[^\n]*:\n)", out.stdout):
        mode = "pictures" if block.startswith("pictures:") else \
            "no pictures" if block.startswith("no pictures:") else None
        for pattern, name in PREDICT_FIGURES.items():
            m = re.search(pattern, block)
            if mode and m:
                figures[f"predict {mode}: {name}"] = float(m.group(1))
    if not figures:
        sys.exit(f"bench_against: bench_predict.py in {tree} printed no figures:\n"
                 f"{out.stdout[-2000:]}{out.stderr[-2000:]}")
    return figures


def run_service_bench(tree: Path, n: int, seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="digitd-bench-against-") as out:
        done = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench.py"), "--n", str(n),
                               "--seconds", str(seconds), "--seed-n", "20", "--out", out],
                              env={**os.environ, "PYTHONPATH": str(tree / "daemon")},
                              capture_output=True, text=True, check=False)
        try:
            raw = json.loads((Path(out) / "results.json").read_text())
        except FileNotFoundError:
            sys.exit(f"bench_against: bench.py in {tree} wrote no results:\n{done.stderr[-2000:]}")
    figures = {}
    for mode, m in raw["modes"].items():
        figures[f"service {mode}: READY (s)"] = m["ready_s"]
        figures[f"service {mode}: burst after READY (files/s)"] = m["burst"]["files_per_s"]
        if "burst_running" in m:
            figures[f"service {mode}: burst, service running (files/s)"] = m["burst_running"]["files_per_s"]
        figures[f"service {mode}: start + burst (s)"] = m["ready_s"] + m["burst"]["seconds"]
        figures[f"service {mode}: p50 latency (ms)"] = m["trickle"]["p50"]
        figures[f"service {mode}: p95 latency (ms)"] = m["trickle"]["p95"]
        figures[f"service {mode}: steady RSS (MB)"] = m["steady_rss_mb"]
    return figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rev", help="the git revision to compare against (e.g. a landed commit)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--n", type=int, default=2000, help="service burst files (bench.py --n)")
    ap.add_argument("--seconds", type=float, default=10.0, help="trickle seconds (bench.py)")
    ap.add_argument("--predict-n", type=int, default=1000, help="bench_predict.py --n (0: the service only)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="digitd-rev-") as tmp:
        base = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(base),
                        args.rev], check=True)
        try:
            sides: dict[str, list[dict[str, float]]] = {args.rev: [], "this checkout": []}
            for round_ in range(args.rounds):
                for label, tree in ((args.rev, base), ("this checkout", ROOT)):
                    print(f"round {round_ + 1}: {label}", file=sys.stderr, flush=True)
                    predict = run_predict_bench(tree, args.predict_n) if args.predict_n else {}
                    sides[label].append({**predict, **run_service_bench(tree, args.n, args.seconds)})
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)],
                           check=False)

    names = list(sides["this checkout"][0])
    print(f"| figure (median of {args.rounds}) | {args.rev} | this checkout | change |")
    print("|---|---|---|---|")
    for name in names:
        before = statistics.median(r[name] for r in sides[args.rev] if name in r)
        after = statistics.median(r[name] for r in sides["this checkout"])
        change = f"{(after - before) / before:+.1%}" if before else "n/a"
        print(f"| {name} | {before:.4g} | {after:.4g} | {change} |")
    print(f"\n{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
