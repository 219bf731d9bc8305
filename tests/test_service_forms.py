"""Forms through the real service: pages that fit a template read field by field
into the result JSON, ``outbox/forms/FORMNAME.csv`` and the picture; a page that
fits none read as a plain page (the real ``digitd run``, the shipped model,
forms drawn here and filled with MNIST handwriting)."""

from __future__ import annotations

import csv
import re

import pytest
from form_support import EXAM_NAME, LAB_NAME, exam_page, handwriting, lab_page, pdf, plain_page, png, write_forms
from test_formread import EXAM, write_template
from service_support import done_count, make_setup, result_files, service, wait_until  # noqa: F401

EXAM_COLUMNS = ["file", "page", "student_id", "score", "room", "year", "code", "status", "confidence"]
LAB_COLUMNS = ["file", "page", "sample", "batch", "volume", "shelf", "status", "confidence"]


@pytest.fixture(scope="module")
def hand(mnist_path, shipped_model):
    return handwriting(mnist_path, shipped_model)


def read_csv(path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def by_source(results: list[dict]) -> dict[str, dict]:
    return {r["source"]: r for r in results}


def fields_of(page: dict) -> dict[str, tuple]:
    return {name: (f["number"], f["status"]) for name, f in page["fields"].items()}


def test_the_service_reads_forms_into_their_csv_and_plain_pages_as_before(tmp_path, shipped_model,
                                                                          hand, service):  # noqa: F811
    forms = write_forms(tmp_path / "forms")
    setup = make_setup(tmp_path, shipped_model, forms=str(forms))
    inputs = {
        # room left empty: the fields after it stay in their own columns
        "exam-1.png": png(exam_page(hand, {"student_id": "31415926", "score": "87",
                                           "year": "2024", "code": "305"})),
        # a year that breaks its pattern 20dd; a comb with its fourth cell empty
        "exam-2.png": png(exam_page(hand, {"student_id": "271 2818", "score": "9",
                                           "room": "12", "year": "1995"}, start=1, move=1)),
        "lab-1.png": png(lab_page(hand, {"sample": "42", "batch": "7031", "volume": "5",
                                         "shelf": "218"})),
        "notes.png": png(plain_page(hand, "4096")),
        "exams.pdf": pdf([exam_page(hand, {"student_id": "11223344", "score": "50"}, start=2),
                          exam_page(hand, {"student_id": "55667788", "room": "3"}, start=3,
                                    move=1)]),
    }
    svc = service(setup).wait_ready()
    for name, data in inputs.items():
        (setup.inbox / f".{name}.part").write_bytes(data)
        (setup.inbox / f".{name}.part").rename(setup.inbox / name)
    wait_until(lambda: done_count(setup.outbox) >= len(inputs), 180, "every input read",
               on_fail=svc.tail)
    assert svc.terminate() == 0
    results = by_source(result_files(setup.outbox))
    assert sorted(results) == sorted(inputs)

    one = results["exam-1.png"]
    assert one["form"]["name"] == EXAM_NAME and one["form"] == one["pages"][0]["form"]
    assert 0.8 < one["form"]["quality"] <= 1.0
    assert one["fields"] == one["pages"][0]["fields"]
    assert list(one["fields"]) == ["student_id", "score", "room", "year", "code"]
    assert fields_of(one["pages"][0]) == {"student_id": ("31415926", "ok"), "score": ("87", "ok"),
                                          "room": (None, "blank"), "year": ("2024", "ok"),
                                          "code": ("305", "ok")}
    assert one["numbers"] == ["31415926", "87", "2024", "305"]
    assert one["status"] == "ok" and one["pages"][0]["status"] == "ok"
    room = one["fields"]["room"]
    assert room["confidence"] is None and room["doubts"] == [] and len(room["box"]) == 4

    two = results["exam-2.png"]
    assert fields_of(two["pages"][0]) == {"student_id": ("271_2818", "uncertain"),
                                          "score": ("9", "ok"), "room": ("12", "ok"),
                                          "year": ("1995", "uncertain"), "code": (None, "blank")}
    assert two["fields"]["year"]["doubts"] == [r"does not match pattern 20\d\d"]
    assert two["fields"]["student_id"]["doubts"] == ["expected 8 digits, read 7"]
    assert two["status"] == "uncertain"

    lab = results["lab-1.png"]
    assert lab["form"]["name"] == LAB_NAME  # two templates: the one the page fits
    assert fields_of(lab["pages"][0]) == {"sample": ("42", "ok"), "batch": ("7031", "ok"),
                                          "volume": ("5", "ok"), "shelf": ("218", "ok")}

    notes = results["notes.png"]
    assert notes["form"] is None and notes["fields"] == {}
    assert notes["pages"][0]["form"] is None and notes["pages"][0]["fields"] == {}
    assert notes["numbers"] == ["4096"]

    doc = results["exams.pdf"]
    assert doc["form"] is None and doc["fields"] == {}  # two pages: see each page's
    assert [p["form"]["name"] for p in doc["pages"]] == [EXAM_NAME, EXAM_NAME]
    assert [fields_of(p)["student_id"] for p in doc["pages"]] == [("11223344", "ok"),
                                                                  ("55667788", "ok")]
    assert doc["numbers"] == ["11223344", "50", "55667788", "3"]

    assert sorted(p.name for p in (setup.outbox / "forms").iterdir()) == ["exam-cover.csv", "lab.csv"]
    exam_rows = read_csv(setup.outbox / "forms" / "exam-cover.csv")
    assert exam_rows[0] == EXAM_COLUMNS
    body = sorted(exam_rows[1:])
    conf = {(r["source"], p["page"]): min(f["confidence"] for f in p["fields"].values()
                                          if f["confidence"] is not None)
            for r in results.values() for p in r["pages"] if p["form"]}
    assert [row[:-1] for row in body] == [
        ["exam-1.png", "1", "31415926", "87", "", "2024", "305", "ok"],
        ["exam-2.png", "1", "271_2818", "9", "12", "1995", "", "uncertain"],
        ["exams.pdf", "1", "11223344", "50", "", "", "", "ok"],
        ["exams.pdf", "2", "55667788", "", "3", "", "", "ok"],
    ]
    assert [float(row[-1]) for row in body] == pytest.approx(
        [conf[(row[0], int(row[1]))] for row in body], abs=1e-6)
    lab_rows = read_csv(setup.outbox / "forms" / "lab.csv")
    assert lab_rows[0] == LAB_COLUMNS
    assert [row[:-1] for row in lab_rows[1:]] == [["lab-1.png", "1", "42", "7031", "5", "218", "ok"]]
    assert (setup.outbox / "annotated" / "exam-1.png").is_file()
    assert sorted(p.name for p in (setup.outbox / "annotated").glob("exams.*")) == [
        "exams.p1.png", "exams.p2.png"]


def test_a_template_edited_between_runs_starts_a_new_csv_and_keeps_the_old(
        tmp_path, shipped_model, hand, service):  # noqa: F811
    """One form read, the service stopped, a field added to the template, the service
    started again, one more form read: the old CSV set aside whole under its header,
    the new one with the new header and only the new row."""
    forms = write_forms(tmp_path / "forms", lab=False)
    setup = make_setup(tmp_path, shipped_model, forms=str(forms))

    def read_one(name: str, data: bytes, total: int) -> None:
        svc = service(setup).wait_ready()
        (setup.inbox / f".{name}.part").write_bytes(data)
        (setup.inbox / f".{name}.part").rename(setup.inbox / name)
        wait_until(lambda: done_count(setup.outbox) >= total, 180, f"{name} read", on_fail=svc.tail)
        assert svc.terminate() == 0

    read_one("first.png", png(exam_page(hand, {"student_id": "31415926", "score": "87"})), 1)
    edited = {**EXAM, "seat": ((40.0, 175.0, 30.0, 14.0), {})}
    write_template(forms / "exam-cover.yaml", EXAM_NAME, edited)
    read_one("second.png", png(exam_page(hand, {"student_id": "27182818", "seat": "42"}, start=1,
                                         fields=edited)), 2)

    folder = setup.outbox / "forms"
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) == 2 and names[0] == "exam-cover.csv"
    assert re.fullmatch(r"exam-cover\.until-[0-9]{8}T[0-9]{6}Z\.csv", names[1]), names
    old, new = read_csv(folder / names[1]), read_csv(folder / "exam-cover.csv")
    assert old[0] == EXAM_COLUMNS and [r[:4] for r in old[1:]] == [
        ["first.png", "1", "31415926", "87"]]
    assert new[0] == EXAM_COLUMNS[:-2] + ["seat", "status", "confidence"]
    assert [r[:3] + r[-3:-2] for r in new[1:]] == [["second.png", "1", "27182818", "42"]]
    log = (setup.root / "digitd.log").read_text()
    assert f"the file with the old columns was renamed to {folder / names[1]}" in log
