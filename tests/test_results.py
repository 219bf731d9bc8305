"""Result records and the outbox files: exact keys, CSV rows, names never reused,
atomic writes, moves that never overwrite, and several processes at once."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pytest
from digitd import __version__
from digitd.records import DigitReading, Reading, Scan
from digitd.results import (
    CSV_COLUMNS,
    RESULT_KEYS,
    csv_row,
    failed_result,
    human_line,
    result_dict,
    utc_timestamp,
)

WHEN = dt.datetime(2024, 5, 1, 12, 34, 56, 789000, tzinfo=dt.UTC)
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def digit(d: int, conf: float, box=(1, 2, 3, 4)) -> DigitReading:
    probs = np.full(10, (1 - conf) / 9, np.float64)
    probs[d] = conf
    return DigitReading(digit=d, confidence=conf, box=box, probabilities=tuple(probs),
                        pixels=np.zeros((28, 28), np.float32))


def reading(*digits: DigitReading, status: str = "ok") -> Reading:
    conf = min(d.confidence for d in digits) if digits else None
    number = "".join(str(d.digit) for d in digits) or None
    return Reading(status=status, number=number, digits=tuple(digits), confidence=conf,
                   polarity="dark_on_light")


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# --- result_dict -----------------------------------------------------------------------


def test_result_dict_has_the_contract_keys_in_order_with_the_right_types():
    scan = Scan(image=np.zeros((5, 7, 3), np.float32), width=7, height=5, mode="uint8 RGB")
    r = reading(digit(2, 0.91234567, (10, 20, 30, 40)), digit(7, 0.99))
    out = result_dict("scan 1.png", r, sha256="ab" * 32, model="cnn-v1", processed_at=WHEN,
                      elapsed_ms=12.345, annotated="annotated/scan 1.png", image=scan)
    assert tuple(out)[: len(RESULT_KEYS)] == RESULT_KEYS
    assert out["source"] == "scan 1.png"
    assert out["status"] == "ok"
    assert out["number"] == "27"
    assert out["confidence"] == 0.912346  # rounded to 6 decimals
    assert out["model"] == "cnn-v1"
    assert out["sha256"] == "ab" * 32
    assert out["processed_at"] == "2024-05-01T12:34:56.789Z"
    assert out["elapsed_ms"] == 12.3
    assert out["annotated"] == "annotated/scan 1.png"
    assert out["error"] is None
    first = out["digits"][0]
    assert list(first) == ["digit", "confidence", "box", "probabilities"]
    assert first["digit"] == 2 and isinstance(first["digit"], int)
    assert first["box"] == [10, 20, 30, 40]
    assert len(first["probabilities"]) == 10
    assert all(isinstance(p, float) for p in first["probabilities"])
    assert out["polarity"] == "dark_on_light"
    assert out["image"] == {"width": 7, "height": 5, "mode": "uint8 RGB"}
    assert out["digitd_version"] == __version__
    json.dumps(out, allow_nan=False)  # plain JSON types only


def test_a_failed_input_has_no_reading_and_says_why():
    out = result_dict("x.png", None, sha256=None, model="m", processed_at=WHEN, elapsed_ms=1,
                      annotated="annotated/x.png", error="empty file (0 bytes)")
    assert (out["status"], out["number"], out["digits"], out["confidence"]) == ("failed", None, [], None)
    assert out["error"] == "empty file (0 bytes)"
    assert out["annotated"] is None  # never a picture for a failed input
    assert out["image"] is None


@pytest.mark.parametrize("status", ["blank", "uncertain"])
def test_blank_and_uncertain_keep_their_status(status):
    r = reading(status="blank") if status == "blank" else reading(digit(4, 0.5), status="uncertain")
    out = result_dict("x.png", r, sha256="0", model="m", processed_at=WHEN, elapsed_ms=1,
                      annotated=None)
    assert out["status"] == status
    assert out["error"] is None


def test_timestamps_are_utc_with_z():
    assert ISO_Z.match(utc_timestamp())
    paris = dt.timezone(dt.timedelta(hours=2))
    assert utc_timestamp(dt.datetime(2024, 5, 1, 14, 0, tzinfo=paris)) == "2024-05-01T12:00:00.000Z"
    with pytest.raises(ValueError):
        utc_timestamp(dt.datetime(2024, 5, 1))


def test_csv_row_columns():
    out = result_dict("a,b.png", reading(digit(0, 0.5)), sha256="f", model="m", processed_at=WHEN,
                      elapsed_ms=1, annotated=None)
    row = csv_row(out, "results/a,b.json")
    assert tuple(row) == CSV_COLUMNS
    assert row["number"] == "0"
    assert row["confidence"] == "0.500000"
    assert row["error"] == ""


def test_failed_result_says_why_and_has_no_reading():
    result = failed_result("x.png", "not an image: the file holds text", model="m",
                           sha256="h", processed_at=WHEN)
    assert result == result_dict("x.png", None, sha256="h", model="m", processed_at=WHEN,
                                 elapsed_ms=0.0, annotated=None,
                                 error="not an image: the file holds text")
    assert (result["status"], result["number"], result["error"]) == \
        ("failed", None, "not an image: the file holds text")


def test_human_lines():
    ok = result_dict("a.png", reading(digit(7, 0.99)), sha256="h", model="m", processed_at=WHEN,
                     elapsed_ms=12.4, annotated=None)
    assert human_line("in/a.png", ok) == "in/a.png -> 7 (0.99) 12 ms"
    failed = failed_result("b.png", "cannot read: no such file", model="m")
    assert human_line("b.png", failed) == "b.png -> failed: cannot read: no such file"



# --- pages and numbers --------------------------------------------------------------------------

from digitd.results import (  # noqa: E402
    NumberRead,
    PageRead,
    csv_rows,
    human_lines,
    page_status,
    summary,
)


def number(text: str, conf: float = 0.97, status: str = "ok", printed: bool = False,
           doubts: tuple[str, ...] = (), box=(10, 20, 30, 40)) -> NumberRead:
    digits = tuple(digit(int(c), conf) for c in text if c.isdigit())
    return NumberRead(Reading(status, text, digits, conf, polarity="dark_on_light",
                              doubts=doubts), box, printed)


def doc(*pages: PageRead, source: str = "scan.pdf") -> dict:
    return result_dict(source, summary(pages), sha256="h", model="m", processed_at=WHEN,
                       elapsed_ms=40.2, annotated="annotated/scan.p1.png", pages=pages)


@pytest.mark.parametrize(("pages", "status"), [
    ([PageRead(1, numbers=(number("1"),)), PageRead(2)], "ok"),
    ([PageRead(1), PageRead(2)], "blank"),
    ([PageRead(1, numbers=(number("1"), number("2", 0.5, "uncertain")))], "uncertain"),
    ([PageRead(1, numbers=(number("1"),)), PageRead(2, error="bad page")], "uncertain"),
    ([PageRead(1), PageRead(2, error="bad page")], "uncertain"),
    ([PageRead(1, error="x"), PageRead(2, error="y")], "failed"),
    ([PageRead(1, numbers=(number("1", printed=True),))], "blank"),
    ([PageRead(1, doubts=("may be rotated",))], "uncertain"),
])
def test_the_status_comes_from_every_number_and_page(pages, status):
    assert summary(pages).status == status
    assert doc(*pages)["status"] == status


def test_a_document_result_lists_its_pages_and_numbers():
    out = doc(PageRead(1, 1654, 2339, 200.0, numbers=(
                  number("12/05/2026", box=(100, 200, 300, 80)),
                  number("7", printed=True),
                  number("3.75", 0.6, "uncertain", doubts=("a mark between digits was not read",)),
              ), annotated="annotated/scan.p1.png"),
              PageRead(2, dpi=200.0, error="cannot decode page 2"))
    assert (out["status"], out["number"], out["digits"], out["confidence"]) == \
        ("uncertain", None, [], None)
    assert out["numbers"] == ["12/05/2026", "3.75"]
    assert out["error"] == "page 2 failed: cannot decode page 2"
    assert out["doubts"] == ["a mark between digits was not read"]
    first, second = out["pages"]
    assert list(first) == ["page", "width", "height", "dpi", "rotation", "status", "error",
                           "doubts", "annotated", "numbers", "form", "fields"]
    assert (first["page"], first["width"], first["height"], first["dpi"], first["status"]) == \
        (1, 1654, 2339, 200.0, "uncertain")
    assert first["numbers"][0] == {
        "number": "12/05/2026", "confidence": 0.97, "status": "ok", "box": [100, 200, 300, 80],
        "printed": False, "doubts": [], "digits": first["numbers"][0]["digits"]}
    assert [d["digit"] for d in first["numbers"][0]["digits"]] == [1, 2, 0, 5, 2, 0, 2, 6]
    assert second == {"page": 2, "width": None, "height": None, "dpi": 200.0, "rotation": 0,
                      "status": "failed", "error": "cannot decode page 2", "doubts": [],
                      "annotated": None, "numbers": [], "form": None, "fields": {}}
    json.dumps(out, allow_nan=False)


def test_the_csv_rule_one_row_per_handwritten_number_or_one_for_none():
    out = doc(PageRead(1, numbers=(number("12", box=(1, 2, 3, 4)), number("9", printed=True),
                                   number("5", 0.5, "uncertain", box=(5, 6, 7, 8)))),
              PageRead(2), PageRead(3, numbers=(number("-42", box=(9, 9, 9, 9)),)))
    got = csv_rows(out, "results/scan.json")
    assert [tuple(r) for r in got] == [CSV_COLUMNS] * 3
    assert [(r["page"], r["index"], r["box"], r["number"], r["status"], r["confidence"])
            for r in got] == [("1", "1", "1 2 3 4", "12", "ok", "0.970000"),
                              ("1", "3", "5 6 7 8", "5", "uncertain", "0.500000"),
                              ("3", "1", "9 9 9 9", "-42", "ok", "0.970000")]
    assert {(r["source"], r["result"], r["sha256"]) for r in got} == {
        ("scan.pdf", "results/scan.json", "h")}
    (none,) = csv_rows(doc(PageRead(1), PageRead(2)), "results/scan.json")
    assert (none["status"], none["number"], none["page"], none["index"], none["box"]) == \
        ("blank", "", "", "", "")
    (failed,) = csv_rows(failed_result("x.pdf", "encrypted PDF", model="m"), "results/x.json")
    assert (failed["status"], failed["error"], failed["page"]) == ("failed", "encrypted PDF", "")


def test_one_number_on_one_page_is_the_number_as_before():
    r = reading(digit(2, 0.9, (10, 20, 30, 40)), digit(7, 0.99, (50, 22, 30, 40)))
    before = result_dict("a.png", r, sha256="h", model="m", processed_at=WHEN, elapsed_ms=1,
                         annotated=None)
    (page,) = before["pages"]
    assert page["numbers"][0]["box"] == [10, 20, 70, 42]  # the digits' boxes together
    assert before["numbers"] == ["27"]
    now = doc(PageRead(1, polarity="dark_on_light", numbers=(NumberRead(r, (10, 20, 70, 42)),)),
              source="a.png")
    for key in ("status", "number", "digits", "confidence", "polarity", "numbers", "pages"):
        assert now[key] == before[key], key


def test_predict_lines_one_per_number():
    out = doc(PageRead(1, numbers=(number("12/05/2026"),)),
              PageRead(2, numbers=(number("3.75", 0.61, "uncertain",
                                          doubts=("a mark between digits was not read",)),
                                   number("8", printed=True), number("-42", 0.99))),
              PageRead(3, error="cannot decode page 3"))
    assert human_lines("in/scan.pdf", out) == [
        "in/scan.pdf p1 #1 -> 12/05/2026 (0.97)",
        "in/scan.pdf p2 #1 -> 3.75? (0.61) uncertain: a mark between digits was not read",
        "in/scan.pdf p2 #3 -> -42 (0.99)",
        "in/scan.pdf p3 -> failed: cannot decode page 3"]
    assert human_line("scan.pdf", out) == \
        "scan.pdf -> 12/05/2026, 3.75?, -42 (3 numbers on 3 pages) uncertain 40 ms"
    one = result_dict("a.png", reading(digit(7, 0.99)), sha256="h", model="m", processed_at=WHEN,
                      elapsed_ms=12.4, annotated=None)
    assert human_lines("a.png", one) == ["a.png -> 7 (0.99) 12 ms"]
    blank = doc(PageRead(1), PageRead(2))
    assert human_lines("b.pdf", blank) == ["b.pdf -> blank (no digits found) 40 ms"]


def test_page_status_of_a_page_alone():
    assert page_status(PageRead(1, error="x")) == "failed"
    assert page_status(PageRead(1, numbers=(number("1", printed=True),))) == "blank"
