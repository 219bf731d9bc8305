"""A hairline beside one cropped digit is no digit of its own.

MNIST test digits whose image holds, beside the digit, a thin sliver (the
next field's digit cut by the crop, a hair on the glass): the sliver is far
finer than the digit's strokes and small, so the crop is one digit, not two.
Beside several digits such a piece stays (digits may be written with other
pens), so a composed number keeps its thin 1.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from digitd.imageio import to_scan
from digitd.segment import find_digits_scan

SLIVERS = [5730, 5746, 5759, 8020, 8112]  # MNIST test digits with a thin sliver at their right


def scan_of(gray: np.ndarray):
    ok, buf = cv2.imencode(".png", gray)
    return to_scan(cv2.imdecode(buf, cv2.IMREAD_UNCHANGED))


@pytest.fixture(scope="module")
def mnist_test(mnist_path):
    with np.load(mnist_path) as d:
        return d["x_test"], d["y_test"]


@pytest.mark.parametrize("index", SLIVERS)
def test_a_sliver_beside_one_digit_is_left_out(mnist_test, index):
    x, _ = mnist_test
    marks, _ = find_digits_scan(scan_of(255 - x[index]))
    assert len(marks) == 1
    # the sliver's columns lie outside the one digit's box
    right = max(np.flatnonzero(x[index].max(axis=0) > 0))
    box = marks[0].box
    assert box[0] + box[2] <= right


def test_a_thin_one_beside_a_bold_digit_stays(mnist_test):
    """A 1 drawn with a pen a third as wide as the 8's beside it, as tall: both are digits."""
    img = np.full((60, 80), 255, np.uint8)
    cv2.ellipse(img, (22, 19), (9, 9), 0, 0, 360, 0, 6)
    cv2.ellipse(img, (22, 39), (11, 10), 0, 0, 360, 0, 6)
    cv2.line(img, (58, 9), (58, 49), 0, 2)
    marks, _ = find_digits_scan(scan_of(img))
    assert len(marks) == 2
