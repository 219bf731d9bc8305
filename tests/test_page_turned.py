"""Pages scanned a quarter or half turn round are read upright.

Files of ``scripts/pages.py --set turned`` (each made from its own seed, as the
script makes it, and saved in its format), read through ``find_numbers``: a
form turned three quarters (its small type tells up from down by its margin
and its feet at the working resolution), ruled sheets turned half round and a
quarter (no type: the rules run down the page, the writing stands on them), a
form whose small bold type runs its letters together into words standing up,
a ruled sheet a quarter round whose faint slanting rules are only dashes.
"""

from __future__ import annotations

import pytest
from digitd.page import find_numbers
from pageset_support import bank, script, set_file  # noqa: F401 (bank: a fixture)


@pytest.mark.parametrize(("seed", "index", "rotations"), [
    (11, 4, [180, 270, 270]),  # a ruled sheet half round; forms of small type three quarters
    (11, 5, [270]),
    (53, 7, [180, 180, 90]),  # a form, a ruled sheet half round, a ruled sheet a quarter
    (41, 9, [90]),  # a form of bold small type, its words run together standing up
    (53, 12, [90, 90]),  # a form; a ruled sheet whose faint rules, left slanting, are dashes
])
def test_turned_pages_are_read_upright(bank, tmp_path, seed, index, rotations):
    read, labels = set_file(bank, tmp_path, seed, "turn-", index, script.make_turned)
    assert [label["rotation"] for label in labels] == rotations
    found = [find_numbers(page.scan) for page in read]
    assert [f.rotation for f in found] == rotations
    assert [f.doubts for f in found] == [()] * len(rotations)
