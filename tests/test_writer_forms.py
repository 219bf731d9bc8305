"""The forms CSVs through the one writer: a row per page read as a form, its header
once, durable with the batch, and on a redo written only when the file lacks it
(the results.csv rows of a batch follow its forms rows under one lock)."""

from __future__ import annotations

import calendar
import csv
import json
import logging
import os
import time

import pytest
from digitd.outbox import Outbox
from digitd.writer import Record, Writer
from test_writer import fsynced  # noqa: F401 - the fixture

WHEN = "2024-05-01T12:34:56.789Z"
COLUMNS = ["file", "page", "student_id", "room", "status", "confidence"]
# the template edited: a field added between the two
NEW_COLUMNS = ["file", "page", "student_id", "seat", "room", "status", "confidence"]
STAMP = "20261207T080000Z"


def field(number, status="ok", confidence=0.9):
    return {"number": number, "confidence": confidence if number else None, "status": status,
            "box": [10, 20, 30, 40], "doubts": []}


def form_page(page: int, student_id: str | None, room: str | None, form: str = "exam") -> dict:
    return fields_page(page, {"student_id": (student_id, 0.95), "room": (room, 0.8)}, form)


def fields_page(page: int, values: dict[str, tuple[str | None, float]], form: str = "exam") -> dict:
    """A page read as ``form`` with ``values``: field name -> (number, confidence)."""
    fields = {name: field(number, confidence=conf) for name, (number, conf) in values.items()}
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


def new_page(page: int, student_id: str | None, seat: str | None, room: str | None) -> dict:
    """A page read with the edited template (NEW_COLUMNS)."""
    return fields_page(page, {"student_id": (student_id, 0.95), "seat": (seat, 0.7),
                              "room": (room, 0.8)})


def frozen(box: Outbox) -> Outbox:
    """``box`` whose clock stands at STAMP."""
    box.clock = lambda: calendar.timegm(time.strptime(STAMP, "%Y%m%dT%H%M%SZ"))
    return box


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_changed_header_sets_the_old_csv_aside_whole_and_starts_a_new_one(box, caplog):
    writer = Writer(frozen(box), durable=False)
    writer.commit([Record(box.claim_name("a"), result("a.png", [form_page(1, "11111111", "2")])),
                   Record(box.claim_name("b"), result("b.png", [form_page(1, "22222222", None)]))])
    path = box.form_csv_path("exam")
    old = path.read_bytes()
    caplog.set_level(logging.WARNING)
    writer.commit([Record(box.claim_name("c"),
                          result("c.png", [new_page(1, "33333333", "14", "5")]))])
    aside = box.root / "forms" / f"exam.until-{STAMP}.csv"
    assert sorted(os.listdir(box.root / "forms")) == ["exam.csv", aside.name]
    assert aside.read_bytes() == old
    assert form_csv(box) == [NEW_COLUMNS, ["c.png", "1", "33333333", "14", "5", "ok", "0.700000"]]
    assert warnings_of(caplog) == [
        f"{path}: the template's columns changed (now {','.join(NEW_COLUMNS)}); the file with "
        f"the old columns was renamed to {aside}, a new exam.csv started"]
    # the new header stays: the next rows follow it, nothing more is set aside
    writer.commit([Record(box.claim_name("d"), result("d.png", [new_page(1, "4", None, "6")]))])
    assert [r[0] for r in form_csv(box)] == ["file", "c.png", "d.png"]
    assert sorted(os.listdir(box.root / "forms")) == ["exam.csv", aside.name]
    assert len(warnings_of(caplog)) == 1


def test_the_same_header_sets_nothing_aside(box, caplog):
    writer = Writer(box, durable=False)
    caplog.set_level(logging.WARNING)
    for name in ("a", "b"):
        writer.commit([Record(box.claim_name(name), result(f"{name}.png",
                                                           [form_page(1, "1", "2")]))])
    assert os.listdir(box.root / "forms") == ["exam.csv"]
    assert [r[0] for r in form_csv(box)] == ["file", "a.png", "b.png"]
    assert warnings_of(caplog) == []


def test_a_second_change_in_the_same_second_takes_the_suffix_2(box):
    writer = Writer(frozen(box), durable=False)
    writer.commit([Record(box.claim_name("a"), result("a.png", [form_page(1, "1", "2")]))])
    first = box.form_csv_path("exam").read_bytes()
    writer.commit([Record(box.claim_name("b"), result("b.png", [new_page(1, "3", "4", "5")]))])
    second = box.form_csv_path("exam").read_bytes()
    writer.commit([Record(box.claim_name("c"), result("c.png", [form_page(1, "6", "7")]))])
    folder = box.root / "forms"
    assert sorted(os.listdir(folder)) == ["exam.csv", f"exam.until-{STAMP}-2.csv",
                                          f"exam.until-{STAMP}.csv"]
    assert (folder / f"exam.until-{STAMP}.csv").read_bytes() == first
    assert (folder / f"exam.until-{STAMP}-2.csv").read_bytes() == second
    assert form_csv(box) == [COLUMNS, ["c.png", "1", "6", "7", "ok", "0.800000"]]


@pytest.mark.parametrize("torn", [b"file,page,stu", b"file,page,seat,status,confidence",
                                  ",".join(COLUMNS).encode()])
def test_a_header_cut_short_is_removed_not_taken_for_a_changed_template(box, caplog, torn):
    """The header and the first rows go in one write: a crash in it leaves a first line
    without its newline, which is a last line cut short (whatever columns it began
    to name): removed, and the file begun again with the header; nothing set aside."""
    (box.root / "forms").mkdir(parents=True)
    box.form_csv_path("exam").write_bytes(torn)
    caplog.set_level(logging.WARNING)
    Writer(box, durable=False).commit([Record(box.claim_name("a"),
                                              result("a.png", [form_page(1, "1", "2")]))])
    assert os.listdir(box.root / "forms") == ["exam.csv"]
    assert form_csv(box) == [COLUMNS, ["a.png", "1", "1", "2", "ok", "0.800000"]]
    assert warnings_of(caplog) == [f"{box.form_csv_path('exam')}: its last line was cut short "
                                   "(a crash or a full disk); removed"]


def test_a_changed_header_with_a_row_cut_short_is_repaired_then_set_aside(box):
    writer = Writer(frozen(box), durable=False)
    writer.commit([Record(box.claim_name("a"), result("a.png", [form_page(1, "1", "2")]))])
    whole = box.form_csv_path("exam").read_bytes()
    with open(box.form_csv_path("exam"), "ab") as f:
        f.write(b"b.png,1,99")
    writer.commit([Record(box.claim_name("c"), result("c.png", [new_page(1, "3", "4", "5")]))])
    assert (box.root / "forms" / f"exam.until-{STAMP}.csv").read_bytes() == whole
    assert [r[0] for r in form_csv(box)] == ["file", "c.png"]


def test_a_durable_change_syncs_the_folder_before_the_new_csv_is_made(box, fsynced):  # noqa: F811
    writer = Writer(frozen(box), durable=True)
    writer.commit([Record(box.claim_name("a"), result("a.png", [form_page(1, "1", "2")]))])
    fsynced.clear()
    writer.commit([Record(box.claim_name("b"), result("b.png", [new_page(1, "3", "4", "5")]))])
    folder, path = os.fspath(box.root / "forms"), os.fspath(box.form_csv_path("exam"))
    assert fsynced[0] == folder  # the rename, before anything is written to the new file
    assert path in fsynced and folder in fsynced[1:]  # the new file and its name, with the batch
    assert fsynced.index(path) < fsynced.index(os.fspath(box.root / "results"))


def test_a_crash_between_the_rename_and_the_first_write_leaves_a_csv_to_make(box):
    """The state such a crash leaves - the old file set aside, no FORMNAME.csv - and the
    batch redone: the new file is made with its header and the batch's rows."""
    writer = Writer(frozen(box), durable=False)
    writer.commit([Record(box.claim_name("a"), result("a.png", [form_page(1, "1", "2")]))])
    aside = box.root / "forms" / f"exam.until-{STAMP}.csv"
    os.rename(box.form_csv_path("exam"), aside)
    old = aside.read_bytes()
    name = box.claim_name("b")
    writer.commit([Record(name, result("b.png", [new_page(1, "3", "4", "5")]), row_may_exist=True)])
    assert aside.read_bytes() == old
    assert form_csv(box) == [NEW_COLUMNS, ["b.png", "1", "3", "4", "5", "ok", "0.700000"]]


def test_a_redo_whose_row_was_written_under_the_old_template_writes_it_under_the_new(box):
    """Its forms row written with the old template, then the kill (no results.csv row),
    the template edited and the batch redone: the page is read with the new template
    and its JSON says so; its row goes into the new CSV, the old one keeps its own."""
    frozen(box)
    name = box.claim_name("a")
    box.append_rows([], {"exam": (COLUMNS, [{"file": "a.png", "page": "1", "student_id": "1",
                                            "room": "2", "status": "ok", "confidence": "0.8"}])},
                    fsync=False)
    Writer(box, durable=False).commit([Record(name, result("a.png", [new_page(1, "1", "9", "2")]),
                                              row_may_exist=True)])
    with open(box.root / "forms" / f"exam.until-{STAMP}.csv", newline="") as f:
        assert [r[:2] for r in csv.reader(f)] == [["file", "page"], ["a.png", "1"]]
    assert form_csv(box) == [NEW_COLUMNS, ["a.png", "1", "1", "9", "2", "ok", "0.700000"]]


def test_a_redo_counts_an_earlier_input_of_its_name_only_under_its_own_header(box):
    """``scan.png`` read with the old template (its row set aside since), then again
    with the new one: forms row written, the kill, the redo. The earlier input's row
    is not in the new CSV, so the redo's own row there stands for it: no second."""
    writer = Writer(frozen(box), durable=False)
    writer.commit([Record(box.claim_name("scan"), result("scan.png", [form_page(1, "1", "2")]))])
    second = box.claim_name("scan")
    res = result("scan.png", [new_page(1, "3", "4", "5")])
    box.append_rows([], {"exam": (NEW_COLUMNS, [{"file": "scan.png", "page": "1", "student_id": "3",
                                                "seat": "4", "room": "5", "status": "ok",
                                                "confidence": "0.7"}])}, fsync=False)
    writer.commit([Record(second, res, row_may_exist=True)])
    assert [r[:2] for r in form_csv(box)] == [["file", "page"], ["scan.png", "1"]]
    # and a template put back as it was: the old CSV's rows are its own again
    third = box.claim_name("scan")
    box.append_rows([], {"exam": (COLUMNS, [{"file": "scan.png", "page": "1", "student_id": "6",
                                            "room": "7", "status": "ok", "confidence": "0.8"}])},
                    fsync=False)
    writer.commit([Record(third, result("scan.png", [form_page(1, "6", "7")]), row_may_exist=True)])
    assert [r[2] for r in form_csv(box)[1:]] == ["6"]
