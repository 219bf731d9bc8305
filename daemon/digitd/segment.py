"""From a scan to the digits on it: polarity, ink, marks, MNIST form. Pure functions on arrays.

:func:`ink_map` (which way round the ink is, the paper's local colour
removed), :func:`ink_mask` (ink told from paper, or a blank page),
:func:`group_marks` (pieces grouped into digits left to right, specks and
ruled lines dropped), then :func:`find_digits` (each digit in MNIST form by
:func:`digitd.preprocess.to_mnist_form`). The grey-plane and other cheap paths
give the same marks bit for bit as the plain ones (tests/test_fast_paths.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .preprocess import stroke_width, to_mnist_form
from .records import Mark, Scan

WORK_MAX = 1024  # longest side the analysis works at (larger scans are shrunk)
WORK_MIN = 56  # shortest side below which a scan is enlarged
MIN_CONTRAST = 0.08  # ink must differ from the paper by this much (0-1) or the page is blank
BG_KERNEL = 15  # side of the background-estimation kernel at its reduced scale
SPECK = 0.02  # pieces smaller than this fraction of the largest piece's area are specks
SMALL_GROUP = 0.35  # groups shorter than this fraction of the tallest are not digits on their own
X_OVERLAP = 0.35  # pieces whose columns overlap this much (of the narrower) are one digit
HAIR_AREA = 0.25  # pieces smaller than this fraction of the largest ...
HAIR_WIDTH = 0.5  # ... drawn finer than this fraction of the main strokes' width ...
HAIR_TALL = 0.75  # ... and shorter than this fraction of the main strokes' height are hairs, not ink of a digit
CHIP_TALL = 0.5  # ... as are, in columns of their own, those shorter than this whatever their pen (chips of ink)
FINE_FLOOR = 0.15  # a digit cut from the scan's own pixels keeps ink over this share of the page's ink level
FINE_ROWS = 1  # ... and within this many working rows above and below its own pixels
FEW = 4  # up to this many pieces are measured one by one (cheaper than scanning the ink)


@dataclass(frozen=True)
class Ink:
    """The ink of a scan at working scale."""

    contrast: np.ndarray  # float32 H x W, 0 = paper, larger = more ink
    scale: float  # working pixels per original pixel
    polarity: str  # "dark_on_light" | "light_on_dark"
    level: float  # typical contrast of the ink (its strong pixels)


def luminance(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.float32), cv2.COLOR_RGB2GRAY)


def gray_plane(rgb: np.ndarray) -> np.ndarray | None:
    """The grey plane behind an H x W x 3 array whose channels are one memory
    (channel stride 0, as decode gives for grey content), a 2-D array itself, else None."""
    if rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.strides[2] == 0:
        return rgb[..., 0]
    return rgb if rgb.ndim == 2 else None  # a plane is grey already


def is_gray(rgb: np.ndarray) -> bool:
    if gray_plane(rgb) is not None:
        return True
    if rgb.shape[0] and not np.array_equal(rgb[0, :, 0], rgb[0, :, 1]):  # colour shows at once, mostly
        return False
    return np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])


_PERCENT = np.true_divide([0.5, 99.5], 100)  # the quantiles np.percentile(x, [0.5, 99.5]) uses
_TAILS: dict[int, tuple[int, float, int, float]] = {}  # size -> where those quantiles fall


def median_and_tails(x: np.ndarray) -> tuple[float, float, float]:
    """``np.median(x)`` and ``np.percentile(x, [0.5, 99.5])`` of a float32 array,
    bit for bit, from one partition at the six order statistics they take (half
    the time of a sort). ``x`` must be a 1-D array the caller owns: it is reordered."""
    n = x.size
    if n < 4 or x.ndim != 1 or x.dtype != np.float32:
        lo, hi = np.percentile(x, [0.5, 99.5])
        return float(np.median(x)), float(lo), float(hi)
    where = _TAILS.get(n)
    if where is None:
        virtual = (n - 1) * _PERCENT  # np.percentile's 'linear' method, in float64 as it does
        below = np.floor(virtual)
        gamma = virtual - below
        if len(_TAILS) > 4096:  # one entry per image size seen; keep it small
            _TAILS.clear()
        where = _TAILS[n] = (int(below[0]), float(gamma[0]), int(below[1]), float(gamma[1]))
    i_lo, g_lo, i_hi, g_hi = where
    half = n // 2
    x.partition(sorted({half - 1, half, i_lo, i_lo + 1, min(i_hi + 1, n - 1), i_hi}))
    if n % 2:
        median = float(x[half])
    else:  # np.mean of the two middle values: their float32 sum, halved
        median = float((x[half - 1] + x[half]) / np.float32(2))

    def lerp(i: int, g: float) -> float:  # numpy's _lerp: float32 difference, float64 weights
        a, b = x[i], x[i + 1]
        d = float(b - a)
        return float(a) + d * g if g < 0.5 else float(b) - d * (1.0 - g)

    return median, lerp(i_lo, g_lo), lerp(i_hi, g_hi)


def median(x: np.ndarray) -> float:
    """``float(np.median(x))`` of a 1-D float32 array the caller owns (it is sorted)."""
    n = x.size
    if x.ndim != 1 or x.dtype != np.float32:
        return float(np.median(x)) if n else 0.0
    if n < 2:
        return float(x[0]) if n else 0.0
    half = n // 2
    x.sort()
    if n % 2:
        return float(x[half])
    return float((x[half - 1] + x[half]) / np.float32(2))  # np.mean of the two: float32 sum, halved


def working_scale(h: int, w: int) -> float:
    if max(h, w) > WORK_MAX:
        return WORK_MAX / max(h, w)
    if min(h, w) < WORK_MIN:
        return min(float(int(np.ceil(WORK_MIN / min(h, w)))), WORK_MAX / max(h, w))
    return 1.0


_GAUSS: dict[float, np.ndarray] = {}


def _gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """``cv2.GaussianBlur(img, (0, 0), sigma, borderType=BORDER_REPLICATE)`` of a
    float32 image, as the separable filter it is (same values, less overhead)."""
    if img.dtype != np.float32 or min(img.shape[:2]) < 2:  # GaussianBlur treats a single row apart
        return cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    k = _GAUSS.get(sigma)
    if k is None:  # GaussianBlur's own kernel for float images
        k = _GAUSS[sigma] = cv2.getGaussianKernel(int(round(sigma * 8 + 1)) | 1, sigma, cv2.CV_32F)
    return cv2.sepFilter2D(img, -1, k, k, borderType=cv2.BORDER_REPLICATE)


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
    light = _gaussian_blur(small, max(1.0, min(small.shape) / 4.0))
    if f < 1:
        light = cv2.resize(light, (w, h), interpolation=cv2.INTER_LINEAR)
    if lum.size > 8192:  # every other row and column tell the same
        lum, light = lum[::2, ::2], light[::2, ::2]
    flat = (lum - light).ravel()  # a new array: ours to reorder
    paper, lo, hi = median_and_tails(flat)  # reorders flat
    if max(paper - lo, hi - paper) < MIN_CONTRAST:  # ink under 0.5% of it (one digit on a page)
        k = flat.size // 5000
        flat.partition([k, flat.size - 1 - k])
        lo, hi = float(flat[k]), float(flat[-1 - k])
    return "dark_on_light" if paper - lo >= hi - paper else "light_on_dark"


_RECTS: dict[int, np.ndarray] = {}


def _rect(k: int) -> np.ndarray:
    kernel = _RECTS.get(k)
    if kernel is None:
        kernel = _RECTS[k] = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    return kernel


LONG_LINE = 31  # lines this long or longer are filtered by doubling (cv2's cost grows with the length)


def _extreme_line(img: np.ndarray, length: int, across: bool, dilate: bool) -> np.ndarray:
    """``cv2.erode`` (``dilate``: ``cv2.dilate``) of a uint8 image with a centred line
    of odd ``length``, across its rows or down its columns, and the same border:
    windows of 1, 2, 4, ... pixels, each the min (max) of two of the last, then two
    overlapping ones for the whole length (a few passes, whatever the length)."""
    r = length // 2
    edge = 0 if dilate else 255  # what cv2 takes beyond the border: never the extreme
    op = cv2.max if dilate else cv2.min
    e = cv2.copyMakeBorder(img, *((0, 0, r, r) if across else (r, r, 0, 0)), cv2.BORDER_CONSTANT, value=edge)
    if across:
        def shifted(a: np.ndarray, start: int, n: int) -> np.ndarray:
            return a[:, start : start + n]
    else:
        def shifted(a: np.ndarray, start: int, n: int) -> np.ndarray:
            return a[start : start + n]
    axis = 1 if across else 0
    p = 1
    while 2 * p <= length:  # e at i: the extreme of the p pixels from i
        n = e.shape[axis] - p
        e = op(shifted(e, 0, n), shifted(e, p, n))
        p *= 2
    n = img.shape[axis]
    return op(shifted(e, 0, n), shifted(e, length - p, n))


def line_morph(img: np.ndarray, op: int, length: int, across: bool) -> np.ndarray:
    """``cv2.morphologyEx(img, op, kernel)`` (``MORPH_OPEN`` or ``MORPH_CLOSE``) of a
    uint8 image with a line of odd ``length`` (``across``: 1 row high, else 1 column
    wide), the same pixels; a long line at a fraction of cv2's time."""
    if length < LONG_LINE or length % 2 == 0:
        return cv2.morphologyEx(img, op, np.ones((1, length) if across else (length, 1), np.uint8))
    first = op == cv2.MORPH_CLOSE
    return _extreme_line(_extreme_line(img, length, across, first), length, across, not first)


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
    kernel = _rect(k)
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


def ink_map(rgb: np.ndarray, gray: np.ndarray | None = None) -> Ink:
    """The ink of an RGB scan; ``gray``, when given, is its one grey plane
    (then ``rgb`` is not looked at)."""
    if gray is None:
        gray = gray_plane(rgb)
    if gray is not None:
        return _ink_map(gray, True)
    return _ink_map(rgb, False)


def _halve(plane: np.ndarray) -> np.ndarray:
    """cv2.resize(INTER_AREA) to exactly half size, as OpenCV computes it for a
    three-channel image (its one-channel shortcut adds in another order)."""
    out = plane[0::2, 0::2] + plane[0::2, 1::2]
    out += plane[1::2, 0::2]
    out += plane[1::2, 1::2]
    out *= np.float32(0.25)
    return out


def _ink_map(img: np.ndarray, gray: bool) -> Ink:
    """``img`` is H x W x 3 RGB, or (gray=True) the H x W plane of a grey scan."""
    h, w = img.shape[:2]
    scale = working_scale(h, w)
    if scale != 1.0:
        size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
        if gray and scale > 1:
            # OpenCV's bicubic rounds one channel differently from three, and can
            # leave three equal channels unequal: enlarge three, as an RGB scan is.
            img, gray = np.repeat(img[..., None], 3, axis=2), False
        if gray and size == (w / 2, h / 2):
            img = _halve(img)
        else:
            img = cv2.resize(img, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
        img = np.clip(img, 0.0, 1.0, out=img)
    if not gray and is_gray(img):  # one channel says it all, at a third of the cost
        gray = True
        img = np.ascontiguousarray(img[..., 0])
    polarity = detect_polarity(img if gray else luminance(img))
    dark = polarity == "dark_on_light"
    bg = background(img, dark)
    if gray:
        bg = bg[..., 0]
    diff = cv2.subtract(bg, img) if dark else cv2.subtract(img, bg)
    if not gray:  # the channel that shows the ink most
        diff = np.maximum(np.maximum(diff[..., 0], diff[..., 1]), diff[..., 2])
    contrast = np.maximum(diff, 0.0, out=diff if diff.dtype == np.float32 else None, dtype=np.float32)
    strong = contrast[contrast >= 0.5 * float(contrast.max())] if contrast.size else contrast
    level = median(strong) if strong.size else 0.0
    return Ink(contrast=contrast, scale=scale, polarity=polarity, level=level)


def ink_mask(ink: Ink) -> np.ndarray | None:
    """Binary ink mask at working scale, or None for a blank page."""
    return ink_mask_and_ratio(ink)[0]


def ink_mask_and_ratio(ink: Ink) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(ink mask or None, contrast / level) -- the ratio is the digits' soft ink (see :func:`mark_of`)."""
    c = ink.contrast
    if ink.level < MIN_CONTRAST:
        return None, None
    ratio = c / ink.level
    c8 = np.multiply(ratio, 255.0)
    c8 = np.minimum(c8, 255.0, out=c8).astype(np.uint8)  # np.clip(c8, 0, 255): c8 >= 0 already
    otsu, _ = cv2.threshold(c8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    t = min(max(float(otsu), 0.3 * 255), 0.6 * 255) / 255.0 * ink.level
    t = max(t, MIN_CONTRAST * 0.5)
    mask = (c > t).view(np.uint8)  # 0/1 bytes, no copy
    return (mask, ratio) if mask.any() else (None, None)


Components = tuple[int, np.ndarray, np.ndarray]  # count, labels, stats (x, y, w, h, area) of each, paper first


@dataclass(frozen=True)
class Piece:
    x: int
    y: int
    w: int
    h: int
    area: int
    label: int


def components(mask: np.ndarray) -> Components:
    """``cv2.connectedComponentsWithStats(mask, connectivity=8)`` without the
    centroids: (count, labels, stats), the same values, a fraction of the time.
    Labelled within the ink's bounding box (from an even row and column, so the
    labels are the whole mask's); the few pieces of a cropped digit are measured one by one,
    many pieces over the ink's pixels only (OpenCV's statistics visit every pixel)."""
    x0, y0, w0, h0 = cv2.boundingRect(mask)
    labels = np.zeros(mask.shape, np.int32)
    H, W = mask.shape
    paper = (W, H, 1 - W, 1 - H, 0)  # row 0, the paper, is never read: as the ink-only scan left it
    if not w0:
        return 1, labels, np.array([paper], np.int64)
    # OpenCV labels 2x2 blocks: the crop starts on an even row and column, so
    # that its labels are the whole mask's
    w0, h0 = w0 + x0 % 2, h0 + y0 % 2
    x0, y0 = x0 - x0 % 2, y0 - y0 % 2
    crop = mask[y0 : y0 + h0, x0 : x0 + w0]
    n, inner = cv2.connectedComponents(crop, connectivity=8)
    labels[y0 : y0 + h0, x0 : x0 + w0] = inner
    stats = np.zeros((n, 5), np.int64)
    stats[0] = paper
    if n <= FEW + 1:
        for i in range(1, n):
            own = (inner == i).view(np.uint8)
            x, y, w, h = cv2.boundingRect(own)
            stats[i] = (x + x0, y + y0, w, h, cv2.countNonZero(own))
        return n, labels, stats
    ink = cv2.findNonZero(crop).reshape(-1, 2)  # the ink's (x, y): a byte a pixel, quicker to scan than the labels
    xs, ys = ink[:, 0], ink[:, 1]
    own = inner[ys, xs]
    lo_x = np.full(n, w0, np.int32)  # int32 as the points: ufunc.at is slow when it must cast
    np.minimum.at(lo_x, own, xs)
    hi_x = np.zeros(n, np.int32)
    np.maximum.at(hi_x, own, xs)
    lo_y = np.full(n, h0, np.int32)
    np.minimum.at(lo_y, own, ys)
    hi_y = np.zeros(n, np.int32)
    np.maximum.at(hi_y, own, ys)
    stats[1:] = np.stack([lo_x + x0, lo_y + y0, hi_x - lo_x + 1, hi_y - lo_y + 1,
                          np.bincount(own, minlength=n)], axis=1)[1:]
    return n, labels, stats


def pieces(mask: np.ndarray, comps: Components | None = None) -> tuple[np.ndarray, list[Piece]]:
    """The mask's labels and the pieces that may be digits' (dust, ruled lines and a
    photographed page's surroundings left out); ``comps``: its :func:`components`."""
    n, labels, stats = components(mask) if comps is None else comps
    found = [Piece(x, y, w, h, area, i) for i, (x, y, w, h, area) in enumerate(stats.tolist()[1:n], 1)]
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
    return labels, drop_hairlines(kept, width)


def drop_hairlines(kept: list[Piece], width) -> list[Piece]:
    """Beside one digit, pieces drawn far finer than its strokes, small and
    shorter (a hair on the glass, a sliver of the next field's digit at a
    crop's edge), or small, under half its height and in columns of their
    own (a chip of ink), left out; ``width(p)`` is a piece's stroke width.
    Beside several digits they stay: digits may differ in their pens."""
    if len(kept) < 2:
        return kept
    largest = max(p.area for p in kept)
    small = [p for p in kept if p.area < HAIR_AREA * largest]
    if not small:
        return kept
    main = [p for p in kept if p.area >= HAIR_AREA * largest]
    pen = float(np.median([width(p) for p in main]))
    tall = max(p.h for p in main)
    x0, x1 = min(p.x for p in main), max(p.x + p.w for p in main)

    def beside(p: Piece) -> bool:  # in a group of its own, apart from the main strokes
        return _overlap(p.x, p.x + p.w, x0, x1) <= X_OVERLAP * min(p.w, x1 - x0)

    hairs = [p for p in small if (p.h < HAIR_TALL * tall and width(p) < HAIR_WIDTH * pen)
             or (p.h < CHIP_TALL * tall and beside(p))]
    rest = [p for p in kept if p not in hairs]
    return rest if hairs and len(group_marks(rest)) == 1 else kept


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
    if len(g) == 1:
        p = g[0]
        return p.x, p.y, p.w, p.h
    x0 = min(p.x for p in g)
    y0 = min(p.y for p in g)
    x1 = max(p.x + p.w for p in g)
    y1 = max(p.y + p.h for p in g)
    return x0, y0, x1 - x0, y1 - y0


def find_digits(rgb: np.ndarray, max_digits: int = 12) -> tuple[list[Mark], str | None]:
    """All digits on a scan, left to right, and the polarity; [] for a blank page.

    ``rgb`` is a Scan's ``image`` (float32 H x W x 3, 0-1; a 2-D array is taken
    as a grey plane). A grey scan's image from :func:`digitd.imageio.decode` is
    a view of one grey plane, and is segmented on that plane alone; the results
    are the same as on any array holding the same values.
    """
    return digits_of_ink(ink_map(rgb), max_digits)


def find_digits_scan(scan: Scan, max_digits: int = 12) -> tuple[list[Mark], str | None]:
    """``find_digits(scan.image, max_digits)``, on the scan's grey plane when it has
    one. What callers holding a Scan use (the pipeline's workers, Recognizer.read)."""
    return digits_of_ink(ink_map(scan.image, scan.gray), max_digits)


def digits_of_ink(ink: Ink, max_digits: int = 12) -> tuple[list[Mark], str | None]:
    """The digits of one cropped digit or number, left to right, from its ink."""
    mask, ratio = ink_mask_and_ratio(ink)
    return digits_of_mask(mask, ratio, ink, max_digits)


def digits_of_mask(mask: np.ndarray | None, ratio: np.ndarray | None, ink: Ink,
                   max_digits: int = 12, comps: Components | None = None) -> tuple[list[Mark], str | None]:
    """:func:`digits_of_ink` from the ink's mask and ratio (:func:`ink_mask_and_ratio`)
    and, when the caller has them, the mask's :func:`components`."""
    if mask is None or ratio is None:
        return [], ink.polarity
    labels, found = pieces(mask, comps)
    groups = group_marks(found)
    if len(groups) > max_digits:  # keep the most substantial marks, in reading order
        keep = sorted(groups, key=lambda g: -sum(p.area for p in g))[:max_digits]
        groups = [g for g in groups if any(g is k for k in keep)]
    marks = []
    H, W = mask.shape
    s = ink.scale
    for g in groups:
        x, y, w, h = _extent(g)
        pad = 2
        y0, y1 = max(0, y - pad), min(H, y + h + pad)
        x0, x1 = max(0, x - pad), min(W, x + w + pad)
        window = labels[y0:y1, x0:x1]
        own = window == g[0].label
        for p in g[1:]:
            own |= window == p.label
        box = (int(x / s), int(y / s), max(1, int(round(w / s))), max(1, int(round(h / s))))
        marks.append(mark_of(own, ratio[y0:y1, x0:x1], box))
    return marks, ink.polarity


_GROW = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))


def fine_mark(source: np.ndarray, to_source: np.ndarray, own: np.ndarray, size: tuple[int, int],
              level: float, dark: bool, box: tuple[int, int, int, int]) -> Mark:
    """One digit's Mark cut from the scan's own pixels, finer than the working ones.

    ``source``: the scan's grey plane or RGB image (0-1); ``to_source``: the
    2 x 3 affine from the cut's pixels (``size``: width, height) to the
    scan's; ``own``: the digit's pixels in the working window the cut covers.
    The ink is the cut's paper (its median away from the digit) less its
    pixels, in units of the page's ink ``level``, kept near the digit's own
    pixels (grown as :func:`mark_of` grows them, but no more than
    ``FINE_ROWS`` above and below them) and over ``FINE_FLOOR``."""
    patch = cv2.warpAffine(source, to_source, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_REPLICATE)
    own = np.ascontiguousarray(own).view(np.uint8)
    grown = cv2.dilate(own, _GROW)
    _, y, _, h = cv2.boundingRect(own)
    grown[: max(0, y - FINE_ROWS)] = 0  # the growth kept to the digit's rows: a rule under its feet stays out
    grown[y + h + FINE_ROWS :] = 0
    near = cv2.resize(grown, size, interpolation=cv2.INTER_NEAREST).astype(bool)
    away = patch[~near]
    paper = np.median(away, axis=0) if away.size else (patch.max(axis=(0, 1)) if dark else patch.min(axis=(0, 1)))
    diff = paper - patch if dark else patch - paper
    if diff.ndim == 3:  # the channel that shows the ink most, as ink_map takes it
        diff = diff.max(axis=2)
    soft = np.clip(diff / max(level, 1e-3), 0.0, 1.0)
    soft[(soft < FINE_FLOOR) | ~near] = 0.0
    return Mark(box=box, pixels=to_mnist_form(soft))


def mark_of(own: np.ndarray, ratio: np.ndarray, box: tuple[int, int, int, int]) -> Mark:
    """One digit's Mark: ``own`` (bool, C-contiguous) its pixels in a window of the
    working image, ``ratio`` the same window of the soft ink, ``box`` in page pixels.
    The pixels are grown a little (anti-aliased edges), weighted by the soft ink
    (0-1 of its typical contrast), and brought to MNIST form."""
    own = cv2.dilate(np.ascontiguousarray(own).view(np.uint8), _GROW)
    soft = np.minimum(ratio, 1.0)  # ratio >= 0
    digit = np.multiply(soft, own, out=soft)
    return Mark(box=box, pixels=to_mnist_form(digit))
