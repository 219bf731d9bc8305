"""Pages and numbers through the runner with the shipped model: the JSON's
``pages`` and ``numbers``, one CSV row per number, a picture per page, a page
that fails alone, separators, and a single number image giving today's values.

Until the decoding and page-reading branches land, ``imageio.pages`` yields one
page and ``page.find_numbers`` one number per page. The tests that need more
replace them, through the names ``digitd.analyse`` calls, with stand-ins built
on the real parts: ``tiff_pages`` decodes each page of a real multi-page TIFF
with OpenCV and ``imageio.to_scan``; ``numbers_by_line`` runs the real
``find_numbers`` on each band of ink rows. The test of the real ``pages()`` on
a multi-page TIFF runs once it reads one.
"""

from __future__ import annotations

import csv
import functools
import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import draw_digits
from digitd import analyse as reader
from digitd.analyse import init_worker
from digitd.annotate import PAGE_H, Pictures
from digitd.imageio import Page, decode, pages, to_scan
from digitd.outbox import Outbox
from digitd.page import find_numbers
from digitd.pool import Pool
from digitd.records import Found, PageFound, Scan
from digitd.recognize import Recognizer
from digitd.results import CSV_COLUMNS, result_dict
from digitd.runner import Input, Limits, Runner
from digitd.writer import Writer

LIMITS = Limits(max_bytes=1 << 24, max_pixels=4_000_000)


# --- real inputs --------------------------------------------------------------------------


def page_of(lines: list[tuple[str, int, int]], size=(1100, 1500)) -> np.ndarray:
    """A white page (uint8 gray, width x height ``size``) with each text drawn with
    its top-left corner at (x, y), 60 px high."""
    w, h = size
    page = np.full((h, w), 255, np.uint8)
    for text, x, y in lines:
        ink = draw_digits(text, height=60)
        page[y : y + ink.shape[0], x : x + ink.shape[1]] = np.minimum(
            page[y : y + ink.shape[0], x : x + ink.shape[1]], ink)
    return page


def tiff(path: Path, images: list[np.ndarray]) -> Path:
    ok, buf = cv2.imencodemulti(".tiff", images)
    assert ok
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.tobytes())
    return path


def png(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cv2.imencode(".png", image)[1].tobytes())
    return path


# --- stand-ins for the parts other branches bring, made of the real ones ---------------------


def tiff_pages(data, max_pixels, *, dpi=200.0, max_pages=50, seconds=None):
    """Each page of a multi-page TIFF, decoded by OpenCV and ``imageio.to_scan``; a
    page over ``max_pixels`` fails alone. Other inputs: the real ``pages()``."""
    if data[:4] not in (b"II*\x00", b"MM\x00*"):
        yield from pages(data, max_pixels, dpi=dpi, max_pages=max_pages, seconds=seconds)
        return
    ok, images = cv2.imdecodemulti(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert ok
    for n, img in enumerate(images, 1):
        h, w = img.shape[:2]
        if w * h > max_pixels:
            yield Page(number=n, dpi=dpi, reason=f"page too large: {w}x{h} pixels")
        else:
            yield Page(number=n, scan=to_scan(img), dpi=dpi)


def numbers_by_line(scan: Scan, max_digits: int = 12, *, separators=None, printed=(),
                    doubts=None) -> PageFound:
    """The real ``find_numbers`` on each band of rows holding ink, top to bottom;
    band k gets ``separators[k]``, ``doubts[k]`` and is printed if k in ``printed``."""
    gray = scan.gray
    rows = np.flatnonzero((gray < 0.5).any(axis=1))
    if rows.size == 0:
        return PageFound(numbers=(), polarity="dark_on_light")
    cuts = np.flatnonzero(np.diff(rows) > 1)
    bands = zip(np.r_[rows[0], rows[cuts + 1]], np.r_[rows[cuts], rows[-1]], strict=True)
    numbers = []
    for k, (y0, y1) in enumerate(bands):
        y0, y1 = max(0, int(y0) - 4), min(gray.shape[0], int(y1) + 5)
        band = find_numbers(Scan.of_gray(gray[y0:y1], scan.mode), max_digits)
        for f in band.numbers:
            x, y, w, h = f.box
            marks = tuple(replace(m, box=(m.box[0], m.box[1] + y0, *m.box[2:])) for m in f.marks)
            numbers.append(Found(marks=marks, box=(x, y + y0, w, h),
                                 separators=(separators or {}).get(k, ()),
                                 doubts=(doubts or {}).get(k, ()), printed=k in printed))
    return PageFound(numbers=tuple(numbers), polarity="dark_on_light")


# --- helpers ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recognizer(shipped_model) -> Recognizer:
    return Recognizer(shipped_model)


@pytest.fixture
def pool():
    with Pool(0, initializer=init_worker) as p:
        yield p


def run(tmp_path: Path, recognizer, pool, paths, *, pictures=True):
    runner = Runner(recognizer, Writer(Outbox(tmp_path / "out"), durable=False), pool,
                    limits=LIMITS, pictures=Pictures(pool) if pictures else None)
    return runner.run([Input.of(p) for p in paths])


def rows(outbox: Path) -> list[dict[str, str]]:
    with open(outbox / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def annotated(outbox: Path) -> list[str]:
    return sorted(p.name for p in (outbox / "annotated").iterdir())


def picture(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None
    return img


# --- a single number: today's values ------------------------------------------------------------


def test_a_single_number_image_gives_todays_values_and_one_row(tmp_path, recognizer, pool):
    path = png(tmp_path / "in" / "year.png", draw_digits("2024", height=60))
    (outcome,) = run(tmp_path, recognizer, pool, [path])
    result = outcome.result
    scan = decode(path.read_bytes(), 10**8)
    (today,) = recognizer.read([scan])  # the reading as digitd made it before pages
    before = result_dict("year.png", today, sha256=result["sha256"], model=recognizer.name,
                         processed_at=result["processed_at"], elapsed_ms=result["elapsed_ms"],
                         annotated="annotated/year.png", image=scan)
    for key in ("status", "number", "digits", "confidence", "polarity", "image", "annotated",
                "error"):
        assert result[key] == before[key], key
    assert (result["status"], result["number"]) == ("ok", "2024")
    assert result["numbers"] == ["2024"] and result["doubts"] == []
    (page,) = result["pages"]
    assert {k: page[k] for k in ("page", "width", "height", "rotation", "status", "error",
                                 "annotated")} == {
        "page": 1, "width": scan.width, "height": scan.height, "rotation": 0, "status": "ok",
        "error": None, "annotated": "annotated/year.png"}
    (number,) = page["numbers"]
    boxes = [d["box"] for d in result["digits"]]
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    assert number == {"number": "2024", "confidence": result["confidence"], "status": "ok",
                      "box": [x0, y0, max(b[0] + b[2] for b in boxes) - x0,
                              max(b[1] + b[3] for b in boxes) - y0],
                      "printed": False, "doubts": [], "digits": result["digits"]}
    (row,) = rows(tmp_path / "out")
    assert tuple(row) == CSV_COLUMNS
    assert (row["number"], row["status"], row["page"], row["index"]) == ("2024", "ok", "1", "1")
    assert row["box"] == " ".join(str(v) for v in number["box"])
    assert row["confidence"] == f"{result['confidence']:.6f}"
    # today's picture: the digits' columns, PANEL high, not a page picture
    assert annotated(tmp_path / "out") == ["year.png"]
    assert picture(tmp_path / "out" / "annotated" / "year.png").shape[0] < 400


def test_a_blank_image_has_one_row_with_no_page(tmp_path, recognizer, pool):
    path = png(tmp_path / "in" / "empty.png", np.full((80, 120), 255, np.uint8))
    (outcome,) = run(tmp_path, recognizer, pool, [path])
    r = outcome.result
    assert (r["status"], r["number"], r["numbers"], r["confidence"]) == ("blank", None, [], None)
    assert [(p["status"], p["numbers"]) for p in r["pages"]] == [("blank", [])]
    (row,) = rows(tmp_path / "out")
    assert (row["status"], row["number"], row["page"], row["index"], row["box"]) == \
        ("blank", "", "", "", "")


# --- several numbers on a page -----------------------------------------------------------------


def test_two_lines_are_two_numbers_each_with_its_row(tmp_path, recognizer, pool, monkeypatch):
    monkeypatch.setattr(reader, "find_numbers", numbers_by_line)
    path = png(tmp_path / "in" / "form.png", page_of([("12", 150, 200), ("345", 500, 800)]))
    (outcome,) = run(tmp_path, recognizer, pool, [path])
    r = outcome.result
    assert (r["status"], r["number"], r["digits"], r["confidence"]) == ("ok", None, [], None)
    assert r["numbers"] == ["12", "345"]
    assert r["annotated"] == "annotated/form.png"
    (page,) = r["pages"]
    assert (page["width"], page["height"], page["status"]) == (1100, 1500, "ok")
    assert [n["number"] for n in page["numbers"]] == ["12", "345"]
    # each number read exactly as the model reads its marks alone
    found = numbers_by_line(decode(path.read_bytes(), 10**8))
    alone = recognizer.classify([(list(f.marks), "dark_on_light") for f in found.numbers])
    assert [n["confidence"] for n in page["numbers"]] == [round(a.confidence, 6) for a in alone]
    assert [n["box"] for n in page["numbers"]] == [list(f.box) for f in found.numbers]
    assert page["numbers"][1]["box"][1] > 750  # in the page's pixels, not the band's
    got = rows(tmp_path / "out")
    assert [(g["number"], g["page"], g["index"], g["status"]) for g in got] == [
        ("12", "1", "1", "ok"), ("345", "1", "2", "ok")]
    assert [g["box"] for g in got] == [" ".join(map(str, f.box)) for f in found.numbers]
    assert {g["result"] for g in got} == {"results/form.json"}
    # a page picture: the whole page ~PAGE_H high, with a box on each number
    img = picture(tmp_path / "out" / "annotated" / "form.png")
    assert PAGE_H < img.shape[0] < PAGE_H + 120
    green = (np.abs(img.astype(int) - [0x37, 0x7f, 0x1a]).sum(axis=2) < 30)  # BGR of "ok"
    assert green.sum() > 2000


def test_separators_and_doubts_go_into_the_numbers(tmp_path, recognizer, pool, monkeypatch):
    monkeypatch.setattr(reader, "find_numbers", functools.partial(
        numbers_by_line, separators={0: ((2, "/"), (4, "/")), 1: ((1, "."),), 2: ((0, "-"),)},
        doubts={2: ("a mark between digits was not read",)}))
    path = png(tmp_path / "in" / "seps.png",
               page_of([("12052026", 100, 100), ("375", 100, 500), ("42", 100, 900)]))
    (outcome,) = run(tmp_path, recognizer, pool, [path], pictures=False)
    r = outcome.result
    assert r["numbers"] == ["12/05/2026", "3.75", "-42"]
    assert [n["status"] for n in r["pages"][0]["numbers"]] == ["ok", "ok", "uncertain"]
    assert r["pages"][0]["numbers"][2]["doubts"] == ["a mark between digits was not read"]
    assert (r["status"], r["doubts"]) == ("uncertain", ["a mark between digits was not read"])
    assert [d["digit"] for d in r["pages"][0]["numbers"][0]["digits"]] == [1, 2, 0, 5, 2, 0, 2, 6]
    assert [(g["number"], g["status"]) for g in rows(tmp_path / "out")] == [
        ("12/05/2026", "ok"), ("3.75", "ok"), ("-42", "uncertain")]


def test_printed_numbers_are_kept_apart(tmp_path, recognizer, pool, monkeypatch):
    monkeypatch.setattr(reader, "find_numbers", functools.partial(numbers_by_line, printed={0}))
    path = png(tmp_path / "in" / "printed.png", page_of([("2026", 100, 100), ("7", 300, 600)]))
    (outcome,) = run(tmp_path, recognizer, pool, [path], pictures=False)
    r = outcome.result
    assert [(n["number"], n["printed"]) for n in r["pages"][0]["numbers"]] == [
        ("2026", True), ("7", False)]
    # the one handwritten number on a one-page input is the number
    assert (r["number"], r["numbers"], r["status"]) == ("7", ["7"], "ok")
    assert [(g["number"], g["index"]) for g in rows(tmp_path / "out")] == [("7", "2")]


# --- several pages ------------------------------------------------------------------------------


def test_a_multi_page_tiff_through_the_real_pages(tmp_path, recognizer, pool):
    path = tiff(tmp_path / "in" / "scan.tiff", [draw_digits("12", height=60),
                                                draw_digits("345", height=60)])
    if len(list(pages(path.read_bytes(), 10**8))) < 2:
        pytest.skip("imageio.pages reads page 1 of a TIFF only (the decoding branch adds the rest)")
    (outcome,) = run(tmp_path, recognizer, pool, [path])
    r = outcome.result
    assert (r["status"], r["number"], r["numbers"]) == ("ok", None, ["12", "345"])
    assert [p["page"] for p in r["pages"]] == [1, 2]
    assert annotated(tmp_path / "out") == ["scan.p1.png", "scan.p2.png"]
    assert [(g["number"], g["page"], g["index"]) for g in rows(tmp_path / "out")] == [
        ("12", "1", "1"), ("345", "2", "1")]


def test_pages_of_a_document_with_a_page_that_fails_alone(tmp_path, recognizer, pool,
                                                         monkeypatch):
    monkeypatch.setattr(reader, "pages", tiff_pages)
    monkeypatch.setattr(reader, "find_numbers", numbers_by_line)
    images = [page_of([("12", 150, 200), ("345", 500, 800)]),
              np.full((2100, 2100), 255, np.uint8),  # over max_pixels: this page fails
              page_of([]),  # blank
              draw_digits("7", height=300)]  # a page that is one digit
    path = tiff(tmp_path / "in" / "doc.tiff", images)
    (outcome,) = run(tmp_path, recognizer, pool, [path])
    r = outcome.result
    assert (r["status"], r["number"], r["numbers"]) == ("uncertain", None, ["12", "345", "7"])
    assert r["error"] == "page 2 failed: page too large: 2100x2100 pixels"
    assert r["annotated"] == "annotated/doc.p1.png"
    assert [(p["page"], p["status"], p["error"], p["annotated"], len(p["numbers"]))
            for p in r["pages"]] == [
        (1, "ok", None, "annotated/doc.p1.png", 2),
        (2, "failed", "page too large: 2100x2100 pixels", None, 0),
        (3, "blank", None, "annotated/doc.p3.png", 0),
        (4, "ok", None, "annotated/doc.p4.png", 1)]
    assert [(p["width"], p["height"], p["dpi"]) for p in r["pages"]][:2] == [
        (1100, 1500, 200.0), (None, None, 200.0)]
    assert annotated(tmp_path / "out") == ["doc.p1.png", "doc.p3.png", "doc.p4.png"]
    got = rows(tmp_path / "out")
    assert [(g["number"], g["page"], g["index"], g["status"]) for g in got] == [
        ("12", "1", "1", "ok"), ("345", "1", "2", "ok"), ("7", "4", "1", "ok")]
    assert {g["error"] for g in got} == {"page 2 failed: page too large: 2100x2100 pixels"}
    # one model call for every number of every page
    assert json.loads((tmp_path / "out" / "results" / "doc.json").read_text()) == r
    # a page of one digit keeps the digits picture; a page of numbers gets the page picture
    assert picture(tmp_path / "out" / "annotated" / "doc.p4.png").shape[0] < 400
    assert picture(tmp_path / "out" / "annotated" / "doc.p1.png").shape[0] > PAGE_H


def test_a_document_whose_every_page_fails_is_failed(tmp_path, recognizer, pool, monkeypatch):
    monkeypatch.setattr(reader, "pages", tiff_pages)
    big = np.full((2100, 2100), 255, np.uint8)
    path = tiff(tmp_path / "in" / "huge.tiff", [big, big])
    (outcome,) = run(tmp_path, recognizer, pool, [path])
    r = outcome.result
    assert (r["status"], r["numbers"], r["annotated"]) == ("failed", [], None)
    assert r["error"] == ("page 1: page too large: 2100x2100 pixels; "
                          "page 2: page too large: 2100x2100 pixels")
    assert [p["status"] for p in r["pages"]] == ["failed", "failed"]
    (row,) = rows(tmp_path / "out")
    assert (row["status"], row["page"]) == ("failed", "")
    assert not (tmp_path / "out" / "annotated").exists()


def test_one_model_call_for_every_number_of_every_input(tmp_path, recognizer, pool, monkeypatch):
    monkeypatch.setattr(reader, "pages", tiff_pages)
    monkeypatch.setattr(reader, "find_numbers", numbers_by_line)
    calls = []

    class Counting(Recognizer):
        def classify(self, found):
            calls.append(len(found))
            return super().classify(found)

    counting = Counting(recognizer.path)
    doc = tiff(tmp_path / "in" / "doc.tiff", [page_of([("12", 150, 200), ("345", 500, 800)]),
                                              page_of([("9", 300, 300)])])
    one = png(tmp_path / "in" / "one.png", draw_digits("5", height=60))
    outcomes = run(tmp_path, counting, pool, [doc, one], pictures=False)
    assert calls == [4]
    assert [o.result["numbers"] for o in outcomes] == [["12", "345", "9"], ["5"]]
