"""From a scan to the digits on it: polarity, ink, marks, MNIST form. Pure functions on arrays.

1. ``ink_map``: which way round the ink is (dark on light or the reverse,
   judged against the paper at the border), the paper's local colour estimated
   and removed (uneven lighting, shadows, coloured paper), the ink's contrast
   in whichever colour channel shows it most.
2. ``ink_mask``: ink told from paper texture and noise (Otsu within sane
   bounds); too little contrast anywhere means a blank page.
3. ``group_marks``: connected pieces of ink grouped into digits left to right;
   pieces stacked over each other (a 5's flag, a 7's bar, a broken stroke)
   stay one digit; specks and ruled lines are dropped.
4. ``find_digits``: each digit cut out with its own ink only and brought to
   MNIST form by :func:`digitd.preprocess.to_mnist_form`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .preprocess import stroke_width, to_mnist_form
from .records import Mark

WORK_MAX = 1024  # longest side the analysis works at (larger scans are shrunk)
WORK_MIN = 56  # shortest side below which a scan is enlarged
MIN_CONTRAST = 0.08  # ink must differ from the paper by this much (0-1) or the page is blank
BG_KERNEL = 15  # side of the background-estimation kernel at its reduced scale
SPECK = 0.02  # pieces smaller than this fraction of the largest piece's area are specks
SMALL_GROUP = 0.35  # groups shorter than this fraction of the tallest are not digits on their own
X_OVERLAP = 0.35  # pieces whose columns overlap this much (of the narrower) are one digit


@dataclass(frozen=True)
class Ink:
    """The ink of a scan at working scale."""

    contrast: np.ndarray  # float32 H x W, 0 = paper, larger = more ink
    scale: float  # working pixels per original pixel
    polarity: str  # "dark_on_light" | "light_on_dark"
    level: float  # typical contrast of the ink (its strong pixels)


def luminance(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.float32), cv2.COLOR_RGB2GRAY)


def is_gray(rgb: np.ndarray) -> bool:
    return np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])


def working_scale(h: int, w: int) -> float:
    if max(h, w) > WORK_MAX:
        return WORK_MAX / max(h, w)
    if min(h, w) < WORK_MIN:
        return min(float(int(np.ceil(WORK_MIN / min(h, w)))), WORK_MAX / max(h, w))
    return 1.0


def detect_polarity(lum: np.ndarray) -> str:
    """Dark ink on light paper, or the reverse.

    The lighting is taken out first (the image less a heavy blur of itself), so
    a shadow across the page cannot pass for ink. Then the paper is what most
    of the image is (ink covers far less than half of a page), and the ink is
    what lies furthest from it: below it for dark ink, above it for light ink.
    """
    h, w = lum.shape
    f = min(1.0, 32.0 / max(h, w))
    small = cv2.resize(lum, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA) if f < 1 else lum
    light = cv2.GaussianBlur(small, (0, 0), max(1.0, min(small.shape) / 4.0), borderType=cv2.BORDER_REPLICATE)
    if f < 1:
        light = cv2.resize(light, (w, h), interpolation=cv2.INTER_LINEAR)
    flat = lum - light
    if flat.size > 8192:  # every other row and column tell the same
        flat = flat[::2, ::2]
    paper = float(np.median(flat))
    lo, hi = np.percentile(flat, [0.5, 99.5])
    return "dark_on_light" if paper - lo >= hi - paper else "light_on_dark"


def background(rgb: np.ndarray, dark_ink: bool) -> np.ndarray:
    """The paper's colour at each pixel, with the ink taken out.

    A morphological closing (for dark ink; opening for light ink) with a kernel
    far wider than a stroke removes the strokes and keeps slow changes of the
    paper: shadows, uneven light, tinted paper. Done at reduced scale.
    """
    h, w = rgb.shape[:2]
    k_full = max(3, min(h, w) // 3)
    f = min(1.0, BG_KERNEL / k_full)
    small = cv2.resize(rgb, (max(1, int(round(w * f))), max(1, int(round(h * f)))), interpolation=cv2.INTER_AREA) if f < 1 else rgb
    k = max(3, int(round(k_full * f)) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    pad = k
    padded = cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    op = cv2.MORPH_CLOSE if dark_ink else cv2.MORPH_OPEN
    bg = cv2.blur(cv2.morphologyEx(padded, op, kernel), (k, k))[pad:-pad, pad:-pad]
    if bg.ndim == 2:
        bg = bg[..., None]
    if f < 1:
        bg = cv2.resize(bg, (w, h), interpolation=cv2.INTER_LINEAR)
        if bg.ndim == 2:
            bg = bg[..., None]
    return bg


def ink_map(rgb: np.ndarray) -> Ink:
    h, w = rgb.shape[:2]
    scale = working_scale(h, w)
    if scale != 1.0:
        size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
        rgb = np.clip(rgb, 0.0, 1.0)
    gray = is_gray(rgb)
    if gray:  # one channel says it all, at a third of the cost
        rgb = np.ascontiguousarray(rgb[..., 0])
    polarity = detect_polarity(rgb if gray else luminance(rgb))
    dark = polarity == "dark_on_light"
    bg = background(rgb, dark)
    if gray:
        bg = bg[..., 0]
    diff = cv2.subtract(bg, rgb) if dark else cv2.subtract(rgb, bg)
    if not gray:  # the channel that shows the ink most
        diff = np.maximum(np.maximum(diff[..., 0], diff[..., 1]), diff[..., 2])
    contrast = np.maximum(diff, 0.0, dtype=np.float32)
    strong = contrast[contrast >= 0.5 * float(contrast.max())] if contrast.size else contrast
    level = float(np.median(strong)) if strong.size else 0.0
    return Ink(contrast=contrast, scale=scale, polarity=polarity, level=level)


def ink_mask(ink: Ink) -> np.ndarray | None:
    """Binary ink mask at working scale, or None for a blank page."""
    c = ink.contrast
    if ink.level < MIN_CONTRAST:
        return None
    c8 = np.clip(c / ink.level * 255.0, 0, 255).astype(np.uint8)
    otsu, _ = cv2.threshold(c8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    t = float(np.clip(otsu, 0.3 * 255, 0.6 * 255)) / 255.0 * ink.level
    t = max(t, MIN_CONTRAST * 0.5)
    mask = (c > t).astype(np.uint8)
    return mask if mask.any() else None


@dataclass(frozen=True)
class Piece:
    x: int
    y: int
    w: int
    h: int
    area: int
    label: int


def pieces(mask: np.ndarray) -> tuple[np.ndarray, list[Piece]]:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    found = [Piece(int(s[0]), int(s[1]), int(s[2]), int(s[3]), int(s[4]), i) for i, s in enumerate(stats) if i > 0]
    if not found:
        return labels, []
    largest = max(p.area for p in found)
    H, W = mask.shape
    kept = [p for p in found if p.area >= max(2, SPECK * largest)]
    if len(kept) == 1:
        return labels, kept
    # Ruled lines, and the desk or shadow around a photographed page: long flat
    # pieces across much of the page, and pieces on the frame's edge whose
    # strokes are far thicker than those of the pieces inside it.
    def touches(p: Piece) -> bool:
        return p.x == 0 or p.y == 0 or p.x + p.w == W or p.y + p.h == H

    def width(p: Piece) -> float:
        return stroke_width(labels[p.y : p.y + p.h, p.x : p.x + p.w] == p.label)

    thick = None

    def too_thick(p: Piece) -> bool:
        nonlocal thick
        if thick is None:
            inner = [width(q) for q in kept if not touches(q) and q.area >= 0.25 * largest]
            thick = 2.0 * float(np.median(inner)) if inner else float("inf")
        return width(p) > thick

    junk = [p for p in kept if (p.w > 4 * p.h and p.w > 0.5 * W)
            or (touches(p) and (p.w > 0.9 * W or p.h > 0.9 * H or too_thick(p)))]
    if junk and len(junk) < len(kept):
        kept = [p for p in kept if p not in junk]
    return labels, kept


def _overlap(a0: int, a1: int, b0: int, b1: int) -> int:
    return min(a1, b1) - max(a0, b0)


def group_marks(found: list[Piece]) -> list[list[Piece]]:
    """Pieces -> digits, left to right. Pieces sharing columns are one digit."""
    groups: list[list[Piece]] = []
    for p in sorted(found, key=lambda p: p.x):
        for g in groups:
            gx0 = min(q.x for q in g)
            gx1 = max(q.x + q.w for q in g)
            if _overlap(p.x, p.x + p.w, gx0, gx1) > X_OVERLAP * min(p.w, gx1 - gx0):
                g.append(p)
                break
        else:
            groups.append([p])
    # Fragments too small to be a digit join their nearest neighbour.
    if len(groups) > 1:
        tallest = max(_extent(g)[3] for g in groups)
        small = [g for g in groups if _extent(g)[3] < SMALL_GROUP * tallest]
        big = [g for g in groups if _extent(g)[3] >= SMALL_GROUP * tallest]
        for g in small:
            x, y, w, h = _extent(g)
            cx = x + w / 2
            near = min(big, key=lambda b: abs(_extent(b)[0] + _extent(b)[2] / 2 - cx))
            bx, _, bw, bh = _extent(near)
            gap = max(bx - (x + w), x - (bx + bw), 0)
            if gap <= 0.25 * bh:
                near.extend(g)
        groups = big
    groups.sort(key=lambda g: _extent(g)[0])
    return groups


def _extent(g: list[Piece]) -> tuple[int, int, int, int]:
    x0 = min(p.x for p in g)
    y0 = min(p.y for p in g)
    x1 = max(p.x + p.w for p in g)
    y1 = max(p.y + p.h for p in g)
    return x0, y0, x1 - x0, y1 - y0


def find_digits(rgb: np.ndarray, max_digits: int = 12) -> tuple[list[Mark], str | None]:
    """All digits on a scan, left to right, and the polarity; [] for a blank page."""
    ink = ink_map(rgb)
    mask = ink_mask(ink)
    if mask is None:
        return [], ink.polarity
    labels, found = pieces(mask)
    groups = group_marks(found)
    if len(groups) > max_digits:  # keep the most substantial marks, in reading order
        keep = sorted(groups, key=lambda g: -sum(p.area for p in g))[:max_digits]
        groups = [g for g in groups if any(g is k for k in keep)]
    marks = []
    soft = np.clip(ink.contrast / ink.level, 0.0, 1.0)
    grow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    for g in groups:
        x, y, w, h = _extent(g)
        pad = 2
        y0, y1 = max(0, y - pad), min(mask.shape[0], y + h + pad)
        x0, x1 = max(0, x - pad), min(mask.shape[1], x + w + pad)
        window = labels[y0:y1, x0:x1]
        own = (window == g[0].label) if len(g) == 1 else np.isin(window, [p.label for p in g])
        own = own.astype(np.uint8)
        own = cv2.dilate(own, grow)
        digit = soft[y0:y1, x0:x1] * own
        s = ink.scale
        box = (int(x / s), int(y / s), max(1, int(round(w / s))), max(1, int(round(h / s))))
        marks.append(Mark(box=box, pixels=to_mnist_form(digit)))
    return marks, ink.polarity
