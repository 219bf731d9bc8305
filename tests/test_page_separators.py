"""A number's own marks, and marks that are not its own.

Glyphs drawn into a label image as in ``test_page_lines``: a short label's
words set small and bold, run together (flat marks), before the digits of a
number: the end of the label is no minus. A page of ``scripts/pages.py``
whose decimal point stood on an underline and went with it: the number is
uncertain, not read whole under ``ok``.
"""

from __future__ import annotations

import zlib

import cv2
import numpy as np
import pytest
from digitd.imageio import pages, read_bytes
from digitd.layout import Glyph, gather_lines, read_number
from digitd.page import find_numbers
from pageset_support import bank, overlap, script, set_file  # noqa: F401 (bank: a fixture)
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


@pytest.mark.parametrize(("seed", "index", "page", "text"), [
    (5, 21, 1, "631.24"),  # its point sitting on an underline, taken out with it
    (11, 2, 0, "406.84"),  # its point three working pixels (dust to the glyph finder) at the 6's and 8's feet
])
def test_a_point_lost_between_digits_makes_the_number_uncertain(bank, tmp_path, seed, index, page, text):
    """A form of ``pages.py`` whose written decimal point the reader loses:
    the number's five digits are read, and the point's loss is a doubt."""
    read, labels = set_file(bank, tmp_path, seed, "page-", index, script.make_form)
    label = next(n for n in labels[page]["numbers"] if n["text"] == text)
    found = find_numbers(read[page].scan)
    number = max(found.numbers, key=lambda n: overlap(n.box, label["box"]))
    assert overlap(number.box, label["box"]) > 0.5
    assert (len(number.marks), number.separators, number.doubts) == (5, (), ("a mark between digits was not read",))


def test_a_leaning_one_beside_a_dates_slash_leaves_the_date_its_two_slashes():
    """'24/03/1996' whose slashes lean little, its '1' leaning as much: of the
    three leaning strokes, the two that cut the date are its slashes."""
    labels = np.zeros((70, 420), np.int32)
    x, k = 20, 1
    for ch in "24/03/1996":
        if ch.isdigit() and ch != "1":
            cv2.ellipse(labels, (x + 9, 35), (9, 15), 0, 0, 360, k, 2)
            x += 30
        else:  # a stroke leaning 15 degrees: a slash, or a '1' as tall as the digits
            cv2.line(labels, (x, 52 if ch == "/" else 50), (x + 9, 18 if ch == "/" else 20), k, 2)
            x += 22
        k += 1
    number = read_number(glyphs_of(labels), labels, 8.0, [], written=True)
    assert number is not None and len(number.digits) == 8
    assert (number.separators, number.doubts) == (((2, "/"), (4, "/")), ())


def test_a_comma_hanging_low_below_its_digits_stays_on_their_line():
    """A comma whose top reaches a fifth of its height into the digits' rows
    (a cropped '502,594', the crop read as a page) joins their line; it is
    not a line, and a number, of its own."""
    digits = [Glyph(x, y, w, h, w * h // 3, (i,)) for i, (x, y, w, h) in enumerate(
        [(160, 163, 60, 35), (231, 163, 47, 36), (286, 166, 45, 33), (356, 165, 26, 34), (397, 163, 33, 36),
         (446, 160, 33, 38)], 1)]
    comma = Glyph(340, 195, 7, 14, 60, (7,))
    lines = gather_lines([*digits, comma], 4.9)
    assert [[g.labels[0] for g in line] for line in lines] == [[1, 2, 3, 7, 4, 5, 6]]


def test_cropped_numbers_of_the_separator_set_keep_their_separators(bank, tmp_path):
    """Cropped dates and numbers with separators as ``pages.py`` writes them
    (seed 23, a set no rule was tuned on): the digits without their slashes or
    commas, each separator in its place; none gains a separator it lacks."""
    kept = wrong = 0
    for i in range(40):
        rng = np.random.default_rng([23, zlib.crc32(b"sepc-"), i])
        img, text = script.separator_crop(bank, rng)
        fmt = "png" if rng.random() < 0.6 else "jpeg"  # as the script draws it
        path = tmp_path / f"sepc-{i:04d}{script.EXT[fmt]}"
        script.save(path, [img], fmt, 96, rng)
        found = find_numbers(next(iter(pages(read_bytes(path, 1 << 30), 10**9))).scan)
        assert len(found.numbers) == 1
        number = found.numbers[0]
        want = tuple((sum(c.isdigit() for c in text[:k]), c) for k, c in enumerate(text) if not c.isdigit())
        if number.doubts:
            assert number.doubts == ("a mark between digits was not read",), text
            continue
        assert (len(number.marks), number.separators) == (sum(c.isdigit() for c in text), want), text
        kept += 1
    assert kept >= 36  # the rest flagged (a speck between digits not read), never read with a separator lost or made up


def test_a_digit_run_into_a_stroke_after_the_number_makes_it_uncertain():
    """'690' whose 0 is joined to a rule's remnant at its feet: the 0 and the
    stroke are one glyph far wider than a digit, which the reader cannot take
    for a digit; the number is not '69' under ok but doubted."""
    labels = np.zeros((60, 300), np.int32)
    cv2.ellipse(labels, (60, 30), (9, 15), 0, 0, 360, 1, 2)
    cv2.ellipse(labels, (90, 30), (9, 15), 0, 0, 360, 2, 2)
    cv2.ellipse(labels, (120, 30), (9, 15), 0, 0, 360, 3, 2)
    cv2.line(labels, (112, 45), (200, 45), 3, 2)  # the rule's remnant, touching the 0's foot
    number = read_number(glyphs_of(labels), labels, 8.0, [], written=True)
    assert number is not None and len(number.digits) == 2
    assert number.doubts == ("a mark after the digits was not read",)


def test_a_small_mark_after_the_number_is_no_doubt():
    labels = np.zeros((60, 300), np.int32)
    cv2.ellipse(labels, (60, 30), (9, 15), 0, 0, 360, 1, 2)
    cv2.ellipse(labels, (90, 30), (9, 15), 0, 0, 360, 2, 2)
    cv2.circle(labels, (112, 43), 2, 3, -1)  # a full stop after the number
    number = read_number(glyphs_of(labels), labels, 8.0, [], written=True)
    assert number is not None and (len(number.digits), number.doubts) == (2, ())
