"""Bring one digit to MNIST's own form: the single function training and inference share.

Pure array arithmetic, no I/O. MNIST digits are white ink on black, the ink's
bounding box scaled to fit 20x20 keeping its aspect ratio, then placed in a
28x28 field so that the centre of mass of the ink sits at the field's centre,
values 0-1 as the model sees them. ``to_mnist_form`` reproduces exactly that
from any ink image (ink bright, background 0), whatever its size or stroke
width, and is (nearly) the identity on MNIST digits themselves, so the model is
trained and served on the same normalisation.
"""

from __future__ import annotations

import cv2
import numpy as np

SIZE = 28  # side of the model's input
BOX = 20  # the ink's bounding box is scaled to fit BOX x BOX
# Where MNIST puts the centre of mass, in pixel-index coordinates: measured as
# 13.99 (row) and 14.00 (column) on the training set.
CENTRE = 14.0
# Typical MNIST stroke width in the 28x28 field (2 * area / perimeter of the
# ink above half intensity: median 2.39, 10th percentile 1.76).
STROKE = 2.4
INK_FLOOR = 0.05  # fraction of the peak below which a pixel is background


def stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width of a binary ink mask, as 2 * area / perimeter."""
    if mask.dtype == np.bool_ and mask.flags.c_contiguous:
        mask = mask.view(np.uint8)  # no copy: a bool is a 0/1 byte
    else:
        mask = np.ascontiguousarray(mask, dtype=np.uint8)
    area = int(np.count_nonzero(mask))
    if area == 0:
        return 0.0
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    perimeter = sum(cv2.arcLength(c, True) for c in contours)
    return 2.0 * area / perimeter if perimeter > 0 else 1.0


def _dilate_line(x: np.ndarray, lo: int, hi: int, axis: int) -> np.ndarray:
    """Maximum of ``x`` over the offsets lo..hi (lo <= 0 <= hi) across (axis 1)
    or down (axis 0); outside the image counts as nothing, as in cv2.dilate."""
    if lo == 0 and hi == 0:
        return x
    if axis == 1:
        return cv2.dilate(x, np.ones((1, hi - lo + 1), np.uint8), anchor=(-lo, 0))
    return cv2.dilate(x, np.ones((hi - lo + 1, 1), np.uint8), anchor=(0, -lo))


_ELLIPSE_RECTS: dict[int, list[tuple[int, int, int, int]]] = {}


def _ellipse_rects(n: int) -> list[tuple[int, int, int, int]]:
    """The n x n elliptical kernel as a union of rectangles (x0, x1, y0, y1) of
    offsets from its anchor, narrowest (tallest) first: each distinct row run,
    over the rows whose run covers it."""
    rects = _ELLIPSE_RECTS.get(n)
    if rects is None:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (n, n))
        c = n // 2  # OpenCV's default anchor
        runs: dict[tuple[int, int], list[int]] = {}
        for i in range(n):
            cols = np.flatnonzero(kernel[i])
            if cols.size:
                runs.setdefault((int(cols[0]) - c, int(cols[-1]) - c), []).append(i - c)
        rects = []
        for x0, x1 in runs:
            ys = sorted(dy for (u0, u1), dys in runs.items() if u0 <= x0 and u1 >= x1 for dy in dys)
            if not (ys[-1] - ys[0] + 1 == len(ys) and ys[0] <= 0 <= ys[-1] and x0 <= 0 <= x1):
                raise AssertionError(f"ellipse {n}: not a staircase of runs about its anchor")  # pragma: no cover
            rects.append((x0, x1, ys[0], ys[-1]))
        rects.sort(key=lambda r: (r[1] - r[0], r[2] - r[3]))
        _ELLIPSE_RECTS[n] = rects
    return rects


def dilate_ellipse(a: np.ndarray, n: int) -> np.ndarray:
    """``cv2.dilate(a, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (n, n)))``,
    the same values, for large kernels several times faster.

    OpenCV visits every point of a non-rectangular kernel at every pixel (a thin
    pen on a big canvas needs ellipses of 20-45 pixels). A maximum is exact in
    any order, so the ellipse is taken as a staircase of rectangles R_k (width
    growing, height shrinking) and max_k V_k(H_k(a)) -- H a run across, V a run
    down -- is evaluated Horner-style with 1-D dilations that each extend the
    previous one: acc = V_{k-1 less k}(acc) max H_k(a), then V_last(acc).
    """
    if n < 12:
        return cv2.dilate(a, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (n, n)))
    across, hx, acc, vy = a, (0, 0), None, (0, 0)
    for x0, x1, y0, y1 in _ellipse_rects(n):
        across = _dilate_line(across, x0 - hx[0], x1 - hx[1], 1)
        hx = (x0, x1)
        acc = across if acc is None else cv2.max(_dilate_line(acc, vy[0] - y0, vy[1] - y1, 0), across)
        vy = (y0, y1)
    return _dilate_line(acc, vy[0], vy[1], 0)


def to_mnist_form(ink: np.ndarray) -> np.ndarray:
    """One digit's ink image (2-D, background 0, ink > 0, any scale) -> float32 28x28 in 0-1.

    Steps: peak-normalise; crop to the ink's bounding box; thicken strokes that
    would come out much thinner than MNIST's (thin pens on big canvases);
    resize to fit 20x20 keeping aspect; shift by whole pixels so the centre of
    mass lands on MNIST's centre (kept inside the field). An image without ink
    gives all zeros.
    """
    a = np.asarray(ink, dtype=np.float32)
    if a.ndim != 2:
        raise ValueError(f"to_mnist_form needs a 2-D array, got shape {a.shape}")
    peak = float(a.max()) if a.size else 0.0
    if not peak > 0:
        return np.zeros((SIZE, SIZE), np.float32)
    a = a / peak
    # The ink's bounding box (cv2.boundingRect of the 0/1 bytes of the bool mask).
    x, y, w, h = cv2.boundingRect((a > INK_FLOOR).view(np.uint8))
    a = a[y : y + h, x : x + w]
    h, w = a.shape
    scale = BOX / max(h, w)

    # Stroke width as it would come out after scaling; thicken thin ones.
    width_out = stroke_width(a > 0.5) * scale
    if width_out < 0.6 * STROKE:
        grow = int(round((STROKE - width_out) / scale))
        if grow >= 1:
            a = cv2.copyMakeBorder(a, grow, grow, grow, grow, cv2.BORDER_CONSTANT, value=0)
            a = dilate_ellipse(a, grow + 1)
            h, w = a.shape
            scale = BOX / max(h, w)

    nh = min(BOX, max(1, int(round(h * scale))))
    nw = min(BOX, max(1, int(round(w * scale))))
    if (nh, nw) != (h, w):
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        a = cv2.resize(a, (nw, nh), interpolation=interp)
    a = np.maximum(a, 0.0)  # what np.clip(a, 0, None) does, without its overhead
    top = float(a.max())
    if top > 0:
        a = a / top

    m = cv2.moments(a)
    if m["m00"] > 0:
        cy, cx = m["m01"] / m["m00"], m["m10"] / m["m00"]
    else:  # pragma: no cover - peak > 0 guarantees mass
        cy, cx = (nh - 1) / 2, (nw - 1) / 2
    top_row = min(max(round(CENTRE - cy), 0), SIZE - nh)
    left_col = min(max(round(CENTRE - cx), 0), SIZE - nw)
    out = np.zeros((SIZE, SIZE), np.float32)
    out[top_row : top_row + nh, left_col : left_col + nw] = a
    return out


def to_mnist_batch(images: np.ndarray) -> np.ndarray:
    """``to_mnist_form`` over a stack of ink images -> float32 (N, 28, 28)."""
    return np.stack([to_mnist_form(im) for im in images]) if len(images) else np.zeros((0, SIZE, SIZE), np.float32)
