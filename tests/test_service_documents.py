"""Documents through the real service: a PDF's and a TIFF's pages read into one
result, and each bad document failed with its reason and quarantined, the
service alive and nothing lost (the real ``digitd run``, the shipped model)."""

from __future__ import annotations

import io
import struct

import cv2
import numpy as np
from conftest import draw_digits
from service_support import (
    csv_rows,
    done_count,
    error_records,
    inbox_files,
    make_setup,
    result_files,
    service,  # noqa: F401 - the fixture
    wait_until,
)
from test_documents import LETTER, encoded, make_pdf, square, tiff_entries


def pdf_of(images: list[np.ndarray], dpi: int = 100) -> bytes:
    """A PDF with one A4 page per grey image, the image centred on it (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure

    buf = io.BytesIO()
    with PdfPages(buf) as pdf:
        for img in images:
            fig = Figure(figsize=(8.27, 11.69), dpi=dpi, facecolor="white")
            h, w = img.shape
            fig.figimage(np.dstack([img] * 3), xo=(827 - w) // 2, yo=(1169 - h) // 2)
            pdf.savefig(fig, dpi=dpi)
    return buf.getvalue()


def number_image(text: str) -> np.ndarray:
    return draw_digits(text, height=220, thickness=18)


def corrupt_third_page(data: bytes) -> bytes:
    out = bytearray(data)
    at, _, _, _ = tiff_entries(bytes(out), 2)[273]  # page 3's strip: past the end of the file
    out[at + 8: at + 12] = struct.pack("<I" if out[:2] == b"II" else ">I", len(out) + 1000)
    return bytes(out)


def test_documents_are_read_page_by_page_and_bad_ones_quarantined(tmp_path, shipped_model,
                                                                    service):  # noqa: F811
    setup = make_setup(tmp_path, shipped_model, log_level="DEBUG")
    svc = service(setup).wait_ready()
    ok, buf = cv2.imencodemulti(".tif", [number_image("42"), number_image("7"), number_image("5")])
    assert ok
    good = {
        "two pages.pdf": pdf_of([number_image("42"), number_image("7")]),
        "blank.pdf": make_pdf([(*LETTER, b"")]),
        "photo.pdf": encoded(".jpg", number_image("3")),  # a JPEG under a .pdf name
        "scan.tiff": corrupt_third_page(buf.tobytes()),
    }
    whole = make_pdf([(*LETTER, square(72, 144, 144, 72))] * 3)
    bad = {
        "empty.pdf": (make_pdf([]), "empty PDF: it has no pages"),
        "locked.pdf": (make_pdf([(*LETTER, square(72, 144, 144, 72))], password="secret"),
                       "password-protected PDF: it cannot be opened without its password"),
        "cut.pdf": (whole[: len(whole) // 2], "truncated PDF: the file ends before the document does"),
    }
    for name, data in good.items():
        (setup.inbox / name).write_bytes(data)
    for name, (data, _) in bad.items():
        (setup.inbox / name).write_bytes(data)
    wait_until(lambda: done_count(setup.outbox) >= len(good) + len(bad), 90,
               "every document finished", on_fail=svc.tail)
    assert svc.alive()

    results = {r["source"]: r for r in result_files(setup.outbox)}
    assert set(results) == set(good) | set(bad)
    two = results["two pages.pdf"]
    assert (two["status"], two["numbers"], two["number"]) == ("ok", ["42", "7"], None)
    assert [(p["page"], p["status"], [n["number"] for n in p["numbers"]]) for p in two["pages"]] == [
        (1, "ok", ["42"]), (2, "ok", ["7"])]
    assert all(p["dpi"] == 200 and (p["width"], p["height"]) == (1655, 2338) for p in two["pages"])  # A4
    assert sorted(p.name for p in (setup.outbox / "annotated").glob("two pages*")) == [
        "two pages.p1.png", "two pages.p2.png"]

    blank = results["blank.pdf"]
    assert (blank["status"], blank["numbers"], blank["error"]) == ("blank", [], None)
    photo = results["photo.pdf"]
    assert (photo["status"], photo["number"]) == ("ok", "3")

    tiff = results["scan.tiff"]
    assert tiff["status"] == "uncertain" and tiff["numbers"] == ["42", "7"]
    assert [(p["page"], p["status"]) for p in tiff["pages"]] == [(1, "ok"), (2, "ok"), (3, "failed")]
    assert tiff["pages"][2]["error"] == "cannot decode TIFF: corrupt or unsupported data"
    assert "page 3 failed" in tiff["error"]

    records = {r["source"]: r for r in error_records(setup.outbox)}
    assert set(records) == set(bad)
    for name, (data, reason) in bad.items():
        assert records[name]["reason"] == reason
        assert results[name]["status"] == "failed" and results[name]["error"] == reason
        assert (setup.outbox / "failed" / name).read_bytes() == data
    for name, data in good.items():  # archived as they came
        assert (setup.outbox / "originals" / name).read_bytes() == data
    assert inbox_files(setup.inbox) == []

    rows = csv_rows(setup.outbox)
    by_source: dict[str, list[tuple[str, str, str]]] = {}
    for row in rows:
        by_source.setdefault(row["source"], []).append((row["page"], row["index"], row["number"]))
    assert by_source["two pages.pdf"] == [("1", "1", "42"), ("2", "1", "7")]
    assert by_source["scan.tiff"] == [("1", "1", "42"), ("2", "1", "7")]
    assert by_source["blank.pdf"] == [("", "", "")]
    assert all(by_source[name] == [("", "", "")] for name in bad)
    assert len(rows) == 2 + 2 + 1 + 1 + len(bad)
