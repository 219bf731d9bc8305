"""A hairline or a chip of ink beside one cropped digit is no digit of its own.

MNIST test digits whose image holds, beside the digit, a thin sliver (the
next field's digit cut by the crop, a hair on the glass): the sliver is far
finer than the digit's strokes and small, so the crop is one digit, not two.
Beside several digits such a piece stays (digits may be written with other
pens), so a composed number keeps its thin 1. A chip (a small piece under
half the digit's height, in columns of its own, whatever its pen) beside one
digit is left out too; one in the digit's own columns is the digit's.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from digitd.imageio import to_scan
from digitd.recognize import Recognizer
from digitd.segment import find_digits_scan

SLIVERS = [5730, 5746, 5759, 8020, 8112]  # MNIST test digits with a thin sliver at their right
CHIPS = [5331, 5457, 5676, 6403, 8416, 9672]  # ... with a chip of ink beside them (1, 1, 4, 8, 4, 4)


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


@pytest.fixture(scope="module")
def recognizer(shipped_model) -> Recognizer:
    return Recognizer(shipped_model)


@pytest.mark.parametrize("index", CHIPS)
def test_a_chip_beside_one_digit_is_left_out(mnist_test, recognizer, index):
    """Each was read as two digits (``11``, one of them ``ok``; ``14``, ``81``, ``41``, ``45``)."""
    x, y = mnist_test
    scan = scan_of(255 - x[index])
    marks, _ = find_digits_scan(scan)
    assert len(marks) == 1
    reading = recognizer.read([scan])[0]
    assert reading.number == str(y[index])


def pen_one(img: np.ndarray) -> None:
    cv2.line(img, (30, 10), (30, 70), 0, 5)


def test_a_chip_of_the_same_pen_beside_one_digit_is_left_out():
    """A 1 and, apart from it, a short stroke of its pen a quarter its height: one digit."""
    img = np.full((80, 80), 255, np.uint8)
    pen_one(img)
    cv2.line(img, (55, 50), (55, 62), 0, 5)
    marks, _ = find_digits_scan(scan_of(img))
    assert len(marks) == 1
    assert marks[0].box[0] + marks[0].box[2] < 50


def test_a_short_digit_beside_one_digit_stays():
    """A 1 and a 0 of its pen 0.6 of its height: a number of two digits."""
    img = np.full((80, 90), 255, np.uint8)
    pen_one(img)
    cv2.ellipse(img, (62, 52), (10, 18), 0, 0, 360, 0, 5)
    marks, _ = find_digits_scan(scan_of(img))
    assert len(marks) == 2


def test_a_chip_in_the_digits_own_columns_is_the_digits():
    """A 5's bar drawn apart from its body, above it: the bar stays in the digit's mark."""
    img = np.full((90, 80), 255, np.uint8)
    cv2.line(img, (28, 15), (55, 13), 0, 5)  # the bar, short and apart
    cv2.line(img, (28, 24), (27, 42), 0, 5)
    cv2.ellipse(img, (38, 58), (15, 16), 0, 200, 510, 0, 5)
    marks, _ = find_digits_scan(scan_of(img))
    assert len(marks) == 1
    assert marks[0].box[1] <= 15 and marks[0].box[0] + marks[0].box[2] >= 55
