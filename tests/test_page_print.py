"""Printed matter on a page is not handwriting, and handwriting written with a thick pen is.

Pages drawn here as in ``test_page.py``: lines of type whose letters stand
apart, a little skewed, labels set in that type, a logo's filled square with
its letters cut out (some through its sides), a digit written with a marker in
a comb, separators that make no number, and a neat number whose point is no
letter of type.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from digitd.layout import Glyph, type_sizes, well_formed
from digitd.page import find_numbers
from test_page import WORDS, Page, counts, digit_ink, inside


def set_apart(page: Page, s: str, x: int, y: int, angle: float, scale: float = 0.8) -> None:
    """Type whose letters stand apart at a fixed advance (a typewriter's, a monospaced
    font's), its words run together, turned by ``angle`` degrees about its start
    (a line left a little skewed)."""
    layer = np.zeros_like(page.img)
    cap = cv2.getTextSize("H", cv2.FONT_HERSHEY_SIMPLEX, scale, 2)[0][1]
    for i, ch in enumerate(s):
        cv2.putText(layer, ch, (int(x + i * 0.8 * cap), y), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, 2, cv2.LINE_AA)
    layer = cv2.warpAffine(layer, cv2.getRotationMatrix2D((x, y), angle, 1.0), layer.shape[::-1])
    page.img[:] = np.minimum(page.img, 255 - layer.astype(np.int32) * (255 - 20) // 255).astype(np.uint8)


@pytest.mark.parametrize("seed", [60, 62, 63])
def test_lines_of_type_set_apart_are_not_numbers(seed):
    page = Page(seed)
    truth = page.number(str(int(page.rng.integers(100, 99999))), 700, 330, 70)
    y = 560
    for _ in range(4):
        words = "".join(page.rng.choice(WORDS, 6)) + str(int(page.rng.integers(1, 2031)))
        set_apart(page, words, 150, y, 0.5 if seed % 2 else -0.5)
        y += 40
    found = find_numbers(page.scan())
    assert counts(found) == [len(page.truth[0][0])]
    assert inside(found.numbers[0].box, truth)


@pytest.mark.parametrize("seed", [70, 73])
def test_labels_set_in_the_type_of_a_line_of_text_are_not_numbers(seed):
    page = Page(seed)
    y = 200
    for _ in range(3):
        set_apart(page, "".join(page.rng.choice(WORDS, 6)), 150, y, 0.5)
        y += 40
    for k, label in enumerate(("Signature:", "Change:", "Reference:")):
        row = 500 + 200 * k
        set_apart(page, label, 150, row, 0.5)
        page.number(str(int(page.rng.integers(100, 9999))), 600, row - 65, 75)
    found = find_numbers(page.scan())
    assert counts(found) == [len(t) for t, _ in page.truth]
    for number, (_, truth) in zip(found.numbers, page.truth):
        assert inside(number.box, truth), (number.box, truth)


@pytest.mark.parametrize(("side", "scale", "thickness"), [(120, 2.2, 6), (100, 1.8, 5), (130, 2.4, 6)])
def test_a_logos_filled_square_with_its_letters_cut_out_is_not_a_number(side, scale, thickness):
    page = Page(64)
    cv2.rectangle(page.img, (150, 120), (150 + side, 120 + side), 25, -1)
    (w, h), _ = cv2.getTextSize("HH", cv2.FONT_HERSHEY_DUPLEX, scale, thickness)
    cv2.putText(page.img, "HH", (150 + (side - w) // 2, 120 + (side + h) // 2), cv2.FONT_HERSHEY_DUPLEX, scale, 245,
                thickness, cv2.LINE_AA)
    page.text("Lab record", 150, 420, 1.4)
    truth = page.number("760", 500, 600, 75)
    found = find_numbers(page.scan())
    assert counts(found) == [3]
    assert inside(found.numbers[0].box, truth)


@pytest.mark.parametrize("pen", [13, 17])
def test_a_digit_written_with_a_marker_in_a_comb_is_read(pen):
    page = Page(65)
    cell, top = 90, 800
    for i in range(4):
        cv2.rectangle(page.img, (500 + i * cell, top), (500 + (i + 1) * cell, top + 100), 20, 2)
    boxes = [page.number(ch, 500 + i * cell + 18, top + 20, 56) for i, ch in enumerate("2438")]
    x, y, w, h = boxes[0]
    region = page.img[y - 8 : y + h + 8, x - 8 : x + w + 8]
    region[:] = cv2.erode(region, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (pen, pen)))  # a marker's stroke
    found = find_numbers(page.scan())
    assert counts(found) == [4]
    assert inside(found.numbers[0].marks[0].box, boxes[0], slack=16)


@pytest.mark.parametrize(("text", "good"), [
    ("12,500.75", True), ("3,75", True), ("1.234,5", True), ("12/05/2026", True), ("-42", True), ("1,234,567", True),
    ("807,5.67", False), ("212,0.86", False), ("395-.22", False), ("12/0.5", False), ("1/2", False), ("1,2,3", False),
])
def test_separators_make_a_number_or_not(text, good):
    k, marks = 0, []
    for ch in text:
        if ch.isdigit():
            k += 1
        else:
            marks.append((k, ch))
    assert well_formed(marks, k) is good


def test_separators_that_make_no_number_leave_a_doubt():
    page = Page(66)
    page.number("212,0.86", 400, 800, 75)
    found = find_numbers(page.scan())
    assert counts(found) == [6]
    assert found.numbers[0].separators == ((3, ","), (4, "."))
    assert "separators that make no number" in found.numbers[0].doubts


@pytest.mark.parametrize("digit", ["4", "9"])
def test_a_digit_in_a_comb_of_one_cell_is_read_without_its_walls(digit):
    page = Page(67)
    cell, top = 84, 820
    cv2.line(page.img, (520, top - cell // 6), (520, top + cell), 20, 2)  # two ticks on a base line, open at the top
    cv2.line(page.img, (520 + cell, top - cell // 6), (520 + cell, top + cell), 20, 2)
    cv2.line(page.img, (520, top + cell), (520 + cell, top + cell), 20, 2)
    truth = page.number(digit, 520 + 22, top + 14, 56)
    found = find_numbers(page.scan())
    assert counts(found) == [1]
    assert inside(found.numbers[0].box, truth, slack=8)


@pytest.mark.parametrize("seed", range(3))
def test_a_short_thick_minus_before_a_number_is_kept(seed):
    page = Page(68 + seed)
    height, pen = 36, 7
    cv2.line(page.img, (400, 800 + height // 2), (400 + 12, 800 + height // 2), 35, pen, cv2.LINE_AA)  # as tall as half its length
    truth = page.number("202", 400 + 12 + 14, 800, height)
    found = find_numbers(page.scan())
    assert counts(found) == [3]
    assert inside(found.numbers[0].box, truth)
    assert found.numbers[0].separators == ((0, "-"),)


@pytest.mark.parametrize("seed", range(3))
def test_a_minus_too_stubby_to_tell_makes_the_number_doubtful(seed):
    """A minus drawn as a blob barely wider than tall is not read as one, but the
    number is not given without it under ``ok``: it is doubted."""
    page = Page(77 + seed)
    height, pen = 36, 5
    cv2.line(page.img, (400, 800 + height // 2), (400 + 6, 800 + height // 2), 35, pen, cv2.LINE_AA)  # 11 x 5
    truth = page.number("202", 400 + 6 + 16, 800, height)
    found = find_numbers(page.scan())
    assert counts(found) == [3]
    assert inside(found.numbers[0].box, truth)
    assert found.numbers[0].separators == ()
    assert found.numbers[0].doubts == ("a mark before the digits was not read",)


@pytest.mark.parametrize("seed", range(3))
def test_a_comma_stays_with_its_number_beside_a_line_that_starts_lower(seed):
    page = Page(71 + seed)
    left = page.number("178,023", 200, 800, 70)
    right = page.number("4519", 1150, 842, 70)  # another column's line, starting between the digits' top and the comma
    found = find_numbers(page.scan())
    assert counts(found) == [6, 4]
    assert inside(found.numbers[0].box, left) and inside(found.numbers[1].box, right)
    assert found.numbers[0].separators == ((3, ","),)


@pytest.mark.parametrize("seed", range(3))
def test_a_speck_beside_a_digit_in_a_comb_does_not_part_the_comb(seed):
    page = Page(74 + seed)
    cell, top = 100, 800
    for i in range(5):
        cv2.rectangle(page.img, (500 + i * cell, top), (500 + (i + 1) * cell, top + 120), 20, 2)
    boxes = [page.number(ch, 500 + i * cell + 26, top + 22, 72) for i, ch in enumerate("7790")]
    cv2.circle(page.img, (boxes[3][0] - 8, boxes[3][1] + 4), 5, 35, -1, cv2.LINE_AA)  # a speck of ink by the last digit
    found = find_numbers(page.scan())
    assert counts(found) == [4]
    assert [m.box[0] // cell for m in found.numbers[0].marks] == [b[0] // cell for b in boxes]


def outlined_glyphs(labels: np.ndarray, sizes: list[tuple[int, int]], x: int, foot: int, first: int) -> list[Glyph]:
    """Glyphs drawn as outlines of one pen (2 pixels) into ``labels``, side by side on one baseline."""
    out = []
    for k, (w, h) in enumerate(sizes):
        label = first + k
        cv2.rectangle(labels, (x, foot - h), (x + w - 1, foot - 1), label, 2)
        out.append(Glyph(x, foot - h, w, h, int(np.count_nonzero(labels == label)), (label,)))
        x += w + 3
    return out


def test_a_line_of_small_type_run_into_handwriting_gives_no_type_size_of_the_handwriting():
    labels = np.zeros((400, 1200), np.int32)
    mixed = outlined_glyphs(labels, [(6, 8)] * 20 + [(14, 26)] * 8, 20, 100, 1)  # type, then a number written on
    numbers = [outlined_glyphs(labels, [(14, 26)] * 4, 20, 200 + 80 * k, 100 + 10 * k) for k in range(3)]
    sizes = type_sizes([mixed, *numbers], 8.0, labels)
    assert not any(lo <= 26 <= hi for lo, hi in sizes), sizes


@pytest.mark.parametrize(("letters", "angle"), [("HW", 2.0), ("WW", -1.5), ("MK", 1.0)])
def test_a_logos_block_with_letters_cut_to_its_edges_is_not_a_number(letters, angle):
    page = Page(78)
    side = 120
    (w, h), base = cv2.getTextSize(letters, cv2.FONT_HERSHEY_DUPLEX, 2.0, 3)
    text = np.zeros((h + base + 8, w + 8), np.uint8)
    cv2.putText(text, letters, (4, h + 4), cv2.FONT_HERSHEY_DUPLEX, 2.0, 255, 3, cv2.LINE_AA)
    ys, xs = np.nonzero(text)
    text = cv2.resize(text[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1], (side + 8, int(0.4 * side)))[:, 4:-4]
    logo = np.full((side, side), 30, np.uint8)  # letters in white as wide as the block, cut through its sides
    y0 = (side - text.shape[0]) // 2
    logo[y0 : y0 + text.shape[0]] = np.maximum(logo[y0 : y0 + text.shape[0]],
                                               (text.astype(np.int32) * 240 // 255).astype(np.uint8))
    logo = cv2.warpAffine(logo, cv2.getRotationMatrix2D((side / 2, side / 2), angle, 1.0), (side, side),
                          borderValue=245)
    page.img[150 : 150 + side, 150 : 150 + side] = logo
    page.text("Delivery record", 150, 420, 1.4)
    truth = page.number("4186", 500, 600, 75)
    found = find_numbers(page.scan())
    assert counts(found) == [4]
    assert inside(found.numbers[0].box, truth)


def neat_number(page: Page, text: str, x: int, y: int, height: int) -> tuple[int, int, int, int]:
    """Handwritten digits on one baseline, set close, all but one of one height
    (a neat hand), '.' a pen's point."""
    boxes = []
    for k, ch in enumerate(text):
        if ch == ".":
            x = page.separator(ch, x, y, height) - height // 8
            continue
        files = page.pool[ch]
        h = height - (k == 1) * height // 10  # one digit a little shorter
        boxes.append(page.paste(digit_ink(files[int(page.rng.integers(len(files)))]), x, y + height - h, h))
        x = boxes[-1][0] + boxes[-1][2] + height // 8
    x0 = boxes[0][0]
    box = (x0, y, boxes[-1][0] + boxes[-1][2] - x0, height)
    page.truth.append((text.replace(".", ""), box))
    return box


@pytest.mark.parametrize(("seed", "text"), [(79, "405.23"), (80, "97.28"), (81, "3186.4")])
def test_a_neat_number_with_a_point_is_not_taken_for_type(seed, text):
    page = Page(seed)
    truth = neat_number(page, text, 500, 700, 60)
    found = find_numbers(page.scan())
    assert counts(found) == [len(text) - 1]
    assert inside(found.numbers[0].box, truth)
    assert found.numbers[0].separators[0][1] == "."
