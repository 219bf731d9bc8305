"""Words written beside numbers are not numbers.

Pages drawn as in ``test_page.py``: a name printed by hand, letter by letter
with a pen (OpenCV's Hershey font, each letter set apart a little and jittered),
before a handwritten number on a ruled line, or alone on its line. Its small letters stand on its baseline half as
tall as its capital and ascenders; a number's digits are all of one height.
"""

from __future__ import annotations

import cv2
import pytest
from digitd.page import find_numbers
from test_page import Page, counts, inside

NAMES = ("Anna", "Mark", "Helen", "Nora", "Kate", "Ethan", "Martin")
X_HIGH = set("acemnorsuvwxz")  # letters no taller than x-height
HAND_X = 0.8  # a hand's small letters drawn this much smaller than the font's (x-height about 0.6 of a capital)


def write_word(page: Page, word: str, x: int, foot: int, height: int, joined: bool = False) -> int:
    """A word printed by hand, its capitals ``height`` tall, standing on ``foot``
    (within a pixel or two), its x-height letters run into each other when
    ``joined``; returns its right end."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = height / cv2.getTextSize("H", font, 1.0, 1)[0][1]
    pen = max(3, height // 16)
    for ch, after in zip(word, word[1:] + " "):
        size = scale * (HAND_X if ch.islower() else 1.0)
        (w, _), _ = cv2.getTextSize(ch, font, size, pen)
        cv2.putText(page.img, ch, (x, foot + int(page.rng.integers(-2, 3))), font, size, 35, pen, cv2.LINE_AA)
        x += w - 3 * pen if joined and {ch, after} <= X_HIGH else w + int(height * page.rng.uniform(0.12, 0.25))
    return x


@pytest.mark.parametrize("seed", range(4))
def test_a_name_written_before_a_number_on_a_ruled_line_is_left_out(seed):
    page = Page(80 + seed)
    height = 56
    for k in range(3):
        foot = 500 + 220 * k
        cv2.line(page.img, (120, foot + 6), (1530, foot + 6), 120, 2)
        end = write_word(page, NAMES[(seed + 2 * k) % len(NAMES)], 200, foot, height)
        text = str(int(page.rng.integers(10, 99999)))
        page.number(text, end + int(height * page.rng.uniform(0.8, 1.4)), foot - height, height)
    found = find_numbers(page.scan())
    assert counts(found) == [len(t) for t, _ in page.truth]
    for number, (_, truth) in zip(found.numbers, page.truth):
        assert inside(number.box, truth), (number.box, truth)


@pytest.mark.parametrize("seed", range(3))
def test_a_name_alone_on_its_line_is_no_number(seed):
    page = Page(90 + seed)
    write_word(page, NAMES[seed], 300, 600, 60)
    truth = page.number(str(int(page.rng.integers(100, 99999))), 300, 900, 60)
    found = find_numbers(page.scan())
    assert counts(found) == [len(page.truth[0][0])]
    assert inside(found.numbers[0].box, truth)


@pytest.mark.parametrize("name", ["Mark", "Nora", "Karl"])
def test_a_name_whose_small_letters_run_together_is_no_number(name):
    page = Page(95)
    write_word(page, name, 300, 600, 60, joined=True)
    truth = page.number("2804", 300, 900, 60)
    found = find_numbers(page.scan())
    assert counts(found) == [4]
    assert inside(found.numbers[0].box, truth)
