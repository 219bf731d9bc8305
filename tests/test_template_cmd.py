"""``digitd template BLANK``: a starting template from a scan of the empty form, through
the real CLI: one field a printed box, in reading order, in mm; a picture; clear refusals."""

from __future__ import annotations

import subprocess

import cv2
import pytest
from conftest import clean_env, find_digitd_exe
from digitd.forms import load_template
from test_register import CELLS, FORM, draw_form, draw_text_page

# FORM in reading order (rows top to bottom, each left to right): what field_1, ... must be
ORDER = ["student_id", "score", "room", "date", "notes", "signature"]


def run(*args: str, cwd) -> subprocess.CompletedProcess:
    exe = find_digitd_exe()
    if exe is None:
        pytest.fail("no 'digitd' console script beside this Python: make venv")
    return subprocess.run([str(exe), "template", *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env=clean_env())


@pytest.fixture(scope="module")
def blank(tmp_path_factory):
    folder = tmp_path_factory.mktemp("blank")
    path = folder / "exam-cover.png"
    assert cv2.imwrite(str(path), draw_form(FORM, handwriting=False))
    return path


def test_drafts_a_field_for_each_printed_box_in_reading_order(blank, tmp_path):
    done = run(str(blank), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    template = load_template(tmp_path / "exam-cover.yaml")  # valid: it loads as a template
    assert template.name == "exam-cover"
    assert template.size == (210.0, 297.0)  # 1654 x 2339 px, no dpi: A4 wide
    assert [f.name for f in template.fields] == [f"field_{i}" for i in range(1, 7)]
    for field, truth in zip(template.fields, ORDER):
        assert all(abs(a - b) <= 0.6 for a, b in zip(field.box, FORM[truth])), (field, truth)
    assert [f.digits for f in template.fields] == [CELLS, None, None, None, None, None]  # the comb's cells
    assert (tmp_path / "exam-cover.fields.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote exam-cover.yaml (6 fields: field_1, field_2, field_3, field_4, field_5, field_6) and " \
        "exam-cover.fields.png" in done.stderr


def test_name_out_and_force(blank, tmp_path):
    out = tmp_path / "forms" / "cover.yaml"
    out.parent.mkdir()
    assert run(str(blank), "--name", "cover", "--out", str(out), cwd=tmp_path).returncode == 0
    assert load_template(out).name == "cover"
    again = run(str(blank), "--out", str(out), cwd=tmp_path)
    assert (again.returncode, again.stderr.strip()) == (2, f"digitd: error: {out} exists (--force to overwrite it)")
    assert run(str(blank), "--out", str(out), "--force", cwd=tmp_path).returncode == 0
    bad = run(str(blank), "--name", "no spaces", cwd=tmp_path)
    assert (bad.returncode, bad.stderr.strip()) == (2, "digitd: error: --name 'no spaces': letters, digits, - and _ only")


def test_a_page_without_boxes_and_a_file_that_is_no_image_are_refused(tmp_path):
    text = tmp_path / "minutes.png"
    assert cv2.imwrite(str(text), draw_text_page())
    done = run(str(text), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"digitd: error: {text}: no printed boxes found on page 1 (fields need "
                                   "a box drawn round them, at least 5 mm a side)")
    assert not (tmp_path / "minutes.yaml").exists()
    notes = tmp_path / "notes.png"
    notes.write_text("not an image")
    done = run(str(notes), cwd=tmp_path)
    assert (done.returncode, done.stderr.strip()) == (2, f"digitd: error: {notes}: not an image: the file holds text")
