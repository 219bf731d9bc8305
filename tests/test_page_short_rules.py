"""A digit standing on an underline too short to be found as a rule.

Rules are straight runs a twelfth of the page wide at least; a short field's
underline is shorter, and a digit whose feet cross it is one piece with it,
far wider than a digit: no number was read. The line (rows inked the whole
way across at the piece's feet, running on beyond the digit at both ends) is
cut off, and the digit read, uncertain: it lost the strokes that lay along
the line. A digit's own flat foot (a 2's) ends where its stroke comes down
and is kept. A page drawn as in ``test_page`` (real-dev digits, skipped when
absent), and a file of ``scripts/pages.py``, read through ``find_numbers``
and the shipped model.
"""

from __future__ import annotations

import cv2
import numpy as np
from digitd.layout import Glyph
from digitd.page import CUT_OFF, find_numbers, short_rule
from pageset_support import bank, overlap  # noqa: F401 (bank: a fixture)
from test_page import Page
from test_page_written import read_where_written, recognizer, texts  # noqa: F401 (a fixture)


def test_a_digit_on_a_short_underline_is_read_and_doubted(recognizer):
    page = Page(71)
    page.text("Goods are to be checked on arrival and any damage noted here.", 150, 400, 0.9)
    page.text("Box:", 150, 700, 1.0)
    box = page.number("5", 300, 630)
    foot = box[1] + box[3] - 3
    cv2.line(page.img, (box[0] - 25, foot), (box[0] + box[2] + 40, foot), 20, 2)  # a twentieth of the page wide
    scan = page.scan()
    assert [t for t, b in texts(recognizer, scan) if overlap(b, box) >= 0.5] == ["5"]
    number = max(find_numbers(scan).numbers, key=lambda n: overlap(n.box, box))
    assert CUT_OFF in number.doubts


def test_a_twos_flat_foot_is_no_short_rule():
    """A '2' drawn wide, its foot a flat stroke the whole width of the glyph:
    no line runs on beyond where its stroke comes down."""
    labels = np.zeros((40, 80), np.int32)
    cv2.ellipse(labels, (20, 12), (12, 8), 0, 180, 360, 1, 2)
    cv2.line(labels, (32, 12), (8, 34), 1, 2)
    cv2.line(labels, (8, 34), (62, 34), 1, 2)
    x, y, w, h = cv2.boundingRect((labels == 1).astype(np.uint8))
    assert short_rule(Glyph(x, y, w, h, int((labels == 1).sum()), (1,)), labels) is None


def test_a_digit_on_a_short_underline_in_the_page_set_is_read(bank, tmp_path, recognizer):
    """File page-0018 of ``pages.py --seed 11``, page 1: a '5' on a field's
    underline shorter than a twelfth of the page."""
    assert read_where_written(bank, tmp_path, recognizer, 11, "page-", 18, 1, ("5",)) == {"5": ["5"]}
