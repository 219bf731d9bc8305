"""The page reader's safety: no number read wrong under ``ok``, no printed mark read as a number.

Glyphs drawn into a label image as in ``test_page_lines``, the rules taken
out drawn into a ``ruled`` image beside it.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from digitd.layout import TRAILING, UNSURE_POINT, Glyph, drop_words, is_digit_like, read_layout, read_number, split_at_gaps
from digitd.page import Frame, drop_hairs
from test_page_lines import glyphs_of


def comb(cells: int, standing: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels, ruled): a comb of ``cells`` boxes 30 pixels wide, a digit (a ring
    25 pixels tall) in each, its walls taken out with its rule but wall
    ``standing``, drawn heavier, left on the page as a glyph."""
    labels = np.zeros((90, 60 + 30 * cells), np.int32)
    ruled = np.zeros_like(labels, np.uint8)
    cv2.rectangle(ruled, (40, 60), (40 + 30 * cells, 61), 1, -1)
    label = 1
    for k in range(cells + 1):
        x = 40 + 30 * k
        if k == standing:
            cv2.rectangle(labels, (x, 20), (x + 1, 59), label, -1)
            label += 1
        else:
            cv2.rectangle(ruled, (x, 20), (x, 59), 1, -1)
        if k < cells:
            cv2.ellipse(labels, (x + 15, 45), (6, 12), 0, 0, 360, label, 2)
            label += 1
    return labels, ruled


@pytest.mark.parametrize("standing", [1, 3, 4])
def test_a_combs_wall_left_standing_parts_its_cells(standing):
    """A comb's wall the rule finder left (drawn heavier than the others) is no
    digit and no letter: it parts two cells as the walls taken out do, and the
    comb's four digits are one number, none lost."""
    labels, ruled = comb(4, standing)
    numbers = read_layout(labels, glyphs_of(labels), ruled)
    assert [(len(n.digits), n.separators, n.doubts) for n in numbers] == [(4, (), ())]
    assert all(g.w > 2 for g in numbers[0].digits)


def two_digits_and(point: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(labels, ruled): two rings 31 pixels tall, their feet on row 40, and a
    small mark ``(x, y, w, h)`` between them; a rule taken out on rows 45-46."""
    labels = np.zeros((60, 200), np.int32)
    cv2.ellipse(labels, (80, 25), (9, 15), 0, 0, 360, 1, 2)
    cv2.ellipse(labels, (120, 25), (9, 15), 0, 0, 360, 2, 2)
    x, y, w, h = point
    labels[y : y + h, x : x + w] = 3
    ruled = np.zeros_like(labels, np.uint8)
    ruled[45:47, 40:160] = 1
    return labels, ruled


@pytest.mark.parametrize(("point", "unsure"), [
    ((98, 37, 4, 4), False),  # a pen's dot in the gap at the digits' feet
    ((87, 42, 4, 3), True),  # under the first digit's columns, below its ink: its stroke's end broken off
    ((99, 34, 3, 7), True),  # a short upright stroke at the feet: a stroke's end, no dot
    ((98, 40, 4, 5), True),  # hanging below the feet to the rule: a comma whose tail went with the rule
])
def test_a_point_that_may_be_a_strokes_end_or_a_comma_is_a_doubt(point, unsure):
    """A mark read as a point between two digits keeps its reading, but the
    number is uncertain when the mark may be no point: a digit's stroke broken
    off, or a comma cut short by the rule taken out."""
    labels, ruled = two_digits_and(point)
    number = read_number(glyphs_of(labels), labels, 8.0, [], written=True, ruled=ruled)
    assert number is not None and number.separators == ((1, "."),)
    assert number.doubts == ((UNSURE_POINT,) if unsure else ())


def test_a_hair_beside_the_pages_writing_is_no_number():
    """A straight line one pixel wide, as dark as the pen but carrying a
    fraction of its ink across it (a hair, a scratch on the glass), is no '1'
    on a page whose numbers are written with a pen's full stroke."""
    labels = np.zeros((120, 300), np.int32)
    for k in range(3):
        cv2.ellipse(labels, (60 + 30 * k, 40), (9, 15), 0, 0, 360, k + 1, 4)
    labels[70:95, 200] = 4  # the hair
    mask = (labels > 0).astype(np.uint8)
    frame = Frame(mask=mask, labels=labels, ruled=np.zeros_like(mask), ratio=mask.astype(np.float32),
                  back=np.array([[1, 0, 0], [0, 1, 0]], np.float64), scale=1.0, level=1.0)
    numbers = read_layout(labels, glyphs_of(labels), frame.ruled)
    assert sorted(len(n.digits) for n in numbers) == [1, 3]
    assert [len(n.digits) for n in drop_hairs(frame, numbers)] == [3]


@pytest.mark.parametrize(("mark", "doubt"), [
    ((140, 27, 12, 14), True),  # half a digit's height, read as nothing: a faint digit broken up
    ((140, 37, 4, 4), False),  # a point at the feet after the number
    ((140, 38, 3, 3), False),  # dust
])
def test_a_broken_mark_after_the_last_digit_is_a_doubt(mark, doubt):
    """What stands after a number's last digit, as tall as a third of a digit or
    more, that the reader takes for no separator may be the last digit broken
    into pieces too small to read: the number is not read short under ``ok``."""
    labels = np.zeros((60, 200), np.int32)
    cv2.ellipse(labels, (80, 25), (9, 15), 0, 0, 360, 1, 2)
    cv2.ellipse(labels, (110, 25), (9, 15), 0, 0, 360, 2, 2)
    x, y, w, h = mark
    cv2.ellipse(labels, (x + w // 2, y + h // 2), (w // 2, h // 2), 0, 0, 360, 3, 1)
    number = read_number(glyphs_of(labels), labels, 8.0, [], written=True)
    assert number is not None and len(number.digits) == 2
    assert (TRAILING in number.doubts) == doubt


@pytest.mark.parametrize(("end_top", "word"), [(22, True), (10, False)])
def test_a_capital_run_into_a_small_letter_makes_a_word(end_top, word):
    """'Mark' written with its 'M' and 'a' run together: the joined glyph, as
    wide as two letters, ends in a small letter (its last columns reach only
    x-height), which with the 'r' makes a word, left out. Two digits run
    together, both full height, do not."""
    labels = np.zeros((60, 120), np.int32)
    cv2.rectangle(labels, (10, 10), (35, 40), 1, 2)  # 'M'
    cv2.rectangle(labels, (35, end_top), (58, 40), 1, 2)  # 'a' run into it
    cv2.rectangle(labels, (64, 22), (74, 40), 2, 2)  # 'r'
    cv2.rectangle(labels, (80, 10), (95, 40), 3, 2)  # 'k'
    glyphs = glyphs_of(labels)
    assert drop_words(glyphs, labels) == ([] if word else [glyphs])


def test_a_broken_rings_sliver_does_not_part_it_from_the_next_digit():
    """A faint 0 broken into an arc and a sliver one pixel wide, then a digit
    twice the sliver's height: the sliver does not set the run's height, so
    the 0's pieces stay in the number's run, not cut off as a run of their own."""
    glyphs = [Glyph(20, 30, 7, 10, 30, (1,)), Glyph(29, 32, 1, 8, 8, (2,)),
              Glyph(37, 21, 14, 19, 90, (3,)), Glyph(56, 21, 14, 19, 90, (4,))]
    assert split_at_gaps(glyphs) == [glyphs]


@pytest.mark.parametrize(("mark", "doubt"), [((50, 19, 8, 12), True), ((55, 37, 4, 4), False)])
def test_a_mark_before_the_first_digit_is_a_doubt(mark, doubt):
    """A mark before a number's first digit a third of its height or more that
    is no minus (a faint leading digit broken up) makes the number uncertain; a
    point or dust there does not."""
    labels = np.zeros((60, 200), np.int32)
    x, y, w, h = mark
    cv2.ellipse(labels, (x + w // 2, y + h // 2), (w // 2, h // 2), 0, 0, 360, 1, 1)
    cv2.ellipse(labels, (80, 25), (9, 15), 0, 0, 360, 2, 2)
    cv2.ellipse(labels, (110, 25), (9, 15), 0, 0, 360, 3, 2)
    number = read_number(glyphs_of(labels), labels, 8.0, [], written=True)
    assert number is not None and len(number.digits) == 2
    assert ("a mark before the digits was not read" in number.doubts) == doubt


@pytest.mark.parametrize("dot", [True, False])
def test_a_point_touching_a_digit_corner_to_corner_is_a_doubt(dot):
    """A decimal point whose corner touches the next digit's (one piece to the
    glyph finder, two when pixels join side to side only) is no part of the
    digit: the number, read without it, is uncertain."""
    labels = np.zeros((60, 160), np.int32)
    cv2.ellipse(labels, (75, 25), (9, 15), 0, 0, 360, 1, 2)
    labels[10:41, 100:119] = 2
    labels[12:39, 102:117] = 0  # a '0' drawn square, its corner at (100, 40)
    if dot:
        labels[41:45, 95:100] = 2  # the point, corner to corner with it
    number = read_number(glyphs_of(labels), labels, 8.0, [], written=True)
    assert number is not None and len(number.digits) == 2 and number.separators == ()
    assert number.doubts == (("a mark between digits was not read",) if dot else ())


def joined(labels: np.ndarray) -> Glyph:
    """All the labels' pieces as one glyph."""
    x, y, w, h = cv2.boundingRect((labels > 0).astype(np.uint8))
    return Glyph(x, y, w, h, int(np.count_nonzero(labels)), tuple(range(1, int(labels.max()) + 1)))


@pytest.mark.parametrize("box", [True, False])
def test_a_box_left_standing_with_a_mark_in_it_is_no_digit(box):
    """A comb of two cells the rule finder left on the page (its edges and
    walls straight lines the whole way across or down) with a stroke in a
    cell is no digit; a 0 with a dot in it is one."""
    labels = np.zeros((60, 120), np.int32)
    if box:
        labels[10:41, 20:22] = 1
        labels[10:41, 50:52] = 1
        labels[10:41, 80:82] = 1
        labels[39:41, 20:82] = 1  # open at the top
        cv2.line(labels, (30, 35), (38, 17), 2, 2)
    else:
        cv2.ellipse(labels, (50, 25), (12, 15), 0, 0, 360, 1, 2)
        labels[24:27, 49:52] = 2
    assert is_digit_like(joined(labels), labels) != box
