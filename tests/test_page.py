"""The page reader on pages drawn here: real-dev digits on a white A4 page at 200 dpi.

Handwriting is real (digits from ``../shared/data/real-dev``, their ink taken
from the file and pasted at a handwritten size with jitter); printed text,
boxes, combs and rules are drawn with OpenCV. Each test asserts where the
numbers are, how many digits each has, and what is left out.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
from digitd.imageio import decode, read_bytes
from digitd.page import estimate_skew, find_numbers, is_page
from digitd.records import Scan
from digitd.segment import ink_map, ink_mask_and_ratio, pieces

A4 = (2339, 1654)  # rows, columns: A4 at 200 dpi
REAL_DEV = [Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "real-dev",
            Path("/work/shared/data/real-dev")]


def real_dev() -> Path:
    for p in REAL_DEV:
        if (p / "labels.csv").is_file():
            return p
    pytest.skip("real-dev digits not found; looked at: " + ", ".join(str(p) for p in REAL_DEV))


def labelled_digits() -> dict[str, list[Path]]:
    """digit -> real-dev files of it (not ambiguous)."""
    root = real_dev()
    out: dict[str, list[Path]] = {}
    with open(root / "labels.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["ambiguous"] == "0":
                out.setdefault(row["label"], []).append(root / row["file"])
    return out


_INK: dict[Path, np.ndarray] = {}


def digit_ink(path: Path) -> np.ndarray:
    """A real-dev digit's ink, 0-1, cropped to it (its paper and shadows left out)."""
    if path not in _INK:
        scan = decode(read_bytes(path, 1 << 28), 10**9)
        ink = ink_map(scan.image, scan.gray)
        mask, ratio = ink_mask_and_ratio(ink)
        labels, kept = pieces(mask)
        keep = np.isin(labels, [p.label for p in kept]).astype(np.uint8)
        alpha = np.minimum(ratio, 1.0) * cv2.dilate(keep, np.ones((3, 3), np.uint8))
        x, y, w, h = cv2.boundingRect((alpha > 0.2).astype(np.uint8))
        _INK[path] = alpha[y : y + h, x : x + w].astype(np.float32)
    return _INK[path]


class Page:
    """A white A4 page at 200 dpi being drawn on; ``truth`` holds the handwritten numbers."""

    def __init__(self, seed: int = 0, shape: tuple[int, int] = A4):
        self.rng = np.random.default_rng(seed)
        self.img = np.full(shape, 245, np.uint8)
        self.truth: list[tuple[str, tuple[int, int, int, int]]] = []
        self.pool = labelled_digits()

    def paste(self, alpha: np.ndarray, x: int, y: int, h: int) -> tuple[int, int, int, int]:
        w = max(2, int(round(alpha.shape[1] * h / alpha.shape[0])))
        if alpha.shape[1] < 0.25 * alpha.shape[0]:  # a bare stroke '1': keep a pen's width
            w = max(w, h // 10)
        a = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_AREA)
        if 2 * a.sum() / max(1.0, cv2.arcLength(max(cv2.findContours((a > 0.5).astype(np.uint8), cv2.RETR_LIST,
                cv2.CHAIN_APPROX_NONE)[0], key=len, default=np.zeros((1, 1, 2), np.int32)), True)) < 3:
            a = cv2.dilate(a, np.ones((3, 3), np.uint8))  # a pen at 200 dpi is 3 pixels wide at least
        region = self.img[y : y + h, x : x + w]
        region[:] = np.round(region * (1 - a) + 35.0 * a).astype(np.uint8)
        return x, y, w, h

    def number(self, text: str, x: int, y: int, height: int = 70, gap: float = 0.25) -> tuple[int, int, int, int]:
        """Handwritten digits of ``text`` from (x, y); other characters are drawn as
        separators ('.', ',', '-', '/'). Returns the box of the digits."""
        boxes = []
        for ch in text:
            if ch.isdigit():
                files = self.pool[ch]
                alpha = digit_ink(files[int(self.rng.integers(len(files)))])
                h = int(height * self.rng.uniform(0.9, 1.1))
                dy = int(height * self.rng.uniform(-0.08, 0.08))
                boxes.append(self.paste(alpha, x, y + dy + (height - h), h))
                x = boxes[-1][0] + boxes[-1][2] + int(height * gap * self.rng.uniform(0.7, 1.3))
            else:
                x = self.separator(ch, x, y, height)
        x0 = min(b[0] for b in boxes)
        y0 = min(b[1] for b in boxes)
        box = (x0, y0, max(b[0] + b[2] for b in boxes) - x0, max(b[1] + b[3] for b in boxes) - y0)
        self.truth.append(("".join(c for c in text if c.isdigit()), box))
        return box

    def separator(self, ch: str, x: int, y: int, height: int) -> int:
        pen = max(3, height // 14)
        if ch == "/":
            cv2.line(self.img, (x, y + height), (x + height // 2, y - height // 10), 35, pen, cv2.LINE_AA)
            return x + height // 2 + height // 5
        if ch == "-":
            cv2.line(self.img, (x, y + height // 2), (x + height // 3, y + height // 2), 35, pen, cv2.LINE_AA)
            return x + height // 3 + height // 5
        if ch in ".,":
            cv2.circle(self.img, (x + pen, y + height - pen), pen, 35, -1, cv2.LINE_AA)
            if ch == ",":
                cv2.line(self.img, (x + pen, y + height - pen), (x, y + height + pen * 3), 35, pen // 2 + 1,
                         cv2.LINE_AA)
            return x + 2 * pen + height // 5
        raise ValueError(ch)

    def text(self, s: str, x: int, y: int, scale: float = 1.0, font: int = cv2.FONT_HERSHEY_SIMPLEX,
             thickness: int = 2) -> None:
        cv2.putText(self.img, s, (x, y), font, scale, 20, thickness, cv2.LINE_AA)

    def scan(self) -> Scan:
        noisy = self.img.astype(np.float32) + self.rng.normal(0, 3, self.img.shape).astype(np.float32)
        return Scan.of_gray(np.clip(noisy, 0, 255).astype(np.uint8).astype(np.float32) / 255.0, "uint8 gray")


def inside(box, truth, slack: int = 12) -> bool:
    """box covers the true box (within slack pixels each side) and no more."""
    bx, by, bw, bh = box
    tx, ty, tw, th = truth
    return (abs(bx - tx) <= slack and abs(by - ty) <= slack
            and abs(bx + bw - tx - tw) <= slack and abs(by + bh - ty - th) <= slack)


WORDS = ("name", "candidate", "signature", "office", "total", "amount", "please", "write", "number", "clearly",
         "form", "date", "reference", "account", "score", "the", "of", "in", "this", "box", "2026", "page", "No.")
FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_TRIPLEX,
         cv2.FONT_HERSHEY_PLAIN)


def field_number(rng: np.random.Generator) -> str:
    kind = int(rng.integers(6))
    digits = lambda n: "".join(str(int(d)) for d in rng.integers(0, 10, n))  # noqa: E731
    if kind == 0:
        return f"{int(rng.integers(1, 29)):02d}/{int(rng.integers(1, 13)):02d}/2026"
    if kind == 1:
        return digits(int(rng.integers(1, 3))) + "." + digits(2)
    return digits(int(rng.integers(1, 7)))


def varied_page(seed: int) -> Page:
    """A form: a printed title and text, labelled fields holding handwritten numbers
    (plain, in a box, on an underline, in comb boxes), some with separators."""
    page = Page(seed)
    rng = page.rng
    font = FONTS[seed % len(FONTS)]
    page.text(" ".join(rng.choice(WORDS, 3)).upper(), 150, 180, 1.4, font, 2)
    y = 300
    for _ in range(int(rng.integers(1, 4))):
        page.text(" ".join(rng.choice(WORDS, 8)), 150, y, 0.9, font, 2)
        y += 60
    y += 120
    while y < A4[0] - 250:
        label = str(rng.choice(WORDS)).capitalize() + ":"
        page.text(label, 150, y, 1.0, font, 2)
        height = int(rng.integers(55, 95))
        style = int(rng.integers(4))
        text = field_number(rng)
        if style == 3:  # comb: one box per digit
            text = text.replace("/", "").replace(".", "")
            cell = int(height * 1.5)
            for i in range(len(text)):
                cv2.rectangle(page.img, (500 + i * cell, y - height - 10), (500 + (i + 1) * cell, y + 25), 20, 2)
            for i, ch in enumerate(text):
                page.number(ch, 500 + i * cell + int(cell * 0.15), y - height, int(height * 0.85))
            boxes = [b for _, b in page.truth[-len(text):]]
            del page.truth[-len(text):]
            x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
            x1, y1 = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
            page.truth.append((text, (x0, y0, x1 - x0, y1 - y0)))
            box = page.truth[-1][1]
        else:
            box = page.number(text, 500, y - height, height)
            if style == 1:
                cv2.rectangle(page.img, (470, y - height - 30), (box[0] + box[2] + 40, y + 30), 20, 2)
            elif style == 2:
                cv2.line(page.img, (470, y + 22), (box[0] + box[2] + 60, y + 22), 20, 2)
        if box[0] + box[2] < 1000 and rng.random() < 0.5:  # a second number on the line, far right
            page.number(str(int(rng.integers(1, 10**int(rng.integers(1, 4))))), 1250, y - height, height)
        y += int(rng.integers(170, 260))
    return page


def matched(found, truth) -> tuple[int, int, int]:
    """(numbers found at a true number's place with its count of digits, missed, extra)."""
    left = list(found)
    hits = 0
    for text, (tx, ty, tw, th) in truth:
        for f in left:
            cx, cy = f.box[0] + f.box[2] / 2, f.box[1] + f.box[3] / 2
            if tx - 10 <= cx <= tx + tw + 10 and ty - 10 <= cy <= ty + th + 10:
                left.remove(f)
                hits += len(f.marks) == len(text)
                break
    return hits, len(truth) - hits, len(left)
