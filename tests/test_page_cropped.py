"""A cropped digit or number is read exactly as before the page reader.

For every real-dev file, a few hundred MNIST test digits and composed MNIST
numbers written as PNG files, ``find_numbers`` gives one number (or none for a
blank) whose marks are bit for bit ``segment.find_digits_scan``'s, and
``is_page`` says no. The data is read from ``../shared/data``; absent, skipped.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from digitd.imageio import decode, read_bytes
from digitd.page import find_numbers, is_page
from digitd.segment import find_digits_scan, ink_map, ink_mask_and_ratio
from conftest import REPO_ROOT
from test_page import real_dev

sys.path.insert(0, str(REPO_ROOT / "scripts"))
from accuracy import compose_number  # noqa: E402  (the numbers accuracy.py measures)


def same_as_today(path: Path) -> None:
    scan = decode(read_bytes(path, 1 << 28), 10**9)
    marks, polarity = find_digits_scan(scan)
    found = find_numbers(scan)
    assert found.polarity == polarity, path.name
    assert (found.rotation, found.skew, found.doubts) == (0, 0.0, ()), path.name
    if not marks:
        assert found.numbers == (), path.name
        return
    assert len(found.numbers) == 1, path.name
    number = found.numbers[0]
    assert (number.separators, number.doubts, number.printed) == ((), (), False), path.name
    assert [m.box for m in number.marks] == [m.box for m in marks], path.name
    for a, b in zip(number.marks, marks):
        assert np.array_equal(a.pixels, b.pixels), path.name
    ink = ink_map(scan.image, scan.gray)
    mask, _ = ink_mask_and_ratio(ink)
    assert not is_page(mask, ink.scale), path.name


def test_every_real_dev_file_reads_as_today():
    files = sorted(real_dev().rglob("*.png"))
    assert len(files) == 142
    for path in files:
        same_as_today(path)


def test_mnist_digits_as_files_read_as_today(tmp_path, mnist_path):
    x_test = np.load(mnist_path)["x_test"]
    for i in range(0, 10000, 25):  # 400 digits
        path = tmp_path / f"t{i:05d}.png"
        assert cv2.imwrite(str(path), 255 - x_test[i])
        same_as_today(path)


@pytest.mark.parametrize("seed", range(3))
def test_composed_numbers_read_as_today(tmp_path, mnist_path, seed):
    x_test = np.load(mnist_path)["x_test"]
    rng = np.random.default_rng(seed)
    for i in range(30):
        idx = rng.integers(0, len(x_test), int(rng.integers(2, 6)))
        path = tmp_path / f"n{seed}_{i:03d}.png"
        assert cv2.imwrite(str(path), compose_number([x_test[j] for j in idx], rng))
        same_as_today(path)


def test_no_mnist_test_digit_is_taken_for_a_page(mnist_path):
    """All 10,000: a digit whose strokes are broken apart (a 6's stem above its
    loop) is one cropped digit, not two lines of numbers."""
    x_test = np.load(mnist_path)["x_test"]
    pages = []
    for i, digit in enumerate(x_test):
        ok, png = cv2.imencode(".png", 255 - digit)
        scan = decode(png.tobytes(), 10**9)
        mask, _ = ink_mask_and_ratio(ink := ink_map(scan.image, scan.gray))
        if mask is not None and is_page(mask, ink.scale):
            pages.append(i)
    assert pages == []
