"""Printed marks are no handwritten numbers.

Files of ``scripts/pages.py --set pages`` (each made from its own seed, as
the script makes it, and saved in its format), read through
``find_numbers``: every number found is one written by hand where the
labels say. Small type at the working resolution (a label's capitals, the
colon after 'Phone', a footer's 'Page 1 of 4') stands lower than any
handwritten digit.
"""

from __future__ import annotations

import pytest
from digitd.page import find_numbers
from pageset_support import bank, overlap, script, set_file  # noqa: F401 (bank: a fixture)


def extras(read, labels) -> list[list[tuple[int, int, int, int]]]:
    """Per page, the boxes of the numbers found that match no labelled one (as accuracy.py matches)."""
    out = []
    for page, label in zip(read, labels):
        boxes = [n["box"] for n in label["numbers"]]
        found = find_numbers(page.scan).numbers
        out.append([n.box for n in found if not any(overlap(n.box, b) >= 0.3 for b in boxes)])
    return out


@pytest.mark.parametrize(("seed", "index"), [
    (5, 15),  # the colon after 'Phone', a label's end, the footer 'Page 1 of 4'
    (23, 13),  # a short label in small capitals with its colon
])
def test_small_type_is_no_number(bank, tmp_path, seed, index):
    read, labels = set_file(bank, tmp_path, seed, "page-", index, script.make_form)
    assert extras(read, labels) == [[]] * len(read)


def test_a_written_name_with_a_descender_is_a_word(bank, tmp_path):
    """File page-0022 of ``pages.py --seed 5``: 'Cathy 0141' written on a
    ruled line. Its small letters are the 'a' and the 'y', whose tail hangs
    below the line: the name is a word and goes, the number beside it stays."""
    read, labels = set_file(bank, tmp_path, 5, "page-", 22, script.make_form)
    assert [n["text"] for n in labels[0]["numbers"]] == ["0141", "797"]
    found = find_numbers(read[0].scan).numbers
    assert [len(n.marks) for n in found] == [4, 3]
    assert [overlap(n.box, label["box"]) >= 0.3 for n, label in zip(found, labels[0]["numbers"])] == [True, True]


def test_a_rubber_stamps_letters_are_no_numbers(bank, tmp_path):
    """File turn-0001 of ``pages.py --set turned --seed 11``: a form scanned a
    quarter turn round with a round stamp in red, its letters and date
    broken and pale against the page's black type. Only the six numbers
    written by hand are found."""
    read, labels = set_file(bank, tmp_path, 11, "turn-", 1, script.make_turned)
    assert [n["text"] for n in labels[0]["numbers"]] == ["0", "5", "8343124", "698", "975.4", "48292201"]
    assert extras(read, labels) == [[]]
    assert len(find_numbers(read[0].scan).numbers) == 6


@pytest.mark.parametrize(("seed", "index", "rotations"), [
    (41, 2, [90, 270, 270]),  # black and white; on page 3 a few big marks outweigh its small type
    (41, 3, [270, 270]),  # a ruled sheet on its side with a black bar along its edge
    (53, 3, [90]),  # a phone photo, the page's shadow round it
])
def test_a_page_whose_rules_or_bars_outweigh_its_writing_is_read_as_a_page(bank, tmp_path, seed, index, rotations):
    """Files of ``pages.py --set turned``: pages whose few large marks (rules
    running down, an edge bar, the desk) made the first look take them for
    one cropped number (read whole, into extra numbers). Their many
    glyph-sized marks make them pages, read upright."""
    read, labels = set_file(bank, tmp_path, seed, "turn-", index, script.make_turned)
    assert [label["rotation"] for label in labels] == rotations
    assert [find_numbers(page.scan).rotation for page in read] == rotations


def test_a_combs_ticks_left_standing_are_no_ones(bank, tmp_path):
    """File page-0014 of ``pages.py --seed 5``, page 1: a '4' written in the
    first cell of a comb of three whose ticks stay on the page (the rule
    under them not found): three strokes of one height, evenly spaced, are
    the comb's, and the number is the '4' alone."""
    read, labels = set_file(bank, tmp_path, 5, "page-", 14, script.make_form)
    assert [n["text"] for n in labels[0]["numbers"]] == ["397.1", "4"]
    found = find_numbers(read[0].scan).numbers
    assert [len(n.marks) for n in found] == [4, 1]
    assert extras(read[:1], labels[:1]) == [[]]
