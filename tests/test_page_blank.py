"""A page without writing reads no number: hairs and dust are no pen strokes.

Files of ``scripts/pages.py --set nondigit`` (each made from its own seed, as
the script makes it, and saved in its format), read through
``find_numbers``: a blank page whose hairs on the glass (thin and light)
curl like an 8 and a 1, and a ruled sheet with the same. Thin handwriting
on a ruled sheet of ``--set pages`` (300 dpi, black and white, its pen a
working pixel wide but dark) is still read.
"""

from __future__ import annotations

import pytest
from digitd.page import find_numbers
from pageset_support import bank, overlap, script, set_file  # noqa: F401 (bank: a fixture)


@pytest.mark.parametrize(("prefix", "index", "make"), [
    ("blank-", 3, "make_blank"),  # hairs curled like an 8 and a 1
    ("ruled-", 2, "make_ruled"),  # a hair on a ruled sheet like a 2
])
def test_hairs_on_an_empty_page_are_no_number(bank, tmp_path, prefix, index, make):
    read, labels = set_file(bank, tmp_path, 11, prefix, index, getattr(script, make))
    assert [label["numbers"] for label in labels] == [[]]
    assert [find_numbers(page.scan).numbers for page in read] == [()]


def test_thin_dark_handwriting_is_kept(bank, tmp_path):
    """File page-0008 of ``pages.py --seed 5``: a ruled sheet at 300 dpi in
    black and white whose 7 is written with a fine pen, a working pixel wide
    but dark. Every number is found where it is written, with its digits."""
    read, labels = set_file(bank, tmp_path, 5, "page-", 8, script.make_form)
    numbers = labels[0]["numbers"]
    assert [n["text"] for n in numbers] == ["-729", "-549", "7"]
    found = find_numbers(read[0].scan).numbers
    assert len(found) == 3
    for label, number in zip(numbers, found):
        assert overlap(number.box, label["box"]) >= 0.3  # matched as accuracy.py matches
        assert len(number.marks) == sum(c.isdigit() for c in label["text"])
