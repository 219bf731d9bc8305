#!/usr/bin/env python3
"""Marks that are not digits, for the model's reject class ("not a digit", class 10).

    python scripts/glyphs.py [--count 2000] [--seed 7] [--out glyphs.png]   # a contact sheet

Letters, words and symbols from the fonts matplotlib ships (DejaVu, STIX,
Computer Modern, filled outlines) and OpenCV's Hershey stroke fonts; shapes,
scribbles, smudges, ruled-line pieces and scanner edge shadows drawn with a
pen of random width. Each is distorted like handwriting (affine, elastic warp,
stroke thickness) and brought to the model's input by
``digitd.preprocess.to_mnist_form``, as the service does. Seeded: a seed gives
the same marks on every run. Glyphs a hand writes as a digit are left out
(EXCLUDED, measured with ``--measure``; the reasons are in the model card).
"""

from __future__ import annotations

import argparse
import string
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "daemon"))  # runnable from a plain checkout too

from digitd.preprocess import SIZE, to_mnist_form  # noqa: E402

TTF_FONTS = (
    "DejaVuSans", "DejaVuSans-Bold", "DejaVuSans-Oblique", "DejaVuSansMono", "DejaVuSansMono-Bold",
    "DejaVuSerif", "DejaVuSerif-Bold", "DejaVuSerif-Italic", "STIXGeneral", "STIXGeneralBol",
    "STIXGeneralItalic", "cmr10", "cmb10", "cmss10", "cmtt10", "cmti10",
)
HERSHEY = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
           cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, cv2.FONT_HERSHEY_SCRIPT_COMPLEX)
LETTERS = string.ascii_uppercase + string.ascii_lowercase
SYMBOLS = "+*#@&%$?!=<>~^{}[]()\\/|;:\"'_.,-§¶µ€£¥©®±×÷∞≈≠√∑∫πΩαβγδλ"
# Single glyphs a hand writes the way it writes a digit: a reject class trained
# on them would reject real digits. Chosen by measurement (``--measure``): the
# share of a glyph's renderings the v1 digit model reads as one digit with
# confidence >= 0.9, and by eye on the contact sheet; see the model card.
EXCLUDED = {
    "O": "0", "o": "0", "D": "0", "Q": "0", "U": "0",
    "I": "1", "l": "1", "i": "1", "j": "1", "|": "1", "!": "1", "/": "1", "\\": "1",
    "(": "1", ")": "1", "[": "1", "]": "1", "{": "1", "}": "1", "'": "1",
    "Z": "2", "z": "2", "S": "5", "s": "5", "b": "6", "G": "6", "g": "9", "q": "9", "y": "4",
}
KINDS = ("letter", "word", "symbol", "shape", "scribble", "smudge", "line", "shadow")
# How often each kind is drawn (letters, words and symbols are most of what a page holds).
SHARES = (0.30, 0.12, 0.14, 0.12, 0.12, 0.06, 0.07, 0.07)
HELD_OUT_SEED = 990_001  # the seed of the marks measured, never trained on


def allowed(chars: str) -> str:
    return "".join(c for c in chars if c not in EXCLUDED)


# ---------------------------------------------------------------- rendering
_PATHS: dict[tuple[str, str], list[np.ndarray]] = {}


def ttf_polygons(text: str, font: str) -> list[np.ndarray]:
    """The outline polygons of ``text`` in one of matplotlib's TrueType fonts (y down)."""
    key = (text, font)
    if key not in _PATHS:
        import matplotlib
        from matplotlib.font_manager import FontProperties
        from matplotlib.textpath import TextPath

        prop = FontProperties(fname=Path(matplotlib.get_data_path()) / "fonts" / "ttf" / f"{font}.ttf")
        polys = TextPath((0, 0), text, size=100, prop=prop).to_polygons()
        _PATHS[key] = [np.c_[p[:, 0], -p[:, 1]] for p in polys if len(p) >= 3]
    return _PATHS[key]


def render_ttf(text: str, font: str) -> np.ndarray:
    """``text`` filled from a matplotlib font's outlines, ink 255 on 0, 5 px margin."""
    polys = ttf_polygons(text, font)
    if not polys:
        return np.zeros((8, 8), np.uint8)
    lo = np.vstack(polys).min(axis=0) - 5
    hi = np.vstack(polys).max(axis=0) + 5
    img = np.zeros((int(hi[1] - lo[1]) + 1, int(hi[0] - lo[0]) + 1), np.uint8)
    cv2.fillPoly(img, [np.round(p - lo).astype(np.int32) for p in polys], 255, cv2.LINE_AA)
    return img


def render_hershey(text: str, font: int, thickness: int) -> np.ndarray:
    """``text`` with an OpenCV Hershey stroke font (ASCII only), ink 255 on 0."""
    (w, h), base = cv2.getTextSize(text, font, 4.0, thickness)
    img = np.zeros((h + base + 40, w + 40), np.uint8)
    cv2.putText(img, text, (20, h + 20), font, 4.0, 255, thickness, cv2.LINE_AA)
    return img


def render_text(text: str, rng: np.random.Generator) -> np.ndarray:
    """``text`` in a random font: a Hershey pen font when it is plain ASCII and a coin says so."""
    if text.isascii() and rng.random() < 0.45:
        font = HERSHEY[rng.integers(len(HERSHEY))] | (cv2.FONT_ITALIC if rng.random() < 0.3 else 0)
        return render_hershey(text, font, int(rng.integers(3, 16)))
    return render_ttf(text, TTF_FONTS[rng.integers(len(TTF_FONTS))])


def pen(rng: np.random.Generator, side: int = 160) -> int:
    return int(rng.integers(max(2, side // 40), max(4, side // 9)))


def smooth_curve(points: np.ndarray, steps: int = 12) -> np.ndarray:
    """A Catmull-Rom curve through ``points`` (N x 2) -> int32 polyline."""
    p = np.vstack([points[:1], points, points[-1:]]).astype(np.float64)
    out = []
    for i in range(1, len(p) - 2):
        for t in np.linspace(0, 1, steps, endpoint=False):
            t2, t3 = t * t, t * t * t
            out.append(0.5 * ((2 * p[i]) + (-p[i - 1] + p[i + 1]) * t + (2 * p[i - 1] - 5 * p[i] + 4 * p[i + 1] - p[i + 2]) * t2
                              + (-p[i - 1] + 3 * p[i] - 3 * p[i + 1] + p[i + 2]) * t3))
    out.append(p[-2])
    return np.round(np.array(out)).astype(np.int32)


def draw_shape(rng: np.random.Generator) -> np.ndarray:
    """A drawn shape: polygon, star, heart, arrow, cross, check, smiley, spiral, hatching."""
    s = 160
    img = np.zeros((s, s), np.uint8)
    t = pen(rng, s)
    c = np.array([s / 2, s / 2])
    kind = rng.integers(9)
    if kind == 0:  # polygon, 3-6 sides, open or filled
        n = int(rng.integers(3, 7))
        a = rng.uniform(0, 2 * np.pi) + np.linspace(0, 2 * np.pi, n, endpoint=False)
        r = rng.uniform(45, 70) * rng.uniform(0.6, 1.0, size=2)
        pts = np.round(c + np.c_[np.cos(a) * r[0], np.sin(a) * r[1]]).astype(np.int32)
        if rng.random() < 0.3:
            cv2.fillPoly(img, [pts], 255, cv2.LINE_AA)
        else:
            cv2.polylines(img, [pts], True, 255, t, cv2.LINE_AA)
    elif kind == 1:  # star
        n = int(rng.integers(5, 8))
        a = np.linspace(0, 2 * np.pi, 2 * n, endpoint=False) + rng.uniform(0, 1)
        r = np.where(np.arange(2 * n) % 2 == 0, 70, rng.uniform(22, 40))
        pts = np.round(c + np.c_[np.cos(a) * r, np.sin(a) * r]).astype(np.int32)
        cv2.polylines(img, [pts], True, 255, t, cv2.LINE_AA)
    elif kind == 2:  # heart
        u = np.linspace(0, 2 * np.pi, 80)
        x, y = 16 * np.sin(u) ** 3, -(13 * np.cos(u) - 5 * np.cos(2 * u) - 2 * np.cos(3 * u) - np.cos(4 * u))
        pts = np.round(c + 4 * np.c_[x, y]).astype(np.int32)
        cv2.polylines(img, [pts], True, 255, t, cv2.LINE_AA)
    elif kind == 3:  # arrow
        y = int(rng.integers(60, 100))
        cv2.arrowedLine(img, (15, y), (145, y + int(rng.integers(-30, 30))), 255, t, cv2.LINE_AA, tipLength=0.3)
    elif kind == 4:  # cross or x
        d = rng.uniform(40, 65)
        a = rng.choice([0.0, np.pi / 4]) + rng.uniform(-0.2, 0.2)
        for k in range(2):
            v = d * np.array([np.cos(a + k * np.pi / 2), np.sin(a + k * np.pi / 2)])
            cv2.line(img, tuple(np.round(c - v).astype(int)), tuple(np.round(c + v).astype(int)), 255, t, cv2.LINE_AA)
    elif kind == 5:  # check mark
        pts = np.array([[20, 80], [60, 130], [145, 20]]) + rng.integers(-12, 13, size=(3, 2))
        cv2.polylines(img, [pts.astype(np.int32)], False, 255, t, cv2.LINE_AA)
    elif kind == 6:  # smiley
        cv2.circle(img, (80, 80), 62, 255, t, cv2.LINE_AA)
        for ex in (55, 105):
            cv2.circle(img, (ex, 60), int(rng.integers(4, 10)), 255, -1, cv2.LINE_AA)
        cv2.ellipse(img, (80, 88), (35, int(rng.integers(12, 30))), 0, 20, 160, 255, t, cv2.LINE_AA)
    elif kind == 7:  # spiral
        u = np.linspace(0, rng.uniform(3, 6) * np.pi, 120)
        r = 8 + 60 * u / u[-1]
        pts = np.round(c + np.c_[np.cos(u) * r, np.sin(u) * r]).astype(np.int32)
        cv2.polylines(img, [pts], False, 255, t, cv2.LINE_AA)
    else:  # hatching, a filled-in box
        step = int(rng.integers(10, 20))
        for k in range(-s, s, step):
            cv2.line(img, (k, s - 20), (k + s - 40, 20), 255, max(2, t // 2), cv2.LINE_AA)
        img[:20], img[-20:], img[:, :20], img[:, -20:] = 0, 0, 0, 0
    return img


def draw_scribble(rng: np.random.Generator) -> np.ndarray:
    """A pen's random loops and zigzags."""
    s = int(rng.integers(120, 260))
    img = np.zeros((s, s), np.uint8)
    n = int(rng.integers(5, 16))
    pts = rng.uniform(0.1 * s, 0.9 * s, size=(n, 2))
    if rng.random() < 0.4:  # a zigzag across, like a crossed-out word
        pts[:, 0] = np.linspace(0.05 * s, 0.95 * s, n)
        pts[:, 1] = 0.5 * s + (np.arange(n) % 2 - 0.5) * rng.uniform(0.2, 0.7) * s
    cv2.polylines(img, [smooth_curve(pts)], False, 255, pen(rng, s), cv2.LINE_AA)
    return img


def draw_smudge(rng: np.random.Generator) -> np.ndarray:
    """A soft blot or a rubbed-out patch: blurred blobs and speckle."""
    s = 160
    img = np.zeros((s, s), np.float32)
    for _ in range(int(rng.integers(1, 6))):
        cx, cy = rng.uniform(30, 130, size=2)
        ax = tuple(int(v) for v in rng.uniform(8, 50, size=2))
        cv2.ellipse(img, (int(cx), int(cy)), ax, float(rng.uniform(0, 180)), 0, 360, float(rng.uniform(0.4, 1)), -1)
    img += (rng.random((s, s)) < rng.uniform(0.0, 0.08)).astype(np.float32)
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(2, 10))
    img *= rng.uniform(0.6, 1.2, size=img.shape).astype(np.float32)
    return np.clip(img / max(float(img.max()), 1e-6), 0, 1)


def draw_line(rng: np.random.Generator) -> np.ndarray:
    """A piece of a ruled line, an underline or a form's frame (not near vertical: that is a 1)."""
    w = int(rng.integers(200, 600))
    h = int(rng.integers(40, 160))
    img = np.zeros((h, w), np.uint8)
    kind = rng.integers(4)
    t = int(rng.integers(2, 10))
    if kind == 0:  # one or more ruled lines, slightly wavy
        for y in np.linspace(10, h - 10, int(rng.integers(1, 4))):
            xs = np.arange(0, w, 10)
            ys = y + np.cumsum(rng.normal(0, 0.6, len(xs)))
            cv2.polylines(img, [np.c_[xs, ys].astype(np.int32)], False, 255, t, cv2.LINE_AA)
    elif kind == 1:  # a corner or a T of a form's frame
        y = int(rng.integers(10, h // 2))
        x = int(rng.integers(10, w - 10))
        cv2.line(img, (0, y), (w, y), 255, t)
        cv2.line(img, (x, y), (x, h), 255, t)
    elif kind == 2:  # a dashed or dotted line
        y = h // 2
        step = int(rng.integers(12, 40))
        for x in range(0, w, step):
            cv2.line(img, (x, y), (x + int(step * rng.uniform(0.1, 0.6)), y), 255, t)
    else:  # a slanted stroke across (within 35 degrees of horizontal)
        a = np.deg2rad(rng.uniform(-35, 35))
        L = w / 2
        cv2.line(img, (int(w / 2 - L * np.cos(a)), int(h / 2 - L * np.sin(a))),
                 (int(w / 2 + L * np.cos(a)), int(h / 2 + L * np.sin(a))), 255, t, cv2.LINE_AA)
    return img


def draw_shadow(rng: np.random.Generator) -> np.ndarray:
    """A scanner's edge shadow or a fold: a band darkest at one side, fading, with a ragged edge."""
    h = int(rng.integers(200, 600))
    w = int(h * rng.uniform(0.3, 1.0))
    profile = np.linspace(1, 0, w) ** rng.uniform(0.5, 3)
    img = np.tile(profile, (h, 1)).astype(np.float32)
    edge = (w * rng.uniform(0.4, 1.0) + np.cumsum(rng.normal(0, 2, h))).clip(3, w)
    img[np.arange(w)[None, :] > edge[:, None]] = 0
    img *= rng.uniform(0.7, 1.0, size=(h, 1)).astype(np.float32)
    img += 0.15 * rng.random(img.shape).astype(np.float32) * (img > 0)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    if rng.random() < 0.3:  # a corner: the band turns along the bottom
        corner = np.zeros((h + w, max(w, h // 2)), np.float32)
        corner[:h, :w] = img
        along = np.rot90(img[: corner.shape[1]], -1)  # the band, lying along the bottom
        corner[h:, : along.shape[1]] = np.maximum(corner[h:, : along.shape[1]], along[::-1, :][: w])
        img = corner
    if rng.random() < 0.5:
        img = img.T
    return np.clip(img, 0, 1)


# ---------------------------------------------------------------- handwriting-like distortion
def distort_ink(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random affine (rotation, shear, aspect), elastic warp and stroke thickness of an ink image."""
    a = img.astype(np.float32)
    a = a / max(float(a.max()), 1e-6)
    h, w = a.shape
    if max(h, w) > 100:  # the 28x28 result keeps no more detail; big canvases only cost time
        f = 100 / max(h, w)
        a = cv2.resize(a, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
        h, w = a.shape
    m = max(h, w) // 4
    a = cv2.copyMakeBorder(a, m, m, m, m, cv2.BORDER_CONSTANT, value=0)
    h, w = a.shape
    c = np.array([w / 2, h / 2])
    ang = np.deg2rad(rng.uniform(-15, 15))
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    lin = rot @ np.array([[1.0, rng.uniform(-0.35, 0.35)], [0.0, 1.0]]) @ np.diag(rng.uniform(0.75, 1.25, size=2))
    M = np.hstack([lin, (c - lin @ c)[:, None]])
    a = cv2.warpAffine(a, M, (w, h), flags=cv2.INTER_LINEAR)
    if rng.random() < 0.7:  # elastic: a smooth random displacement field
        sigma = max(h, w) * rng.uniform(0.06, 0.12)
        alpha = max(h, w) * rng.uniform(0.02, 0.06)
        dx = cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma)
        dy = cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma)
        norm = max(float(np.abs(dx).max()), float(np.abs(dy).max()), 1e-6)
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        a = cv2.remap(a, gx + dx / norm * alpha, gy + dy / norm * alpha, cv2.INTER_LINEAR)
    r = rng.random()
    k = int(rng.integers(1, max(2, max(h, w) // 50) + 1))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))
    if r < 0.25:
        a = cv2.dilate(a, kernel)
    elif r < 0.4:
        thin = cv2.erode(a, kernel)
        a = thin if thin.max() > 0.5 else a
    return a


def draw(kind: str, rng: np.random.Generator) -> np.ndarray:
    """One ink image (bright ink on 0) of ``kind``, before distortion."""
    if kind == "letter":
        return render_text(rng.choice(list(allowed(LETTERS))), rng)
    if kind == "word":
        n = int(rng.integers(2, 7))
        word = "".join(rng.choice(list(LETTERS.lower() if rng.random() < 0.6 else LETTERS), size=n))
        return render_text(word if rng.random() < 0.8 else word.capitalize(), rng)
    if kind == "symbol":
        return render_text(rng.choice(list(allowed(SYMBOLS))), rng)
    return {"shape": draw_shape, "scribble": draw_scribble, "smudge": draw_smudge, "line": draw_line,
            "shadow": draw_shadow}[kind](rng)


def not_digit_inks(count: int, seed: int, kinds: tuple[str, ...] = KINDS) -> Iterator[tuple[np.ndarray, str]]:
    """``count`` distorted non-digit ink images (float32, ink 0-1 on 0) and their kinds.
    The same ``seed`` gives the same marks."""
    rng = np.random.default_rng(seed)
    shares = np.array([SHARES[KINDS.index(k)] for k in kinds])
    for k in rng.choice(len(kinds), size=count, p=shares / shares.sum()):
        yield distort_ink(draw(kinds[k], rng), rng), kinds[k]


def not_digits(count: int, seed: int, kinds: tuple[str, ...] = KINDS) -> tuple[np.ndarray, list[str]]:
    """``count`` non-digit marks in MNIST form -> (float32 (count, 28, 28), the kind of each)."""
    out = np.zeros((count, SIZE, SIZE), np.float32)
    names = []
    for i, (ink, kind) in enumerate(not_digit_inks(count, seed, kinds)):
        out[i] = to_mnist_form(ink)
        names.append(kind)
    return out, names


def glyph_renderings(char: str, count: int, seed: int) -> np.ndarray:
    """``count`` distorted renderings of one character, in MNIST form (for --measure)."""
    rng = np.random.default_rng(seed)
    return np.stack([to_mnist_form(distort_ink(render_text(char, rng), rng)) for _ in range(count)])


# ---------------------------------------------------------------- command line
def save_sheet(images: np.ndarray, names: list[str], path: Path, cols: int = 20) -> None:
    from matplotlib.figure import Figure

    n = len(images)
    rows = max(1, (n + cols - 1) // cols)
    fig = Figure(figsize=(cols * 0.6, rows * 0.7), dpi=100)
    for k in range(n):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.axis("off")
        ax.imshow(images[k], cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(names[k], fontsize=5)
    fig.tight_layout()
    fig.savefig(path)


def measure(model_path: Path, per_glyph: int, seed: int) -> list[tuple[str, str, float, float]]:
    """Per candidate glyph: (glyph, the digit the model reads most, share read as that
    digit, share read as any digit with confidence >= 0.9), most digit-like first."""
    from digitd.model import batched, load_engine

    engine = load_engine(model_path)
    rows = []
    for ch in LETTERS + SYMBOLS:
        x = glyph_renderings(ch, per_glyph, seed + ord(ch))
        p = batched(engine, x, engine.buckets, engine.pad)
        d = p[:, :10].argmax(1)
        top = int(np.bincount(d, minlength=10).argmax())
        rows.append((ch, str(top), float((d == top).mean()), float((p[:, :10].max(1) >= 0.9).mean())))
    return sorted(rows, key=lambda r: -r[3])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=200, help="marks on the contact sheet (default 200)")
    p.add_argument("--seed", type=int, default=HELD_OUT_SEED, help=f"random seed (default {HELD_OUT_SEED}, the held-out one)")
    p.add_argument("--out", type=Path, default=Path("glyphs.png"), help="contact sheet PNG (default glyphs.png)")
    p.add_argument("--measure", type=Path, metavar="MODEL",
                   help="instead: how digit-like each candidate glyph is to MODEL, most digit-like first")
    args = p.parse_args(argv)
    if args.measure:
        for ch, top, share, confident in measure(args.measure, 40, args.seed):
            flag = f"excluded (a {EXCLUDED[ch]})" if ch in EXCLUDED else ""
            print(f"{ch!r:6} reads {top} {share:5.0%}  confident digit {confident:5.0%}  {flag}")
        return 0
    images, names = not_digits(args.count, args.seed)
    save_sheet(images, names, args.out)
    print(f"wrote {args.out}: {args.count} marks, seed {args.seed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
