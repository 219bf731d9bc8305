"""The forms CSVs through the one writer: a row per page read as a form, its header
once, durable with the batch, and on a redo written only when the file lacks it
(the results.csv rows of a batch follow its forms rows under one lock)."""

from __future__ import annotations

import csv
import json
import os

import pytest
from digitd.outbox import Outbox
from digitd.writer import Record, Writer
from test_writer import fsynced  # noqa: F401 - the fixture

WHEN = "2024-05-01T12:34:56.789Z"
COLUMNS = ["file", "page", "student_id", "room", "status", "confidence"]


def field(number, status="ok", confidence=0.9):
    return {"number": number, "confidence": confidence if number else None, "status": status,
            "box": [10, 20, 30, 40], "doubts": []}


def form_page(page: int, student_id: str | None, room: str | None, form: str = "exam") -> dict:
    fields = {"student_id": field(student_id, confidence=0.95), "room": field(room, confidence=0.8)}
    numbers = [{"number": f["number"], "confidence": f["confidence"], "status": f["status"],
                "box": f["box"], "printed": False, "doubts": [], "digits": []}
               for f in fields.values() if f["number"]]
    return {"page": page, "status": "ok" if numbers else "blank", "numbers": numbers,
            "form": {"name": form, "quality": 0.97}, "fields": fields}


def result(source: str, pages: list[dict]) -> dict:
    one = pages[0] if len(pages) == 1 else {"form": None, "fields": {}}
    return {"source": source, "status": "ok", "number": None, "digits": [], "confidence": None,
            "model": "m1", "sha256": "ab" * 32, "processed_at": WHEN, "elapsed_ms": 3.0,
            "annotated": None, "error": None, "pages": pages,
            "form": one["form"], "fields": one["fields"]}


def form_csv(box: Outbox, form: str = "exam") -> list[list[str]]:
    with open(box.form_csv_path(form), newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


@pytest.fixture
def box(tmp_path) -> Outbox:
    return Outbox(tmp_path / "outbox")


def test_a_row_per_form_page_in_the_template_order_with_its_header_once(box):
    writer = Writer(box, durable=False)
    a, b = box.claim_name("a"), box.claim_name("b")
    assert writer.commit([Record(a, result("a.png", [form_page(1, "12345678", None)])),
                          Record(b, result("b.pdf", [form_page(1, None, "12"),
                                                     {"page": 2, "status": "blank", "numbers": [],
                                                      "form": None, "fields": {}}]))]) == [None, None]
    c = box.claim_name("c")
    writer.commit([Record(c, result("c.png", [form_page(1, "87654321", "3")]))])
    assert form_csv(box) == [COLUMNS,
                             ["a.png", "1", "12345678", "", "ok", "0.950000"],
                             ["b.pdf", "1", "", "12", "ok", "0.800000"],
                             ["c.png", "1", "87654321", "3", "ok", "0.800000"]]
    assert os.listdir(box.root / "forms") == ["exam.csv"]


def test_a_durable_commit_syncs_the_forms_csv_and_its_new_name(box, fsynced):  # noqa: F811
    name = box.claim_name("a")
    assert Writer(box, durable=True).commit([Record(name, result("a.png",
                                                                 [form_page(1, "1", "2")]))]) == [None]
    assert os.fspath(box.form_csv_path("exam")) in fsynced
    assert os.fspath(box.root / "forms") in fsynced
    at = fsynced.index(os.fspath(box.form_csv_path("exam")))
    assert at < fsynced.index(os.fspath(box.root / "results"))  # before the JSONs are published


def test_a_redo_cut_between_the_forms_rows_and_results_csv_writes_no_second_form_row(box):
    name = box.claim_name("a")
    res = result("a.png", [form_page(1, "12345678", "7")])
    # the forms row written, then the kill: results.csv has none of its rows
    box.append_rows([], {"exam": (COLUMNS, [{"file": "a.png", "page": "1", "student_id": "12345678",
                                            "room": "7", "status": "ok", "confidence": "0.8"}])},
                    fsync=False)
    Writer(box, durable=False).commit([Record(name, res, row_may_exist=True)])
    assert [r[:2] for r in form_csv(box)[1:]] == [["a.png", "1"]]
    with open(box.csv_path, newline="") as f:
        assert len(list(csv.reader(f))) == 3  # its two numbers' rows, now written


def test_a_redo_whose_results_rows_are_there_writes_no_form_row(box):
    name = box.claim_name("a")
    res = result("a.png", [form_page(1, "12345678", None)])
    Writer(box, durable=False).commit([Record(name, res)])
    os.replace(box.result_path(name), box.reserve_path(name))  # the JSON was never published
    Writer(box, durable=False).commit([Record(name, res, row_may_exist=True)])
    assert len(form_csv(box)) == 2
    with open(box.csv_path, newline="") as f:
        assert len(list(csv.reader(f))) == 2


def test_a_redo_with_nothing_written_writes_its_form_rows(box):
    name = box.claim_name("a")
    Writer(box, durable=False).commit([Record(name, result("a.pdf", [form_page(1, "1", None),
                                                                     form_page(2, None, "2")]),
                                              row_may_exist=True)])
    assert [r[:2] for r in form_csv(box)[1:]] == [["a.pdf", "1"], ["a.pdf", "2"]]


def test_an_earlier_input_of_the_same_name_does_not_stand_for_the_redo(box):
    writer = Writer(box, durable=False)
    first = box.claim_name("scan")
    writer.commit([Record(first, result("scan.png", [form_page(1, "11111111", None)]))])
    second = box.claim_name("scan")
    assert second == "scan-1"
    writer.commit([Record(second, result("scan.png", [form_page(1, "22222222", None)]),
                          row_may_exist=True)])
    assert [r[2] for r in form_csv(box)[1:]] == ["11111111", "22222222"]
    # and once written, a second redo of it adds nothing
    os.replace(box.result_path(second), box.reserve_path(second))
    writer.commit([Record(second, result("scan.png", [form_page(1, "22222222", None)]),
                          row_may_exist=True)])
    assert [r[2] for r in form_csv(box)[1:]] == ["11111111", "22222222"]


def test_a_forms_csv_line_cut_short_is_removed_before_the_next_rows(box):
    writer = Writer(box, durable=False)
    writer.commit([Record(box.claim_name("a"), result("a.png", [form_page(1, "1", "2")]))])
    with open(box.form_csv_path("exam"), "ab") as f:
        f.write(b"b.png,1,99")  # a write cut short by a crash
    writer.commit([Record(box.claim_name("c"), result("c.png", [form_page(1, "3", "4")]))])
    assert [r[:4] for r in form_csv(box)[1:]] == [["a.png", "1", "1", "2"], ["c.png", "1", "3", "4"]]
    assert json.loads(open(box.result_path("c")).read())["form"]["name"] == "exam"
