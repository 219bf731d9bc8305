#!/usr/bin/env python3
"""Benchmark ``digitd predict``: images per second after start-up, and accuracy.

    python scripts/bench_predict.py [--data PATH/mnist.npz] [--n 1000] [--size 112]
                                    [--model models/digitd-cnn-v8.keras] [--profile]

1. Writes ``--n`` MNIST test digits (``--data``, else ``$DIGITD_MNIST``, else
   ``../shared/data/mnist.npz`` from the repo; font-drawn digits if none is
   found) as dark-on-light PNG files, upscaled from 28x28 to ``--size`` pixels
   (a realistic scan size), into a temporary folder.
2. Runs the real ``digitd predict --json`` as a subprocess over that folder,
   with pictures and with ``--no-annotate``, each into a fresh outbox.
3. Start-up (Python, TensorFlow, loading the model) ends when predict logs
   "model ... loaded" on stderr; the bench timestamps that line as it
   arrives: images/s = n / (exit - model loaded), so the first trace, the
   picture workers' start and the process's exit are all counted. Also shown:
   a run over ONE file (the start-up a user waits for), n / (T(n) - T(1)),
   and predict's own figure from its summary line.
4. Accuracy: the ``number`` of each JSON line against the label.

``--profile`` adds an in-process breakdown of where the time goes per image
(read + decode, segmentation, model, picture, outbox files).

Bars (issue 3): >= 100 images/s with pictures, >= 1,000 without.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchdata import digits, find_data, write_pngs  # noqa: E402  (beside this script)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = ROOT / "models" / "digitd-cnn-v8.keras"
BARS = {"pictures": 100.0, "no pictures": 1000.0}


def digitd_exe() -> str:
    exe = shutil.which("digitd", path=str(Path(sys.executable).parent)) or shutil.which("digitd")
    if not exe:
        sys.exit("bench_predict: no 'digitd' command; install the project (make venv)")
    return exe


def run(exe: str, config: Path, out: Path, inputs: list[str], annotate: bool) -> dict:
    """One ``digitd predict --json`` run: its total time, the time from the
    "model ... loaded" log line (read from stderr as it comes) to the exit, and
    its JSON lines."""
    args = [exe, "predict", "--config", str(config), "--out", str(out), "--json"]
    if not annotate:
        args.append("--no-annotate")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGITD_")}
    with tempfile.TemporaryFile("w+") as stdout:
        t0 = time.perf_counter()
        proc = subprocess.Popen(args + inputs, stdout=stdout, stderr=subprocess.PIPE, text=True, env=env)
        loaded = None
        err = []
        for line in proc.stderr:
            if loaded is None and " loaded in " in line:
                loaded = time.perf_counter()
            err.append(line)
        code = proc.wait()
        t_end = time.perf_counter()
        stdout.seek(0)
        lines = [json.loads(line) for line in stdout]
    stderr = "".join(err)
    if code not in (0, 1) or loaded is None:
        sys.exit(f"bench_predict: digitd predict exited {code}:\n{stderr[-2000:]}")
    return {"total": t_end - t0, "after_load": t_end - loaded, "lines": lines, "stderr": stderr}


def own_rate(stderr: str) -> float | None:
    m = re.search(r"\((\d+) images/s\)", stderr)
    return float(m.group(1)) if m else None


def profile(paths: list[Path], model: Path, annotate: bool) -> None:
    """Per-image time of each stage, in this process (single-threaded)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from digitd import imageio
    from digitd.annotate import Annotator, make_view
    from digitd.recognize import Recognizer
    from digitd.results import Outbox, csv_row, result_dict
    from digitd.segment import find_digits

    rec = Recognizer(model)
    rec.read([imageio.decode(paths[0].read_bytes(), 10**8)])  # trace once
    n = len(paths)
    t = {}
    t0 = time.perf_counter()
    blobs = [imageio.read_bytes(p, 50 << 20) for p in paths]
    shas = [imageio.sha256(b) for b in blobs]
    t["read + sha256"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    scans = [imageio.decode(b, 40_000_000) for b in blobs]
    t["decode"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    found = [find_digits(s.image, rec.max_digits) for s in scans]
    t["segment (find_digits)"] = time.perf_counter() - t0
    stacked = np.stack([m.pixels for marks, _ in found for m in marks])
    t0 = time.perf_counter()
    rec.probabilities(stacked)
    t["model (batched)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    readings = rec.read(scans)
    t["recognizer.read total"] = time.perf_counter() - t0
    if annotate:
        ann = Annotator()
        t0 = time.perf_counter()
        pngs = [ann.render(make_view(s, r, source=p.name, model=rec.name))
                for s, r, p in zip(scans, readings, paths, strict=True)]
        t["picture (one process)"] = time.perf_counter() - t0
    for fsync in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            box = Outbox(tmp, fsync=fsync)
            t0 = time.perf_counter()
            for i, (p, r) in enumerate(zip(paths, readings, strict=True)):
                name = box.claim_name(p.stem)
                if annotate:
                    box.write_annotated(name, lambda f, png=pngs[i]: f.write(png))
                res = result_dict(p.name, r, sha256=shas[i], model=rec.name, processed_at="t",
                                  elapsed_ms=0, annotated=None)
                box.append_csv(csv_row(res, box.result_rel(name)))
                box.write_json(name, res)
                box.release(name)
            label = "(service: fsync)" if fsync else "(predict: no fsync)"
            t[f"outbox files {label}"] = time.perf_counter() - t0
    print(f"\nprofile, one process, {n} images (ms per image):")
    for k, v in t.items():
        print(f"  {k:36s} {v / n * 1000:7.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None, help="mnist.npz (default $DIGITD_MNIST or ../shared/data/mnist.npz)")
    parser.add_argument("--n", type=int, default=1000, help="number of images (default 1000)")
    parser.add_argument("--size", type=int, default=112, help="side of each image in pixels (default 112)")
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="model file (default the shipped one)")
    parser.add_argument("--keep", metavar="DIR", default=None, help="work in DIR and keep it")
    parser.add_argument("--profile", action="store_true", help="also break the time down by stage")
    args = parser.parse_args()

    model = Path(args.model).resolve()
    if not model.is_file():
        sys.exit(f"bench_predict: --model {model}: no such file (train it: make train)")
    data = find_data(args.data, "bench_predict")
    xs, ys, origin = digits(data, args.n)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="digitd-bench-"))
    try:
        inputs = work / "images"
        paths = write_pngs(inputs, xs, args.size, "mnist")
        config = work / "config.yaml"
        config.write_text(f"model: {model}\ninbox: {work / 'inbox'}\noutbox: {work / 'outbox'}\n")
        exe = digitd_exe()
        print(f"{len(paths)} images: {origin}, {args.size}x{args.size} PNG, dark on light")
        print(f"model {model}; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}")
        ok = True
        for label, annotate in (("pictures", True), ("no pictures", False)):
            one = run(exe, config, work / f"out-one-{annotate}", [str(paths[0])], annotate)
            full = run(exe, config, work / f"out-all-{annotate}", [str(inputs)], annotate)
            lines = full["lines"]
            assert len(lines) == len(paths), (len(lines), full["stderr"][-500:])
            right = sum(r["number"] == str(y) for r, y in zip(lines, ys, strict=True))
            statuses = {s: sum(r["status"] == s for r in lines) for s in ("ok", "uncertain", "blank", "failed")}
            rate = len(paths) / full["after_load"]
            by_subtraction = full["total"] - one["total"]
            bar = BARS[label]
            ok &= rate >= bar
            print(f"\n{label}:")
            print(f"  start-up (run over 1 file)      {one['total']:6.2f} s")
            print(f"  run over {len(paths)} files           {full['total']:6.2f} s "
                  f"({full['total'] - full['after_load']:.2f} s to model loaded)")
            print(f"  images/s after start-up         {rate:7.0f}   (model loaded -> exit; "
                  f"bar {bar:.0f}: {'met' if rate >= bar else 'NOT met'})")
            if by_subtraction > 0:
                print(f"  images/s by subtraction         {len(paths) / by_subtraction:7.0f}   "
                      "(n / (T(n) - T(1)); noisy on a busy machine)")
            print(f"  images/s, whole run             {len(paths) / full['total']:7.0f}   "
                  "(n / T(n): start-up included, what a user waits for)")
            print(f"  predict's own figure            {own_rate(full['stderr']) or float('nan'):7.0f}   "
                  "(model loaded -> last file written)")
            print(f"  accuracy                        {right / len(paths):7.2%}   ({right}/{len(paths)}; "
                  + ", ".join(f"{v} {k}" for k, v in statuses.items() if v) + ")")
        if args.profile:
            profile(paths, model, annotate=True)
        return 0 if ok else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
