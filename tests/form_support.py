"""Forms for the service's tests: the exam cover sheet and the lab sheet of
``test_formread`` drawn, filled with MNIST handwriting the shipped model reads
right alone, scanned a little askew, and written as PNG or PDF bytes."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from test_formread import CELLS, EXAM, LAB, MOVES, draw_form, fill, px, scan_of, write_template

EXAM_NAME, LAB_NAME = "exam-cover", "lab"


def write_forms(folder: Path, *, lab: bool = True) -> Path:
    """The forms folder: the exam cover sheet (and the lab sheet) as templates."""
    folder.mkdir(parents=True, exist_ok=True)
    write_template(folder / "exam-cover.yaml", EXAM_NAME, EXAM)
    if lab:
        write_template(folder / "lab.yaml", LAB_NAME, LAB)
    return folder


def handwriting(mnist_path: Path, model_path: Path, count: int = 400) -> dict[int, list[np.ndarray]]:
    """MNIST test digits by label that the model reads right alone (confidence >= 0.95)."""
    from digitd.recognize import Recognizer
    from digitd.records import Mark

    with np.load(mnist_path) as data:
        images, labels = data["x_test"][:count], data["y_test"][:count]
    readings = Recognizer(model_path).classify(
        [([Mark(box=(0, 0, 28, 28), pixels=im.astype(np.float32) / 255.0)], None) for im in images])
    out: dict[int, list[np.ndarray]] = {d: [] for d in range(10)}
    for image, label, reading in zip(images, labels, readings, strict=True):
        if reading.number == str(int(label)) and reading.confidence >= 0.95:
            out[int(label)].append(image)
    assert all(len(v) >= 3 for v in out.values()), {d: len(v) for d, v in out.items()}
    return out


def digits(text: str, hand: dict[int, list[np.ndarray]], start: int = 0) -> list[np.ndarray | None]:
    """The handwriting of a string of digits (a space: an empty cell), the k-th writing of
    each digit from ``start`` on."""
    used: dict[int, int] = {}
    out: list[np.ndarray | None] = []
    for ch in text:
        if ch == " ":
            out.append(None)
            continue
        d = int(ch)
        k = used.get(d, 0)
        used[d] = k + 1
        out.append(hand[d][(start + k) % len(hand[d])])
    return out


def scanned(page: np.ndarray, move: int = 0) -> np.ndarray:
    """The page as a grey scan, shifted, scaled and turned by ``MOVES[move]``."""
    return (scan_of(page, MOVES[move % len(MOVES)]).gray * 255).round().astype(np.uint8)


def exam_page(hand, values: dict[str, str], *, start: int = 0, move: int = 0,
              fields: dict = EXAM) -> np.ndarray:
    """The exam cover sheet (``fields``: its template's) with ``values`` written in their
    fields (the others left empty)."""
    page = draw_form("EXAM COVER SHEET", fields)
    for name, text in values.items():
        fill(page, fields[name][0], digits(text, hand, start),
             cells=CELLS if name == "student_id" else 0)
    return scanned(page, move)


def lab_page(hand, values: dict[str, str], *, start: int = 0, move: int = 0) -> np.ndarray:
    """The lab sheet with ``values`` written in their fields."""
    page = draw_form("LAB SAMPLE SHEET", LAB)
    for name, text in values.items():
        fill(page, LAB[name][0], digits(text, hand, start))
    return scanned(page, move)


def plain_page(hand, text: str = "4096") -> np.ndarray:
    """An A4 page with a title and one handwritten number, no printed boxes: no form."""
    page = np.full((2339, 1654), 255, np.uint8)
    cv2.putText(page, "NOTES", (px(20), px(25)), cv2.FONT_HERSHEY_SIMPLEX, 2.0, 20, 4)
    fill(page, (40.0, 80.0, 60.0, 14.0), digits(text, hand))
    return page


def png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()


def pdf(images: list[np.ndarray], dpi: int = 200) -> bytes:
    """A PDF of the grey pages, one page each at ``dpi`` (Pillow)."""
    from PIL import Image

    pages = [Image.fromarray(im) for im in images]
    buf = io.BytesIO()
    pages[0].save(buf, "PDF", save_all=True, append_images=pages[1:], resolution=float(dpi))
    return buf.getvalue()
