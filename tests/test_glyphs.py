"""scripts/glyphs.py: the non-digit marks of the reject class are seeded, in the
model's input form, of every kind, and leave out the glyphs written like digits."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import glyphs  # noqa: E402


def test_marks_are_seeded_in_mnist_form_and_of_every_kind():
    a, kinds_a = glyphs.not_digits(160, seed=5)
    b, kinds_b = glyphs.not_digits(160, seed=5)
    c, _ = glyphs.not_digits(160, seed=6)
    np.testing.assert_array_equal(a, b)
    assert kinds_a == kinds_b
    assert not np.array_equal(a, c)
    assert a.shape == (160, 28, 28) and a.dtype == np.float32
    assert float(a.min()) == 0.0 and float(a.max()) == 1.0
    assert all(float(m.max()) == 1.0 for m in a)  # every mark has ink (to_mnist_form peak-normalises)
    assert set(kinds_a) == set(glyphs.KINDS)
    assert a[:, 0, :].max() == 0 and a[:, :, 0].max() == 0  # MNIST's empty border


def test_excluded_glyphs_are_never_drawn():
    letters, symbols = glyphs.allowed(glyphs.LETTERS), glyphs.allowed(glyphs.SYMBOLS)
    assert not set(letters + symbols) & set(glyphs.EXCLUDED)
    assert {"O", "o", "I", "l", "|"} <= set(glyphs.EXCLUDED)
    assert {"B", "H", "e", "+", "?"} <= set(letters + symbols)
    assert all(v in "0123456789" and len(v) == 1 for v in glyphs.EXCLUDED.values())


@pytest.mark.parametrize("kind", glyphs.KINDS)
def test_each_kind_draws_alone(kind):
    x, kinds = glyphs.not_digits(12, seed=1, kinds=(kind,))
    assert kinds == [kind] * 12 and x.shape == (12, 28, 28) and (x.reshape(12, -1).max(axis=1) == 1.0).all()


def test_contact_sheet_command(tmp_path):
    out = tmp_path / "sheet.png"
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "glyphs.py"), "--count", "40", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"wrote {out}: 40 marks, seed {glyphs.HELD_OUT_SEED}\n"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
