"""Pages scanned a quarter or half turn round are read upright.

Files of ``scripts/pages.py --set turned`` (each made from its own seed, as the
script makes it, and saved in its format), read through ``find_numbers``: a
form turned three quarters (its small type tells up from down by its margin
and its feet at the working resolution), ruled sheets turned half round and a
quarter (no type: the rules run down the page, the writing stands on them), a
form whose small bold type runs its letters together into words standing up.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from digitd.imageio import pages as decoded_pages
from digitd.imageio import read_bytes
from digitd.page import find_numbers
from conftest import find_real_dev
from test_pages_script import load_script

script = load_script("pages")


@pytest.fixture(scope="module")
def bank(mnist_path):
    real = find_real_dev()
    if real is None:
        pytest.skip("real-dev digits not found")
    return script.load_bank(mnist_path, real)


def turned_file(bank, tmp_path, seed: int, index: int) -> tuple[list, list[dict]]:
    """File ``turn-{index:04d}`` of the turned set of ``seed``: its decoded pages and their labels."""
    rng = np.random.default_rng([seed, zlib.crc32(b"turn-"), index])
    fmt = script.pick_format(rng)
    n = int(rng.integers(1, 4)) if fmt in ("pdf", "tiff") else 1
    photo = fmt == "jpeg" and rng.random() < 0.3
    images, entries, dpi = script.make_document(bank, rng, n, script.make_turned, fmt, photo)
    path = tmp_path / f"turn-{index:04d}{script.EXT[fmt]}"
    script.save(path, images, fmt, dpi, rng)
    return list(decoded_pages(read_bytes(path, 1 << 30), 10**9)), entries


@pytest.mark.parametrize(("seed", "index", "rotations"), [
    (11, 4, [180, 270, 270]),  # a ruled sheet half round; forms of small type three quarters
    (11, 5, [270]),
    (53, 7, [180, 180, 90]),  # a form, a ruled sheet half round, a ruled sheet a quarter
    (41, 9, [90]),  # a form of bold small type, its words run together standing up
])
def test_turned_pages_are_read_upright(bank, tmp_path, seed, index, rotations):
    read, labels = turned_file(bank, tmp_path, seed, index)
    assert [label["rotation"] for label in labels] == rotations
    found = [find_numbers(page.scan) for page in read]
    assert [f.rotation for f in found] == rotations
    assert [f.doubts for f in found] == [()] * len(rotations)
