"""A number's own marks, and marks that are not its own.

Glyphs drawn into a label image as in ``test_page_lines``: a short label's
words set small and bold, run together (flat marks), before the digits of a
number: the end of the label is no minus.
"""

from __future__ import annotations

import cv2
import numpy as np
from digitd.layout import read_number
from test_page_lines import glyphs_of


def test_a_labels_short_last_word_before_the_digits_is_no_minus():
    """'Total:' set small and bold runs into two flat words; the second, as
    short as a minus, stands before the digits after the first: no sign."""
    labels = np.zeros((60, 260), np.int32)
    cv2.rectangle(labels, (10, 22), (45, 29), 1, -1)  # a word longer than any minus
    cv2.rectangle(labels, (50, 22), (72, 29), 2, -1)  # the label's end, as short as a minus
    cv2.ellipse(labels, (110, 25), (9, 15), 0, 0, 360, 3, 2)
    cv2.ellipse(labels, (140, 25), (9, 15), 0, 0, 360, 4, 2)
    number = read_number(glyphs_of(labels), labels, 8.0, [], written=True)
    assert number is not None and len(number.digits) == 2
    assert (number.separators, number.doubts) == ((), ())


def test_a_minus_alone_before_the_digits_is_kept():
    labels = np.zeros((60, 260), np.int32)
    cv2.rectangle(labels, (80, 23), (95, 26), 1, -1)
    cv2.ellipse(labels, (110, 25), (9, 15), 0, 0, 360, 2, 2)
    cv2.ellipse(labels, (140, 25), (9, 15), 0, 0, 360, 3, 2)
    number = read_number(glyphs_of(labels), labels, 8.0, [], written=True)
    assert number is not None and number.separators == ((0, "-"),)
