"""The page's mark height is its glyphs', not a logo's.

The marks' median height sets how long a straight run must be to be a rule
(2.5 of it at least: a large digit's bar is none). A logo far larger than
everything else leaves the first look at the ink only the large marks to
count; a short underline, shorter than 2.5 of those, would stay with the
digits standing on it. A page drawn as in ``test_page`` (real-dev digits,
skipped when absent), and files of ``scripts/pages.py``, read through
``find_numbers`` and the shipped model.
"""

from __future__ import annotations

import cv2
from pageset_support import bank, overlap  # noqa: F401 (bank: a fixture)
from test_page import Page
from test_page_written import read_where_written, recognizer, texts  # noqa: F401 (a fixture)


def test_a_number_on_a_short_underline_beside_a_large_logo_is_read(recognizer):
    page = Page(62)
    cv2.circle(page.img, (1380, 260), 170, 40, -1)  # a logo, its marks far larger than any other
    cv2.circle(page.img, (1060, 300), 130, 40, -1)
    page.text("Delivery note", 150, 200, 1.4, thickness=3)
    for k in range(4):
        page.text("Goods are to be checked on arrival and any damage noted here.", 150, 600 + 45 * k, 0.9)
    page.text("Qty:", 150, 1100, 1.0)
    box = page.number("876", 300, 1030)
    foot = box[1] + box[3] - 3
    cv2.line(page.img, (290, foot), (500, foot), 20, 2)  # an underline the digits' feet cross, 1/8 of the page wide
    found = texts(recognizer, page.scan())
    assert [t for t, b in found if overlap(b, box) >= 0.5] == ["876"]


def test_numbers_on_pages_with_a_large_logo_in_the_page_set_are_read(bank, tmp_path, recognizer):
    """Files of ``pages.py --seed 11``: '876' on a short underline (page-0009)
    and a comb's one digit '9' (page-0003), each on a page whose logo outweighs
    its type."""
    assert read_where_written(bank, tmp_path, recognizer, 11, "page-", 9, 1, ("876",)) == {"876": ["876"]}
    assert read_where_written(bank, tmp_path, recognizer, 11, "page-", 3, 1, ("9",)) == {"9": ["9"]}
