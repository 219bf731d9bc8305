"""A page read as a form in the pure records: its JSON keys, its status from its
fields, its forms CSV row, predict's lines, and its picture's labels."""

from __future__ import annotations

import datetime as dt

import cv2
import digitd.formread
import numpy as np
from digitd.analyse import analyse
from digitd.annotate import make_page_view, page_title
from digitd.analyse import ImageInfo, Shown
from digitd.forms import Field, Template
from digitd.records import Reading
from digitd.results import FieldRead, NumberRead, PageRead, form_rows, human_lines, page_status, result_dict, summary

WHEN = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def reading(number, confidence=0.99, status="ok", doubts=()):
    return Reading(status, number, (), confidence, doubts=tuple(doubts))


def form_page(fields: list[FieldRead], page: int = 1) -> PageRead:
    numbers = tuple(NumberRead(reading(f.number, f.confidence, f.status, f.doubts), f.box)
                    for f in fields if f.number is not None)
    doubts = tuple(d for f in fields if f.number is None for d in f.doubts)
    return PageRead(page=page, width=1654, height=2339, dpi=200.0, numbers=numbers, doubts=doubts,
                    form="exam-cover", quality=0.9312, fields=tuple(fields))


ID = FieldRead("student_id", "12345678", 0.99, "ok", (10, 20, 300, 40))
ROOM = FieldRead("room", None, None, "blank", (400, 20, 100, 40))
YEAR = FieldRead("year", "1995", 0.97, "uncertain", (10, 100, 200, 40), ("does not match pattern 20\\d\\d",))
NEEDED = FieldRead("score", None, None, "blank", (10, 200, 100, 40), ("required field is empty",))


def test_a_form_page_status_is_its_fields_worst():
    assert page_status(form_page([ID, ROOM])) == "ok"
    assert page_status(form_page([ID, YEAR])) == "uncertain"
    assert page_status(form_page([ID, NEEDED])) == "uncertain"
    assert page_status(form_page([ROOM])) == "blank"


def test_the_json_has_form_and_fields_in_the_template_order():
    pages = (form_page([ID, ROOM, YEAR]),)
    out = result_dict("form.png", summary(pages), sha256="h", model="m", processed_at=WHEN,
                      elapsed_ms=1.0, annotated=None, pages=pages)
    assert out["form"] == {"name": "exam-cover", "quality": 0.931}
    assert list(out["fields"]) == ["student_id", "room", "year"]
    assert out["fields"]["room"] == {"number": None, "confidence": None, "status": "blank",
                                     "box": [400, 20, 100, 40], "doubts": []}
    assert out["fields"]["year"]["doubts"] == ["does not match pattern 20\\d\\d"]
    assert out["pages"][0]["fields"] == out["fields"] and out["pages"][0]["form"] == out["form"]
    assert out["numbers"] == ["12345678", "1995"] and out["status"] == "uncertain"
    two = (form_page([ID]), form_page([ROOM], page=2))
    doc = result_dict("two.pdf", summary(two), sha256="h", model="m", processed_at=WHEN,
                      elapsed_ms=1.0, annotated=None, pages=two)
    assert doc["form"] is None and doc["fields"] == {}
    assert [p["form"]["name"] for p in doc["pages"]] == ["exam-cover", "exam-cover"]
    assert form_rows(doc) == [
        ("exam-cover", ("file", "page", "student_id", "status", "confidence"),
         {"file": "two.pdf", "page": "1", "student_id": "12345678", "status": "ok",
          "confidence": "0.990000"}),
        ("exam-cover", ("file", "page", "room", "status", "confidence"),
         {"file": "two.pdf", "page": "2", "room": "", "status": "blank", "confidence": ""})]
    assert human_lines("two.pdf", doc) == ["two.pdf p1 exam-cover student_id 12345678 ok 0.99",
                                           "two.pdf p2 exam-cover room - blank -"]


def test_a_plain_page_has_no_form_and_no_forms_csv_row():
    page = PageRead(page=1, width=100, height=100, numbers=(NumberRead(reading("7"), (1, 2, 3, 4)),))
    out = result_dict("a.png", summary((page,)), sha256="h", model="m", processed_at=WHEN,
                      elapsed_ms=1.0, annotated=None, pages=(page,))
    assert out["form"] is None and out["fields"] == {} and out["pages"][0]["form"] is None
    assert form_rows(out) == []
    assert human_lines("a.png", out) == ["a.png -> 7 (0.99) 1 ms"]


def test_the_picture_boxes_each_field_with_its_name_and_value():
    page = form_page([ID, ROOM, YEAR])
    shown = Shown(panel=b"", scale=0.5, x0=10.0, y0=5.0, kind="page", size=(827, 1170))
    view = make_page_view(ImageInfo(1654, 2339, "uint8 gray"), page, source="form.png", model="m",
                          shown=shown)
    assert view.labels == ("student_id: 12345678  0.99", "room: -", "year: 1995?  0.97")
    assert view.boxes[0] == (15.0, 15.0, 150.0, 20.0)
    assert view.colours == ("#1a7f37", "#57606a", "#bc4c00")
    assert page_title(page, 1) == "exam-cover (0.93): 2/3 fields filled  \u2014  uncertain"


def test_a_page_the_form_reader_fails_on_is_read_as_a_plain_page(monkeypatch):
    def broken(scan, templates):
        raise RuntimeError("a bug")

    monkeypatch.setattr(digitd.formread, "match_form", broken)
    page = cv2.imencode(".png", np.full((800, 700), 255, np.uint8))[1].tobytes()
    template = Template("t", (210.0, 297.0), (Field("a", (10.0, 10.0, 20.0, 10.0)),), "")
    a = analyse(page, max_bytes=10**8, max_pixels=10**8, templates=(template,))
    assert a.reason is None and a.pages[0].form is None and a.pages[0].found is not None
