"""Registering a scanned page on a form's printed boxes: template millimetres -> page pixels.

:func:`find_boxes` finds the printed rectangles: long straight runs of ink kept
by morphology; in each connected piece the outermost long rows and columns at
its tilt are the sides (a comb is one box; a digit written across an edge does
not move it; a piece that is no box is tried again with longer lines only).
:func:`align` tries every two-box similarity near the scale the page's width
implies, keeps the one that fits most boxes, then fits a similarity with RANSAC
on box corners and refines it once (:func:`align_frames`: the same on frames
already found, for several templates on one page). :func:`to_page` puts a template box on the
page. A box runs along the middle of its printed line. Pure: arrays in, records out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

LINE = 1 / 42  # a printed line runs straight for at least this share of the page's shorter side (5 mm on A4)
THICKEN = 3  # pixels a line is thickened across before the straight runs are kept (rotated lines)
SIDE_COVER = 0.75  # each side of a frame must be this much ink ...
COVER = 0.88  # ... and its four sides together this much
LONG = 0.4  # a side's line runs along at least this share of the frame
MIN_SIDE = 1.0  # a box's sides are at least one line length (LINE) long
MAX_LINE = 1 / 6  # a box's lines are at most this thick for its shorter side (or THICKEN + 4 pixels)
RETRY = 2  # a piece that is no box is looked at again with lines this many line lengths long
MAX_INK = 0.5  # a frame's pixels may fill at most this share of its rectangle (a solid block is no box)
MAX_TILT = 10.0  # degrees: a frame tilted more is not a printed box on this page
SCALE_RANGE = 0.1  # the page's scale may differ this much from what its width implies
MAX_TURN = 8.0  # degrees of rotation looked for either way
SIZE_TOLERANCE = 0.15  # a page box matches a template box within this share of its size (+ SIZE_SLACK)
SIZE_SLACK = 1.5  # mm
FIT_TOLERANCE = 2.5  # mm: a box's worst corner this far from where the transform puts it has no fit
MAX_SHIFT = 0.15  # a box is at most this share of the page's diagonal from where the nominal scale puts it
MIN_PAIR = 15.0  # mm: two boxes' centres at least this far apart make a hypothesis
MAX_PAIRS = 20000  # hypotheses tried at most (sampled beyond, with a fixed seed)
MIN_QUALITY = 0.5  # an alignment below this quality is no match


@dataclass(frozen=True)
class Alignment:
    """Where a template sits on a page: millimetres -> pixels, and how well it fits."""

    matrix: np.ndarray  # 2 x 3 float64 affine (a similarity): template mm -> page pixels
    quality: float  # 0-1: the template's boxes found where the matrix puts them, weighted by fit
    matched: int  # template boxes found on the page
    residual_px: float  # RMS distance of the matched boxes' corners from where the matrix puts them


def find_boxes(gray: np.ndarray) -> list[tuple[int, int, int, int]]:
    """The printed rectangles on a page as (x, y, w, h) pixels, top to bottom; a comb once, as its outer box."""
    return [bounds(c) for c in find_frames(gray)]


def find_frames(gray: np.ndarray) -> list[np.ndarray]:
    """The printed rectangles as corners (4 x 2 float64, clockwise from top-left), top to bottom."""
    page = to_uint8(gray)
    h, w = page.shape
    length = max(8, round(min(h, w) * LINE))
    horizontal, vertical = straight_lines(ink_of(page), length)
    paper = sample_median(page)
    frames = []
    for x, y, mask in pieces(horizontal, vertical, length):
        if x <= 1 or y <= 1 or x + mask.shape[1] >= w - 1 or y + mask.shape[0] >= h - 1:
            continue  # touching the scan's edge: the paper's edge, the scanner's bed
        crop = np.s_[y:y + mask.shape[0], x:x + mask.shape[1]]
        found = frames_of(mask, horizontal[crop] & mask, vertical[crop] & mask, length)
        frames += [c + (x, y) for c in found if is_light_inside(page[crop], c, paper)]
    frames.sort(key=lambda c: (c[:, 1].min(), c[:, 0].min()))
    return frames


def frames_of(mask: np.ndarray, horizontal: np.ndarray, vertical: np.ndarray, length: int) -> list[np.ndarray]:
    """The frames in one piece of lines (crop pixels): itself, or if it is no box, what its longer lines make
    (a stroke across two boxes joins them into one piece)."""
    corners = frame_corners(mask, horizontal, vertical, length)
    if corners is not None or min(mask.shape) < 2 * length:
        return [] if corners is None else [corners]
    out = []
    for x, y, sub in pieces(horizontal, vertical, length, RETRY * length):
        box = np.s_[y:y + sub.shape[0], x:x + sub.shape[1]]
        corners = frame_corners(sub, horizontal[box] & sub, vertical[box] & sub, length)
        if corners is not None:
            out.append(corners + (x, y))
    return out


def pieces(horizontal: np.ndarray, vertical: np.ndarray, length: int,
           keep: int | None = None) -> list[tuple[int, int, np.ndarray]]:
    """The connected outlines the lines make, as (x, y, mask of the piece's box); lines shorter than `keep`
    dropped first. Pieces smaller than `length` or filled like a block are left out."""
    if keep:
        horizontal = cv2.morphologyEx(horizontal, cv2.MORPH_OPEN, np.ones((1, keep), np.uint8))
        vertical = cv2.morphologyEx(vertical, cv2.MORPH_OPEN, np.ones((keep, 1), np.uint8))
    lines = cv2.morphologyEx(horizontal | vertical, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(lines, connectivity=8)
    out = []
    for i in range(1, count):
        x, y, bw, bh, area = (int(v) for v in stats[i])
        if bw >= length and bh >= length and area <= MAX_INK * bw * bh:
            out.append((x, y, (labels[y:y + bh, x:x + bw] == i).astype(np.uint8)))
    return out


def to_uint8(gray: np.ndarray) -> np.ndarray:
    """A grey plane as uint8 0-255 (float planes are 0-1; colour is made grey), dark ink on light paper."""
    a = np.asarray(gray)
    if a.ndim == 3:
        a = a[..., :3].mean(axis=2)
    if a.dtype == np.uint8:
        out = a
    elif a.dtype == np.uint16:
        out = (a >> 8).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        out = cv2.convertScaleAbs(np.ascontiguousarray(a, dtype=np.float32), alpha=255.0)  # clipped, rounded
    else:
        out = np.clip(a, 0, 255).astype(np.uint8)
    if sample_median(out) < 128:  # light lines on a dark ground
        out = 255 - out
    return np.ascontiguousarray(out)


def sample_median(plane: np.ndarray) -> float:
    """The median of a plane's values, from every fourth row and column (a page's median alike, quicker)."""
    return float(np.median(plane[::4, ::4]))


def ink_of(page: np.ndarray) -> np.ndarray:
    """Ink (1) against the paper's local level: grey grounds and uneven light pass."""
    block = max(15, (min(page.shape) // 50) | 1)
    return cv2.adaptiveThreshold(page, 1, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, block, 12)


def straight_lines(ink: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Long horizontal and long vertical runs of ink (uint8 0/1 each), thickened across by THICKEN."""
    across_h = cv2.dilate(ink, np.ones((THICKEN, 1), np.uint8))
    across_v = cv2.dilate(ink, np.ones((1, THICKEN), np.uint8))
    horizontal = cv2.morphologyEx(across_h, cv2.MORPH_OPEN, np.ones((1, length), np.uint8))
    vertical = cv2.morphologyEx(across_v, cv2.MORPH_OPEN, np.ones((length, 1), np.uint8))
    return horizontal, vertical


def frame_corners(mask: np.ndarray, horizontal: np.ndarray, vertical: np.ndarray, length: int) -> np.ndarray | None:
    """The centre lines' corners (crop pixels) if this piece of lines outlines a rectangle, else None.

    The outermost long rows and columns at the frame's tilt are its sides, so strokes
    crossing a side (a digit written over the edge) do not move it.
    """
    hy, hx = np.nonzero(horizontal)
    vy, vx = np.nonzero(vertical)
    if len(hx) < 2 * length or len(vx) < 2 * length:
        return None
    angle = frame_tilt(hx, hy, vx, vy)
    c, s = math.cos(angle), math.sin(angle)
    across_h = -hx * s + hy * c  # rows of the turned frame
    across_v = vx * c + vy * s  # its columns
    rows = outer_lines(across_h, hx * c + hy * s)
    cols = outer_lines(across_v, -vx * s + vy * c)
    if rows is None or cols is None:
        return None
    (top, bottom, row_width), (left, right, col_width) = rows, cols
    short = min(bottom - top, right - left)
    if short < length * MIN_SIDE or max(row_width, col_width) > max(THICKEN + 4, short * MAX_LINE):
        return None  # small, or drawn with strokes too heavy for its size (bold lettering)
    turned = np.array([[left, top], [right, top], [right, bottom], [left, bottom]], np.float64)
    corners = np.stack([turned[:, 0] * c - turned[:, 1] * s, turned[:, 0] * s + turned[:, 1] * c], axis=1)
    tolerant = cv2.dilate(mask, np.ones((3, 3), np.uint8))
    covers = []
    for a, b in zip(corners, np.roll(corners, -1, axis=0)):
        n = max(int(np.hypot(*(b - a))), 2)
        p = np.rint(a + (b - a) * np.linspace(0.0, 1.0, n)[:, None]).astype(int)
        p[:, 0] = np.clip(p[:, 0], 0, mask.shape[1] - 1)
        p[:, 1] = np.clip(p[:, 1], 0, mask.shape[0] - 1)
        hits = tolerant[p[:, 1], p[:, 0]]
        if longest_gap(hits) > length / 2:
            return None  # two boxes joined by a stroke, or no side here
        covers.append(float(hits.mean()))
    if min(covers) < SIDE_COVER or float(np.mean(covers)) < COVER:
        return None
    return corners


def longest_gap(hits: np.ndarray) -> int:
    """The longest run of zeros in a 0/1 sequence."""
    edges = np.flatnonzero(np.diff(np.concatenate([[1], hits.astype(np.int8), [1]])))
    return int(np.max(edges[1::2] - edges[::2])) if len(edges) else 0


def frame_tilt(hx: np.ndarray, hy: np.ndarray, vx: np.ndarray, vy: np.ndarray) -> float:
    """The turn (radians) at which the frame's lines project sharpest onto rows and columns."""
    step = max(1, (len(hx) + len(vx)) // 3000)
    hx, hy, vx, vy = hx[::step], hy[::step], vx[::step], vy[::step]
    best, best_score = 0.0, -1.0
    for span, count in ((MAX_TILT, 21), (1.0, 21)):  # by degrees, then by tenths around the best
        for deg in np.linspace(best - span, best + span, count) if best_score >= 0 else np.linspace(-span, span, count):
            a = math.radians(deg)
            c, s = math.cos(a), math.sin(a)
            r = np.rint(-hx * s + hy * c).astype(np.int64)
            q = np.rint(vx * c + vy * s).astype(np.int64)
            score = float(np.sum(np.bincount(r - r.min()) ** 2) + np.sum(np.bincount(q - q.min()) ** 2))
            if score > best_score:
                best_score, best_deg = score, deg
        best = best_deg
    return math.radians(best)


def outer_lines(across: np.ndarray, along: np.ndarray) -> tuple[float, float, int] | None:
    """The centres of the first and last long lines (positions `across` holding LONG of the extent `along`)
    and the thicker one's width."""
    lo, hi = np.percentile(along, [2, 98])
    base = int(math.floor(across.min()))
    counts = np.bincount(np.rint(across).astype(np.int64) - base)
    long = np.flatnonzero(counts >= LONG * (hi - lo))
    if len(long) < 2:
        return None
    runs = np.split(long, np.flatnonzero(np.diff(long) > 1) + 1)
    if len(runs) < 2:
        return None
    first, last = runs[0], runs[-1]
    centre = [float(np.average(r, weights=counts[r])) + base for r in (first, last)]
    return centre[0], centre[1], max(len(first), len(last))


def is_light_inside(page: np.ndarray, corners: np.ndarray, paper: float) -> bool:
    """Whether a frame's inside is paper (not a dark block whose outline the threshold drew)."""
    x0, y0 = np.ceil(corners.min(axis=0)).astype(int) + 4
    x1, y1 = np.floor(corners.max(axis=0)).astype(int) - 4
    inside = page[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)]
    return inside.size == 0 or float(np.median(inside)) >= paper / 2


def bounds(corners: np.ndarray) -> tuple[int, int, int, int]:
    """The pixel box (x, y, w, h) around some corners."""
    x0, y0 = np.rint(corners.min(axis=0)).astype(int)
    x1, y1 = np.rint(corners.max(axis=0)).astype(int)
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)


def corners_of(box: tuple[float, float, float, float]) -> np.ndarray:
    """A box's corners (4 x 2: top-left, top-right, bottom-right, bottom-left)."""
    x, y, w, h = box
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float64)


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points (... x 2) through a 2 x 3 affine."""
    return points @ matrix[:, :2].T + matrix[:, 2]


def to_page(alignment: Alignment, box_mm: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    """A template box (mm) in the page's pixels: the box around its transformed corners."""
    return bounds(apply(alignment.matrix, corners_of(box_mm)))


def align(gray: np.ndarray, boxes_mm: Sequence[tuple[float, float, float, float]],
          page_mm: tuple[float, float]) -> Alignment | None:
    """The page registered on a template's printed boxes, or None (too few boxes match: not this form)."""
    page = to_uint8(gray)
    return align_frames(find_frames(page), page.shape[1], boxes_mm, page_mm)


def align_frames(found: Sequence[np.ndarray], width: int, boxes_mm: Sequence[tuple[float, float, float, float]],
                 page_mm: tuple[float, float]) -> Alignment | None:
    """:func:`align` on the page's frames already found (:func:`find_frames`; ``width``: the page's, pixels),
    so that several templates are tried on one page's frames."""
    template = np.array([corners_of(b) for b in boxes_mm], np.float64).reshape(-1, 4, 2)
    if len(template) < 2 or len(found) < 2:
        return None
    frames = np.array(found, np.float64)
    scale = width / float(page_mm[0])
    first = best_hypothesis(template, frames, scale)
    if first is None:
        return None
    matrix = first
    for threshold in (FIT_TOLERANCE, FIT_TOLERANCE / 2):  # the fit, then the fit refined once
        pairs = match(matrix, template, frames, FIT_TOLERANCE)
        if len(pairs) < 2:
            return None
        src = np.concatenate([template[i] for i, _ in pairs]).astype(np.float32)
        dst = np.concatenate([frames[j] for _, j in pairs]).astype(np.float32)
        fitted, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC,
                                                ransacReprojThreshold=threshold * scale, maxIters=2000,
                                                confidence=0.999, refineIters=20)
        if fitted is None:
            return None
        matrix = fitted.astype(np.float64)
    return judge(matrix, template, frames)


def judge(matrix: np.ndarray, template: np.ndarray, frames: np.ndarray) -> Alignment | None:
    """The alignment this matrix makes, or None if its quality is too low."""
    fits = box_fits(matrix, template, frames, FIT_TOLERANCE)
    best = fits.argmax(axis=1)
    rows = np.arange(len(template))
    good = fits[rows, best] > 0
    matched = int(good.sum())
    quality = float(fits[rows, best].sum() / len(template))
    if matched < 2 or quality < MIN_QUALITY:
        return None
    predicted = apply(matrix, template[good])
    residual = float(np.sqrt(np.mean(np.sum((predicted - frames[best[good]]) ** 2, axis=2))))
    return Alignment(matrix=matrix, quality=quality, matched=matched, residual_px=residual)


def pixel_scale(matrix: np.ndarray) -> float:
    """Pixels per millimetre of a similarity."""
    return float(math.sqrt(abs(np.linalg.det(matrix[:, :2]))))


def box_fits(matrix: np.ndarray, template: np.ndarray, frames: np.ndarray,
             tolerance_mm: float) -> np.ndarray:
    """The fit (0-1, by the worst corner's distance) of every template box (rows) to every page box (columns)."""
    predicted = apply(matrix, template)  # n x 4 x 2
    errors = np.linalg.norm(predicted[:, None] - frames[None], axis=3).max(axis=2)  # n x m
    return np.clip(1.0 - errors / (tolerance_mm * pixel_scale(matrix)), 0.0, 1.0)


def match(matrix: np.ndarray, template: np.ndarray, frames: np.ndarray, tolerance_mm: float) -> list[tuple[int, int]]:
    """Template box -> page box pairs under a matrix, best fits first, each box used once."""
    fits = box_fits(matrix, template, frames, tolerance_mm)
    pairs, used_t, used_f = [], set(), set()
    for flat in np.argsort(-fits, axis=None):
        i, j = divmod(int(flat), fits.shape[1])
        if fits[i, j] <= 0:
            break
        if i not in used_t and j not in used_f:
            pairs.append((i, j))
            used_t.add(i)
            used_f.add(j)
    return pairs


def best_hypothesis(template: np.ndarray, frames: np.ndarray, scale: float) -> np.ndarray | None:
    """The similarity from two box pairs (alike in size, a plausible scale and turn) that fits most boxes."""
    t_centre, f_centre = template.mean(axis=1), frames.mean(axis=1)
    t_size, f_size = sides(template) * scale, sides(frames)
    slack = SIZE_TOLERANCE * t_size[:, None] + SIZE_SLACK * scale
    alike = np.all(np.abs(t_size[:, None] - f_size[None]) <= slack, axis=2)
    reach = MAX_SHIFT * math.hypot(*frames.reshape(-1, 2).max(axis=0))
    alike &= np.linalg.norm(t_centre[:, None] * scale - f_centre[None], axis=2) <= reach
    candidates = np.argwhere(alike)  # (template, frame) pairs
    if len(candidates) < 2:
        return None
    a, b = np.triu_indices(len(candidates), k=1)
    pairs = np.stack([a, b], axis=1)
    pairs = pairs[(candidates[a, 0] != candidates[b, 0]) & (candidates[a, 1] != candidates[b, 1])]
    if len(pairs) > MAX_PAIRS:
        pairs = pairs[np.random.default_rng(0).choice(len(pairs), MAX_PAIRS, replace=False)]
    ti, fi = candidates[pairs[:, 0]], candidates[pairs[:, 1]]
    dt = t_centre[fi[:, 0]] - t_centre[ti[:, 0]]
    df = f_centre[fi[:, 1]] - f_centre[ti[:, 1]]
    lt, lf = np.hypot(dt[:, 0], dt[:, 1]), np.hypot(df[:, 0], df[:, 1])
    ratio = lf / np.maximum(lt * scale, 1e-9)
    turn = np.arctan2(df[:, 1], df[:, 0]) - np.arctan2(dt[:, 1], dt[:, 0])
    turn = (turn + np.pi) % (2 * np.pi) - np.pi
    keep = ((lt >= MIN_PAIR) & (np.abs(ratio - 1) <= SCALE_RANGE)
            & (np.abs(turn) <= math.radians(MAX_TURN)))
    if not keep.any():
        return None
    k = np.flatnonzero(keep)
    s = ratio[k] * scale
    cos, sin = s * np.cos(turn[k]), s * np.sin(turn[k])
    rot = np.stack([np.stack([cos, -sin], axis=1), np.stack([sin, cos], axis=1)], axis=1)  # K x 2 x 2
    shift = f_centre[ti[k, 1]] - np.einsum("kab,kb->ka", rot, t_centre[ti[k, 0]])
    matrices = np.concatenate([rot, shift[:, :, None]], axis=2)  # K x 2 x 3
    scores = np.concatenate([centre_scores(m, t_centre, f_centre, alike, scale)
                             for m in np.array_split(matrices, max(1, len(matrices) // 500))])
    best, best_score = None, 0.0
    for matrix in matrices[np.argsort(-scores)[:5]]:  # the best few by centres, then by corners
        score = float(box_fits(matrix, template, frames, FIT_TOLERANCE).max(axis=1).sum())
        if score > best_score:
            best, best_score = matrix, score
    return best


def centre_scores(matrices: np.ndarray, t_centre: np.ndarray, f_centre: np.ndarray, alike: np.ndarray,
                  scale: float) -> np.ndarray:
    """How many template boxes each similarity (K x 2 x 3) puts near a page box alike in size, by fit."""
    predicted = np.einsum("kab,nb->kna", matrices[:, :, :2], t_centre) + matrices[:, None, :, 2]  # K x n x 2
    distance = np.linalg.norm(predicted[:, :, None] - f_centre[None, None], axis=3)  # K x n x m
    fits = np.clip(1.0 - distance / (FIT_TOLERANCE * scale), 0.0, 1.0) * alike[None]
    return fits.max(axis=2).sum(axis=1)


def sides(corners: np.ndarray) -> np.ndarray:
    """Width and height of boxes given by their corners (n x 4 x 2 -> n x 2)."""
    w = np.linalg.norm(corners[:, 1] - corners[:, 0], axis=1)
    h = np.linalg.norm(corners[:, 3] - corners[:, 0], axis=1)
    return np.stack([w, h], axis=1)
