"""scripts/pages.py --set forms makes filled forms with their templates and labels, the same
for the same seed; scripts/accuracy.py --forms scores each field, each empty field and each
page's template right."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import REPO_ROOT, find_real_dev
from digitd.forms import load_forms
from test_pages_script import accuracy, decoded_pages, make_set, pages

SEED = 2  # a 2-page PDF (lab sample, delivery note), an exam cover as JPEG, a JPEG of no template
COUNT = 4


@pytest.fixture(scope="module")
def forms_set(tmp_path_factory, mnist_path) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("forms")
    return out, make_set(out, mnist_path, "forms", COUNT, SEED)


def test_the_forms_set_holds_filled_forms_of_its_templates(forms_set):
    out, labels = forms_set
    assert (labels["set"], labels["forms"]) == ("forms", "forms")
    assert sorted(p.name for p in out.iterdir()) == sorted([*labels["files"], "labels.json", "forms"])
    templates = {t.name: t for t in load_forms(out / "forms")}
    assert sorted(templates) == ["delivery-note", "exam-cover", "lab-sample"]
    assert {t.name: [f.name for f in t.fields] for t in templates.values()} == {
        name: [f[0] for f in fields] for name, (_, fields) in pages.FORM_TEMPLATES.items()}
    counts = {"pages": 0, "none": 0, "filled": 0, "empty": 0}
    for name, f in labels["files"].items():
        assert name.startswith("form-") and f["kind"] == "form"
        for page in f["pages"]:
            counts["pages"] += 1
            if page["form"] is None:
                counts["none"] += 1
                assert page["fields"] == {} and 2 <= len(page["numbers"]) <= 6
                continue
            template = templates[page["form"]]
            assert list(page["fields"]) == [field.name for field in template.fields]
            for field in template.fields:
                label = page["fields"][field.name]
                if label["text"] is None:
                    counts["empty"] += 1
                    assert label["writer"] is None
                    continue
                counts["filled"] += 1
                assert label["writer"] in ("mnist", "real")
                assert re.fullmatch(field.pattern or r"\d+", label["text"]), (field.name, label)
                assert field.digits is None or len(label["text"]) == field.digits
            assert [n["text"] for n in page["numbers"]] == [v["text"] for v in page["fields"].values() if v["text"]]
    assert counts == {"pages": COUNT, "none": 1, "filled": 15, "empty": 2}
    assert sorted(f["format"] for f in labels["files"].values()) == ["jpeg", "jpeg", "pdf"]


def test_each_field_box_is_printed_where_the_labels_say(forms_set):
    """On the saved page, the labelled field box's four sides are printed lines (dark at their middles)."""
    out, labels = forms_set
    checked = 0
    for name, f in labels["files"].items():
        if f["format"] == "pdf":
            continue
        for img, page in zip(decoded_pages(out / name, f["format"]), f["pages"]):
            assert img.shape == (page["height"], page["width"])
            for field in page["fields"].values():
                x, y, w, h = field["box"]
                assert 0 <= x and 0 <= y and x + w <= img.shape[1] and y + h <= img.shape[0]
                paper = np.percentile(img, 90)
                # the box around a turned rectangle: each side's middle is on its line, within the turn
                slack = max(3, int(0.03 * max(w, h)))
                sides = [img[y:y + slack, x + w // 2], img[y + h - slack:y + h, x + w // 2],
                         img[y + h // 2, x:x + slack], img[y + h // 2, x + w - slack:x + w]]
                assert all(side.min() < paper - 60 for side in sides), (name, field)
                checked += 1
    assert checked == 6


def test_the_same_seed_makes_the_same_forms_and_all_leaves_them_out(forms_set, tmp_path, mnist_path):
    out, labels = forms_set
    again = make_set(tmp_path / "again", mnist_path, "forms", COUNT, SEED)
    assert again["files"] == labels["files"]
    for name in [*labels["files"], "forms/exam-cover.yaml"]:
        assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes(), name
    assert "forms" not in pages.SETS[:4] and "form" not in {
        f.get("kind") for f in make_set(tmp_path / "all", mnist_path, "all", 1)["files"].values()}


# ---------------------------------------------------------------- the scorer of accuracy.py --forms

FIELDS = {"id": {"text": "12345678", "writer": "mnist", "box": [0, 0, 9, 9]},
          "room": {"text": None, "writer": None, "box": [0, 0, 9, 9]},
          "score": {"text": "87", "writer": "real", "box": [0, 0, 9, 9]},
          "seat": {"text": None, "writer": None, "box": [0, 0, 9, 9]},
          "year": {"text": "1995", "writer": "mnist", "box": [0, 0, 9, 9]}}
LABEL = {"page": 1, "form": "exam", "fields": FIELDS, "numbers": []}


def read(number, status, doubts=()):
    return {"number": number, "confidence": 0.9 if number else None, "status": status, "box": [0, 0, 9, 9],
            "doubts": list(doubts)}


def test_a_form_page_is_scored_field_by_field():
    page = {"page": 1, "form": {"name": "exam", "quality": 0.97}, "fields": {
        "id": read("12345678", "ok"), "room": read(None, "blank"), "score": read("81", "ok"),
        "seat": read("7", "uncertain"), "year": read("1995", "uncertain", ["does not match pattern 20\\d\\d"])}}
    counts, lines = accuracy.score_form_page(LABEL, page)
    assert counts == {"pages": 1, "form_right": 1, "form_missed": 0, "form_wrong": 0, "filled": 3, "exact": 2,
                      "exact_ok": 1, "wrong_ok": 1, "wrong_flagged": 0, "filled_blank": 0, "empty": 2,
                      "empty_blank": 1, "empty_read_ok": 0, "empty_read_flagged": 1}
    assert lines == ["score (real): 87 read 81 (ok)", "seat: empty read 7 (uncertain)"]


def test_a_page_matched_to_another_template_or_none_reads_no_field():
    other = {"page": 1, "form": {"name": "lab", "quality": 0.9}, "fields": {"id": read("12345678", "ok")}}
    counts, lines = accuracy.score_form_page(LABEL, other)
    assert (counts["form_right"], counts["form_wrong"], counts["exact"], counts["filled_blank"],
            counts["empty_blank"]) == (0, 1, 0, 3, 0)
    assert lines[0] == "id (mnist): 12345678 read None (missing)"
    counts, _ = accuracy.score_form_page(LABEL, {"page": 1, "form": None, "fields": {}})
    assert (counts["form_missed"], counts["form_wrong"]) == (1, 0)
    plain = {"page": 1, "form": None, "fields": {}, "numbers": [{"text": "4", "box": [0, 0, 1, 1]}]}
    counts, lines = accuracy.score_form_page(plain, {"page": 1, "form": None, "fields": {}})
    assert (counts["form_right"], counts["filled"], counts["empty"], lines) == (1, 0, 0, [])
    counts, _ = accuracy.score_form_page(plain, {"page": 1, "form": {"name": "exam", "quality": 0.6}, "fields": {}})
    assert (counts["form_right"], counts["form_wrong"]) == (0, 1)


def test_a_forms_set_is_measured_by_template_format_and_writer():
    labels = {"files": {
        "a.pdf": {"format": "pdf", "pages": [LABEL, {**LABEL, "page": 2}]},
        "b.png": {"format": "png", "pages": [{"page": 1, "form": None, "fields": {}, "numbers": []}]},
        "gone.jpg": {"format": "jpeg", "pages": [LABEL]}}}
    right = {"form": {"name": "exam", "quality": 1.0},
             "fields": {k: read(v["text"], "ok" if v["text"] else "blank") for k, v in FIELDS.items()}}
    results = {"a.pdf": {"status": "ok", "pages": [{"page": 1, **right}, {"page": 2, "form": None, "fields": {}}]},
               "b.png": {"status": "ok", "pages": [{"page": 1, "form": None, "fields": {}}]}}
    fig = accuracy.measure_forms(labels, results, seconds=2.0)
    assert (fig["files"], fig["pages"], fig["pages_per_second"]) == (3, 4, 2.0)
    t = fig["total"]
    assert (t["filled"], t["exact"], t["exact_ok"], t["empty"], t["empty_blank"], t["form_right"],
            t["form_missed"]) == (9, 3, 3, 6, 2, 2, 2)
    assert fig["by_form"]["(none)"]["form_right"] == 1 and fig["by_form"]["exam"]["pages"] == 3
    assert fig["by_format"]["pdf"]["exact"] == 3 and fig["by_format"]["jpeg"]["exact"] == 0
    assert fig["by_writer"] == {"mnist": {"filled": 6, "exact": 2}, "real": {"filled": 3, "exact": 1}}
    assert fig["failed"] == ["gone.jpg: no result"]
    assert fig["errors"][:2] == ["a.pdf p2: form exam read as None", "a.pdf p2 exam.id (mnist): 12345678 read None (missing)"]


def test_form_dicts_are_what_the_result_json_gives():
    from digitd.formread import FormReading
    from digitd.records import FieldRead

    reading = FormReading("exam", 0.98765, {"id": FieldRead("id", "314_5926", 0.93, "uncertain", (1, 2, 3, 4),
                                                                ("expected 8 digits, read 7",)),
                                            "room": FieldRead("room", None, None, "blank", (5, 6, 7, 8))})
    assert accuracy.form_dicts(reading) == {"form": {"name": "exam", "quality": 0.988}, "fields": {
        "id": {"number": "314_5926", "confidence": 0.93, "status": "uncertain", "box": [1, 2, 3, 4],
               "doubts": ["expected 8 digits, read 7"]},
        "room": {"number": None, "confidence": None, "status": "blank", "box": [5, 6, 7, 8], "doubts": []}}}
    assert accuracy.form_dicts(None) == {"form": None, "fields": {}}


def test_accuracy_forms_reads_the_set_with_its_templates(forms_set, tmp_path, shipped_model):
    out, labels = forms_set
    figures = tmp_path / "figures.json"
    done = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "accuracy.py"), "--forms", str(out),
                           "--via", "library", "--json", str(figures)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "| filled fields read exactly |" in done.stdout
    fig = json.loads(figures.read_text())
    t = fig["total"]
    assert (fig["files"], fig["pages"], fig["via"]) == (len(labels["files"]), COUNT, "library")
    assert (t["filled"], t["empty"], t["form_right"], fig["failed"]) == (15, 2, COUNT, [])
    assert t["exact"] + t["wrong_ok"] + t["wrong_flagged"] + t["filled_blank"] == 15
    assert t["empty_blank"] + t["empty_read_ok"] + t["empty_read_flagged"] == 2
    if find_real_dev() is None:
        pytest.skip("real-dev not found: the exact figures below are for the set written with its digits")
    # hard MNIST digits: a faint 9 read 7 under ok on the PDF's lab sheet; a 7 read 4, flagged
    assert (t["exact"], t["exact_ok"], t["wrong_ok"], t["wrong_flagged"], t["empty_blank"]) == (13, 11, 1, 1, 2)
    assert [e for e in fig["errors"] if "read" in e] == [
        "form-0000.pdf p1 lab-sample.operator (mnist): 95011 read 75011 (ok)",
        "form-0001.jpg p1 exam-cover.room (mnist): 171 read 141 (uncertain: the 4 in place 2 may be a 7)"]
