"""The page reader: every number on a page, in reading order, as :class:`~digitd.records.Found`.

:func:`find_numbers` is the one entry point the pipeline calls for each page or
image. A cropped digit or number (:func:`is_page` says no) is read exactly as
:func:`digitd.segment.digits_of_mask` reads it, less the marks that are its
separators (:func:`crop_number`). A page is read by
:func:`read_page`: deskewed, turned if its lines run down, cleared of rules and
box edges, its marks gathered into lines and numbers (:mod:`digitd.layout`),
printed text left out, separators kept. Pure: arrays in, records out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from .layout import (BASELINE, DOT, MIN_DIGIT, SPECK_AREA, SPECK_H, WALL_FULL, Glyph, Number, gather_lines,
                     glyph_pieces, join_pieces, middle, pixels_of, read_layout, read_number, split_at_gaps,
                     split_numbers)
from .records import Box, Found, Mark, PageFound, Scan
from .segment import (SPECK, Components, Ink, components, digits_of_mask, fine_mark, group_marks, ink_map,
                      ink_mask_and_ratio, mark_of, median, pieces)

UNREAD = "a mark between digits was not read"
CUT_OFF = "a digit was cut off a short rule it stood on"
SPECK_POINT = 2  # working pixels of ink between two digits at their feet: a point too small to be a glyph
POINT_TALL = 0.35  # a point taken out with the rule under it stands at most this high (of the digits' height)
PAGE_SIDE = 600  # original pixels: a scan at least this large on both sides may be a page
LINE_GAP = 0.4  # rows this much of the tallest mark apart part two lines of marks (a broken digit's strokes lie closer)
SMALL_MARKS = 1 / 8  # marks shorter than this fraction of the image: a page, not a cropped number
PAGE_GLYPHS = 24  # a page-sized scan with this many glyph-sized marks at least is a page (rules, bars or a desk beside them)
GLYPH_AREA = 8  # working pixels: a glyph-sized mark has this many at least (noise has fewer)
MAX_SKEW = 5.0  # degrees of skew looked for either way
SKEW_FEET = 40  # glyphs enough to take the skew from their feet
SKEW_GAIN = 1.12  # turned rows must be this much sharper than the rows as scanned
EDGE_SOLID = 0.5  # a piece on the scan's edge this full of ink (of its box) is a shadow or the desk
FLAT_RUN = 1 / 80  # runs across a row this share of the page's width long are a ruled line's pieces
RULED_LINES = 20  # ... and this many page widths of them are a ruled sheet's lines: the skew is theirs
MIN_SKEW = 0.2  # degrees below which the page is left as it is
RULE = 1 / 12  # straight runs at least this fraction of the page's width are rules
RULE_MARKS = 2.5  # ... and at least this many times the marks' median height (large digits on a small image)
TICK = 1 / 50  # shorter straight runs (comb ticks, box edges) are rules if they touch one or outline a box
FAINT = 0.5  # ink this share of the mask's own cut, or more, may be a faint rule's
DASH = 7  # working pixels: a faint rule's pieces are at least this long
DASH_GAP = 11  # ... and at most this far apart
COMB_TICKS = 3  # runs down standing evenly spaced on a rule, this many at least, are a comb's ticks
THICK_SHARE = 0.3  # a straight band with more of its pixels thick than this is no rule
THICK = 4  # strokes this thick (working pixels) are a pen's or a logo's, not a printed rule
FRAME = 0.8  # straight runs with this share of their ink along their bounding box's edges outline a box
TYPE_SMALL = 4  # working pixels: glyphs this tall make lines when up is told from down
ORIENT = 0.1  # feet and heads must differ by this share of the glyphs counted to tell up from down
TALL_WORDS = 3  # words run together standing up this many times as many as lying down: type turned a quarter
UPRIGHT = 0.65  # below this share of across-neighbours the lines may run down the page
TYPE_VOTE = 4  # feet on the baseline outnumbering heads on one line by this many at least tell up from down
MARGIN = 3  # working pixels: runs this far apart in height stand on other lines
MARGIN_TOL = 1  # ... and share a margin when they start (or end) within this
MARGIN_VOTE = 3  # runs flush left outnumbering those flush right by this many tell up from down
RULE_REACH = 3  # working pixels: a rule nearer the feet (or heads) of digits by this is the one they stand on (hang from)
RULE_TOUCH = 0.25  # ... within this share of their height (a box's edges round them lie farther)
RULE_ALONG = 0.5  # ... along this share of them at least (a faint rule is broken into dashes)
RULED_SHEET = 0.5  # thin straight lines this share of the page long at least are a ruled sheet's
DASHES = 100  # a page strewn with this many dashes of faint rules (down or across) at least is a ruled sheet
THIN_DASH = 3  # working pixels: a faint rule's dash is this thin at most
THIN_LINE = 0.05  # ... no wider than this share of their length
RULE_VOTE = 1  # numbers standing on rules outnumbering those hanging from them by this many tell up from down
FAINT_STROKE = 0.4  # working pixels of full ink across a stroke (its width times its contrast): less, a hair or dust
PALE_INK = 0.6  # digits whose ink peaks under this share of the page's ink contrast are a stamp's or a shadow's, not a pen's
HAIR = 0.35  # digits whose strokes carry under this share of the page's numbers' ink (their median) are a hair's
HAIR_THIN = 0.1  # ... when they are one straight stroke this thin (of its height) at most
INK_PEAK = 90  # percentile of a glyph's soft ink taken as its peak
FINE = 1.5  # a digit is cut from the scan's own pixels when they are this many times finer than the working ones
FINE_H = 112  # ... at this many of them tall at most
SHORT_RULE_WIDE = 1.5  # a piece this many times as wide as tall may be a digit standing on a rule too short to be found
SHORT_RULE_SPAN = 0.6  # ... when what stands on the rule spans at most this share of it (a written word spans its line)
SHORT_RULE_BEYOND = 0.25  # ... and the rule runs on beyond it this share of the piece's height at both ends at least


@dataclass(frozen=True)
class Frame:
    """The page as it is read: ink and mask turned upright, and the way back to the scan's pixels."""

    mask: np.ndarray  # uint8 0/1, rules removed
    labels: np.ndarray  # int32, its pieces
    ruled: np.ndarray  # uint8 0/1, the rules and box edges taken out
    ratio: np.ndarray  # float32 soft ink (contrast / level)
    back: np.ndarray  # 2 x 3 affine: frame pixels -> working pixels of the scan
    scale: float  # working pixels per original pixel
    level: float  # the ink's typical contrast (0-1): ``ratio`` times this is the ink's contrast
    source: np.ndarray | None = None  # the scan's own pixels (grey plane or RGB), digits are cut from
    dark: bool = True  # dark ink on light paper


def find_numbers(scan: Scan, max_digits: int = 12) -> PageFound:
    """The numbers on one page or image, in reading order; no numbers for a blank page."""
    ink = ink_map(scan.image, scan.gray)
    mask, ratio = ink_mask_and_ratio(ink)
    if mask is None or ratio is None:
        return PageFound(numbers=(), polarity=ink.polarity)
    comps = components(mask)
    first = survey(mask, ink.scale, comps)
    if not first.page:
        marks, polarity = digits_of_mask(mask, ratio, ink, max_digits, comps)
        if not marks:
            return PageFound(numbers=(), polarity=polarity)
        return PageFound(numbers=(crop_number(mask, marks, comps),), polarity=polarity)
    return read_page(ink, mask, ratio, max_digits, first.mark_h, comps,
                     source=scan.gray if scan.gray is not None else scan.image)


def crop_number(mask: np.ndarray, marks: list[Mark], comps: Components) -> Found:
    """A cropped number's Found: its marks as read, with the separators the page
    reader finds on its one line. Marks it reads as separators (a date's
    slashes, a comma) are left out of the digits when the rest are its digits
    one for one; where its digits and the marks differ otherwise, the doubt
    that a mark was not read."""
    whole = Found(marks=tuple(marks), box=enclosing([m.box for m in marks]))
    number = crop_reading(mask, comps) if len(marks) >= 2 else None
    if number is None:
        return whole
    kept = digit_marks(mask, comps, number, len(marks))
    if kept is None:
        return replace(whole, doubts=(UNREAD,))
    if len(kept) < len(marks) and (number.doubts or not number.digits):
        return replace(whole, doubts=(UNREAD,))
    digits = tuple(marks[i] for i in kept)
    return Found(marks=digits, box=enclosing([m.box for m in digits]),
                 separators=number.separators, doubts=number.doubts)


def crop_reading(mask: np.ndarray, comps: Components) -> Number | None:
    """The page reader's reading of a crop's one line, when it finds separators on it."""
    _, labels, stats = comps  # a crop's digits may touch its edge: every piece counts
    found = [Glyph(*(int(v) for v in stats[i]), (i,)) for i in range(1, comps[0]) if stats[i, 4] >= SPECK_AREA]
    lines = gather_lines(found, MIN_DIGIT * max(mask.shape))
    if len(lines) != 1:
        return None
    runs = split_at_gaps(join_pieces(lines[0]))
    if len(runs) != 1:
        return None
    number = read_number(runs[0], labels, 0.0, [], written=True)
    if number is None or not number.separators:  # a loose fragment of a digit is no separator
        return None
    return number


def digit_marks(mask: np.ndarray, comps: Components, number: Number, count: int) -> list[int] | None:
    """Which of a crop's ``count`` marks (as :func:`digitd.segment.digits_of_mask`
    groups its pieces) are the ``number``'s digits, in order: each digit's pieces
    in one mark of its own, every other mark sharing no piece with a digit and
    standing for a separator. None when they do not match so."""
    _, groups = pieces(mask, comps)
    groups = group_marks(groups)
    if len(groups) != count:
        return None
    owner = {label: k for k, glyph in enumerate(number.digits) for label in glyph.labels}
    kept: list[int] = []
    for i, group in enumerate(groups):
        held = {owner[p.label] for p in group if p.label in owner}
        if len(held) > 1 or held and held != {len(kept)}:
            return None
        if held:
            kept.append(i)
    if len(kept) != len(number.digits) or count - len(kept) > len(number.separators):
        return None
    return kept


def enclosing(boxes: list[Box]) -> Box:
    x0 = min(b[0] for b in boxes)
    y0 = min(b[1] for b in boxes)
    x1 = max(b[0] + b[2] for b in boxes)
    y1 = max(b[1] + b[3] for b in boxes)
    return x0, y0, x1 - x0, y1 - y0


# ------------------------------------------------------------ page or cropped number
@dataclass(frozen=True)
class Survey:
    """A first look at the ink: a page or a cropped number, and the marks' size."""

    page: bool
    mark_h: float  # median height of the marks, working pixels (0 when there are none)


def is_page(mask: np.ndarray, scale: float) -> bool:
    """Whether the ink is a page's (:func:`survey`)."""
    return survey(mask, scale).page


def survey(mask: np.ndarray, scale: float, comps: Components | None = None) -> Survey:
    """Whether the ink is a page's (:func:`first_look`), or else, for a page-sized
    scan, whether it holds many glyph-sized marks (:func:`many_glyphs`): a page
    whose rules, edge bar or desk outweigh its writing. A page-sized page's
    marks are as tall as its glyph-sized ones when those are lower: a logo
    or a stamp, far larger than the rest, leaves :func:`first_look` only the
    large marks to count (the page's rules are told from its marks by it)."""
    comps = components(mask) if comps is None else comps
    first = first_look(mask, scale, comps)
    if min(mask.shape) / scale < PAGE_SIDE:
        return first
    glyphs = many_glyphs(mask, comps)
    if first.page:
        return glyphs if glyphs is not None and glyphs.mark_h < first.mark_h else first
    return glyphs or first


def many_glyphs(mask: np.ndarray, comps: Components) -> Survey | None:
    """A page (the marks' median height) when ``PAGE_GLYPHS`` marks at least are
    glyph-sized (``SPECK_H`` tall, ``GLYPH_AREA`` pixels, under ``SMALL_MARKS``
    of the scan either way); None when fewer: a cropped number has a few."""
    H, W = mask.shape
    _, _, stats = comps
    x, y, w, h, area = stats[1:].T
    glyphs = (h >= SPECK_H) & (area >= GLYPH_AREA) & (h < SMALL_MARKS * H) & (w < SMALL_MARKS * W)
    if int(glyphs.sum()) < PAGE_GLYPHS:
        return None
    return Survey(True, median(h[glyphs].astype(np.float32)))


def first_look(mask: np.ndarray, scale: float, comps: Components | None = None) -> Survey:
    """Whether the ink is a page's (read by :func:`read_page`) rather than one cropped
    digit or number's (read as :func:`digitd.segment.find_digits_scan` reads it).

    A page: marks small against the image (their median height under
    ``SMALL_MARKS`` of it), or digit-sized marks on two lines or more, or a
    page-sized scan whose only ink lies along its edges or across it (a
    scanner's shadow, ruled lines).
    """
    big_scan = min(mask.shape) / scale >= PAGE_SIDE
    H, W = mask.shape
    n, _, stats = components(mask) if comps is None else comps
    if n < 2:
        return Survey(False, 0.0)
    x, y, w, h, area = stats[1:].T
    kept = area >= max(2, SPECK * int(area.max()))
    # a shadow along the scanner's edge, ruled lines across the page: not marks
    edge = (x == 0) | (y == 0) | (x + w == W) | (y + h == H)
    thin = (np.maximum(w / W, h / H) > 0.5) & (np.minimum(w, h) < 0.1 * np.maximum(w, h))
    if big_scan:
        hollow = (w > 0.8 * W) & (h > 0.8 * H) & (area < 0.1 * w * h)
        apart = edge & (thin | hollow)
        # A page photographed on a desk: the desk round it is one piece on the
        # frame's edge, and the page's own marks, small beside it, are the page.
        desk = edge & ((w > 0.8 * W) | (h > 0.8 * H)) & (area < 0.5 * w * h)
        if desk.any():
            rest = ~desk & ~apart
            if rest.any():
                marks = rest & (area >= max(2, SPECK * int(area[rest].max())))
                mark_h = median(h[marks].astype(np.float32))
                if int(marks.sum()) >= 3 and mark_h < SMALL_MARKS * H:
                    return Survey(True, mark_h)
    else:
        apart = edge & thin
    inner = kept & ~apart
    if not inner.any():
        return Survey(big_scan, 0.0)
    heights = h[inner]
    mark_h = median(heights.astype(np.float32))
    if min(H, W) >= 128 and mark_h < SMALL_MARKS * H:
        return Survey(True, mark_h)
    if heights.size < 2:
        return Survey(False, mark_h)
    # Two lines: the tall pieces fall into bands of rows with a clear gap between.
    tallest = int(heights.max())
    tall = inner & (h >= 0.5 * tallest)
    spans = sorted(zip(y[tall].tolist(), (y[tall] + h[tall]).tolist()))
    bottom = spans[0][1]
    for top, low in spans[1:]:
        if top - bottom >= LINE_GAP * tallest:
            return Survey(True, mark_h)
        bottom = max(bottom, low)
    return Survey(False, mark_h)


# ------------------------------------------------------------ clean-up
def estimate_skew(mask: np.ndarray, comps: Components | None = None) -> float:
    """The angle (degrees, as cv2.getRotationMatrix2D takes it) that makes the
    page's rows sharpest: its ruled lines' (:func:`flat_runs`, ``RULED_LINES``
    page widths of them) when they tell it, else the feet of its glyphs
    (bottom centres of pieces no wider than a word) when there are enough of
    them, else its ink (rules); less the solid bands along the scan's edge (a
    shadow, the desk), whose rows are the scan's and not the page's.
    ``comps``: the mask's :func:`components`, when the caller has them."""
    n, labels, stats = components(mask) if comps is None else comps
    x, y, w, h = (stats[1:, i].astype(np.float32) for i in range(4))
    H, W = mask.shape
    edge = (x == 0) | (y == 0) | (x + w == W) | (y + h == H)
    solid = edge & (stats[1:, 4] > EDGE_SOLID * w * h) & (np.maximum(w, h) > 0.5 * min(H, W))
    if solid.any():
        keep = np.ones(n, np.uint8)
        keep[1:][solid] = 0
        keep[0] = 0
        mask = keep[labels]
    flat = flat_runs(mask)
    if cv2.countNonZero(flat) >= RULED_LINES * W:
        angle = sharpest_turn(*ink_points(flat), H, W)
        if angle is not None:  # the pieces of lines lie in rows as scanned: turned, they must line up better
            return angle
    glyphs = (h >= 3) & (w <= 0.08 * W)
    if int(glyphs.sum()) >= SKEW_FEET:
        xs, ys = x[glyphs] + w[glyphs] / 2, y[glyphs] + h[glyphs]
    else:
        points = ink_points(mask)
        if points is None:
            return 0.0
        xs, ys = points
    angle = sharpest_turn(xs, ys, H, W)
    return 0.0 if angle is None else angle


def ink_points(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(xs, ys) of the mask's ink, every other row and column (they tell as
    well), 20,000 points at most; None for fewer than 50."""
    points = cv2.findNonZero(np.ascontiguousarray(mask[::2, ::2]))
    if points is None or len(points) < 50:
        return None
    points = points.reshape(-1, 2)[:: max(1, len(points) // 20000)]
    return points[:, 0].astype(np.float32) * 2, points[:, 1].astype(np.float32) * 2


def sharpest_turn(xs: np.ndarray, ys: np.ndarray, H: int, W: int) -> float | None:
    """The turn (degrees, ``MAX_SKEW`` either way, to a tenth) that makes the
    rows of these points of an H x W page sharpest; None when it is not
    ``SKEW_GAIN`` sharper than the rows as scanned (no lines to tell by)."""
    xs = xs - W / 2
    ys = ys - H / 2
    # A fixed jitter of up to a row: unturned, every point would fall on a row
    # exactly, and the page as scanned would look sharper than any turn of it.
    offset = H + W + np.random.default_rng(0).random(xs.size, np.float32)

    def sharpness(a: float) -> float:
        r = np.deg2rad(a)
        rows = (ys * np.float32(np.cos(r)) - xs * np.float32(np.sin(r)) + offset).astype(np.int32)
        counts = np.bincount(rows).astype(np.float64)
        return float(counts @ counts)

    coarse = np.arange(-MAX_SKEW, MAX_SKEW + 1e-6, 0.5)
    best = float(coarse[int(np.argmax([sharpness(a) for a in coarse]))])
    fine = np.arange(best - 0.4, best + 0.4 + 1e-6, 0.1)
    scores = [sharpness(a) for a in fine]
    k = int(np.argmax(scores))
    if scores[k] < SKEW_GAIN * sharpness(0.0):
        return None
    return float(fine[k])


def flat_runs(mask: np.ndarray) -> np.ndarray:
    """The thin ink in runs across at least ``FLAT_RUN`` of the page's width
    long within one row: ruled lines, however broken or little turned (a line
    turned ``MAX_SKEW`` steps a row in less), and none of a hand's strokes,
    nor the inside of a solid stretch (a scanner's shadow along the edge, the
    desk round a page photographed), whose rows are the scan's."""
    length = max(9, int(FLAT_RUN * mask.shape[1])) | 1
    thin = cv2.bitwise_and(mask, cv2.morphologyEx(mask, cv2.MORPH_OPEN, _line(THICK, THICK)) ^ 1)
    return cv2.morphologyEx(thin, cv2.MORPH_OPEN, _line(length, 1))


def deskew(mask: np.ndarray, ratio: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mask and soft ink turned by ``angle`` on a canvas large enough to keep every
    corner, the scan's edge there (the canvas outside the scan and its last
    pixel inside: what a shadow along the scanner's edge touches), and the
    2 x 3 affine from the turned pixels back to the given ones."""
    H, W = mask.shape
    r = np.deg2rad(angle)
    w = int(np.ceil(W * abs(np.cos(r)) + H * abs(np.sin(r))))
    h = int(np.ceil(H * abs(np.cos(r)) + W * abs(np.sin(r))))
    m = cv2.getRotationMatrix2D((W / 2, H / 2), angle, 1.0)
    m[0, 2] += (w - W) / 2
    m[1, 2] += (h - H) / 2
    # The soft ink is turned and cut again where the mask was cut: thin lines stay
    # whole and straight (a turned mask frays them into steps).
    cut = cv2.minMaxLoc(ratio, mask)[0]  # the least soft ink under the mask
    turned = cv2.warpAffine(ratio, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    inside = cv2.warpAffine(np.ones((H, W), np.uint8), m, (w, h), flags=cv2.INTER_NEAREST,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    edge = cv2.erode(inside, _line(5, 5)) ^ 1
    return (turned >= cut).view(np.uint8), turned, edge, cv2.invertAffineTransform(m)


_LINES: dict[tuple[int, int], np.ndarray] = {}


def _line(w: int, h: int) -> np.ndarray:
    k = _LINES.get((w, h))
    if k is None:
        k = _LINES[(w, h)] = np.ones((h, w), np.uint8)
    return k


def _down(length: int, w: int) -> np.ndarray:
    """``_line`` turned a quarter: ``length`` down, ``w`` across."""
    return _line(w, length)


def remove_rules(mask: np.ndarray, mark_h: float = 0.0,
                 ratio: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(the mask without its rules and drawn boxes, what was taken out).

    Thin straight runs across or down, at least ``TICK`` of the page's width,
    are looked at. Taken out with a pixel's margin: runs of at least ``RULE``
    of it and ``RULE_MARKS`` marks' heights (underlines, ruled paper, a comb's
    or a table's edges), found through the handwriting that touches them and
    across the small gaps of a faint rule, where they stay thin; runs down
    whose foot stands on one (a comb's ticks, a box's sides; a 1 hanging from
    a box's top edge stays); runs that outline a box. Handwriting crossing
    them keeps its pixels on them (:func:`keep_strokes`)."""
    side = max(mask.shape) * 0.707  # the page's width, for an A4 page upright
    # odd lengths: an even kernel's opening lands a pixel off the ink
    long_ = max(12, int(RULE * side), int(RULE_MARKS * mark_h)) | 1
    short = max(6, int(TICK * side)) | 1
    pen = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _line(THICK, THICK)) ^ 1  # not within a thick stroke
    across = cv2.bitwise_and(cv2.morphologyEx(mask, cv2.MORPH_OPEN, _line(short, 1)), pen)
    down = cv2.bitwise_and(cv2.morphologyEx(mask, cv2.MORPH_OPEN, _line(1, short)), pen)
    straight = cv2.bitwise_or(across, down)
    if not straight.any():
        return mask, straight
    faint = None
    if ratio is not None:  # lighter ink too: a faint ruled line the threshold cut into dashes is whole there
        faint = (ratio >= FAINT * cv2.minMaxLoc(ratio, mask)[0]).view(np.uint8)
    rules_across, rules_down = find_rules(mask, long_, faint)
    rules = rules_across | rules_down
    core = rules.copy()
    if rules_across.any():
        core |= find_ticks(down, rules_across)
    if rules_down.any():  # the rest of a rule down turned a little: runs down going on from its end
        beyond = cv2.bitwise_and(down, cv2.dilate(rules_down, _line(3, 3)) ^ 1)
        n, labels = cv2.connectedComponents(beyond, connectivity=8)
        touching = np.zeros(n, np.uint8)
        touching[labels[cv2.dilate(rules_down, _line(5, 5)) > 0]] = 1
        beside = np.bincount(labels[cv2.dilate(rules_down, _line(9, 1)) > 0], minlength=n)
        touching[beside > 0.5 * np.bincount(labels[beyond > 0], minlength=n)] = 0  # a stroke beside the rule, not its end
        touching[0] = 0
        core |= touching[labels]
    n, labels, stats = components(straight)
    boxlike = (stats[:, 2] >= 1.5 * short) & (stats[:, 3] >= 1.5 * short)
    boxlike[0] = False
    boxes = np.zeros(n, np.uint8)
    for i in np.flatnonzero(boxlike):
        x, y, w, h, area = (int(v) for v in stats[i])
        boxes[i] = outlines_box(labels[y : y + h, x : x + w] == i, area)
    if boxes.any():
        core |= boxes[labels]
    if not core.any():
        return mask, core
    # a rule's own fringe: what is left of a faint or turned rule along its rows; a pixel round all
    along = cv2.bitwise_or(cv2.dilate(rules_across, _line(15, 3)), cv2.dilate(rules_down, _line(3, 15)))
    drop = core | cv2.bitwise_and(along, mask)
    drop = keep_strokes(mask, core, cv2.bitwise_and(cv2.dilate(drop, _line(3, 3)), mask))
    return cv2.bitwise_xor(mask, drop), drop


def find_ticks(down: np.ndarray, rules: np.ndarray) -> np.ndarray:
    """The runs down (``down``) that are a comb's ticks or a box's sides: their
    foot on a rule, and their head on one too (a box, a comb with its top
    line), or in a row of ``COMB_TICKS`` or more on one rule, evenly spaced and
    of one height (a comb). A digit's stroke standing on an underline or a
    ruled line is neither, and stays."""
    near = cv2.dilate(rules, _line(3, 3))
    n, labels, stats = components(down)
    H = down.shape[0]
    ticks = np.zeros(n, np.uint8)
    standing = []
    for i in range(1, n):
        x, y, w, h, _ = (int(v) for v in stats[i])
        foot = near[min(H - 1, y + h - 1) : y + h + 1, x : x + w]
        if not foot.any():
            continue
        if near[max(0, y - 1) : y + 1, x : x + w].any():
            ticks[i] = 1
        else:
            standing.append((y + h, x + w / 2, h, i))
    standing.sort(key=lambda t: (t[0], t[1]))
    rows: list[list[tuple[int, float, int, int]]] = []
    for t in standing:
        if rows and abs(t[0] - rows[-1][-1][0]) <= 2:
            rows[-1].append(t)
        else:
            rows.append([t])
    for row in rows:
        row.sort(key=lambda t: t[1])
        chain = row[:1]
        for t in row[1:]:
            last, step = chain[-1], t[1] - chain[-1][1]
            even = len(chain) < 2 or abs(step - (last[1] - chain[-2][1])) <= max(2.0, 0.1 * step)
            if even and abs(t[2] - last[2]) <= 0.25 * max(t[2], last[2]):
                chain.append(t)
                continue
            if len(chain) >= COMB_TICKS:
                ticks[[c[3] for c in chain]] = 1
            chain = [last, t] if abs(t[2] - last[2]) <= 0.25 * max(t[2], last[2]) else [t]
        if len(chain) >= COMB_TICKS:
            ticks[[c[3] for c in chain]] = 1
    return ticks[labels]


def find_rules(mask: np.ndarray, length: int, faint: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The rules' own pixels, (across, down): runs across or down at least ``length`` long,
    through the handwriting touching them; runs across half the page at
    least, across the gaps of a faint rule (pieces of ``DASH`` pixels or more,
    in one row or column, ``DASH_GAP`` apart at most: ruled paper; or whole
    in ``faint``, lighter ink too, when given), taken out of the mask; less what
    is thicker than ``THICK`` across them (a filled bar; a stroke lying along
    the rule keeps the rule's pixels under it); a band thick over
    ``THICK_SHARE`` of it (a scanner's shadow, a logo) is no rule."""
    from .segment import line_morph  # long lines' openings by doubling, the same pixels

    out = []
    for axis in (1, 0):  # across (along rows), then down (along columns)
        along = _line if axis else _down
        found = line_morph(mask, cv2.MORPH_OPEN, length, bool(axis))
        span = max(length, mask.shape[axis] // 2)
        bridged = cv2.morphologyEx(cv2.morphologyEx(mask, cv2.MORPH_OPEN, along(DASH, 1)), cv2.MORPH_CLOSE, along(DASH_GAP, 1))
        if faint is not None:  # there a faint rule is whole but for a pixel or two: lines by no rule found yet
            lighter = cv2.morphologyEx(faint, cv2.MORPH_CLOSE, along(3, 1))
            held = (cv2.reduce(found, axis, cv2.REDUCE_SUM, dtype=cv2.CV_32S) >= span // 2).astype(np.uint8)
            held = cv2.dilate(held, _line(1, 5) if axis else _line(5, 1)).ravel() > 0
            if axis:
                lighter[held] = 0
            else:
                lighter[:, held] = 0
            bridged |= lighter
        lines = np.flatnonzero(cv2.reduce(bridged, axis, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel() >= span)
        if lines.size:  # the opening along a line keeps it to itself: only the lines that may hold one
            if axis:
                found[lines] |= line_morph(bridged[lines], cv2.MORPH_OPEN, span | 1, True) & mask[lines]
            else:
                part = np.ascontiguousarray(bridged[:, lines])
                found[:, lines] |= line_morph(part, cv2.MORPH_OPEN, span | 1, False) & mask[:, lines]
        if found.any():
            thick = cv2.morphologyEx(found, cv2.MORPH_OPEN, _line(1, THICK) if axis else _line(THICK, 1))
            if thick.any():
                n, labels = cv2.connectedComponents(found, connectivity=8)
                share = np.bincount(labels[thick > 0], minlength=n) / np.maximum(1, np.bincount(labels[found > 0], minlength=n))
                banned = (share > THICK_SHARE).astype(np.uint8)
                banned[0] = 0
                thick |= banned[labels]
            found &= thick ^ 1
        out.append(found)
    return out[0], out[1]


def keep_strokes(mask: np.ndarray, core: np.ndarray, drop: np.ndarray, reach: int = 4) -> np.ndarray:
    """What to take out: ``drop`` (rules, ticks, box edges and their fringe, a
    pixel or two round them) less the handwriting on the rules across. Fringe
    pixels under or over a stroke that meets a rule stay the stroke's (a 2's
    foot lying on the line keeps its bar); the rule's own pixels (``core``)
    stay where a stroke crosses it: ink above and below them, within
    ``reach`` pixels. Walls down are taken out whole (a stroke across a
    comb's wall is cut, its cells kept apart)."""
    fringe = cv2.bitwise_and(drop, core ^ 1)
    kept = cv2.bitwise_and(mask, drop ^ 1)
    for _ in range(2):
        kept = cv2.bitwise_or(kept, cv2.bitwise_and(cv2.dilate(kept, _line(1, 3)), fringe))
    drop = cv2.bitwise_and(drop, kept ^ 1)
    wide = cv2.dilate(kept, _line(3, 1))
    # ink within ``reach`` rows above (below) a pixel, itself left out: ``wide`` dilated
    # over ``reach`` rows ending (starting) at a pixel, moved a row down (up)
    above, below = np.zeros_like(drop), np.zeros_like(drop)
    if reach < drop.shape[0]:
        above[1:] = cv2.dilate(wide, _line(1, reach), anchor=(0, reach - 1))[:-1]
        below[:-1] = cv2.dilate(wide, _line(1, reach), anchor=(0, 0))[1:]
    else:
        for i in range(1, reach + 1):
            above[i:] |= wide[:-i]
            below[:-i] |= wide[i:]
    return cv2.bitwise_and(drop, (above & below) ^ 1)


def outlines_box(own: np.ndarray, area: int) -> bool:
    """Whether straight runs (``own``, their bounding box) outline a box: their ink
    keeps to the box's edges (``FRAME`` of it), its bottom and sides drawn along
    most of their length, its top too or left open (a comb of one cell). A
    digit's straight strokes (the bar and stem of a 4, a 5 or a 7) do not."""
    h, w = own.shape
    b = max(2, min(w, h) // 10)
    if int(np.count_nonzero(own[b:-b, b:-b])) > (1 - FRAME) * area:
        return False
    sides = (own[-b:].any(axis=0).mean(), own[:, :b].any(axis=1).mean(), own[:, -b:].any(axis=1).mean())
    return all(side >= 0.6 for side in sides)


def lines_run_down(found: list[Glyph]) -> bool:
    """Whether the page's marks neighbour each other down the page rather than
    across, and lie on their sides: wider than tall, as digits and letters are
    not, or words run together standing up (``TALL_WORDS`` times as many as
    lying down): lines of text turned a quarter. A column of digits one under
    the other stands upright. False when too few to tell."""
    marks = [g for g in found if max(g.w, g.h) >= 4]
    single = [g.w / g.h for g in marks if max(g.w, g.h) <= 2 * min(g.w, g.h)]  # not words run together
    if len(marks) < 8 or not single:
        return False
    standing = sum(g.h > 2 * g.w for g in marks)
    if middle(single) <= 1.0 and not (standing >= 8 and standing >= TALL_WORDS * sum(g.w > 2 * g.h for g in marks)):
        return False
    pts = np.array([(g.x + g.w / 2, g.y + g.h / 2) for g in marks], np.float32)
    pts = pts[:: max(1, len(pts) // 200)]
    d = pts[:, None, :] - pts[None, :, :]
    dist = np.hypot(d[..., 0], d[..., 1])
    np.fill_diagonal(dist, np.inf)
    near = d[np.arange(len(pts)), np.argmin(dist, axis=1)]
    across = float(np.mean(np.abs(near[:, 0]) >= np.abs(near[:, 1])))
    return across < 1 - UPRIGHT


def turn_clockwise(planes: list[np.ndarray], back: np.ndarray, quarters: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Planes of one size turned clockwise by ``quarters`` quarter turns (1 or 2),
    and ``back`` extended to map the turned pixels back to the scan's."""
    h, w = planes[0].shape[:2]
    if quarters == 1:  # (x', y') = (h - y, x)  ->  (x, y) = (y', h - x')
        code, undo = cv2.ROTATE_90_CLOCKWISE, np.array([[0, 1, 0], [-1, 0, h], [0, 0, 1]], np.float64)
    else:  # (x', y') = (w - x, h - y)
        code, undo = cv2.ROTATE_180, np.array([[-1, 0, w], [0, -1, h], [0, 0, 1]], np.float64)
    return [cv2.rotate(p, code) for p in planes], (np.vstack([back, [0, 0, 1]]) @ undo)[:2]


def upside_down(found: list[Glyph], ruled: np.ndarray) -> bool | None:
    """Whether the page stands on its head (turned half round): the votes of
    its type (:func:`type_vote`), its margin (:func:`margin_vote`) and its
    rules (:func:`rule_vote`). None when they do not tell (a few numbers
    alone)."""
    runs = [run for line in gather_lines(found, TYPE_SMALL) for run in split_numbers(join_pieces(line), ruled)]
    votes = type_vote(runs) + margin_vote(runs) + rule_vote(found, ruled)
    return None if votes == 0 else votes < 0


def type_vote(runs: list[list[Glyph]]) -> int:
    """+1 when type lines up its feet on the baseline more than its heads
    (small letters and capitals stop at two heights), -1 for the other way,
    0 when that does not tell (handwriting alone, capitals alone): over every
    run of glyphs (small type's too), feet on the run's median foot against
    heads on its median head."""
    feet = heads = counted = 0
    for run in runs:
        if len(run) < 4:
            continue
        bottoms = [g.y + g.h for g in run]
        tops = [g.y for g in run]
        foot, head = middle(bottoms), middle(tops)
        feet += sum(abs(b - foot) <= BASELINE for b in bottoms)
        heads += sum(abs(t - head) <= BASELINE for t in tops)
        counted += len(run)
    if abs(feet - heads) < max(TYPE_VOTE, ORIENT * counted):
        return 0
    return 1 if feet > heads else -1


def margin_vote(runs: list[list[Glyph]]) -> int:
    """+1 when more runs of glyphs start at a margin they share with runs on
    other lines (labels and text set flush left) than end at one, -1 for the
    other way round (flush right: the page turned half round)."""
    ends = []
    for run in runs:
        run = [g for g in run if g.h >= SPECK_H and g.w <= 3 * g.h]  # not a rule's leftover dashes
        if len(run) >= 3:
            ends.append((run[0].x, run[-1].x + run[-1].w, run[0].y))
    if len(ends) < 2:
        return 0
    lefts, rights, rows = (np.array(v) for v in zip(*ends))
    apart = np.abs(rows[:, None] - rows[None, :]) > MARGIN
    def flush(ends: np.ndarray) -> int:
        return int(((np.abs(ends[:, None] - ends[None, :]) <= MARGIN_TOL) & apart).any(axis=1).sum())
    left, right = flush(lefts), flush(rights)
    if abs(left - right) < MARGIN_VOTE:
        return 0
    return 1 if left > right else -1


def rule_vote(found: list[Glyph], ruled: np.ndarray) -> int:
    """+1 when more numbers stand on a rule (an underline, a ruled line nearer
    their feet than their heads) than hang from one, -1 for the other way round."""
    tall = MIN_DIGIT * max(ruled.shape)
    lines = cv2.dilate(ruled, _line(1, 3))  # a rule left a little turned spans rows
    on = under = 0
    for line in gather_lines(found, tall):
        for run in split_numbers(join_pieces(line), ruled):
            big = [g for g in run if g.h >= tall]
            if big:
                side = rule_side(lines, run[0].x, run[-1].x + run[-1].w, int(middle([g.y for g in big])),
                                 int(middle([g.y + g.h for g in big])))
                on += side > 0
                under += side < 0
    if abs(on - under) < RULE_VOTE:
        return 0
    return 1 if on > under else -1


def rule_side(lines: np.ndarray, x0: int, x1: int, head: int, foot: int) -> int:
    """+1 when a number stands on a rule (one under its feet within ``RULE_TOUCH``
    of its height, nearer them by ``RULE_REACH`` than any over its heads is to
    them), -1 when it hangs from one (the same, upside down), 0 when neither
    (no rule near, or a box round it: walls beside it)."""
    h = foot - head
    walls = np.concatenate([lines[head:foot, max(0, x0 - h) : x0], lines[head:foot, x1 : x1 + h]], axis=1)
    if walls.size and int(walls.sum(axis=0).max()) >= 0.6 * h:  # a box's or a comb's walls beside it
        return 0
    top, bottom = max(0, head - h), min(lines.shape[0], foot + h)
    rows = np.flatnonzero(lines[top:bottom, x0:x1].mean(axis=1) >= RULE_ALONG) + top
    below = rows[(rows >= foot - RULE_REACH) & (rows > head + h // 2)]
    above = rows[(rows <= head + RULE_REACH) & (rows < foot - h // 2)]
    gap_below = int(below.min()) - foot if below.size else h
    gap_above = head - int(above.max()) if above.size else h
    touch = max(RULE_REACH, RULE_TOUCH * h)
    if gap_below <= touch and gap_below + RULE_REACH <= gap_above:
        return 1
    if gap_above <= touch and gap_above + RULE_REACH <= gap_below:
        return -1
    return 0


def rules_run_down(mask: np.ndarray, comps: Components | None = None) -> bool:
    """Whether the page's long straight lines (``RULED_SHEET`` of its height or
    width, thin) run down it rather than across, ``COMB_TICKS`` of them at
    least: ruled paper turned a quarter."""
    stats = (components(mask) if comps is None else comps)[2][1:]
    H, W = mask.shape
    w, h = stats[:, 2], stats[:, 3]
    down = int(np.sum((h >= RULED_SHEET * H) & (w <= THIN_LINE * h)))
    return down >= COMB_TICKS and down > 2 * int(np.sum((w >= RULED_SHEET * W) & (h <= THIN_LINE * w)))


def dashes_run_down(found: list[Glyph]) -> bool:
    """Whether the page is strewn with the dashes of faint rules running down it
    (thin pieces four times as tall as wide, ``DASHES`` of them at least and ten
    times as many as lying down) that no rule down was found in: a ruled sheet
    turned a quarter, its lines left slanting."""
    down = sum(g.w <= THIN_DASH and g.h >= 4 * g.w for g in found)
    across = sum(g.h <= THIN_DASH and g.w >= 4 * g.h for g in found)
    return down >= DASHES and down >= 10 * across


def straighten(mask: np.ndarray, ratio: np.ndarray, back: np.ndarray, comps: Components | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """The page deskewed (:func:`estimate_skew`): (mask, soft ink, the scan's edge
    in it, ``back`` extended to map its pixels to the scan's, skew applied);
    ``comps``: the mask's :func:`components`, when the caller has them."""
    angle = estimate_skew(mask, comps)
    if abs(angle) < MIN_SKEW:
        return mask, ratio, np.zeros_like(mask), back, 0.0
    mask, ratio, edge, turned = deskew(mask, ratio, angle)
    return mask, ratio, edge, (np.vstack([back, [0, 0, 1]]) @ np.vstack([turned, [0, 0, 1]]))[:2], round(angle, 1)


def make_frame(ink: Ink, mask: np.ndarray, ratio: np.ndarray, mark_h: float = 0.0,
               comps: Components | None = None) -> tuple[Frame, list[Glyph], float, int, tuple[str, ...]]:
    """The page upright: (frame, its pieces, skew applied, rotation applied, doubts).

    Lines running down the page are turned a quarter clockwise (the scan
    turned, then deskewed: its skew is told by its lines once they run
    across); then the page's type, margin and rules tell a page upside
    down, which is turned half round. A quarter turn they do not confirm
    leaves the doubt "may be rotated" (a digit upside down is the model's to tell).
    ``comps``: the scan mask's :func:`components`, when the caller has them."""
    scan_mask, scan_ratio = mask, ratio
    mask, ratio, edge, back, skew = straighten(mask, ratio, np.array([[1, 0, 0], [0, 1, 0]], np.float64), comps)
    clean, ruled = remove_rules(mask, mark_h, ratio)
    labels, found = glyph_pieces(clean, mark_h, edge)
    rotation = 0
    if lines_run_down(found) or rules_run_down(mask, comps if mask is scan_mask else None) or dashes_run_down(found):  # turned, the rules are found again (a comb's ticks stand on its foot)
        (mask, ratio), back = turn_clockwise([scan_mask, scan_ratio], np.array([[1, 0, 0], [0, 1, 0]], np.float64), 1)
        mask, ratio, edge, back, skew = straighten(mask, ratio, back)
        clean, ruled = remove_rules(mask, mark_h, ratio)
        labels, found = glyph_pieces(clean, mark_h, edge)
        rotation = 90
    flipped = upside_down(found, ruled)
    if flipped:
        (mask, ratio, edge), back = turn_clockwise([mask, ratio, edge], back, 2)
        clean, ruled = remove_rules(mask, mark_h, ratio)
        labels, found = glyph_pieces(clean, mark_h, edge)
        rotation += 180
    doubts = ("may be rotated",) if rotation == 90 and flipped is None else ()
    frame = Frame(mask=clean, labels=labels, ruled=ruled, ratio=ratio, back=back, scale=ink.scale,
                  level=ink.level)
    return frame, found, skew, rotation, doubts


# ------------------------------------------------------------ numbers
def page_box(frame: Frame, x: int, y: int, w: int, h: int) -> Box:
    """A box of the frame as a box in the scan's pixels (the corners' bounding box)."""
    corners = np.array([[x, y, 1], [x + w, y, 1], [x, y + h, 1], [x + w, y + h, 1]], np.float64)
    pts = corners @ frame.back.T / frame.scale
    x0, y0 = np.floor(pts.min(axis=0)).astype(int)
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int)
    return int(max(0, x0)), int(max(0, y0)), int(max(1, x1 - x0)), int(max(1, y1 - y0))


def mark_glyph(frame: Frame, g: Glyph) -> Mark:
    """A digit's Mark, cut from the scan's own pixels when they are ``FINE`` times
    finer than the working ones (the working cut kept as its ``alt``), else from
    the working ones."""
    labels = frame.labels
    H, W = labels.shape
    pad = 2
    y0, y1 = max(0, g.y - pad), min(H, g.y + g.h + pad)
    x0, x1 = max(0, g.x - pad), min(W, g.x + g.w + pad)
    window = labels[y0:y1, x0:x1]
    own = pixels_of(g, window)
    box = page_box(frame, g.x, g.y, g.w, g.h)
    k = min(1.0 / frame.scale, FINE_H / (y1 - y0))
    if frame.source is None or k < FINE:
        return mark_of(own, frame.ratio[y0:y1, x0:x1], box)
    # the cut's pixel centres -> the frame's -> the working scan's (back) -> the scan's own
    to_frame = np.array([[1 / k, 0, x0 + 0.5 / k - 0.5], [0, 1 / k, y0 + 0.5 / k - 0.5], [0, 0, 1]])
    s = 1.0 / frame.scale
    to_scan = np.array([[s, 0, 0.5 * s - 0.5], [0, s, 0.5 * s - 0.5]])
    working = np.vstack([frame.back @ to_frame, [0, 0, 1]])
    size = (max(1, round((x1 - x0) * k)), max(1, round((y1 - y0) * k)))
    fine = fine_mark(frame.source, to_scan @ working, own, size, frame.level, frame.dark, box)
    return replace(fine, alt=mark_of(own, frame.ratio[y0:y1, x0:x1], box).pixels)


def found_of(frame: Frame, number: Number, max_digits: int, cut: frozenset[int] = frozenset()) -> Found:
    """A number's record: its digits' marks, its box in the scan's pixels, its
    separators and doubts; ``cut``: the labels of pieces cut off a short rule
    (:func:`cut_short_rules`), whose digits may read as others."""
    marks = tuple(mark_glyph(frame, g) for g in number.digits)
    doubts = number.doubts
    if any(label in cut for g in number.digits for label in g.labels):
        doubts += (CUT_OFF,)
    if UNREAD not in doubts and (mark_on_rule(frame.ruled, number) or speck_at_feet(frame.mask, frame.ruled, number)):
        doubts += (UNREAD,)
    if len(marks) > max_digits:
        doubts += (f"longer than max_digits ({max_digits}): all {len(marks)} digits kept",)
    x0 = min(g.x for g in number.digits)
    y0 = min(g.y for g in number.digits)
    x1 = max(g.x + g.w for g in number.digits)
    y1 = max(g.y + g.h for g in number.digits)
    return Found(marks=marks, box=page_box(frame, x0, y0, x1 - x0, y1 - y0),
                 separators=number.separators, doubts=doubts)


def mark_on_rule(ruled: np.ndarray, number: Number) -> bool:
    """Whether a mark between two digits (a point, a comma's dot) stood on the rule
    under them and was taken out with it: the rule taken out stands taller there,
    by ``DOT`` of the digits' height (two pixels at least) to ``POINT_TALL`` of it
    (taller: a comb's tick), across two columns or more."""
    digits = sorted(number.digits, key=lambda g: g.x)
    h = middle([g.h for g in digits])
    foot = int(middle([g.y + g.h for g in digits]))
    band = ruled[max(0, foot - int(h // 2)) : foot + RULE_REACH + 1]
    x0, x1 = digits[0].x, digits[-1].x + digits[-1].w
    cols = band[:, x0:x1]
    inked = cols.any(axis=0)
    if band.size == 0 or inked.mean() < RULE_ALONG:
        return False
    tops = np.argmax(cols, axis=0)  # each column's highest pixel taken out
    line = middle(tops[inked].tolist())
    read = {k for k, _ in number.separators}
    for k, (a, b) in enumerate(zip(digits, digits[1:]), 1):
        if k in read:  # its mark was read: what the rule took is its foot
            continue
        gap = tops[a.x + a.w + 1 - x0 : b.x - 1 - x0]
        held = inked[a.x + a.w + 1 - x0 : b.x - 1 - x0]
        rise = line - gap
        if int(np.sum(held & (rise >= max(2.0, DOT * h)) & (rise <= POINT_TALL * h))) >= 2:
            return True
    return False


def speck_at_feet(mask: np.ndarray, ruled: np.ndarray, number: Number) -> bool:
    """Whether ink too small to be a glyph (a point of two or three working
    pixels: dust to :func:`digitd.layout.glyph_pieces`) lies between two digits,
    where no separator was read, at their feet (the lowest ``POINT_TALL`` of
    their height), clear of the rules taken out (not what is left of them) and
    two pixels from either digit (not a fragment of one)."""
    digits = sorted(number.digits, key=lambda g: g.x)
    h = middle([g.h for g in digits])
    foot = int(middle([g.y + g.h for g in digits]))
    read = {k for k, _ in number.separators}
    for k, (a, b) in enumerate(zip(digits, digits[1:]), 1):
        if k in read or b.x - (a.x + a.w) < 5:
            continue
        rows, cols = slice(foot - int(POINT_TALL * h), foot + 1), slice(a.x + a.w + 2, b.x - 2)  # not a digit's fragment
        clear = cv2.dilate(ruled[rows.start - 1 : rows.stop + 1, cols.start - 1 : cols.stop + 1], _line(3, 3))[1:-1, 1:-1]
        if int(np.count_nonzero(mask[rows, cols] & (clear ^ 1))) >= SPECK_POINT:
            return True
    return False


def stroke_weight(frame: Frame, g: Glyph) -> float:
    """The ink a glyph's strokes carry across them (working pixels of full
    contrast): the contrast round its pixels over half its outline, the
    strokes' length. A pen's stroke carries its width in ink; a hair, thin
    and light, a fraction of a pixel."""
    labels = frame.labels
    H, W = labels.shape
    y0, y1 = max(0, g.y - 1), min(H, g.y + g.h + 1)
    x0, x1 = max(0, g.x - 1), min(W, g.x + g.w + 1)
    own = pixels_of(g, labels[y0:y1, x0:x1]).view(np.uint8)
    contours, _ = cv2.findContours(own, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    length = sum(cv2.arcLength(c, True) for c in contours) / 2
    if length <= 0:
        return 0.0
    near = cv2.dilate(own, _line(3, 3)) > 0  # the soft edges of its strokes too
    return float(frame.ratio[y0:y1, x0:x1][near].sum()) * frame.level / length


def ink_peak(frame: Frame, g: Glyph) -> float:
    """How dark a glyph's ink is against the page's (``INK_PEAK`` percentile of its soft ink)."""
    own = pixels_of(g, frame.labels[g.y : g.y + g.h, g.x : g.x + g.w])
    return float(np.percentile(frame.ratio[g.y : g.y + g.h, g.x : g.x + g.w][own], INK_PEAK))


def is_faint(frame: Frame, number: Number) -> bool:
    """Whether a number's digits carry too little ink for a pen's strokes
    (their median :func:`stroke_weight` under ``FAINT_STROKE``: a hair or
    dust on the glass, a crease, the faint dashes of a rule), or are paler
    than any pen against the page's ink (their median :func:`ink_peak`
    under ``PALE_INK``: a rubber stamp's letters)."""
    return (middle([stroke_weight(frame, g) for g in number.digits]) < FAINT_STROKE
            or middle([ink_peak(frame, g) for g in number.digits]) < PALE_INK)


def drop_hairs(frame: Frame, numbers: list[Number]) -> list[Number]:
    """The numbers but a lone straight stroke (one digit, ``HAIR_THIN`` of its
    height wide at most) carrying under ``HAIR`` of the ink the page's digits
    carry across their strokes (median :func:`stroke_weight`): a hair or a
    scratch beside the page's writing, as dark but far thinner."""
    weights = [[stroke_weight(frame, g) for g in n.digits] for n in numbers]
    page = middle([w for ws in weights for w in ws]) if numbers else 0.0
    def hair(n: Number, ws: list[float]) -> bool:
        return len(ws) == 1 and n.digits[0].w <= HAIR_THIN * n.digits[0].h and ws[0] < HAIR * page
    return [n for n, ws in zip(numbers, weights) if not hair(n, ws)]


def cut_short_rules(frame: Frame, found: list[Glyph]) -> tuple[Frame, list[Glyph], frozenset[int]]:
    """The frame and its pieces with the short rules run into digits cut off
    (:func:`short_rule`), and the labels of the pieces that stood on them: an
    underline too short for :func:`remove_rules` (under a twelfth of the page
    wide) that a digit stands on is one piece with it, far wider than a
    digit. Its rows go into the rules taken out; what stood on it becomes
    pieces of its own, which lost the strokes that lay along the rule."""
    cuts = [(g, band) for g in found if (band := short_rule(g, frame.labels)) is not None]
    if not cuts:
        return frame, found, frozenset()
    labels, mask, ruled = frame.labels.copy(), frame.mask.copy(), frame.ruled.copy()
    kept = [g for g in found if all(g is not c for c, _ in cuts)]
    top = int(labels.max())
    first = top + 1  # the labels the cut pieces get
    for g, (r0, r1) in cuts:
        window = labels[g.y : g.y + g.h, g.x : g.x + g.w]
        own = window == g.labels[0]
        line = own.copy()
        line[:r0] = False
        line[r1:] = False
        ruled[g.y : g.y + g.h, g.x : g.x + g.w][line] = 1
        mask[g.y : g.y + g.h, g.x : g.x + g.w][line] = 0
        window[line] = 0
        rest = (own & ~line).view(np.uint8)
        n, parts, stats, _ = cv2.connectedComponentsWithStats(rest, connectivity=8)
        for i in range(1, n):
            x, y, w, h, area = (int(v) for v in stats[i])
            if area < SPECK_AREA:
                window[parts == i] = 0
                continue
            top += 1
            window[parts == i] = top
            kept.append(Glyph(g.x + x, g.y + y, w, h, area, (top,)))
    return replace(frame, labels=labels, mask=mask, ruled=ruled), kept, frozenset(range(first, top + 1))


def short_rule(g: Glyph, labels: np.ndarray) -> tuple[int, int] | None:
    """The rows (first, past the last) of a straight line across a piece's
    whole width at its feet: a piece ``SHORT_RULE_WIDE`` times as wide as tall
    at least, rows inked ``WALL_FULL`` of the way across in one band of at
    most ``THICK`` rows in its lower half, ink standing over it on no more
    than ``SHORT_RULE_SPAN`` of its width (a digit, not a word), the line
    running on beyond that ink at both ends by ``SHORT_RULE_BEYOND`` of the
    piece's height (an underline, no digit's foot). None when it holds none."""
    if len(g.labels) != 1 or g.w < SHORT_RULE_WIDE * g.h:
        return None
    own = labels[g.y : g.y + g.h, g.x : g.x + g.w] == g.labels[0]
    rows = np.flatnonzero(own.mean(axis=1) >= WALL_FULL)
    if rows.size == 0 or rows.size > THICK or rows[-1] - rows[0] + 1 != rows.size or 2 * rows[0] < g.h:
        return None
    above = np.flatnonzero(own[: rows[0]].any(axis=0))
    if above.size == 0 or above[-1] + 1 - above[0] > SHORT_RULE_SPAN * g.w:
        return None
    if min(above[0], g.w - 1 - above[-1]) < SHORT_RULE_BEYOND * g.h:  # a 2's flat foot ends where its stroke comes down
        return None
    return int(rows[0]), int(rows[-1]) + 1


def read_page(ink: Ink, mask: np.ndarray, ratio: np.ndarray, max_digits: int = 12,
              mark_h: float = 0.0, comps: Components | None = None, source: np.ndarray | None = None) -> PageFound:
    """A page's handwritten numbers in reading order (top to bottom, left to right);
    ``mark_h``: the marks' median height (:func:`survey`); ``comps``: the mask's
    :func:`components`, when the caller has them; ``source``: the scan's own
    pixels, its digits are cut from (None: from the working ones)."""
    frame, pieces_found, skew, rotation, doubts = make_frame(ink, mask, ratio, mark_h, comps)
    frame = replace(frame, source=source, dark=ink.polarity == "dark_on_light")
    frame, pieces_found, cut = cut_short_rules(frame, pieces_found)
    numbers = drop_hairs(frame, [n for n in read_layout(frame.labels, pieces_found, frame.ruled) if not is_faint(frame, n)])
    found = tuple(found_of(frame, n, max_digits, cut) for n in numbers)
    return PageFound(numbers=found, polarity=ink.polarity, rotation=rotation, skew=skew, doubts=doubts)
