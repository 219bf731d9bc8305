"""A digit's piece broken off is no point.

A thin pen's stroke broken in the scan, or a digit's foot cut by the rule it
crossed, leaves a small piece beside the digit: as small as a point, but in
the columns the digit's box reaches and within a few pixels of its ink. A
written point stands clear of both digits. Glyphs drawn into a label image as
in ``test_page_lines``, and files of ``scripts/pages.py`` read through
``find_numbers`` and the shipped model.
"""

from __future__ import annotations

import cv2
import numpy as np
from digitd.layout import read_number
from pageset_support import bank  # noqa: F401 (a fixture)
from test_page_lines import glyphs_of
from test_page_written import read_where_written, recognizer  # noqa: F401 (a fixture)

UNREAD = "a mark between digits was not read"


def three_digits(point: tuple[int, int]) -> np.ndarray:
    """Three ring digits 30 pixels apart, 30 high, feet on row 45, and a 4x4
    dot at ``point`` (its top left corner)."""
    labels = np.zeros((70, 200), np.int32)
    for k, x in enumerate((30, 60, 110), 1):
        cv2.ellipse(labels, (x, 30), (9, 15), 0, 0, 360, k, 2)
    labels[point[1] : point[1] + 4, point[0] : point[0] + 4] = 4
    return labels


def test_a_point_clear_of_the_digits_is_read():
    labels = three_digits((83, 42))  # in the gap between the second and the third digit, at their feet
    number = read_number(glyphs_of(labels), labels, 8.0, [], written=True)
    assert number is not None and len(number.digits) == 3
    assert (number.separators, number.doubts) == (((2, "."),), ())


def test_a_piece_at_a_digits_foot_in_its_columns_is_that_digits():
    """The dot two pixels from the second ring's foot, its columns reaching
    into the ring's box: the ring's piece; no point is read, the mark left
    out (the model reads the ring as it stands) with the doubt."""
    labels = three_digits((68, 41))
    number = read_number(glyphs_of(labels), labels, 8.0, [], written=True)
    assert number is not None and [g.labels for g in number.digits] == [(1,), (2,), (3,)]
    assert number.separators == () and UNREAD in number.doubts


def test_broken_digits_in_the_page_set_are_read_without_points(bank, tmp_path, recognizer):
    """Files of ``pages.py --seed 11``: '807,567' whose 6, drawn thin, broke
    into three pieces, and '486,442' whose 6 broke at its loop; each read
    whole, no point between its digits."""
    assert read_where_written(bank, tmp_path, recognizer, 11, "page-", 22, 1, ("807,567",)) == {"807,567": ["807,567"]}
    assert read_where_written(bank, tmp_path, recognizer, 11, "sepp-", 1, 1, ("486,442",)) == {"486,442": ["486,442"]}
