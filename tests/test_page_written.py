"""Handwriting set as neatly as type is read when it is written on a line.

A neat hand's digits stand on one baseline, set close, all of one height:
what the page reader takes for a run of type. Type is set on no rule, while
a number written on an underline or a ruled line stands on it or a little
over it. Pages drawn as in ``test_page`` (real-dev digits, skipped when
absent) and files of ``scripts/pages.py`` (made as the script makes them)
are read through ``find_numbers`` and the shipped model.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from digitd.page import find_numbers
from digitd.recognize import Recognizer
from pageset_support import bank, overlap, script, set_file  # noqa: F401 (bank: a fixture)
from test_page import Page, digit_ink


@pytest.fixture(scope="module")
def recognizer(shipped_model) -> Recognizer:
    return Recognizer(shipped_model)


def texts(recognizer: Recognizer, scan) -> list[tuple[str, tuple]]:
    """The page's numbers (digits as the model reads them, separators) and their boxes, in reading order."""
    out = []
    for number in find_numbers(scan).numbers:
        probs = recognizer.probabilities(np.stack([m.pixels for m in number.marks]))
        digits = [str(int(np.argmax(p[:10]))) for p in probs]
        for k, ch in sorted(number.separators, reverse=True):
            digits.insert(k, ch)
        out.append(("".join(digits), number.box))
    return out


def read_where_written(bank, tmp_path, recognizer, seed: int, prefix: str, index: int, page: int,
                       wanted: tuple[str, ...]) -> dict[str, list[str]]:
    """File ``{prefix}{index}`` of ``pages.py --seed {seed}``, page ``page``: for
    each labelled number of ``wanted``, what is read where it is written."""
    make = script.make_separator_form if prefix == "sepp-" else script.make_form
    read, labels = set_file(bank, tmp_path, seed, prefix, index, make)
    scan = read[page - 1].scan
    label = labels[page - 1]
    f = scan.width / label["width"]  # a photo's labels are in the size it was taken at
    found = texts(recognizer, scan)
    out = {}
    for text in wanted:
        truth = [v * f for v in next(n for n in label["numbers"] if n["text"] == text)["box"]]
        out[text] = [t for t, box in found if overlap(box, truth) >= 0.3]
    return out


def neat_date(page: Page, text: str, x: int, y: int, height: int) -> tuple[int, int, int, int]:
    """A date in a neat hand: its digits of one height on one baseline, set
    close, the slashes drawn with the pen; the digits' box."""
    boxes = []
    for ch in text:
        if ch == "/":
            x = page.separator(ch, x, y, height) - height // 8
            continue
        files = page.pool[ch]
        boxes.append(page.paste(digit_ink(files[int(page.rng.integers(len(files)))]), x, y, height))
        x = boxes[-1][0] + boxes[-1][2] + height // 10
    x0 = boxes[0][0]
    return x0, y, boxes[-1][0] + boxes[-1][2] - x0, height


@pytest.mark.parametrize(("seed", "text", "over"), [(90, "17/09/1990", 0.3), (92, "15/10/2020", 0.4),
                                                     (93, "18/12/2008", 0.3)])
def test_a_neat_date_written_just_over_an_underline_is_read(recognizer, seed, text, over):
    """A neat date written over an underline, its feet ``over`` of its height
    above the line (the pen kept clear of it), beside a label in type."""
    page = Page(seed)
    page.text("Date of birth:", 150, 600, 1.1)
    height = 44
    box = neat_date(page, text, 480, 560, height)
    line = box[1] + height + int(over * height)
    cv2.line(page.img, (450, line), (box[0] + box[2] + 80, line), 20, 2)
    found = texts(recognizer, page.scan())
    assert [t for t, _ in found] == [text]
    assert overlap(found[0][1], box) >= 0.5


@pytest.mark.parametrize(("seed", "prefix", "index", "page", "text"), [
    (11, "page-", 18, 2, "9410803"),  # on an underline
    (11, "sepp-", 2, 1, "15/10/2020"),  # on an underline
    (11, "sepp-", 4, 3, "18/12/2008"),  # on a ruled sheet
])
def test_a_neat_number_over_a_line_in_a_page_set_is_read(bank, tmp_path, recognizer, seed, prefix, index, page, text):
    """Files of ``pages.py --seed 11``: numbers written a little over their
    line, their MNIST digits set neatly on one baseline."""
    assert read_where_written(bank, tmp_path, recognizer, seed, prefix, index, page, (text,)) == {text: [text]}


def test_a_ruled_sheet_is_deskewed_by_its_lines(bank, tmp_path, recognizer):
    """File page-0018 of ``pages.py --seed 5``, page 1: a ruled sheet scanned
    black and white, a little turned, its lines broken into steps and few
    glyph feet beside them to tell the turn by. Its lines tell it: they are
    taken out, and the numbers written on them read."""
    wanted = ("589.4", "185992")
    assert read_where_written(bank, tmp_path, recognizer, 5, "page-", 18, 1, wanted) == {t: [t] for t in wanted}


@pytest.mark.parametrize(("seed", "text"), [(100, "07490832"), (102, "42841558")])
def test_a_neat_number_on_no_line_is_not_taken_for_type(recognizer, seed, text):
    """A neat hand's digits written plain after a label in type, all of one
    height on one baseline, set close: as type stands, but each digit drawn
    with its own stroke width, as no font's are."""
    page = Page(seed)
    page.text("Reference:", 150, 600, 1.1)
    box = neat_date(page, text, 480, 560, 44)
    found = texts(recognizer, page.scan())
    assert [t for t, _ in found] == [text]
    assert overlap(found[0][1], box) >= 0.5


def test_a_neat_plain_number_in_a_page_set_is_read(bank, tmp_path, recognizer):
    """File page-0026 of ``pages.py --seed 11``, page 2: an id written plain
    after its label, its MNIST digits set neatly on one baseline."""
    assert read_where_written(bank, tmp_path, recognizer, 11, "page-", 26, 2, ("07490832",)) == {"07490832": ["07490832"]}


def test_a_ruled_sheet_is_deskewed_by_its_lines_not_the_scanners_shadow(bank, tmp_path, recognizer):
    """File page-0024 of ``pages.py --seed 23``, page 1: a ruled sheet a
    little turned, the scanner's dark shadow along its foot. The lines tell
    the turn, the inside of the shadow (the scan's rows) none: the rules are
    taken out and the numbers written on them read."""
    wanted = ("282307", "393")
    assert read_where_written(bank, tmp_path, recognizer, 23, "page-", 24, 1, wanted) == {t: [t] for t in wanted}


def test_a_box_side_in_a_page_set_parts_two_numbers(bank, tmp_path, recognizer):
    """File page-0028 of ``pages.py --seed 11``, page 1: '73,530' in a box,
    then 'Room:' in bold type and '461' on an underline, on one line."""
    wanted = ("73,530", "461")
    assert read_where_written(bank, tmp_path, recognizer, 11, "page-", 28, 1, wanted) == {t: [t] for t in wanted}
