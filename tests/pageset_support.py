"""Single files of the page sets of ``scripts/pages.py``, made in a test as the script makes them."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import find_real_dev
from digitd.imageio import Page, pages, read_bytes
from test_pages_script import load_script

script = load_script("pages")


def load_bank(mnist: Path):
    """The digits the script draws with (MNIST test digits, real-dev's); None without real-dev."""
    real = find_real_dev()
    return None if real is None else script.load_bank(mnist, real)


@pytest.fixture(scope="module")
def bank(mnist_path):
    """The script's digit bank for a test module; skipped without real-dev."""
    found = load_bank(mnist_path)
    if found is None:
        pytest.skip("real-dev digits not found")
    return found


def overlap(a, b) -> float:
    """Intersection over union of two boxes (x, y, w, h)."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(0, w) * max(0, h)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def set_file(bank, folder: Path, seed: int, prefix: str, index: int, make) -> tuple[list[Page], list[dict]]:
    """File ``{prefix}{index:04d}`` of a set of ``seed`` (``make``: the script's
    page maker for that prefix), saved in its format into ``folder``: its decoded
    pages and their labels."""
    rng = np.random.default_rng([seed, zlib.crc32(prefix.encode()), index])
    fmt = script.pick_format(rng)
    n = int(rng.integers(1, 4)) if fmt in ("pdf", "tiff") else 1
    photo = fmt == "jpeg" and rng.random() < 0.3
    images, entries, dpi = script.make_document(bank, rng, n, make, fmt, photo)
    path = folder / f"{prefix}{index:04d}{script.EXT[fmt]}"
    script.save(path, images, fmt, dpi, rng)
    return list(pages(read_bytes(path, 1 << 30), 10**9)), entries
