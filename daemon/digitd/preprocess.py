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


def dilate_ellipse(a: np.ndarray, n: int) -> np.ndarray:
    """``cv2.dilate(a, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (n, n)))`` of a
    2-D float32 array, the same values.

    OpenCV visits every point of a large ellipse at every pixel (a thin pen on a
    big canvas needs kernels of 20-45 pixels). A maximum is exact in any order,
    so here it is split: each row of the kernel is a horizontal run, whose
    maximum comes from two overlapping power-of-two runs, and the rows are then
    combined with one maximum each.
    """
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (n, n))
    if n < 16 or a.ndim != 2 or a.dtype != np.float32 or not a.size:
        return cv2.dilate(a, kernel)
    c = n // 2  # OpenCV's default anchor
    runs = []  # (dy, first dx, length) of each kernel row
    for i in range(n):
        cols = np.flatnonzero(kernel[i])
        if cols.size:
            if cols[-1] - cols[0] + 1 != cols.size:  # pragma: no cover - an ellipse's rows are runs
                return cv2.dilate(a, kernel)
            runs.append((i - c, int(cols[0]) - c, int(cols.size)))
    h, w = a.shape
    # Outside the image counts as -inf, as OpenCV's default border for dilate.
    padded = np.full((h + 2 * n, w + 2 * n), -np.inf, np.float32)
    padded[n : n + h, n : n + w] = a
    longest = max(length for _, _, length in runs)
    power = {1: padded}  # power[m][y, x] = max(padded[y, x : x + m])
    m = 1
    while 2 * m <= longest:
        prev = power[m]
        power[2 * m] = np.maximum(prev[:, :-m], prev[:, m:])
        m *= 2
    across: dict[tuple[int, int], np.ndarray] = {}  # (first dx, length) -> row maximum, every row
    out = None
    for dy, dx, length in runs:
        row = across.get((dx, length))
        if row is None:
            m = 1 << (length.bit_length() - 1)
            x0 = n + dx
            row = power[m][:, x0 : x0 + w]
            if m < length:
                row = np.maximum(row, power[m][:, x0 + length - m : x0 + length - m + w])
            across[(dx, length)] = row
        shifted = row[n + dy : n + dy + h]
        out = shifted.copy() if out is None else np.maximum(out, shifted, out=out)
    return out


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
