#!/usr/bin/env python3
"""Measure recognition where it matters: real handwriting, MNIST as files, whole numbers.

    python scripts/accuracy.py [--data ../shared/data/mnist.npz] [--real ../shared/data/real-dev]
                               [--model models/NAME.keras] [--mnist-count 10000] [--numbers 500]

Every figure goes through the real `digitd predict --json` (a subprocess, as a
user runs it) over image files this script writes into a temporary folder:

1. real single digits (`real-dev/labels.csv`, ambiguous ones left out), by kind;
2. the real multi-digit images in `real-dev/numbers/`, read exactly;
3. MNIST test digits written as PNG files, dark ink on light paper;
4. numbers of 2-5 MNIST test digits composed on a page (random sizes, gaps,
   baseline jitter, paper tint and noise), read exactly;
5. low resolution: MNIST test digits shrunk to 8x8, 12x12, 16x16 and back;
   not a digit: held-out marks of scripts/glyphs.py read ``ok`` (target none),
   and real digits rejected (read ``blank``).

Prints a markdown table; `--direct` calls the recognizer in-process instead
(quicker while developing, same pipeline from decode on).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "daemon"))


def default_mnist() -> Path:
    env = os.environ.get("DIGITD_MNIST")
    return Path(env) if env else ROOT.parent / "shared" / "data" / "mnist.npz"


def predict(files: list[Path], model: Path, direct: bool) -> dict[str, dict]:
    """source file name -> result dict, via the real CLI (or in-process with --direct)."""
    if direct:
        from digitd.imageio import decode
        from digitd.recognize import Recognizer

        rec = Recognizer(model)
        out = {}
        for i in range(0, len(files), 256):
            chunk = files[i : i + 256]
            readings = rec.read([decode(f.read_bytes(), 10**9) for f in chunk])
            for f, r in zip(chunk, readings):
                out[f.name] = {"number": r.number, "status": r.status, "confidence": r.confidence}
        return out
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "inputs"
        listing.mkdir()
        for f in files:  # one folder argument, not thousands of paths on the command line
            os.symlink(f, listing / f.name)
        cmd = [sys.executable, "-m", "digitd", "predict", "--config", str(ROOT / "config.yaml"), "--model", str(model),
               "--out", str(Path(tmp) / "out"), "--no-annotate", "--json", str(listing)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode not in (0, 1):
            sys.exit(f"accuracy.py: digitd predict exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
        results = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
        return {Path(r["source"]).name: r for r in results}


def write_png(path: Path, gray: np.ndarray) -> Path:
    cv2.imwrite(str(path), gray)
    return path


def compose_number(digits: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """MNIST digits (white on black, 28x28) side by side on a light page, as a person writes."""
    height = int(rng.integers(40, 120))
    tiles = []
    for d in digits:
        ys, xs = np.nonzero(d > 30)
        crop = d[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        h = int(height * rng.uniform(0.9, 1.1))
        w = max(2, int(round(crop.shape[1] * h / crop.shape[0])))
        tiles.append(cv2.resize(crop, (w, h), interpolation=cv2.INTER_CUBIC))
    gaps = [int(height * rng.uniform(0.12, 0.45)) for _ in tiles]
    margin = height // 2
    width = sum(t.shape[1] for t in tiles) + sum(gaps[:-1]) + 2 * margin
    page = np.zeros((int(height * 1.3) + 2 * margin, width), np.float32)
    x = margin
    for t, gap in zip(tiles, gaps):
        y = margin + int(rng.integers(0, max(1, int(height * 0.3) - (t.shape[0] - height))))
        region = page[y : y + t.shape[0], x : x + t.shape[1]]
        np.maximum(region, t[: region.shape[0], : region.shape[1]], out=region)
        x += t.shape[1] + gap
    paper = rng.uniform(200, 250)
    ink = rng.uniform(10, 70)
    img = paper - (paper - ink) * np.clip(page / 255.0, 0, 1)
    img += rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def lowres_rows(x_test, y_test, count: int, model: Path, direct: bool, folder: Path) -> list[tuple]:
    """MNIST test digits shrunk to SxS (as an old scanner or a fax gives them) and
    enlarged back to 28x28, written as dark-on-light PNG files and read."""
    rows = []
    for side in (8, 12, 16):
        files = []
        for i in range(count):
            small = cv2.resize(x_test[i], (side, side), interpolation=cv2.INTER_AREA)
            back = cv2.resize(small, (28, 28), interpolation=cv2.INTER_LINEAR)
            files.append(write_png(folder / f"s{side}-{i:05d}.png", 255 - back))
        got = predict(files, model, direct)
        ok = sum(got[f.name]["number"] == str(y_test[i]) for i, f in enumerate(files))
        rows.append((f"MNIST test digits shrunk to {side}x{side} and back", ok, count, "95%"))
    return rows


def reject_rows(count: int, model: Path, direct: bool, folder: Path, rng: np.random.Generator) -> list[tuple]:
    """Held-out non-digit marks (scripts/glyphs.py, its held-out seed) on paper as
    PNG files: how many are read ``ok`` (the target is none), in all and per kind."""
    import glyphs

    files, kinds = [], {}
    for i, (ink, kind) in enumerate(glyphs.not_digit_inks(count, glyphs.HELD_OUT_SEED)):
        h, w = ink.shape
        m = max(h, w) // 3 + 4
        page = np.zeros((h + 2 * m, w + 2 * m), np.float32)
        page[m : m + h, m : m + w] = ink
        paper, dark = rng.uniform(200, 250), rng.uniform(10, 70)
        img = np.clip(paper - (paper - dark) * page + rng.normal(0, 3, page.shape), 0, 255).astype(np.uint8)
        files.append(write_png(folder / f"g{i:05d}.png", img))
        kinds[files[-1].name] = kind
    got = predict(files, model, direct)
    rows = [("held-out non-digit marks read ok (fewer is better)", sum(got[f.name]["status"] == "ok" for f in files),
             count, "0%")]
    for kind in glyphs.KINDS:
        mine = [f for f in files if kinds[f.name] == kind]
        rows.append((f"  of which {kind}", sum(got[f.name]["status"] == "ok" for f in mine), len(mine), ""))
    return rows


def real_rejected_row(got: dict[str, dict], labelled: list[dict]) -> tuple:
    """Real single digits read ``blank``: rejected as not a digit (or not found)."""
    return ("real-dev single digits read blank (rejected)", sum(got[r["file"]]["status"] == "blank" for r in labelled),
            len(labelled), "0%")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=default_mnist(), help="MNIST npz (default ../shared/data/mnist.npz or $DIGITD_MNIST)")
    p.add_argument("--real", type=Path, default=ROOT.parent / "shared" / "data" / "real-dev", help="real-dev folder")
    p.add_argument("--model", type=Path, default=ROOT / "models" / "digitd-cnn-v1.keras")
    p.add_argument("--mnist-count", type=int, default=10000, help="MNIST test digits written as files (default all 10000)")
    p.add_argument("--numbers", type=int, default=500, help="composed numbers of 2-5 digits (default 500)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--direct", action="store_true", help="call the recognizer in-process instead of digitd predict")
    p.add_argument("--show-errors", action="store_true", help="list every misread real digit")
    p.add_argument("--lowres", type=int, default=2000, help="MNIST test digits per low-resolution size (default 2000; 0 skips)")
    p.add_argument("--reject", type=int, default=1000, help="held-out non-digit marks (default 1000; 0 skips)")
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    rows = []
    started = time.time()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        labels_csv = args.real / "labels.csv"
        if labels_csv.is_file():
            labelled = [r for r in csv.DictReader(labels_csv.open()) if r["ambiguous"] == "0"]
            got = predict([args.real / r["file"] for r in labelled], args.model, args.direct)
            kinds: dict[str, list[int]] = {}
            for r in labelled:
                k = kinds.setdefault(r["kind"], [0, 0])
                right = got[r["file"]]["number"] == r["label"]
                k[0] += right
                k[1] += 1
                if not right and args.show_errors:
                    print(f"  {r['file']} ({r['kind']}): {r['label']} read as {got[r['file']]['number']}")
            right = sum(k[0] for k in kinds.values())
            rows.append(("real-dev single digits (not ambiguous)", right, len(labelled), "97%"))
            for kind, (ok, n) in sorted(kinds.items()):
                rows.append((f"  of which {kind}", ok, n, ""))
            rows.append(real_rejected_row(got, labelled))
            numbers = list(csv.DictReader((args.real / "numbers" / "labels.csv").open()))
            got = predict([args.real / "numbers" / n["file"] for n in numbers], args.model, args.direct)
            ok = sum(got[n["file"]]["number"] == n["number"] for n in numbers)
            rows.append(("real-dev numbers, exact", ok, len(numbers), "all"))
            for n in numbers:
                print(f"  {n['file']}: {n['number']} read as {got[n['file']]['number']}")
        else:
            print(f"(no {labels_csv}: real digits skipped)")

        if args.data.is_file():
            with np.load(args.data) as npz:
                x_test, y_test = npz["x_test"], npz["y_test"]
            folder = tmp / "mnist"
            folder.mkdir()
            n = min(args.mnist_count, len(x_test))
            files = [write_png(folder / f"t{i:05d}.png", 255 - x_test[i]) for i in range(n)]
            got = predict(files, args.model, args.direct)
            ok = sum(got[f.name]["number"] == str(y_test[i]) for i, f in enumerate(files))
            rows.append(("MNIST test digits as dark-on-light PNG files", ok, n, "99.4%"))

            folder = tmp / "numbers"
            folder.mkdir()
            truth, files = {}, []
            for i in range(args.numbers):
                length = int(rng.integers(2, 6))
                idx = rng.integers(0, len(x_test), size=length)
                f = write_png(folder / f"n{i:04d}.png", compose_number([x_test[j] for j in idx], rng))
                truth[f.name] = "".join(str(y_test[j]) for j in idx)
                files.append(f)
            got = predict(files, args.model, args.direct)
            ok = sum(got[f.name]["number"] == truth[f.name] for f in files)
            rows.append(("numbers of 2-5 MNIST digits on a page, exact", ok, len(files), "90%"))
            if args.lowres > 0:
                (tmp / "lowres").mkdir()
                rows += lowres_rows(x_test, y_test, min(args.lowres, len(x_test)), args.model, args.direct, tmp / "lowres")
        else:
            print(f"(no {args.data}: MNIST figures skipped)")

        if args.reject > 0:
            (tmp / "glyphs").mkdir()
            rows += reject_rows(args.reject, args.model, args.direct, tmp / "glyphs", rng)

    print(f"\nmodel {args.model.name}, {'in-process' if args.direct else 'digitd predict'}, {time.time() - started:.0f} s\n")
    print("| measure | right | of | accuracy | bar |")
    print("|---|---:|---:|---:|---:|")
    for name, ok, n, bar in rows:
        print(f"| {name} | {ok} | {n} | {ok / max(n, 1):.2%} | {bar} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
