#!/usr/bin/env python3
"""Pages as an office scans them, with labels: the set `accuracy.py --pages` measures.

    python scripts/pages.py --out DIR [--pages N] [--seed S] [--set pages|nondigit|separators|turned|forms|all]

Handwritten numbers (real-dev digits and MNIST *test* digits, separators drawn
with a pen stroke) placed in printed A4 forms and on ruled sheets at 200/300 dpi,
then rotated, blurred, noised, sometimes photographed, and saved as PNG, JPEG,
PDF and multi-page TIFF; a non-digit set (letters, words, shapes in fonts and in
a pen stroke of this script's own; blank and ruled sheets); separator crops;
pages scanned a quarter or half turn round; with `--set forms` (not in `all`),
filled forms of three templates written into DIR/forms/, for `accuracy.py
--forms`. `DIR/labels.json` says what each page holds (format in the README,
"Page set"). The same seed gives the same files.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
SETS = ("pages", "nondigit", "separators", "turned", "forms")
A4_MM = (210.0, 297.0)
HERSHEY = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
           cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_COMPLEX_SMALL)
DEJAVU = ("DejaVu Sans", "DejaVu Serif", "DejaVu Sans Mono")
WORDS = ("the of and to in is for on with as by this form must be filled in block capitals "
         "please write clearly inside each box office use only signature applicant name "
         "address received checked approved department section reference notes remarks "
         "student teacher class result total amount payment invoice customer account "
         "returned copy original keep record valid from until see overleaf").split()
FIELDS = (("Student ID", "id"), ("Account no.", "id"), ("Reference", "id"), ("Phone", "id"),
          ("Score", "int"), ("Room", "int"), ("Quantity", "int"), ("Mark", "int"),
          ("Amount", "decimal"), ("Price", "decimal"), ("Date", "date"), ("Date of birth", "date"),
          ("Change", "negative"), ("Balance", "negative"), ("Total", "thousands"),
          ("Population", "thousands"))
TITLES = ("APPLICATION FORM", "Examination results", "Delivery note", "Registration",
          "Expense claim", "Order form", "Attendance sheet", "Lab record")
NAMES = ("Hello", "hello", "Anna", "Mark", "Helen", "Arthur", "Kate", "Martin", "Karen", "Rudy",
         "Hannah", "Tuan", "Lucy", "Ethan", "Nora", "Fred", "Cathy", "done", "Wendy", "Date")
# Letters that a hand makes like a digit (O/0, I l/1, Z/2, S/5, G b/6, g q/9) are left out:
# nobody can read them apart without context. B stays (the "B read as 3").
LETTERS = "ABCEFHKLMNPRTUVWXYacdehkmnrtuy"
FONT_SHAPES = "\u2605\u263a\u2713\u2192\u2665\u2717\u266a\u2691"  # star smiley check arrow heart cross note flag
PEN_SHAPES = ("smiley", "star", "arrow", "check", "heart", "spiral", "triangle", "scribble")

# A pen alphabet of this script's own: strokes through points, x right, y down,
# 0 = cap height, 1 = baseline (lower case from 0.45). Jittered at every use.
PEN = {
    "A": [[(0, 1), (.4, 0), (.8, 1)], [(.18, .6), (.62, .6)]],
    "B": [[(0, 1), (0, 0), (.45, .02), (.6, .22), (.45, .46), (0, .48)],
          [(0, .48), (.55, .52), (.7, .75), (.5, .98), (0, 1)]],
    "C": [[(.7, .15), (.4, 0), (.08, .2), (.02, .55), (.2, .92), (.5, 1), (.75, .85)]],
    "E": [[(.65, 0), (0, 0), (0, 1), (.65, 1)], [(0, .5), (.5, .5)]],
    "F": [[(.65, 0), (0, 0), (0, 1)], [(0, .5), (.5, .5)]],
    "H": [[(0, 0), (0, 1)], [(.7, 0), (.7, 1)], [(0, .5), (.7, .5)]],
    "K": [[(0, 0), (0, 1)], [(.65, 0), (0, .6)], [(.2, .45), (.7, 1)]],
    "L": [[(0, 0), (0, 1), (.6, 1)]],
    "M": [[(0, 1), (.05, 0), (.45, .7), (.85, 0), (.9, 1)]],
    "N": [[(0, 1), (0, 0), (.7, 1), (.7, 0)]],
    "P": [[(0, 1), (0, 0), (.45, .02), (.62, .25), (.45, .5), (0, .52)]],
    "R": [[(0, 1), (0, 0), (.45, .02), (.62, .25), (.45, .5), (0, .52)], [(.25, .52), (.7, 1)]],
    "T": [[(0, 0), (.8, 0)], [(.4, 0), (.4, 1)]],
    "U": [[(0, 0), (0, .7), (.2, .97), (.5, .97), (.7, .7), (.7, 0)]],
    "V": [[(0, 0), (.4, 1), (.8, 0)]],
    "W": [[(0, 0), (.25, 1), (.5, .35), (.75, 1), (1, 0)]],
    "X": [[(0, 0), (.7, 1)], [(.7, 0), (0, 1)]],
    "Y": [[(0, 0), (.4, .5), (.8, 0)], [(.4, .5), (.4, 1)]],
    "a": [[(.55, .55), (.3, .45), (.05, .65), (.1, .95), (.35, .98), (.55, .8)], [(.55, .45), (.55, 1)]],
    "c": [[(.5, .52), (.3, .45), (.05, .65), (.1, .95), (.35, 1), (.55, .92)]],
    "d": [[(.55, .55), (.3, .45), (.05, .65), (.1, .95), (.35, .98), (.55, .8)], [(.55, 0), (.55, 1)]],
    "e": [[(.05, .75), (.55, .72), (.5, .5), (.28, .45), (.05, .6), (.08, .9), (.3, 1), (.55, .93)]],
    "h": [[(0, 0), (0, 1)], [(0, .65), (.25, .47), (.5, .55), (.55, 1)]],
    "i": [[(.05, .48), (.05, 1)], [(.05, .28), (.07, .3)]],
    "k": [[(0, 0), (0, 1)], [(.45, .45), (0, .75), (.5, 1)]],
    "l": [[(.05, 0), (.05, .9), (.15, 1)]],
    "m": [[(0, .45), (0, 1)], [(0, .6), (.2, .46), (.4, .58), (.4, 1)], [(.4, .6), (.6, .46), (.8, .58), (.8, 1)]],
    "n": [[(0, .45), (0, 1)], [(0, .62), (.25, .46), (.5, .55), (.52, 1)]],
    "o": [[(.3, .45), (.05, .6), (.08, .92), (.35, 1), (.58, .85), (.55, .55), (.3, .45)]],
    "r": [[(0, .45), (0, 1)], [(0, .65), (.2, .48), (.45, .48)]],
    "t": [[(.2, .1), (.2, .9), (.35, 1), (.5, .95)], [(0, .45), (.45, .45)]],
    "u": [[(0, .45), (0, .85), (.2, 1), (.45, .9), (.5, .45)], [(.5, .45), (.52, 1)]],
    "y": [[(0, .45), (.25, .95)], [(.5, .45), (.2, 1.35), (.05, 1.4)]],
}


@dataclass
class Bank:
    """Handwritten digits as ink maps (float32, 1 = full ink, cropped), by label and by writer."""

    mnist: dict[int, list[np.ndarray]]
    real: dict[int, list[np.ndarray]]

    def writer(self, rng: np.random.Generator) -> str:
        """Whose digits a number is written with: real-dev's for about a third, when there are any."""
        return "real" if rng.random() < 0.35 and all(self.real.values()) else "mnist"

    def digit(self, label: int, writer: str, rng: np.random.Generator) -> np.ndarray:
        pool = (self.real if writer == "real" else self.mnist)[label] or self.mnist[label]
        return pool[int(rng.integers(len(pool)))]


# ---------------------------------------------------------------- sources


def crop_ink(ink: np.ndarray, floor: float = 0.2) -> np.ndarray:
    ys, xs = np.nonzero(ink > floor)
    return ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def ink_from_scan(gray: np.ndarray, photo: bool) -> np.ndarray:
    """Dark ink on light paper (uint8) -> ink map, specks dropped; a photo's lighting
    flattened first (a drawing's paper is one level, and its strokes may be thick)."""
    g = gray.astype(np.float32) / 255.0
    if photo:
        k = max(3, (max(g.shape) // 8) | 1)
        paper = cv2.GaussianBlur(cv2.morphologyEx(g, cv2.MORPH_CLOSE, np.ones((k, k), np.uint8)), (0, 0), k / 4)
    else:
        paper = np.float32(np.percentile(g, 90))
    dark = np.clip(paper - g, 0, 1)
    top = float(np.percentile(dark[dark > 0.05], 95)) if (dark > 0.05).any() else 1.0
    ink = np.clip(dark / max(top, 0.15), 0, 1)
    ink[ink < 0.25] = 0
    n, lab, stats, _ = cv2.connectedComponentsWithStats((ink > 0).astype(np.uint8), connectivity=8)
    if n > 2:
        areas = stats[1:, cv2.CC_STAT_AREA]
        keep = np.zeros(n, bool)
        keep[1:] = areas >= 0.05 * areas.max()
        ink[~keep[lab]] = 0
    return ink


def read_real_digit(path: Path, polarity: str, kind: str) -> np.ndarray | None:
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        return None
    if raw.dtype != np.uint8:
        raw = (raw / 257).astype(np.uint8)
    if raw.ndim == 3 and raw.shape[2] == 4:
        alpha = raw[..., 3:].astype(np.float32) / 255
        back = 255.0 if polarity == "dark_on_light" else 0.0
        raw = (raw[..., :3] * alpha + back * (1 - alpha)).astype(np.uint8)
    gray = cv2.cvtColor(raw, cv2.COLOR_BGR2GRAY) if raw.ndim == 3 else raw
    if max(gray.shape) > 256:  # no digit is written larger than this here
        f = 256 / max(gray.shape)
        gray = cv2.resize(gray, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    if polarity == "light_on_dark":
        gray = 255 - gray
    ink = ink_from_scan(gray, photo=kind == "photo")
    return crop_ink(ink) if (ink > 0.2).sum() > 10 else None


def load_bank(mnist: Path, real: Path) -> Bank:
    """MNIST test digits (x_test, y_test) and real-dev's unambiguous single digits."""
    with np.load(mnist) as npz:
        xs, ys = npz["x_test"], npz["y_test"]
    bank = Bank({d: [] for d in range(10)}, {d: [] for d in range(10)})
    for x, y in zip(xs, ys):
        bank.mnist[int(y)].append(crop_ink(x.astype(np.float32) / 255.0, 0.1))
    labels = real / "labels.csv"
    if labels.is_file():
        for row in csv.DictReader(labels.open()):
            if row["ambiguous"] == "0":
                ink = read_real_digit(real / row["file"], row["polarity"], row["kind"])
                if ink is not None:
                    bank.real[int(row["label"])].append(ink)
    return bank


# ---------------------------------------------------------------- drawing


def paste(layer: np.ndarray, ink: np.ndarray, x: int, y: int) -> None:
    """Ink drawn onto a layer (max), clipped to the layer."""
    h, w = ink.shape
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, layer.shape[1]), min(y + h, layer.shape[0])
    if x1 > x0 and y1 > y0:
        region = layer[y0:y1, x0:x1]
        np.maximum(region, ink[y0 - y : y1 - y, x0 - x : x1 - x], out=region)


def spline(points: np.ndarray, per_segment: int = 12) -> np.ndarray:
    """A Catmull-Rom curve through the points."""
    if len(points) < 3:
        t = np.linspace(0, 1, per_segment)[:, None]
        return points[0] * (1 - t) + points[-1] * t
    p = np.vstack([points[0], points, points[-1]])
    out = []
    t = np.linspace(0, 1, per_segment, endpoint=False)[:, None]
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        out.append(0.5 * (2 * p1 + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                          + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3))
    out.append(points[-1:])
    return np.vstack(out)


def pen_stroke(layer: np.ndarray, points, width: float, rng: np.random.Generator, jitter: float = 0.0) -> None:
    """A pen-like stroke: a spline through (jittered) points, its width varying along it."""
    pts = np.asarray(points, np.float64)
    if jitter:
        pts = pts + rng.normal(0, jitter, pts.shape)
    curve = spline(pts)
    phase, speed = rng.uniform(0, 6.3), rng.uniform(0.05, 0.2)
    for i in range(len(curve) - 1):
        w = width * (0.8 + 0.3 * np.sin(phase + speed * i))
        a = tuple(int(v * 16) for v in curve[i])
        b = tuple(int(v * 16) for v in curve[i + 1])
        cv2.line(layer, a, b, 1.0, max(1, int(round(w))), cv2.LINE_AA, 4)


def pen_glyph(char: str, height: float, width: float, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """One letter of the pen alphabet: its ink and how far it advances."""
    strokes = PEN[char]
    span = max(x for s in strokes for x, _ in s)
    pad = int(width * 2 + 2)
    slant = rng.uniform(-0.15, 0.25)
    canvas = np.zeros((int(height * 1.5) + 2 * pad, int(height * (span + 0.6)) + 2 * pad), np.float32)
    for stroke in strokes:
        pts = [((x + slant * (1 - y)) * height + pad, y * height + pad) for x, y in stroke]
        pen_stroke(canvas, pts, width, rng, jitter=height * 0.03)
    return canvas, (span + 0.25) * height


def pen_word(text: str, height: float, rng: np.random.Generator) -> np.ndarray:
    width = max(1.5, height * rng.uniform(0.06, 0.11))
    glyphs = [pen_glyph(c, height, width, rng) for c in text if c in PEN]
    total = int(sum(adv for _, adv in glyphs) + height * 2)
    canvas = np.zeros((int(height * 1.5) + int(width * 4 + 4), total), np.float32)
    x = 0.0
    for ink, adv in glyphs:
        paste(canvas, ink[: canvas.shape[0]], int(x), 0)
        x += adv + height * rng.uniform(0.05, 0.15)
    return crop_ink(canvas)


def pen_shape(kind: str, size: float, rng: np.random.Generator) -> np.ndarray:
    """A shape drawn with the pen stroke: smiley, star, arrow, check, heart, spiral, triangle, scribble."""
    width = max(1.5, size * rng.uniform(0.03, 0.07))
    pad = int(width * 3 + 4)
    canvas = np.zeros((int(size) + 2 * pad, int(size) + 2 * pad), np.float32)
    c, r = size / 2 + pad, size / 2
    j = size * 0.02

    def ring(radius, start=0.0, stop=2 * np.pi, n=14, cx=c, cy=c):
        t = np.linspace(start, stop, n)
        return np.c_[cx + radius * np.cos(t), cy + radius * np.sin(t)]

    if kind == "smiley":
        pen_stroke(canvas, ring(r * 0.95), width, rng, j)
        for dx in (-0.35, 0.35):
            pen_stroke(canvas, [(c + dx * r, c - 0.3 * r), (c + dx * r, c - 0.2 * r)], width * 1.4, rng)
        pen_stroke(canvas, ring(r * 0.55, 0.2 * np.pi, 0.8 * np.pi, 8), width, rng, j)
    elif kind == "star":
        t = -np.pi / 2 + np.arange(6) * 4 * np.pi / 5
        pen_stroke(canvas, np.c_[c + r * np.cos(t), c + r * np.sin(t)], width, rng, j)
    elif kind == "arrow":
        pen_stroke(canvas, [(pad, c), (pad + size, c)], width, rng, j)
        pen_stroke(canvas, [(pad + size * 0.7, c - r * 0.4), (pad + size, c), (pad + size * 0.7, c + r * 0.4)], width, rng, j)
    elif kind == "check":
        pen_stroke(canvas, [(pad, c), (pad + size * 0.35, pad + size * 0.9), (pad + size, pad)], width, rng, j)
    elif kind == "heart":
        pts = [(c, pad + size), (pad + size * 0.05, c - r * 0.1), (pad + size * 0.2, pad + size * 0.1),
               (c, pad + size * 0.3), (pad + size * 0.8, pad + size * 0.1), (pad + size * 0.95, c - r * 0.1), (c, pad + size)]
        pen_stroke(canvas, pts, width, rng, j)
    elif kind == "spiral":
        t = np.linspace(0, 5 * np.pi, 30)
        pen_stroke(canvas, np.c_[c + r * t / t[-1] * np.cos(t), c + r * t / t[-1] * np.sin(t)], width, rng, j)
    elif kind == "triangle":
        pen_stroke(canvas, [(c, pad), (pad + size, pad + size), (pad, pad + size), (c, pad)], width, rng, j)
    else:  # scribble: a spline through random points
        pen_stroke(canvas, rng.uniform(pad, pad + size, (int(rng.integers(5, 10)), 2)), width, rng)
    return crop_ink(canvas)


@cache
def ft_font(family: str, bold: bool):
    from matplotlib import font_manager, ft2font

    props = font_manager.FontProperties(family=family, weight="bold" if bold else "normal")
    return ft2font.FT2Font(font_manager.findfont(props, fallback_to_default=True))


def printed_text(text: str, size_px: float, font) -> np.ndarray:
    """Printed text as an ink map: a Hershey font (int) or a matplotlib font ((family, bold))."""
    if isinstance(font, int):
        scale = size_px / cv2.getTextSize("H", font, 1.0, 1)[0][1]
        thick = max(1, int(round(size_px / 14)))
        (w, h), base = cv2.getTextSize(text, font, scale, thick)
        canvas = np.zeros((h + base + 2 * thick + 4, w + 2 * thick + 4), np.uint8)
        cv2.putText(canvas, text, (thick + 2, h + thick + 2), font, scale, 255, thick, cv2.LINE_AA)
        canvas = canvas.astype(np.float32) / 255.0
    else:
        ft = ft_font(*font)
        ft.set_size(size_px * 1.4, 72)
        ft.set_text(text, 0.0)
        ft.draw_glyphs_to_bitmap(antialiased=True)
        canvas = np.asarray(ft.get_image(), np.float32) / 255.0
    return crop_ink(canvas, 0.1) if (canvas > 0.1).any() else np.zeros((1, 1), np.float32)


def write_number(text: str, bank: Bank, writer: str, height: float, rng: np.random.Generator) -> np.ndarray:
    """A handwritten number: digits from the bank side by side, separators drawn with the pen."""
    pen = max(1.5, height * rng.uniform(0.08, 0.13))
    gap = height * rng.uniform(0.08, 0.3)
    pieces = []  # (ink, y offset)
    for ch in text:
        h = height * rng.uniform(0.9, 1.08)
        if ch.isdigit():
            src = bank.digit(int(ch), writer, rng)
            w = max(2, int(round(src.shape[1] * h / src.shape[0])))
            ink = cv2.resize(src, (w, int(h)), interpolation=cv2.INTER_LINEAR)
            shear = rng.uniform(-0.12, 0.12)
            m = np.float32([[1, shear, -shear * h / 2 + abs(shear) * h / 2], [0, 1, 0]])
            ink = cv2.warpAffine(ink, m, (w + int(abs(shear) * h) + 1, int(h)))
            pieces.append((ink, height - h + rng.uniform(-0.05, 0.05) * height))
        else:
            pieces.append(separator(ch, height, pen, rng))
    width = int(sum(p.shape[1] for p, _ in pieces) + gap * len(pieces) + height)
    canvas = np.zeros((int(height * 1.6), width), np.float32)
    x = 0.0
    for ink, dy in pieces:
        paste(canvas, ink, int(x), int(height * 0.2 + dy))
        x += ink.shape[1] + gap * rng.uniform(0.7, 1.3)
    return crop_ink(canvas)


def separator(ch: str, height: float, pen: float, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """A separator as a pen draws it, with its offset from the top of the digits' band."""
    pad = int(pen * 2 + 2)
    if ch == "/":
        lean = height * rng.uniform(0.45, 0.7)  # a slash leans further than a 1
        canvas = np.zeros((int(height * 1.2) + 2 * pad, int(lean) + 2 * pad), np.float32)
        pen_stroke(canvas, [(pad, pad + height * 1.15), (pad + lean, pad)], pen, rng, pen * 0.2)
        return crop_ink(canvas), -height * 0.08
    if ch == "-":
        canvas = np.zeros((int(pen * 3) + 2 * pad, int(height * 0.45) + 2 * pad), np.float32)
        pen_stroke(canvas, [(pad, pad + pen), (pad + height * 0.42, pad + pen * rng.uniform(0.5, 1.5))], pen, rng)
        return crop_ink(canvas), height * 0.5
    canvas = np.zeros((int(height * 0.35) + 2 * pad, int(height * 0.3) + 2 * pad), np.float32)
    dot = (pad + pen, pad + pen)
    pen_stroke(canvas, [dot, (dot[0] + pen * 0.4, dot[1] + pen * 0.3)], pen * 1.3, rng)
    if ch == ",":
        pen_stroke(canvas, [(dot[0] + pen * 0.4, dot[1]), (dot[0] - pen * 0.5, dot[1] + height * 0.25)], pen, rng)
    return crop_ink(canvas), height - pen * 1.5


def random_number(kind: str, rng: np.random.Generator) -> str:
    def digits(n: int) -> str:
        return "".join(str(d) for d in rng.integers(0, 10, n))

    if kind == "id":
        return digits(int(rng.integers(4, 9)))
    if kind == "int":
        return str(int(rng.integers(0, 10 ** int(rng.integers(1, 4)))))
    if kind == "decimal":
        return f"{int(rng.integers(0, 1000))}.{digits(int(rng.integers(1, 3)))}"
    if kind == "date":
        return f"{int(rng.integers(1, 29)):02d}/{int(rng.integers(1, 13)):02d}/{int(rng.integers(1990, 2031))}"
    if kind == "negative":
        return f"-{int(rng.integers(1, 1000))}"
    return f"{int(rng.integers(1, 1000))},{digits(3)}"  # thousands


# ---------------------------------------------------------------- a page


class Page:
    """Ink layers of one A4 page being composed, and what it holds (in reading order)."""

    def __init__(self, dpi: int, rng: np.random.Generator):
        self.dpi, self.rng = dpi, rng
        self.w, self.h = int(round(A4_MM[0] / 25.4 * dpi)), int(round(A4_MM[1] / 25.4 * dpi))
        self.printed = np.zeros((self.h, self.w), np.float32)
        self.stamp = np.zeros((self.h, self.w), np.float32)
        self.hand = np.zeros((self.h, self.w), np.float32)
        self.rules = np.zeros((self.h, self.w), np.float32)  # ruled paper's lines (light blue or grey)
        self.red = np.zeros((self.h, self.w), np.float32)  # its margin line
        self.numbers: list[dict] = []  # text, field, writer, points (ink pixels, for the box after rotation)
        self.printed_digits: list[dict] = []
        self.margin = self.mm(rng.uniform(12, 20))
        self.y = self.margin

    def mm(self, v: float) -> int:
        return int(round(v / 25.4 * self.dpi))

    def font(self):
        if self.rng.random() < 0.5:
            return int(self.rng.choice(HERSHEY))
        return (str(self.rng.choice(DEJAVU)), bool(self.rng.random() < 0.3))

    def text(self, words: list[str], x: int, y: int, size_mm: float, font=None) -> int:
        """Printed words from (x, y) (top left), word by word; returns the x after the last."""
        font = font if font is not None else self.font()
        size = self.mm(size_mm)
        for word in words:
            ink = printed_text(word, size, font)
            if x + ink.shape[1] > self.w - self.margin:
                break
            top = y + size - ink.shape[0] if not any(c in word for c in "gjpqy,") else y + size - int(ink.shape[0] * 0.8)
            paste(self.printed, ink, x, top)
            if any(c.isdigit() for c in word):
                self.printed_digits.append({"text": re.search(r"\d(?:[\d/.,-]*\d)?", word).group(0),
                                            "box": [x, top, ink.shape[1], ink.shape[0]]})
            x += ink.shape[1] + int(size * 0.4)
        return x

    def line(self, a, b, thick: int) -> None:
        cv2.line(self.printed, a, b, 1.0, thick, cv2.LINE_AA)

    def rect(self, x, y, w, h, thick: int) -> None:
        cv2.rectangle(self.printed, (x, y), (x + w, y + h), 1.0, thick, cv2.LINE_AA)

    def handwrite(self, ink: np.ndarray, x: int, y: int, text: str, field: str, writer: str) -> None:
        paste(self.hand, ink, x, y)
        ys, xs = np.nonzero(ink > 0.3)
        self.numbers.append({"text": text, "field": field, "writer": writer,
                             "points": np.c_[xs + x, ys + y].astype(np.float32)})


def paragraph(page: Page, lines: int) -> None:
    size = page.rng.uniform(2.4, 3.4)
    font = page.font()
    for _ in range(lines):
        words = list(page.rng.choice(WORDS, int(page.rng.integers(6, 14))))
        if page.rng.random() < 0.3:
            words.insert(int(page.rng.integers(len(words))), str(int(page.rng.integers(1, 2031))))
        page.text(words, page.margin, page.y, size, font)
        page.y += page.mm(size * 1.6)
    page.y += page.mm(4)


def header(page: Page) -> None:
    rng = page.rng
    x = page.margin
    if rng.random() < 0.6:  # a logo: a ring or a square with initials
        s = page.mm(rng.uniform(12, 20))
        if rng.random() < 0.5:
            cv2.circle(page.printed, (x + s // 2, page.y + s // 2), s // 2, 1.0, max(2, s // 12), cv2.LINE_AA)
        else:
            cv2.rectangle(page.printed, (x, page.y), (x + s, page.y + s), 1.0, -1)
        letters = "".join(rng.choice(list("ABCDEFHKMNRTW"), 2))
        ink = printed_text(letters, s * 0.4, ("DejaVu Sans", True))
        lx, ly = x + (s - ink.shape[1]) // 2, page.y + (s - ink.shape[0]) // 2
        region = page.printed[ly : ly + ink.shape[0], lx : lx + ink.shape[1]]
        if region[region.shape[0] // 2, region.shape[1] // 2] > 0.5:  # white letters on the filled square
            np.clip(region - ink[: region.shape[0], : region.shape[1]], 0, 1, out=region)
        else:
            paste(page.printed, ink, lx, ly)
        x += s + page.mm(6)
    page.text(str(rng.choice(TITLES)).split(), x, page.y + page.mm(3), rng.uniform(5, 7.5), page.font())
    if rng.random() < 0.5:  # a printed form number at the top right
        ref = f"Form {int(rng.integers(1, 99))}-{rng.choice(list('ABC'))}"
        page.text(ref.split(), page.w - page.margin - page.mm(35), page.y, 3.0)
    page.y += page.mm(rng.uniform(22, 30))


def field(page: Page, bank: Bank, x: int, width: int, label: str, kind: str, style: str) -> int:
    """One labelled field holding a handwritten number, kept inside its column
    (x to x + width; written smaller when it would not fit); returns the row's height."""
    rng = page.rng
    text = random_number(kind, rng)
    writer = bank.writer(rng)
    height = page.mm(rng.uniform(5, 9))
    label_end = page.text((label + ":").split(), x, page.y + height // 2, rng.uniform(2.8, 3.8))
    fx = label_end + page.mm(rng.uniform(2, 6))
    room = x + width - fx
    thick = max(1, page.mm(rng.uniform(0.2, 0.5)))
    pad = page.mm(rng.uniform(1.5, 3))  # inside a box; before the writing on a line
    top = page.y + int(height * 0.2)
    if style == "comb":
        cell = min(int(height * rng.uniform(1.1, 1.4)), room // len(text))
        cells = min(len(text) + int(rng.integers(0, 3)), room // cell)
        comb(page, fx, cell, cells, thick)
        hand = np.zeros((cell, cells * cell), np.float32)
        for i, d in enumerate(text):
            ink = write_number(d, bank, writer, cell * rng.uniform(0.6, 0.72), rng)[: cell - 2, : cell - 2]
            paste(hand, ink, i * cell + (cell - ink.shape[1]) // 2 + int(rng.integers(-2, 3)), (cell - ink.shape[0]) // 2)
        page.handwrite(hand, fx, page.y, text, style, writer)
        return cell + page.mm(10)
    ink = write_number(text, bank, writer, height, rng)
    if ink.shape[1] + 2 * pad > room:  # too wide for the room left: written smaller
        f = (room - 2 * pad - 1) / ink.shape[1]
        ink = cv2.resize(ink, (int(ink.shape[1] * f), max(4, int(ink.shape[0] * f))), interpolation=cv2.INTER_AREA)
    spare = room - ink.shape[1] - 2 * pad
    if style == "box":
        bw = ink.shape[1] + 2 * pad + int(rng.uniform(0, min(spare, page.mm(25))))
        page.rect(fx, page.y - pad, bw, height + 2 * pad + int(height * 0.2), thick)
        hx = fx + pad + int(rng.uniform(0, max(1, bw - ink.shape[1] - 2 * pad)))
        page.handwrite(ink, hx, top, text, style, writer)
    elif style == "underline":
        base = page.y + int(height * 1.25)
        page.line((fx, base), (fx + ink.shape[1] + 2 * pad + int(rng.uniform(0, min(spare, page.mm(30)))), base), thick)
        page.handwrite(ink, fx + pad, base - ink.shape[0] - page.mm(rng.uniform(-0.3, 1.2)), text, style, writer)
    else:  # plain: written after the label
        page.handwrite(ink, fx, top, text, style, writer)
    return int(height * 2.2) + page.mm(4)


def comb(page: Page, x: int, cell: int, cells: int, thick: int) -> None:
    """A row of comb boxes, one digit a cell: ticks and a base line, sometimes a top line."""
    for i in range(cells + 1):
        page.line((x + i * cell, page.y - cell // 6), (x + i * cell, page.y + cell), thick)
    page.line((x, page.y + cell), (x + cells * cell, page.y + cell), thick)
    if page.rng.random() < 0.5:
        page.line((x, page.y - cell // 6), (x + cells * cell, page.y - cell // 6), thick)


def stamp(page: Page) -> None:
    """A round office stamp with a printed date, in its own colour, where nothing else is."""
    rng = page.rng
    r = page.mm(rng.uniform(14, 20))
    cx = int(rng.uniform(page.margin + r, page.w - page.margin - r))
    cy = page.y + r + page.mm(5)
    if cy + r > page.h - page.margin - page.mm(10):
        return
    layer = np.zeros((2 * r + 4, 2 * r + 4), np.float32)
    cv2.circle(layer, (r + 2, r + 2), r, 1.0, max(2, r // 14), cv2.LINE_AA)
    cv2.circle(layer, (r + 2, r + 2), int(r * 0.8), 1.0, max(1, r // 24), cv2.LINE_AA)
    word = printed_text(str(rng.choice(["RECEIVED", "PAID", "CHECKED", "COPY"])), r * 0.28, HERSHEY[1])
    date = f"{int(rng.integers(1, 29))} {rng.choice(['JAN', 'MAR', 'JUN', 'OCT'])} {int(rng.integers(2019, 2031))}"
    when = printed_text(date, r * 0.2, HERSHEY[0])
    paste(layer, word[:, : 2 * r], r + 2 - min(word.shape[1], 2 * r) // 2, int(r * 0.55))
    paste(layer, when[:, : 2 * r], r + 2 - min(when.shape[1], 2 * r) // 2, int(r * 1.15))
    angle = rng.uniform(-25, 25)
    m = cv2.getRotationMatrix2D((r + 2, r + 2), angle, 1.0)
    layer = cv2.warpAffine(layer, m, layer.shape[::-1]) * rng.uniform(0.6, 0.95)
    paste(page.stamp, layer, cx - r - 2, cy - r - 2)
    page.printed_digits.append({"text": date, "box": [cx - r, cy - r, 2 * r, 2 * r], "stamp": True})
    page.y = cy + r


def form_page(bank: Bank, dpi: int, rng: np.random.Generator, separator_share: float = 0.3) -> Page:
    """A printed form with 2-6 handwritten numbers in boxes, on lines, in combs or plain."""
    page = Page(dpi, rng)
    header(page)
    if rng.random() < 0.7:
        paragraph(page, int(rng.integers(2, 6)))
    todo = int(rng.integers(2, 7))
    usable = page.w - 2 * page.margin
    while todo > 0 and page.y < page.h - page.margin - page.mm(40):
        pair = todo >= 2 and rng.random() < 0.3
        cols = [(page.margin, usable // 2 - page.mm(5)), (page.margin + usable // 2, usable // 2)] if pair else [(page.margin, usable)]
        row = 0
        for x, width in cols:
            style = str(rng.choice(["box", "underline", "comb", "plain"], p=[0.35, 0.3, 0.15, 0.2]))
            separated = style != "comb" and rng.random() < separator_share
            fields = [f for f in FIELDS if (f[1] not in ("id", "int")) == separated]
            label, kind = fields[int(rng.integers(len(fields)))]
            row = max(row, field(page, bank, x, width, label, kind, style))
            todo -= 1
        page.y += row + page.mm(rng.uniform(3, 10))
        if rng.random() < 0.25 and page.y < page.h - page.mm(80):
            paragraph(page, int(rng.integers(1, 3)))
    if rng.random() < 0.5 and page.y < page.h - page.mm(50):  # an empty signature line
        end = page.text(["Signature:"], page.margin, page.y, 3.2)
        page.line((end + page.mm(3), page.y + page.mm(5)), (end + page.mm(70), page.y + page.mm(5)), 2)
        page.y += page.mm(14)
    if rng.random() < 0.4:
        stamp(page)
    if rng.random() < 0.6:
        foot = f"Page {int(rng.integers(1, 4))} of {int(rng.integers(3, 6))}".split()
        page.text(foot, page.margin, page.h - page.margin, 2.6)
    return page


def words_page(bank: Bank, dpi: int, rng: np.random.Generator) -> Page:
    """A form filled in with handwritten words and shapes only: no number on it."""
    page = Page(dpi, rng)
    header(page)
    if rng.random() < 0.5:
        paragraph(page, int(rng.integers(2, 5)))
    for _ in range(int(rng.integers(2, 5))):
        label = str(rng.choice(["Name", "Surname", "City", "Remarks", "Initials", "Signed"]))
        end = page.text([label + ":"], page.margin, page.y, 3.2)
        height = page.mm(rng.uniform(5, 9))
        ink = pen_word(str(rng.choice(NAMES)), height, rng) if rng.random() < 0.7 else pen_shape(str(rng.choice(PEN_SHAPES)), height * 1.3, rng)
        paste(page.hand, ink, end + page.mm(4), page.y - height // 3)
        page.line((end + page.mm(2), page.y + height), (end + page.mm(90), page.y + height), 2)
        page.y += int(height * 2.2) + page.mm(6)
    return page


# ---------------------------------------------------------------- paper and scanner


def render(page: Page, mode: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The page's layers as a scanner gives them (uint8 grey or BGR); also the 3x3 matrix
    taking page points to the image's (the rotation)."""
    h, w = page.h, page.w
    img, paper = inked_paper(page, rng)
    angle = rng.uniform(-3, 3)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    out = scanned(img, m, paper, rng)
    if mode == "photo":
        photo, h3 = photograph(out, rng)
        return photo, h3 @ np.vstack([m, [0, 0, 1]])
    return finish(out, mode, rng), np.vstack([m, [0, 0, 1]])


def inked_paper(page: Page, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The page's layers on paper (float32 BGR 0-1, upright) and the paper's colour (RGB)."""
    h, w = page.h, page.w
    paper = np.array([rng.uniform(0.9, 1.0)] * 3, np.float32) - np.float32([0, rng.uniform(0, 0.03), rng.uniform(0, 0.06)])
    img = np.empty((h, w, 3), np.float32)
    img[:] = paper[::-1]  # BGR
    ink = np.float32([0.6, 0.2, 0.1]) if rng.random() < 0.5 else np.float32([0.12, 0.1, 0.1])  # blue ballpoint or black
    red = np.float32([0.2, 0.15, 0.8]) if rng.random() < 0.6 else np.float32([0.7, 0.3, 0.2])
    black = np.float32([0.1, 0.1, 0.1]) * rng.uniform(0.5, 1.5)
    layers = ((page.rules, RULE_COLOURS[int(rng.integers(2))]), (page.red, MARGIN_RED),
              (page.printed, black), (page.stamp, red), (page.hand, ink))
    for layer, colour in layers:
        if layer.any():
            img *= 1 - layer[..., None] * (1 - colour)
    return img, paper


def scanned(img: np.ndarray, m: np.ndarray, paper: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The inked paper through the scanner: moved by the 2x3 matrix `m`, sometimes blurred,
    sometimes an edge shadow, noise; uint8 BGR of the same size."""
    h, w = img.shape[:2]
    img = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=tuple(float(v) for v in paper[::-1]))
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 0.9))
    edge_shadow(img, rng, strong=False)
    return np.clip(img * 255 + rng.normal(0, rng.uniform(1, 4), (h, w, 1)).astype(np.float32), 0, 255).astype(np.uint8)


RULE_COLOURS = (np.float32([0.85, 0.7, 0.55]), np.float32([0.6, 0.6, 0.6]))  # BGR: light blue, grey
MARGIN_RED = np.float32([0.4, 0.35, 0.9])


def rule_lines(page: Page, rng: np.random.Generator) -> tuple[list[int], int]:
    """Ruled paper's lines into the page's rule layers: the lines' y and where writing starts."""
    step = page.mm(rng.choice([7.0, 8.0, 8.7]))
    rows = list(range(page.mm(25), page.h - page.mm(8), step))
    for y in rows:
        cv2.line(page.rules, (0, y), (page.w, y), 1.0, max(1, page.mm(0.2)), cv2.LINE_AA)
    if rng.random() < 0.6:  # the margin line
        x = page.mm(rng.uniform(25, 35))
        cv2.line(page.red, (x, 0), (x, page.h), 1.0, max(1, page.mm(0.3)), cv2.LINE_AA)
        return rows, x + page.mm(4)
    return rows, page.mm(15)


def notes_page(bank: Bank, dpi: int, rng: np.random.Generator, separator_share: float = 0.3) -> Page:
    """Numbers written on ruled paper: a list down the lines, sometimes two on a line,
    sometimes after a written word (which is not a number)."""
    page = Page(dpi, rng)
    rows, left = rule_lines(page, rng)
    step = rows[1] - rows[0]
    todo = int(rng.integers(2, 7))
    line = int(rng.integers(0, 3))
    while todo > 0 and line < len(rows):
        y = rows[line]
        x = left + page.mm(rng.uniform(0, 15))
        for _ in range(2 if todo >= 2 and rng.random() < 0.25 else 1):
            height = step * rng.uniform(0.5, 0.75)
            word = pen_word(str(rng.choice(NAMES)), height * 0.9, rng) if rng.random() < 0.3 else None
            kind = str(rng.choice(["date", "decimal", "negative", "thousands"])) if rng.random() < separator_share \
                else str(rng.choice(["id", "int"]))
            text, writer = random_number(kind, rng), bank.writer(rng)
            ink = write_number(text, bank, writer, height, rng)
            gap = page.mm(rng.uniform(4, 10))
            if x + ink.shape[1] + (0 if word is None else word.shape[1] + gap) > page.w - page.mm(8):
                break  # no room left on this line
            if word is not None:
                paste(page.hand, word, x, y - word.shape[0] - page.mm(0.5))
                x += word.shape[1] + gap
            page.handwrite(ink, x, y - ink.shape[0] - page.mm(rng.uniform(0, 1)), text, "ruled", writer)
            todo -= 1
            x = max(x + ink.shape[1] + page.mm(20), page.w // 2 + page.mm(rng.uniform(0, 20)))
        line += int(rng.integers(1, 4))
    return page


def edge_shadow(img: np.ndarray, rng: np.random.Generator, strong: bool) -> None:
    """The dark band a scanner's lid leaves along one or two edges."""
    h, w = img.shape[:2]
    for _ in range(int(rng.integers(1, 3)) if strong or rng.random() < 0.3 else 0):
        side = int(rng.integers(4))
        length = w if side < 2 else h
        depth = int(length * rng.uniform(0.005, 0.04))
        ramp = np.linspace(rng.uniform(0.15, 0.6), 1.0, depth, dtype=np.float32)
        if side == 0:
            img[:depth] *= ramp[:, None, None]
        elif side == 1:
            img[-depth:] *= ramp[::-1, None, None]
        elif side == 2:
            img[:, :depth] *= ramp[None, :, None]
        else:
            img[:, -depth:] *= ramp[None, ::-1, None]


def dust(img: np.ndarray, rng: np.random.Generator) -> None:
    """Specks and hairs on the glass."""
    h, w = img.shape[:2]
    for _ in range(int(rng.integers(5, 60))):
        x, y = int(rng.integers(w)), int(rng.integers(h))
        cv2.circle(img, (x, y), int(rng.integers(1, 4)), tuple(float(v) for v in rng.uniform(0.2, 0.7, 3)), -1, cv2.LINE_AA)
    for _ in range(int(rng.integers(0, 4))):
        layer = np.zeros((h, w), np.float32)
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        pts = np.c_[x + np.cumsum(rng.normal(0, 15, 6)), y + np.cumsum(rng.normal(0, 15, 6))]
        pen_stroke(layer, pts, 1.2, rng)
        img *= 1 - layer[..., None] * 0.6


def finish(img: np.ndarray, mode: str, rng: np.random.Generator) -> np.ndarray:
    """Colour, grey or black-and-white, as the scanner was set."""
    if mode == "colour":
        return img
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    if mode == "bw":
        return np.where(gray > rng.uniform(140, 180), 255, 0).astype(np.uint8)
    return gray


def blank_page(dpi: int, rng: np.random.Generator, mode: str, ruled: bool) -> np.ndarray:
    """An empty sheet (or a ruled one) with edge shadows and dust."""
    page = Page(dpi, rng)
    paper = rng.uniform(0.88, 1.0)
    img = np.full((page.h, page.w, 3), paper, np.float32)
    if ruled:
        rule_lines(page, rng)
        img *= 1 - page.rules[..., None] * (1 - RULE_COLOURS[int(rng.integers(2))])
        img *= 1 - page.red[..., None] * (1 - MARGIN_RED)
        if rng.random() < 0.25:  # punched holes, dark where the lid was
            for y in (page.h // 2 - page.mm(40), page.h // 2 + page.mm(40)):
                cv2.circle(img, (page.mm(10), y), page.mm(3), (0.25, 0.25, 0.25), -1, cv2.LINE_AA)
    if rng.random() < 0.3:  # a fold
        y = int(page.h * rng.uniform(0.3, 0.7))
        img[y : y + page.mm(0.6)] *= 0.93
    edge_shadow(img, rng, strong=True)
    dust(img, rng)
    img = cv2.GaussianBlur(img, (0, 0), 0.6)
    out = np.clip(img * 255 + rng.normal(0, 2.5, (page.h, page.w, 1)), 0, 255).astype(np.uint8)
    return finish(out, mode, rng)


def crop_image(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One item alone on a scrap of paper, as a cropped field a user sends."""
    pad = int(max(ink.shape) * rng.uniform(0.1, 0.5)) + 4
    canvas = np.zeros((ink.shape[0] + 2 * pad, ink.shape[1] + 2 * pad), np.float32)
    paste(canvas, ink, pad, pad)
    paper = rng.uniform(0.85, 1.0)
    level = rng.uniform(0.05, 0.35)
    img = paper - (paper - level) * canvas
    img = img * 255 + rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- files and labels


def number_labels(page: Page, m: np.ndarray, size: tuple[int, int]) -> list[dict]:
    """The page's handwritten numbers, boxed in the image of `size` (w, h) that `m` maps the page to."""
    out = []
    for n in page.numbers:
        pts = cv2.perspectiveTransform(n["points"][None], m)[0]
        x0, y0 = np.floor(pts.min(0)).astype(int)
        x1, y1 = np.ceil(pts.max(0)).astype(int)
        x0, y0 = max(0, x0), max(0, y0)
        x1, y1 = min(size[0] - 1, x1), min(size[1] - 1, y1)
        out.append({"text": n["text"], "box": [int(x0), int(y0), int(x1 - x0 + 1), int(y1 - y0 + 1)],
                    "field": n["field"], "writer": n["writer"]})
    return out


def printed_labels(page: Page, m: np.ndarray, size: tuple[int, int]) -> list[dict]:
    out = []
    for p in page.printed_digits:
        x, y, w, h = p["box"]
        pts = cv2.perspectiveTransform(np.float32([[(x, y), (x + w, y), (x, y + h), (x + w, y + h)]]), m)[0]
        x0, y0 = np.maximum(pts.min(0), 0).astype(int)
        x1, y1 = np.minimum(pts.max(0), [size[0] - 1, size[1] - 1]).astype(int)
        out.append({"text": p["text"], "box": [int(x0), int(y0), int(x1 - x0 + 1), int(y1 - y0 + 1)]})
    return out


def save(path: Path, images: list[np.ndarray], fmt: str, dpi: int, rng: np.random.Generator) -> None:
    """PNG, JPEG (one page), PDF or multi-page TIFF (one or more pages; G4 for black and white)."""
    if fmt == "png":
        cv2.imwrite(str(path), images[0])
    elif fmt == "jpeg":
        cv2.imwrite(str(path), images[0], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(55, 93))])
    elif fmt == "tiff" and all(is_bilevel(img) for img in images):  # as B&W scanners write: CCITT G4
        from PIL import Image

        pages = [Image.fromarray(img).convert("1") for img in images]
        pages[0].save(path, format="TIFF", save_all=True, append_images=pages[1:], compression="group4", dpi=(dpi, dpi))
    elif fmt == "tiff":
        ok = cv2.imwritemulti(str(path), images, [cv2.IMWRITE_TIFF_COMPRESSION, 5,
                                                  cv2.IMWRITE_TIFF_XDPI, dpi, cv2.IMWRITE_TIFF_YDPI, dpi])
        if not ok:
            raise OSError(f"cannot write {path}")
    else:
        path.write_bytes(pdf_bytes(images, dpi, int(rng.integers(70, 93))))


def is_bilevel(img: np.ndarray) -> bool:
    return img.ndim == 2 and bool(np.isin(img, (0, 255)).all())


def pdf_bytes(images: list[np.ndarray], dpi: int, quality: int = 85) -> bytes:
    """A PDF as a scanner writes it: one image per page, the page the size the dpi gives;
    JPEG (DCTDecode) for grey and colour, Flate for black and white."""
    body = [b"<< /Type /Catalog /Pages 2 0 R >>", b""]
    kids = []
    for img in images:
        h, w = img.shape[:2]
        pw, ph = w * 72 / dpi, h * 72 / dpi
        if is_bilevel(img):
            data, codec = zlib.compress(np.ascontiguousarray(img).tobytes(), 6), "/FlateDecode"
        else:
            data, codec = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes(), "/DCTDecode"
        space = "/DeviceRGB" if img.ndim == 3 else "/DeviceGray"
        n = len(body) + 1
        kids.append(f"{n} 0 R")
        body.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {pw:.2f} {ph:.2f}] "
                    f"/Resources << /XObject << /Im0 {n + 2} 0 R >> >> /Contents {n + 1} 0 R >>".encode())
        draw = f"q {pw:.2f} 0 0 {ph:.2f} 0 0 cm /Im0 Do Q".encode()
        body.append(b"<< /Length %d >>\nstream\n" % len(draw) + draw + b"\nendstream")
        body.append(f"<< /Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace {space} "
                    f"/BitsPerComponent 8 /Filter {codec} /Length {len(data)} >>\nstream\n".encode() + data + b"\nendstream")
    body[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>".encode()
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, obj in enumerate(body, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(body) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(body) + 1, xref)
    return bytes(out)


def photograph(page: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A phone photo (3000 x 4000) of the page lying on a desk: perspective, uneven light,
    blur and noise; also the 3x3 matrix from the page's pixels to the photo's."""
    h, w = page.shape[:2]
    pw, ph = 3000, 4000
    scale = rng.uniform(0.75, 0.92) * min(pw / w, ph / h)
    cx, cy = pw / 2 + rng.uniform(-80, 80), ph / 2 + rng.uniform(-80, 80)
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = (src - [w / 2, h / 2]) * scale + [cx, cy] + rng.normal(0, 45, (4, 2))
    m = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    desk = np.empty((ph, pw, 3), np.uint8)
    desk[:] = rng.integers(40, 150, 3).astype(np.uint8)
    photo = cv2.warpPerspective(page, m, (pw, ph), dst=desk, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)
    yy, xx = np.mgrid[0:ph:40, 0:pw:40].astype(np.float32)
    light = 1.05 - rng.uniform(0.1, 0.35) * ((xx - rng.uniform(0, pw)) ** 2 + (yy - rng.uniform(0, ph)) ** 2) / (pw**2 + ph**2)
    light = cv2.resize(light, (pw, ph), interpolation=cv2.INTER_LINEAR)
    tint = np.float32([rng.uniform(0.85, 1.0), rng.uniform(0.92, 1.0), 1.0])
    out = photo.astype(np.float32) * light[..., None] * tint
    out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.6, 1.4)) + rng.normal(0, 3, (ph, pw, 1)).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8), m


def jpeg_noise(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A page that went through JPEG once on its way (a copier, an e-mail)."""
    _, data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(45, 85))])
    return cv2.imdecode(data, cv2.IMREAD_UNCHANGED)


def pick_format(rng: np.random.Generator) -> str:
    return str(rng.choice(["png", "jpeg", "pdf", "tiff"], p=[0.3, 0.2, 0.3, 0.2]))


EXT = {"png": ".png", "jpeg": ".jpg", "pdf": ".pdf", "tiff": ".tif"}


def page_entry(number: int, img: np.ndarray, dpi: int | None, mode: str, held: dict) -> dict:
    """A page's labels: its size, how it was scanned, and what it holds (numbers, printed, ...)."""
    h, w = img.shape[:2]
    return {"page": number, "width": w, "height": h, "dpi": dpi, "mode": mode, **held}


def make_document(bank: Bank, rng: np.random.Generator, pages: int, make, fmt: str, photo: bool) -> tuple[list[np.ndarray], list[dict], int]:
    """`pages` pages from `make(bank, dpi, rng, mode) -> (image, what it holds)`, one dpi and
    mode (a phone photo of a page has no dpi; no JPEG is black and white)."""
    dpi = int(rng.choice([200, 300]))
    mode = "photo" if photo else str(rng.choice(["grey", "colour", "bw"], p=[0.5, 0.3, 0.2]))
    if mode == "bw" and fmt == "jpeg":  # no scanner writes black and white as JPEG
        mode = "grey"
    images, entries = [], []
    for i in range(pages):
        img, held = make(bank, 200 if photo else dpi, rng, mode)
        if mode in ("grey", "colour") and rng.random() < 0.3:
            img = jpeg_noise(img, rng)
        images.append(img)
        entries.append(page_entry(i + 1, img, None if photo else dpi, mode, held))
    return images, entries, dpi


def make_form(bank: Bank, dpi: int, rng: np.random.Generator, mode: str, separator_share: float = 0.3):
    """A printed form, or one page in five a ruled sheet with numbers written on it."""
    if rng.random() < 0.2:
        page = notes_page(bank, dpi, rng, separator_share)
    else:
        page = form_page(bank, dpi, rng, separator_share)
    img, m = render(page, mode, rng)
    size = img.shape[1], img.shape[0]
    return img, {"numbers": number_labels(page, m, size), "printed": printed_labels(page, m, size)}


def make_turned(bank: Bank, dpi: int, rng: np.random.Generator, mode: str):
    """A form scanned a quarter or half turn round: `rotation` is how far clockwise it must
    be turned to be upright; boxes are in the pixels as saved."""
    img, held = make_form(bank, dpi, rng, mode)
    k = int(rng.integers(1, 4))  # np.rot90 turns counter-clockwise
    h, w = img.shape[:2]
    for item in held["numbers"] + held["printed"]:
        item["box"] = turn_box(item["box"], k, w, h)
    return np.ascontiguousarray(np.rot90(img, k)), held | {"rotation": 90 * k}


def turn_box(box: list[int], k: int, w: int, h: int) -> list[int]:
    """A box on a w x h image, on the image turned counter-clockwise k quarter turns."""
    x, y, bw, bh = box
    for _ in range(k):
        x, y, bw, bh, w, h = y, w - x - bw, bh, bw, h, w
    return [x, y, bw, bh]


def make_separator_form(bank, dpi, rng, mode):
    return make_form(bank, dpi, rng, mode, separator_share=1.0)


def make_words(bank: Bank, dpi: int, rng: np.random.Generator, mode: str):
    page = words_page(bank, dpi, rng)
    img, m = render(page, mode, rng)
    return img, {"numbers": [], "printed": printed_labels(page, m, (img.shape[1], img.shape[0]))}


def make_blank(bank, dpi, rng, mode):
    return blank_page(dpi, rng, mode, ruled=False), {"numbers": [], "printed": []}


def make_ruled(bank, dpi, rng, mode):
    return blank_page(dpi, rng, mode, ruled=True), {"numbers": [], "printed": []}


def nondigit_crop(bank: Bank, rng: np.random.Generator) -> tuple[np.ndarray, str, str]:
    """A letter, word or shape alone, in a font or in the pen stroke: image, item, how drawn."""
    height = float(rng.uniform(30, 160))
    item = str(rng.choice(["letter", "word", "shape"]))
    if rng.random() < 0.5:  # a font
        text = {"letter": lambda: str(rng.choice(list(LETTERS))), "word": lambda: str(rng.choice(NAMES)),
                "shape": lambda: str(rng.choice(list(FONT_SHAPES)))}[item]()
        font = ("DejaVu Sans", bool(rng.random() < 0.4)) if item == "shape" or rng.random() < 0.6 else int(rng.choice(HERSHEY))
        ink = printed_text(text, height, font)
        return crop_image(ink, rng), f"{item}:{text}", "font"
    if item == "letter":
        text = str(rng.choice(list(LETTERS)))
        ink = pen_word(text, height, rng)
    elif item == "word":
        text = str(rng.choice(NAMES))
        ink = pen_word(text, height, rng)
    else:
        text = str(rng.choice(PEN_SHAPES))
        ink = pen_shape(text, height, rng)
    return crop_image(ink, rng), f"{item}:{text}", "pen"


def separator_crop(bank: Bank, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    kind = str(rng.choice(["date", "decimal", "negative", "thousands"]))
    text = random_number(kind, rng)
    writer = bank.writer(rng)
    ink = write_number(text, bank, writer, float(rng.uniform(28, 120)), rng)
    return crop_image(ink, rng), text


def generate_pages(bank: Bank, out: Path, count: int, seed: int, prefix: str, make) -> dict:
    """Documents of 1-3 pages until `count` pages; each file from its own seed."""
    files, done, i = {}, 0, 0
    while done < count:
        rng = np.random.default_rng([seed, zlib.crc32(prefix.encode()), i])
        fmt = pick_format(rng)
        n = min(count - done, int(rng.integers(1, 4)) if fmt in ("pdf", "tiff") else 1)
        photo = fmt == "jpeg" and make is not make_blank and make is not make_ruled and rng.random() < 0.3
        images, entries, dpi = make_document(bank, rng, n, make, fmt, photo)
        name = f"{prefix}{i:04d}{EXT[fmt]}"
        save(out / name, images, fmt, dpi, rng)
        files[name] = {"format": fmt, "pages": entries}
        done += n
        i += 1
    return files


def generate_crops(bank: Bank, out: Path, count: int, seed: int, prefix: str, make) -> dict:
    files = {}
    for i in range(count):
        rng = np.random.default_rng([seed, zlib.crc32(prefix.encode()), i])
        img, item, numbers = make(bank, rng)
        fmt = "png" if rng.random() < 0.6 else "jpeg"
        name = f"{prefix}{i:04d}{EXT[fmt]}"
        save(out / name, [img], fmt, 96, rng)
        files[name] = {"format": fmt, "kind": "crop", "item": item,
                       "pages": [page_entry(1, img, None, "grey", {"numbers": numbers(img), "printed": []})]}
    return files


def whole_box(img: np.ndarray) -> list[int]:
    ys, xs = np.nonzero(img < 128)
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]


# ---------------------------------------------------------------- forms: --set forms

# Form templates: name -> title and fields (name, box in mm from the top-left: x, y, w, h,
# template keys, printed label, value: (fewest, most) digits or "year"). A comb's
# cells are its `digits`. Written into DIR/forms/NAME.yaml for digitd's `forms` key.
FORM_TEMPLATES = {
    "exam-cover": ("EXAMINATION COVER SHEET", (
        ("student_id", (30.0, 70.0, 120.0, 14.0), {"digits": 8, "pattern": "[0-9]{8}", "required": True},
         "Student number", (8, 8)),
        ("exam", (30.0, 105.0, 44.0, 14.0), {"digits": 4}, "Exam code", (4, 4)),
        ("room", (95.0, 105.0, 40.0, 14.0), {"pattern": "[0-9]{1,3}"}, "Room", (1, 3)),
        ("seat", (150.0, 105.0, 30.0, 14.0), {}, "Seat", (1, 2)),
        ("score", (30.0, 150.0, 45.0, 18.0), {"pattern": "[0-9]{1,3}"}, "Score", (1, 3)),
        ("year", (95.0, 150.0, 55.0, 18.0), {"pattern": "(19|20)[0-9]{2}"}, "Year of birth", "year"),
    )),
    "lab-sample": ("Laboratory sample record", (
        ("sample", (20.0, 60.0, 70.0, 20.0), {}, "Sample no.", (3, 5)),
        ("batch", (110.0, 64.0, 72.0, 12.0), {"digits": 6}, "Batch", (6, 6)),
        ("volume", (20.0, 115.0, 35.0, 16.0), {}, "Volume (ml)", (1, 3)),
        ("temperature", (75.0, 115.0, 35.0, 16.0), {}, "Temp.", (1, 2)),
        ("shelf", (130.0, 115.0, 50.0, 16.0), {}, "Shelf", (1, 3)),
        ("operator", (20.0, 170.0, 60.0, 14.0), {"digits": 5}, "Operator ID", (5, 5)),
    )),
    "delivery-note": ("DELIVERY NOTE", (
        ("order", (25.0, 55.0, 110.0, 13.0), {"digits": 10, "pattern": "[0-9]{10}"}, "Order number", (10, 10)),
        ("customer", (25.0, 95.0, 60.0, 15.0), {}, "Customer", (4, 6)),
        ("quantity", (110.0, 95.0, 35.0, 15.0), {}, "Quantity", (1, 3)),
        ("parcels", (160.0, 95.0, 25.0, 15.0), {}, "Parcels", (1, 2)),
        ("weight", (25.0, 140.0, 50.0, 18.0), {}, "Weight (kg)", (1, 4)),
    )),
}
FORM_EMPTY = 0.2  # a field is left empty this often
FORM_NONE = 0.1  # a page in the forms set is a form of no template this often (a plain page)


def template_yaml(name: str) -> str:
    """A template of FORM_TEMPLATES as digitd reads it (forms.load_template)."""
    lines = [f"# {FORM_TEMPLATES[name][0]}: a form of scripts/pages.py's forms set", f"form: {name}",
             "page: {width_mm: 210, height_mm: 297}", "fields:"]
    for field_name, (x, y, w, h), keys, _, _ in FORM_TEMPLATES[name][1]:
        lines += [f"  - name: {field_name}", f"    box_mm: [{x:g}, {y:g}, {w:g}, {h:g}]"]
        if "digits" in keys:
            lines.append(f"    digits: {keys['digits']}")
        if "pattern" in keys:
            lines.append(f"    pattern: {json.dumps(keys['pattern'])}")
        if keys.get("required"):
            lines.append("    required: true")
    return "\n".join(lines) + "\n"


def form_value(value, rng: np.random.Generator) -> str:
    """A value a person writes in a field: (fewest, most) digits, or a year."""
    if value == "year":
        return str(int(rng.integers(1950, 2031)))
    lo, hi = value
    n = int(rng.integers(lo, hi + 1))
    first = str(int(rng.integers(1, 10))) if lo != hi and n > 1 else str(int(rng.integers(0, 10)))
    return first + "".join(str(d) for d in rng.integers(0, 10, n - 1))


def fit_ink(ink: np.ndarray, width: float, height: float) -> np.ndarray:
    """Ink made smaller to fit in width x height pixels (never larger)."""
    f = min(1.0, width / ink.shape[1], height / ink.shape[0])
    if f >= 1.0:
        return ink
    return cv2.resize(ink, (max(2, int(ink.shape[1] * f)), max(2, int(ink.shape[0] * f))), interpolation=cv2.INTER_AREA)


def template_page(bank: Bank, dpi: int, rng: np.random.Generator, name: str) -> tuple[Page, dict]:
    """A printed form of template `name` (title, instructions, each field's label and box,
    a comb as adjacent cells, sometimes a signature box and a footer) filled in by hand,
    some fields left empty; also each field's value ('' when empty) and writer."""
    page = Page(dpi, rng)
    title, fields = FORM_TEMPLATES[name]
    px = dpi / 25.4
    page.text(title.split(), page.mm(20), page.mm(14), rng.uniform(5, 7), page.font())
    if rng.random() < 0.6:
        page.y = page.mm(30)
        paragraph(page, int(rng.integers(1, 3)))
    thick = max(1, page.mm(rng.uniform(0.25, 0.5)))
    for _, (x, y, w, h), keys, label, _ in fields:
        page.text(label.split(), int(x * px), int((y - 6) * px), rng.uniform(2.8, 3.6))
        cells = keys.get("digits", 1)
        for k in range(cells):
            x0, x1 = x + w * k / cells, x + w * (k + 1) / cells
            page.rect(round(x0 * px), round(y * px), round(x1 * px) - round(x0 * px), round(h * px), thick)
    if rng.random() < 0.5:  # a box for a signature, which is no field
        sy = max(y + h for _, (x, y, w, h), *_ in fields) + 25
        page.text(["Signature"], page.mm(30), page.mm(sy - 6), 3.2)
        page.rect(page.mm(30), page.mm(sy), page.mm(rng.uniform(60, 90)), page.mm(20), thick)
    if rng.random() < 0.6:
        page.text(f"Form {name.split('-')[0].upper()}-{int(rng.integers(1, 99))} page 1 of 1".split(),
                  page.margin, page.h - page.margin, 2.6)
    values: dict[str, dict] = {}
    for field_name, (x, y, w, h), keys, _, value in fields:
        if rng.random() < FORM_EMPTY:
            values[field_name] = {"text": None, "writer": None}
            continue
        text, writer = form_value(value, rng), bank.writer(rng)
        values[field_name] = {"text": text, "writer": writer}
        cells = keys.get("digits")
        if cells:
            cw, ch = w / cells * px, h * px
            hand = np.zeros((int(ch), int(w * px)), np.float32)
            for k, d in enumerate(text):
                ink = fit_ink(write_number(d, bank, writer, ch * rng.uniform(0.55, 0.7), rng), cw - 3.2 * px, ch - 3 * px)
                dx = int(rng.uniform(-0.4, 0.4) * px)
                dy = int(rng.uniform(-0.4, 0.4) * px)
                paste(hand, ink, int(k * cw + (cw - ink.shape[1]) / 2) + dx, int((ch - ink.shape[0]) / 2) + dy)
            page.handwrite(hand, int(x * px), int(y * px), text, "comb", writer)
            continue
        ink = write_number(text, bank, writer, h * px * rng.uniform(0.5, 0.68), rng)
        ink = fit_ink(ink, (w - 4) * px, (h - 3) * px)
        room_x = (w - 3) * px - ink.shape[1]
        room_y = (h - 3) * px - ink.shape[0]
        left = x * px + 1.5 * px + rng.uniform(0, max(1.0, min(room_x, 12 * px)))
        top = y * px + 1.5 * px + (room_y / 2 if rng.random() < 0.7 else rng.uniform(0, max(1.0, room_y)))
        page.handwrite(ink, int(left), int(top), text, "box", writer)
    return page, values


def scan_form(page: Page, mode: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A form page as scanned: shifted (up to 6 mm), scaled (±3%) and turned (±3°), blurred,
    noised; also the 3x3 matrix taking page points to the image's."""
    h, w = page.h, page.w
    img, paper = inked_paper(page, rng)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-3, 3), rng.uniform(0.97, 1.03))
    m[:, 2] += rng.uniform(-6, 6, 2) * page.dpi / 25.4
    out = scanned(img, m, paper, rng)
    return finish(out, mode, rng), np.vstack([m, [0, 0, 1]])


def box_on_image(box: tuple[float, float, float, float], m: np.ndarray, size: tuple[int, int]) -> list[int]:
    """A box (x, y, w, h in page pixels) on the image `m` takes the page to: the box around its corners."""
    x, y, w, h = box
    pts = cv2.perspectiveTransform(np.float32([[(x, y), (x + w, y), (x + w, y + h), (x, y + h)]]), m)[0]
    x0, y0 = np.maximum(np.floor(pts.min(0)), 0).astype(int)
    x1, y1 = np.minimum(np.ceil(pts.max(0)), [size[0] - 1, size[1] - 1]).astype(int)
    return [int(x0), int(y0), int(x1 - x0 + 1), int(y1 - y0 + 1)]


def make_filled_form(bank: Bank, dpi: int, rng: np.random.Generator, mode: str):
    """A page of the forms set: a form of one of FORM_TEMPLATES filled in and scanned,
    or (FORM_NONE) a form of no template. `form` names its template (None: none);
    `fields` gives each field's value (None when empty) and printed box as saved."""
    if rng.random() < FORM_NONE:
        img, held = make_form(bank, dpi, rng, mode)
        return img, {"form": None, "fields": {}, **held}
    name = str(rng.choice(sorted(FORM_TEMPLATES)))
    page, values = template_page(bank, dpi, rng, name)
    img, m = scan_form(page, mode, rng)
    size = img.shape[1], img.shape[0]
    px = dpi / 25.4
    fields = {}
    for field_name, (x, y, w, h), *_ in FORM_TEMPLATES[name][1]:
        box = box_on_image((x * px, y * px, w * px, h * px), m, size)
        fields[field_name] = {**values[field_name], "box": box}
    return img, {"form": name, "fields": fields, "numbers": number_labels(page, m, size),
                 "printed": printed_labels(page, m, size)}


def generate_forms(bank: Bank, out: Path, count: int, seed: int, prefix: str) -> dict:
    """`count` pages of filled forms in documents of 1-3 pages (never photographed), and
    every template into out/forms/; each file from its own seed."""
    folder = out / "forms"
    folder.mkdir(parents=True, exist_ok=True)
    for name in sorted(FORM_TEMPLATES):
        (folder / f"{name}.yaml").write_text(template_yaml(name))
    files, done, i = {}, 0, 0
    while done < count:
        rng = np.random.default_rng([seed, zlib.crc32(prefix.encode()), i])
        fmt = pick_format(rng)
        n = min(count - done, int(rng.integers(1, 4)) if fmt in ("pdf", "tiff") else 1)
        images, entries, dpi = make_document(bank, rng, n, make_filled_form, fmt, False)
        name = f"{prefix}{i:04d}{EXT[fmt]}"
        save(out / name, images, fmt, dpi, rng)
        files[name] = {"format": fmt, "kind": "form", "pages": entries}
        done += n
        i += 1
    return files


def generate(bank: Bank, out: Path, count: int, seed: int, which: str) -> dict:
    """Every file of the chosen set(s) into `out`; returns the labels."""
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, dict] = {}
    if which in ("pages", "all"):
        files |= tag(generate_pages(bank, out, count, seed, "page-", make_form), "page")
    if which in ("turned", "all"):
        files |= tag(generate_pages(bank, out, max(1, count // 4), seed, "turn-", make_turned), "turned")
    if which in ("separators", "all"):
        files |= tag(generate_pages(bank, out, max(1, count // 4), seed, "sepp-", make_separator_form), "page")

        def sep(bank, rng):
            img, text = separator_crop(bank, rng)
            return img, f"number:{text}", lambda im: [{"text": text, "box": whole_box(im), "field": "crop", "writer": ""}]

        files |= tag(generate_crops(bank, out, count, seed, "sepc-", sep), "separator")
    if which in ("nondigit", "all"):
        def item(bank, rng):
            img, what, how = nondigit_crop(bank, rng)
            return img, f"{what} ({how})", lambda im: []

        sheets = max(1, count // 6)  # pages of words, blank pages, ruled pages: a sixth each
        files |= tag(generate_crops(bank, out, max(1, count - 3 * sheets), seed, "item-", item), "nondigit")
        files |= tag(generate_pages(bank, out, sheets, seed, "word-", make_words), "nondigit")
        files |= tag(generate_pages(bank, out, sheets, seed, "blank-", make_blank), "blank")
        files |= tag(generate_pages(bank, out, sheets, seed, "ruled-", make_ruled), "ruled")
    extra = {}
    if which == "forms":  # not in "all": the page set's files, labels and figures stay as they were
        files |= generate_forms(bank, out, count, seed, "form-")
        extra = {"forms": "forms"}
    labels = {"generator": "scripts/pages.py", "seed": seed, "set": which, **extra, "files": dict(sorted(files.items()))}
    (out / "labels.json").write_text(json.dumps(labels, indent=1) + "\n")
    return labels


def tag(files: dict, kind: str) -> dict:
    for entry in files.values():
        entry.setdefault("kind", kind)
        if entry["kind"] == "crop":
            entry["kind"] = kind
    return files


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder to write the files and labels.json into")
    p.add_argument("--pages", type=int, default=40,
                   help="pages of forms (and items of each other set; with --set forms, pages of filled forms; default 40)")
    p.add_argument("--seed", type=int, default=11, help="the same seed gives the same files (default 11)")
    p.add_argument("--set", choices=(*SETS, "all"), default="all", help="which set to write (default all)")
    p.add_argument("--mnist", type=Path, default=SHARED / "mnist.npz", help="MNIST npz (its test digits are used)")
    p.add_argument("--real", type=Path, default=SHARED / "real-dev", help="real-dev folder (labels.csv)")
    args = p.parse_args(argv)
    if not args.mnist.is_file():
        sys.exit(f"pages.py: --mnist {args.mnist}: no such file")
    if args.pages < 1:
        sys.exit("pages.py: --pages must be at least 1")
    bank = load_bank(args.mnist, args.real)
    labels = generate(bank, args.out, args.pages, args.seed, args.set)
    pages = sum(len(f["pages"]) for f in labels["files"].values())
    numbers = sum(len(pg["numbers"]) for f in labels["files"].values() for pg in f["pages"])
    print(f"{len(labels['files'])} files, {pages} pages, {numbers} handwritten numbers -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
