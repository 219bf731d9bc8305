"""Digits written as image files, shared by the benchmarks (bench.py, bench_predict.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "mnist.npz"


def find_data(arg: str | None, prog: str) -> Path | None:
    """--data, else $DIGITD_MNIST, else ../shared/data/mnist.npz; None if none exists."""
    for candidate in (arg, os.environ.get("DIGITD_MNIST"), DEFAULT_DATA):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    if arg:
        sys.exit(f"{prog}: --data {arg}: no such file")
    return None


def digits(data: Path | None, n: int) -> tuple[np.ndarray, np.ndarray, str]:
    """n white-on-black 28x28 uint8 digits (MNIST test set, repeated if n is larger,
    else font-drawn), their labels, and where they came from."""
    if data is not None:
        with np.load(data) as npz:
            xs, ys = npz["x_test"], npz["y_test"]
        idx = np.arange(n) % len(xs)
        return xs[idx], ys[idx].astype(int), f"MNIST test set ({data})"
    import cv2

    rng = np.random.default_rng(0)
    ys = np.arange(n) % 10
    xs = []
    for y in ys:
        canvas = np.zeros((56, 56), np.uint8)
        cv2.putText(canvas, str(int(y)), (12, 46), int(rng.choice([0, 2, 3, 4])), 1.5, 255,
                    int(rng.integers(3, 6)), cv2.LINE_AA)
        xs.append(cv2.resize(canvas, (28, 28), interpolation=cv2.INTER_AREA))
    return np.stack(xs), ys, "synthetic font digits (no MNIST file found)"


def write_pngs(folder: Path, xs: np.ndarray, size: int, prefix: str) -> list[Path]:
    """Each digit as a size x size dark-on-light PNG, PREFIX-00000.png, ..."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, x in enumerate(xs):
        img = 255 - cv2.resize(x, (size, size), interpolation=cv2.INTER_CUBIC)  # dark ink, white paper
        path = folder / f"{prefix}-{i:05d}.png"
        cv2.imwrite(str(path), img)
        paths.append(path)
    return paths
