"""A page's digits are cut from the scan's own pixels, and checked against the working cut.

The page reader finds numbers at a working scale of at most 1024 pixels, where a
digit of a 200 or 300 dpi page is 15-25 pixels tall. Each digit it finds is cut
again from the scan's own pixels (turned and deskewed as the page was), and
read from that finer cut; the working cut stays as the mark's ``alt``, and the
digit is only as sure as the less sure of the two.
"""

from __future__ import annotations

import numpy as np
import pytest
from digitd.page import find_numbers
from digitd.records import Mark, Scan
from digitd.recognize import Recognizer
from pageset_support import bank, script, set_file  # noqa: F401 (bank: a fixture)


@pytest.fixture(scope="module")
def recognizer(shipped_model) -> Recognizer:
    return Recognizer(shipped_model)


@pytest.mark.parametrize("index", [0, 2, 4, 5])
def test_the_fine_cut_is_the_working_cut_of_the_same_digit(bank, tmp_path, index):
    """On pages scanned a quarter or half turn round and skewed, each digit's two
    cuts show the same ink: the way from the upright frame back to the scan's
    pixels is right."""
    read, _ = set_file(bank, tmp_path, 11, "turn-", index, script.make_turned)
    turned = 0
    for page in read:
        found = find_numbers(page.scan)
        turned += found.rotation != 0
        marks = [m for n in found.numbers for m in n.marks]
        assert marks and all(m.alt is not None for m in marks)
        agree = [float(np.corrcoef(m.pixels.ravel(), m.alt.ravel())[0, 1]) for m in marks]
        assert min(agree) > 0.5 and float(np.median(agree)) > 0.85, (found.rotation, found.skew, agree)
    assert turned


def test_a_cropped_digit_is_cut_once():
    """One digit on its own is read as before: one cut, no ``alt``."""
    img = np.full((120, 100), 1.0, np.float32)
    img[20:100, 46:54] = 0.1
    found = find_numbers(Scan.of_gray(img, "test"))
    (number,) = found.numbers
    assert [m.alt for m in number.marks] == [None]


def test_a_digit_is_read_from_its_fine_cut_as_sure_as_the_less_sure_cut(recognizer, mnist_path):
    with np.load(mnist_path) as d:
        x, y = d["x_test"], d["y_test"]
    three, five = x[np.flatnonzero(y == 3)[0]] / 255.0, x[np.flatnonzero(y == 5)[0]] / 255.0
    p3, p5 = recognizer.probabilities(np.stack([three, five]).astype(np.float32))
    assert p3[:10].argmax() == 3 and p5[:10].argmax() == 5
    box = (0, 0, 28, 28)
    alone, same, other = recognizer.classify([
        ([Mark(box, three.astype(np.float32))], None),
        ([Mark(box, three.astype(np.float32), alt=three.astype(np.float32))], None),
        ([Mark(box, three.astype(np.float32), alt=five.astype(np.float32))], None)])
    assert (alone.number, same.number, other.number) == ("3", "3", "3")
    assert same.confidence == pytest.approx(alone.confidence)
    assert other.confidence == pytest.approx(float(p5[3]), abs=1e-6)
    assert (alone.status, other.status) == ("ok", "uncertain")


def test_small_real_digits_on_a_page_are_read_from_the_scans_pixels(recognizer, bank):
    """real-dev's digits, 24-36 pixels tall on an A4 page at 200 dpi (10-16
    working pixels): cut from the working pixels, 7 of 3 x 136 were misread
    (flat-topped 3s as 5, closed 4s as 9); cut from the scan's, 1."""
    items = [(d, ink) for d in range(10) for ink in bank.real[d]]
    wrong = read_right = 0
    for height in (24, 30, 36):
        page = np.zeros((2339, 1654), np.float32)
        step = int(height * 2.6)
        cols = (1654 - 100) // step
        where = []
        for k, (d, ink) in enumerate(items):
            w = max(2, int(round(ink.shape[1] * height / ink.shape[0])))
            x, y = 60 + (k % cols) * step, 100 + (k // cols) * step
            script.paste(page, script.cv2.resize(ink, (w, height), interpolation=script.cv2.INTER_LINEAR), x, y)
            where.append((d, x, y, w))
        found = find_numbers(Scan.of_gray(np.clip(0.95 - 0.85 * page, 0, 1).astype(np.float32), "test"))
        readings = recognizer.classify([(list(n.marks), None) for n in found.numbers])
        for d, x, y, w in where:
            hits = [r for n, r in zip(found.numbers, readings)
                    if n.box[0] < x + w and x < n.box[0] + n.box[2] and n.box[1] < y + height and y < n.box[1] + n.box[3]]
            if len(hits) == 1 and hits[0].number is not None and len(hits[0].number) == 1:
                read_right += hits[0].number == str(d)
                wrong += hits[0].number != str(d)
    assert read_right >= 3 * len(items) - 20
    assert wrong <= 2


def test_a_rule_under_a_digits_feet_stays_out_of_its_fine_cut():
    """A rule from the second row under a digit's own pixels (taken out of the working mask,
    so not the digit's): the cut is the same with it as without it."""
    from digitd.segment import fine_mark

    def cut(rule: bool):
        source = np.full((60, 40), 0.95, np.float32)
        source[10:40, 18:22] = 0.1  # a 1
        if rule:
            source[41:43, 2:38] = 0.1
        own = np.zeros((60, 40), bool)
        own[10:40, 18:22] = True
        return fine_mark(source, np.float64([[1, 0, 0], [0, 1, 0]]), own, (40, 60), 0.85, True, (0, 0, 40, 60))

    with_rule, without = cut(True), cut(False)
    np.testing.assert_allclose(with_rule.pixels, without.pixels, atol=1e-6)
