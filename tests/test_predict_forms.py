"""``digitd predict`` on forms (the real CLI, the shipped model): a line per field,
``--json`` the same result JSON the service writes, no templates no change, and a
template added later its own CSV with its header."""

from __future__ import annotations

import csv
import json

import pytest
from form_support import exam_page, handwriting, lab_page, png, write_forms
from test_formread import LAB, write_template


@pytest.fixture(scope="module")
def hand(mnist_path, shipped_model):
    return handwriting(mnist_path, shipped_model)


def config(folder, model, forms=None):
    lines = [f"model: {model}"] + ([f"forms: {forms}"] if forms else [])
    (folder / "config.yaml").write_text("\n".join(lines) + "\n")
    return folder / "config.yaml"


def test_predict_prints_a_line_per_field_and_json_carries_them(tmp_path, shipped_model, hand,
                                                               run_digitd):
    forms = write_forms(tmp_path / "forms", lab=False)
    cfg = config(tmp_path, shipped_model, forms)
    (tmp_path / "form.png").write_bytes(png(exam_page(hand, {"student_id": "31415926", "score": "87",
                                                             "year": "1995"})))
    done = run_digitd("predict", "--config", cfg, "--out", tmp_path / "out", "form.png")
    assert done.returncode == 0, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("form.png")]
    assert lines[0].startswith("form.png p1 exam-cover student_id 31415926 ok 0.")
    assert lines[1].startswith("form.png p1 exam-cover score 87 ok ")
    assert lines[2] == "form.png p1 exam-cover room - blank -"
    assert lines[3].startswith("form.png p1 exam-cover year 1995 uncertain ")
    assert lines[3].endswith(r" (does not match pattern 20\d\d)")
    assert lines[4] == "form.png p1 exam-cover code - blank -"
    assert len(lines) == 5
    written = json.loads((tmp_path / "out" / "results" / "form.json").read_text())

    shown = run_digitd("predict", "--config", cfg, "--out", tmp_path / "out2", "--json", "form.png")
    assert shown.returncode == 0, shown.stderr
    result = json.loads(shown.stdout)
    assert result["form"]["name"] == "exam-cover"
    assert result["fields"] == written["fields"]
    assert {k: (f["number"], f["status"]) for k, f in result["fields"].items()} == {
        "student_id": ("31415926", "ok"), "score": ("87", "ok"), "room": (None, "blank"),
        "year": ("1995", "uncertain"), "code": (None, "blank")}


def test_without_templates_a_form_is_a_plain_page(tmp_path, shipped_model, hand, run_digitd):
    cfg = config(tmp_path, shipped_model)
    (tmp_path / "form.png").write_bytes(png(exam_page(hand, {"student_id": "31415926"})))
    done = run_digitd("predict", "--config", cfg, "--out", tmp_path / "out", "--json", "form.png")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["form"] is None and result["fields"] == {}
    assert result["pages"][0]["form"] is None
    assert not (tmp_path / "out" / "forms").exists()


def test_a_template_added_later_gets_its_own_csv_with_its_header(tmp_path, shipped_model, hand,
                                                                 run_digitd):
    forms = write_forms(tmp_path / "forms", lab=False)
    cfg = config(tmp_path, shipped_model, forms)
    out = tmp_path / "out"
    (tmp_path / "exam.png").write_bytes(png(exam_page(hand, {"student_id": "12345678"})))
    (tmp_path / "lab.png").write_bytes(png(lab_page(hand, {"sample": "42", "shelf": "218"})))
    assert run_digitd("predict", "--config", cfg, "--out", out, "exam.png").returncode == 0
    assert sorted(p.name for p in (out / "forms").iterdir()) == ["exam-cover.csv"]
    before = (out / "forms" / "exam-cover.csv").read_bytes()
    write_template(forms / "lab.yaml", "lab", LAB)
    done = run_digitd("predict", "--config", cfg, "--out", out, "lab.png")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (out / "forms").iterdir()) == ["exam-cover.csv", "lab.csv"]
    assert (out / "forms" / "exam-cover.csv").read_bytes() == before
    with open(out / "forms" / "lab.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["file", "page", "sample", "batch", "volume", "shelf", "status", "confidence"]
    assert [r[:-1] for r in rows[1:]] == [["lab.png", "1", "42", "", "", "218", "ok"]]


def test_with_templates_a_cropped_number_is_read_as_before(tmp_path, shipped_model, run_digitd):
    import cv2
    from conftest import draw_digits

    cv2.imwrite(str(tmp_path / "n.png"), draw_digits("42", height=120))
    forms = write_forms(tmp_path / "forms")
    (tmp_path / "with").mkdir()
    runs = {}
    for name, cfg in (("plain", config(tmp_path, shipped_model)),
                      ("forms", config(tmp_path / "with", shipped_model, forms))):
        done = run_digitd("predict", "--config", cfg, "--out", tmp_path / f"out-{name}", "--json",
                          "--no-annotate", "n.png")
        assert done.returncode == 0, done.stderr
        runs[name] = json.loads(done.stdout)
    drop = ("processed_at", "elapsed_ms")
    assert {k: v for k, v in runs["forms"].items() if k not in drop} == \
        {k: v for k, v in runs["plain"].items() if k not in drop}
    assert runs["forms"]["number"] == "42" and runs["forms"]["form"] is None
    assert not (tmp_path / "out-forms" / "forms").exists()
