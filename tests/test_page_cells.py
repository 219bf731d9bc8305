"""A stroke alone in a comb's cell is a digit, not a date's slash.

A '1' written leaning and tall reads as a slash between digits; in a comb
each cell holds one digit, and a date's slash is never written in a cell of
its own: a stroke a box's wall parts from its neighbour is a digit. Glyphs
drawn into a label image as in ``test_page_lines`` (the walls into the rules
taken out), and a file of ``scripts/pages.py`` read through ``find_numbers``
and the shipped model.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from digitd.layout import read_number
from pageset_support import bank  # noqa: F401 (a fixture)
from test_page_lines import glyphs_of
from test_page_written import read_where_written, recognizer  # noqa: F401 (a fixture)


@pytest.mark.parametrize(("walls", "separators"), [(True, ()), (False, ((1, "/"),))])
def test_a_tall_leaning_stroke_in_a_cell_of_its_own_is_a_digit(walls, separators):
    """A ring, a stroke leaning 30 degrees and taller than the rings, a ring:
    between walls (a comb's cells) the stroke is a '1'; on a plain line, a slash."""
    labels = np.zeros((80, 200), np.int32)
    cv2.ellipse(labels, (40, 40), (9, 15), 0, 0, 360, 1, 2)
    cv2.line(labels, (90, 58), (110, 21), 2, 2)
    cv2.ellipse(labels, (160, 40), (9, 15), 0, 0, 360, 3, 2)
    ruled = np.zeros(labels.shape, np.uint8)
    if walls:
        ruled[15:66, 70:72] = 1
        ruled[15:66, 130:132] = 1
    number = read_number(glyphs_of(labels), labels, 8.0, [], written=True, ruled=ruled)
    assert number is not None and number.separators == separators
    assert len(number.digits) == 3 - len(separators)


def test_a_leaning_one_in_a_comb_of_the_page_set_is_read(bank, tmp_path, recognizer):
    """File sepp-0001 of ``pages.py --seed 11``, page 2: '4118' in a comb,
    its second '1' leaning and tall, its cell's walls drawn heavier than the
    comb's edge (left standing, taken out among the line's glyphs)."""
    assert read_where_written(bank, tmp_path, recognizer, 11, "sepp-", 1, 2, ("4118",)) == {"4118": ["4118"]}
