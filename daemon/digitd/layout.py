"""A clean page mask -> its handwritten numbers: glyphs, lines, numbers, printed text left out.

:func:`read_layout` takes the mask of an upright page with its rules removed
(:mod:`digitd.page`): pieces become glyphs (stacked pieces), glyphs lines
(sharing rows), a line's glyphs cells (between box walls) and numbers (split
at wide gaps and jumps in size; one-digit cells side by side are a comb).
Runs set as type (one exact baseline), written words (small letters beside
tall ones) and glyphs no digit looks like (logos, stamps) are left out; small
marks between digits become separators ('.', ',', '-', '/') or doubts. Pure
arithmetic on arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .segment import components

SPECK_AREA = 4  # pieces of fewer pixels (working scale) are dust
SLIVER = 2  # working pixels: glyphs narrower than this (a broken ring's arc) do not set the height of a run either
SPECK_H = 4  # glyphs lower than this (working pixels) do not set the height of a run
MIN_DIGIT = 1 / 130  # a digit is at least this fraction of the page's longer side tall
SMALL_TYPE = 1.2  # a number's digits stand this many times that tall at least (their median): lower, small type's
MAX_DIGIT = 1 / 6  # and at most this (taller: a logo, a stamp, a drawing)
JOIN = 0.35  # pieces whose columns overlap this much (of the narrower) are one glyph
GAP = 1.2  # a gap wider than this times the digits' height ends a number
COMB = 4.0  # the digits of a comb (one a box) may stand this many digit heights apart
JUMP = 2.2  # neighbours whose heights differ by this factor are not one number
WIDE = 2.5  # a glyph wider than this times its height is no digit (letters run together)
SOLID = 0.3  # ... nor one whose widest stroke's half-width passes this share of its size (a logo)
BLOCK = 0.85  # ... nor a block: its outline fills this share of its box, and its ink half of it (a logo's square)
BLOCK_ASPECT = 0.5  # ... as wide as this of its height at least (a '1' is a thin block)
FILLED = 0.7  # a glyph about as wide as tall that inks this share of its box is a logo's block (a pen leaves it open)
HEAVY = 0.25  # ... as is one whose widest stroke's half-width reaches this share of its size (a marker's is half)
WALL_FULL = 0.9  # a box's edge or wall inks its row or column this much of the way
BOX_LINES = 0.8  # ... and a box left standing has this share of its ink in such lines
PIECES = 4  # ... nor one of more pieces than this (a stamp with its lettering)
COMMA_TOP = 0.25  # a small piece (under half the line) with this share of its height in the line joins it: a comma
TRAILING = "a mark after the digits was not read"
TRAIL_MARK = 0.35  # a mark after the last digit this share of the digits' height at least, read as nothing, may be a digit broken up
POINT_SIZE = 0.45  # a point is at most this share of the digits' height across
UNSURE_POINT = "a mark read as a point or comma may be neither"
UNDER_DIGIT = 0.5  # a point this share of whose width lies in a digit's columns is that digit's stroke broken off, may be
POINT_STROKE = 1.4  # a point this many times as tall as wide at its feet, not hanging below them, may be a stroke's end
BROKEN_OFF = 3.5  # working pixels: a point this near a digit's ink, in columns the digit's box reaches, is a piece of it
SMALL = 0.55  # glyphs shorter than this fraction of the digits' height are separators, not digits
OVER_RULE = 0.5  # a run whose feet stand this much of its digits' height over a rule at most is written on it
BASELINE = 1.0  # working pixels: printed glyphs stand on one baseline within this
PRINTED_RUN = 5  # this many glyphs on one baseline, tops on two lines, are type
X_HEIGHT = 0.2  # type's second level of tops (small letters) lies this far (of the height) from capitals'
TIGHT = 0.2  # type is set with gaps of at most this fraction of its height (median)
WORDY = 0.3  # ... or this share of glyphs half as wide again as tall (words)
LONG_LINE = 13  # a run of this many glyphs or more is a line of text when set as type (no number is that long)
LONG_SHARE = 0.75  # ... its feet on one straight line (any small slope) for this share of its glyphs
TYPE_PEN = 0.2  # a typeset run's stroke widths spread (std / mean) no more than this
EVEN_PEN = 0.3  # ... drawn with one pen: its glyphs' stroke widths spread (std / mean) no more than this
MAX_SLOPE = 0.05  # a baseline rises or falls at most this much per pixel across (3 degrees: a page left skewed)
TALL_LETTERS = 0.9  # a line of text's tall letters: this share of its glyphs are no taller
ONE_SIZE = 1.8  # ... and no taller than this many times its median glyph: one size of type, no writing in it
TYPE_LINE = 8  # typeset runs of this many glyphs tell the page's type sizes
PRINTED_SHARE = 0.75  # ... when at least this share of a run's glyphs stand on it
FLAT = 1.8  # a mark this many times as wide as tall is flat: a minus, when small
MINUS_THICK = 0.35  # ... and at most this thick (of the digits' height)
MINUS_LONG = 0.9  # a minus before the digits is at most this long (of their height): longer, a word
DOT = 0.08  # a point or comma is at least this fraction of the digits' height across
SLASH_TALL = 1.05  # a slash reaching this far (of the digits' height) is no '1'
SLASH_TILT = 22.0  # degrees from upright from which a thin straight stroke is a slash
SLASH_THIN = 0.2  # a slash's spread across its axis, against along it
DATE_TILT = 12.0  # two strokes leaning this much and as thin as DATE_THIN that cut a date are its slashes
DATE_THIN = 0.3
WORD_SPACE = 0.6  # a gap this wide (of the run's tallest glyph) or wider parts a run into words for the word test
X_LEVEL = 0.78  # a written word's small letters reach at most this share of its tallest letter's height
X_LOW = 0.35  # ... and at least this share (lower: a dot, a comma)
X_LETTERS = 2  # a word has this many small letters at least, standing on its baseline
X_SHARE = 0.3  # ... and at least this share of its letters small (a number's few short digits are not)
END = 0.3  # ... its first or last this share of columns reaching only x-height (a small letter run into a capital)
JOINED = 2  # ... counting a small glyph as wide as two or more as two letters written joined (not a label's end)
TICKS = 3  # this many thin upright strokes of one height, evenly spaced, are a comb's ticks left on the page
TICK_THIN = 0.15  # ... each this thin at most (of its height)
TICK_ALIGN = 1  # working pixels: ... their tops and feet on the same rows within this
TICK_EVEN = 0.1  # ... their spacing within this share of its median
WALL_TALL = 1.3  # a thin upright stroke standing on a rule, this many times as tall as the glyphs beside it, is a box's wall
WALL_TILT = 4.0  # ... leaning this many degrees at most (a printed wall stands plumb)
X_FEET = 0.15  # ... their feet within this share of the tallest letter's height of the other letters' feet


@dataclass(frozen=True)
class Glyph:
    """One or more pieces read as one character, in the page frame's working pixels."""

    x: int
    y: int
    w: int
    h: int
    area: int
    labels: tuple[int, ...]


@dataclass(frozen=True)
class Number:
    """One handwritten number: its digits' glyphs left to right, separators, doubts."""

    digits: tuple[Glyph, ...]
    separators: tuple[tuple[int, str], ...] = ()
    doubts: tuple[str, ...] = ()


def glyph_pieces(mask: np.ndarray, mark_h: float = 0.0,
                 edge: np.ndarray | None = None) -> tuple[np.ndarray, list[Glyph]]:
    """(labels of the mask's pieces, the pieces that may be part of a character):
    dust, pieces the page's edge cuts (a scanner's shadow; ``edge``, when given,
    marks the scan's edge inside a turned frame) and pieces taller than a digit
    can be (logos, stamps, drawings: ``MAX_DIGIT`` of the page, and three times
    the marks' median height ``mark_h``) are left out."""
    n, labels, stats = components(mask)
    H, W = mask.shape
    x, y, w, h, area = (stats[1:, i] for i in range(5))
    keep = ((area >= SPECK_AREA) & (x > 0) & (y > 0) & (x + w < W) & (y + h < H)
            & (h <= max(MAX_DIGIT * max(H, W), 3 * mark_h)))
    if edge is not None and edge.any():
        cut = np.zeros(n, bool)
        cut[labels[(edge > 0) & (mask > 0)]] = True
        keep &= ~cut[1:]
    found = [Glyph(*(int(v) for v in stats[i + 1]), (int(i) + 1,)) for i in np.flatnonzero(keep)]
    return labels, found


def read_layout(labels: np.ndarray, found: list[Glyph], ruled: np.ndarray) -> list[Number]:
    """The handwritten numbers among a page's pieces (:func:`glyph_pieces`), in
    reading order; ``ruled`` holds the rules and box edges taken out of the page."""
    tall = MIN_DIGIT * max(labels.shape)
    runs: list[list[Glyph]] = []
    walls: list[np.ndarray] = []  # each run's line's rules, with the walls left standing among its glyphs
    for line in gather_lines(found, tall):
        glyphs, walled_in = wall_off(join_pieces(line), labels, ruled)
        for run in split_numbers(glyphs, walled_in):
            runs.append(run)
            walls.append(walled_in)
    on_rules = [on_rule(run, ruled) for run in runs]
    sizes = type_sizes([run for run, w in zip(runs, on_rules) if not w], tall, labels,
                       [run for run, w in zip(runs, on_rules) if w])
    numbers: list[Number] = []
    for run, written, walled_in in zip(runs, on_rules, walls):
        if not written and (len(run) >= TYPE_LINE and is_typeset(run, labels) or is_text_line(run, labels)):
            continue  # a line of type as a whole, its words and all (a label's words go, its number stays)
        for part in drop_words(drop_ticks(run), labels):
            if not part or is_logo(part, labels):
                continue
            number = read_number(part, labels, tall, [] if written else sizes, written, walled_in)
            if number is not None:
                numbers.append(number)
    return numbers


def _join(a: Glyph, b: Glyph) -> Glyph:
    x0, y0 = min(a.x, b.x), min(a.y, b.y)
    x1, y1 = max(a.x + a.w, b.x + b.w), max(a.y + a.h, b.y + b.h)
    return Glyph(x0, y0, x1 - x0, y1 - y0, a.area + b.area, a.labels + b.labels)


def gather_lines(found: list[Glyph], tall: float) -> list[list[Glyph]]:
    """Pieces -> lines, top to bottom, each left to right. Tall pieces make the
    lines: taken from the top, each joins the line above if its rows overlap
    that line's by half the shorter height, else starts a line. Small pieces
    join the line whose rows hold their centre (or a little below them: small
    letters beside a label's capital, commas), or are left out."""
    bands: list[list[int]] = []  # [top, bottom]
    members: list[list[Glyph]] = []
    def joins(p: Glyph, j: int) -> bool:
        top, bottom = bands[j]
        over = min(bottom, p.y + p.h) - p.y
        return over >= 0.5 * min(p.h, bottom - top) or (over >= COMMA_TOP * p.h and p.h < 0.5 * (bottom - top))

    for p in sorted((p for p in found if p.h >= tall), key=lambda p: p.y):
        if bands and joins(p, len(bands) - 1):
            k = beside(p, len(bands) - 1, bands, members, joins)
            top, bottom = bands[k]
            if p.h >= 0.5 * (bottom - top):  # a comma's tail does not widen the line
                bands[k][1] = max(bottom, p.y + p.h)
            members[k].append(p)
            continue
        bands.append([p.y, p.y + p.h])
        members.append([p])
    def holds(p: Glyph, j: int) -> bool:  # its centre in the line's rows, or just below them: a comma
        c = p.y + p.h / 2
        return bands[j][0] <= c <= bands[j][1] + 0.25 * (bands[j][1] - bands[j][0])

    tops = np.array([t for t, _ in bands])
    for p in found:
        if p.h >= tall or not bands:
            continue
        c = p.y + p.h / 2
        k = int(np.searchsorted(tops, c, side="right")) - 1
        if k >= 0 and holds(p, k):
            members[beside(p, k, bands, members, holds)].append(p)
    return [sorted(m, key=lambda p: p.x) for m in members]


def beside(p: Glyph, k: int, bands: list[list[int]], members: list[list[Glyph]], takes) -> int:
    """Of the lines that would take a piece (``takes(p, j)``: line ``k``, the
    lowest to start above it, and those started before it), the one with a
    glyph beside it (within ``GAP`` of its height) when line ``k`` has none:
    lines side by side on the page (a comma beside its number, not another
    column's line that starts a little lower)."""
    cx2 = 2 * p.x + p.w  # twice the piece's centre, and below twice the gaps: integers

    def near(j: int) -> bool:
        limit = 2 * reach(j)
        return any(abs(2 * q.x + q.w - cx2) - (q.w + p.w) <= limit for q in members[j])

    def reach(j: int) -> float:
        return GAP * (bands[j][1] - bands[j][0])

    if near(k):
        return k
    c = p.y + p.h / 2
    for j in range(k - 1, -1, -1):
        if bands[j][1] < c - reach(j) and bands[j][0] < bands[k][0] - 4 * reach(k):
            break
        if takes(p, j) and near(j):
            return j
    return k


def join_pieces(line: list[Glyph]) -> list[Glyph]:
    """A line's pieces (sorted by x) -> glyphs: pieces sharing columns are one glyph,
    when they stand one over the other or one within the other's columns."""
    glyphs: list[Glyph] = []
    for p in line:
        if glyphs:
            g = glyphs[-1]
            over = min(g.x + g.w, p.x + p.w) - max(g.x, p.x)
            rows = min(g.y + g.h, p.y + p.h) - max(g.y, p.y)
            # stacked (a 5's bar over its body), or one within the other's columns;
            # not side by side (a slash leaning over its neighbour)
            if over > JOIN * min(g.w, p.w) and (rows < 0.5 * min(g.h, p.h) or over > 0.7 * min(g.w, p.w)):
                glyphs[-1] = _join(g, p)
                continue
        glyphs.append(p)
    return glyphs


def middle(values: list[int] | list[float]) -> float:
    """The median of a short list (np.median costs more than the sort on a few values)."""
    v = sorted(values)
    n = len(v)
    return float(v[n // 2]) if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def on_baseline(glyphs: list[Glyph], share: float = 0.75) -> bool:
    """Whether ``share`` of these glyphs at least stand on one exact baseline, as type does."""
    bottoms = [g.y + g.h for g in glyphs]
    base = middle(bottoms)
    return sum(abs(b - base) <= BASELINE for b in bottoms) >= share * len(bottoms)


def on_straight_baseline(glyphs: list[Glyph], share: float) -> bool:
    """Whether ``share`` of the glyphs at least stand within ``BASELINE`` of one
    straight line (Theil-Sen: the median of the slopes between their feet, kept
    within ``MAX_SLOPE``): type on a page left a little skewed."""
    xs = np.array([g.x + g.w / 2 for g in glyphs], np.float64)
    feet = np.array([g.y + g.h for g in glyphs], np.float64)
    dx = xs[None, :] - xs[:, None]
    upper = np.triu(np.abs(dx) > 0, 1)
    if not upper.any():
        return False
    slope = float(np.clip(np.median((feet[None, :] - feet[:, None])[upper] / dx[upper]), -MAX_SLOPE, MAX_SLOPE))
    base = float(np.median(feet - slope * xs))
    return float(np.mean(np.abs(feet - slope * xs - base) <= BASELINE)) >= share


def pen_spread(run: list[Glyph], labels: np.ndarray) -> float:
    """How much the stroke widths of a run's glyphs differ (std / mean of 2 * area / perimeter)."""
    widths = []
    for g in run:
        own = pixels_of(g, labels[g.y : g.y + g.h, g.x : g.x + g.w]).view(np.uint8)
        contours, _ = cv2.findContours(own, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
        perimeter = sum(cv2.arcLength(c, True) for c in contours)
        if perimeter > 0:
            widths.append(2.0 * g.area / perimeter)
    if len(widths) < 2:
        return 0.0
    w = np.array(widths)
    return float(w.std() / max(w.mean(), 1e-6))


def is_text_line(run: list[Glyph], labels: np.ndarray) -> bool:
    """A line of text: ``LONG_LINE`` glyphs or more (longer than any number
    written by hand), their feet on one straight line (``LONG_SHARE``), drawn
    with one even pen (``EVEN_PEN``). Handwriting that long wanders off its line."""
    run = [g for g in run if g.h >= SPECK_H]
    return (len(run) >= LONG_LINE and on_straight_baseline(run, LONG_SHARE)
            and pen_spread(run, labels) <= EVEN_PEN)


def is_typeset(run: list[Glyph], labels: np.ndarray | None = None) -> bool:
    """A run of type: at least ``PRINTED_RUN`` glyphs set close (gaps of at most
    ``TIGHT`` of their height, or letters run together into words), standing
    on one exact baseline, their tops on at most two exact lines (capitals;
    small letters, ``X_LETTERS`` at least: a point is none). Words (small
    type) need half of them on the baseline only: a word with a descender
    stands lower. Specks and slivers do not count. With ``labels``, a run
    of one height (no small letters) is drawn with one even pen too
    (``TYPE_PEN``): a neat hand's digits, each its own shape, spread wider."""
    run = [g for g in run if g.h >= SPECK_H]
    if len(run) < PRINTED_RUN:
        return False
    words = sum(g.w > 1.5 * g.h for g in run) >= WORDY * len(run)  # small type's letters run together
    if not on_baseline(run, 0.5 if words else PRINTED_SHARE):
        return False
    gaps = [b.x - (a.x + a.w) for a, b in zip(run, run[1:])]
    if not words and middle(gaps) > TIGHT * middle([g.h for g in run]):
        return False
    tops = [g.y for g in run]
    held = {t: sum(abs(u - t) <= BASELINE for u in tops) for t in set(tops)}
    cap = max(held, key=lambda t: (held[t], -t))  # the top most glyphs share
    count = held[cap]
    apart = [t for t in held if abs(t - cap) >= X_HEIGHT * middle([g.h for g in run])]
    lettered = False  # small letters beside capitals: words, not a neat hand's digits
    if apart:  # small letters: a second level well apart from the first, of two letters at least (not a point)
        small = max(apart, key=lambda t: held[t])
        lettered = held[small] >= X_LETTERS
        count += held[small] if lettered else 0
    if count < PRINTED_SHARE * len(tops):
        return False
    return lettered or labels is None or pen_spread(run, labels) <= TYPE_PEN


def on_rule(run: list[Glyph], ruled: np.ndarray) -> bool:
    """Whether the run stands on a rule taken out of the page, or is written
    just over one (within ``OVER_RULE`` of its digits' height under their feet),
    along most of it: writing on a ruled line or an underline, whose even
    feet are the rule's or the writer's, not type's (type is set on no rule)."""
    x0, x1 = run[0].x, run[-1].x + run[-1].w
    foot = int(middle([g.y + g.h for g in run]))
    top = max(g.h for g in run)
    digit_h = middle([g.h for g in run if g.h >= SMALL * top])
    under = ruled[max(0, foot - 2) : foot + max(4, int(OVER_RULE * digit_h)), x0:x1]
    return under.size > 0 and float(under.any(axis=0).mean()) >= 0.8


def type_sizes(runs: list[list[Glyph]], tall: float, labels: np.ndarray | None = None,
               written: list[list[Glyph]] = ()) -> list[tuple[float, float]]:
    """The heights of the page's type: for each typeset run, the range of heights
    its glyphs (and short words set in it elsewhere) may have; kept under the
    height of the page's other runs, ``written`` ones (on a rule) among them
    (handwriting set as neatly as type must not make every number its size
    type). A line of text (:func:`is_text_line`,
    when ``labels`` are given) of one size of type (its tall letters under
    ``ONE_SIZE`` of its median) is type for sure: its range, up to its tall
    letters' height, is not kept under the others (labels set in its type are)."""
    typeset = [len(run) >= TYPE_LINE and is_typeset(run, labels) for run in runs]
    others = [max(g.h for g in run) for run, t in zip(runs, typeset) if not t and max(g.h for g in run) >= tall]
    others += [max(g.h for g in run) for run in written if max(g.h for g in run) >= tall]
    cap = 0.85 * middle(others) if others else float("inf")
    out = []
    for run, t in zip(runs, typeset):
        hs = sorted(g.h for g in run)
        tallest = hs[int(TALL_LETTERS * (len(hs) - 1))]
        if labels is not None and 1.2 * middle(hs) < cap and tallest <= ONE_SIZE * middle(hs) \
                and is_text_line(run, labels):
            out.append((0.5 * hs[0], tallest + BASELINE))
        elif t and 0.5 * hs[0] < cap:
            out.append((0.5 * hs[0], min(1.2 * hs[-1], cap)))
    return out


def divided(a: Glyph, b: Glyph, ruled: np.ndarray) -> bool:
    """Whether a box edge or a comb's tick stands between two glyphs: their cells' wall."""
    return walled(a, b, ruled) and edge_along(a, b, a.x, b.x + b.w, ruled)


def walled(a: Glyph, b: Glyph, ruled: np.ndarray) -> bool:
    """Whether a wall taken out (a run down ``0.6`` of the glyphs' height) stands between two glyphs."""
    if b.x - (a.x + a.w) < 2:
        return False
    y0, y1 = min(a.y, b.y), max(a.y + a.h, b.y + b.h)
    between = ruled[y0:y1, a.x + a.w : b.x]
    return bool(between.any()) and int(between.sum(axis=0).max()) >= 0.6 * min(a.h, b.h)


def edge_along(a: Glyph, b: Glyph, x0: int, x1: int, ruled: np.ndarray) -> bool:
    """Whether a box's or a comb's edge taken out runs along columns ``x0`` to
    ``x1`` above or below two glyphs (within half their height, a pixel either way)."""
    y0, y1 = min(a.y, b.y), max(a.y + a.h, b.y + b.h)
    margin = (y1 - y0) // 2
    edge = ruled[max(0, y0 - margin) : y1 + margin, x0:x1]
    edge = edge[:-2] | edge[1:-1] | edge[2:]
    return edge.size > 0 and int(edge.sum(axis=1).max()) >= 0.9 * edge.shape[1]


def walled_beside(run: list[Glyph], i: int, ruled: np.ndarray) -> bool:
    """Whether a wall taken out (a comb's tick, a box's side) stands between a
    run's glyph ``i`` and a neighbour: the glyph is in a cell of its own."""
    return (i > 0 and walled(run[i - 1], run[i], ruled)) or (i + 1 < len(run) and walled(run[i], run[i + 1], ruled))


def boxed_off(a: Glyph, b: Glyph, ruled: np.ndarray) -> bool:
    """Whether a box's side stands between two glyphs: a wall whose box's edge
    runs along one of them only (what stands beyond it is outside the box)."""
    return walled(a, b, ruled) and (edge_along(a, b, a.x, a.x + a.w, ruled)
                                   or edge_along(a, b, b.x, b.x + b.w, ruled))


def split_numbers(glyphs: list[Glyph], ruled: np.ndarray) -> list[list[Glyph]]:
    """A line's glyphs (left to right) -> runs. The walls of boxes (a table's,
    a comb's) part the line into cells; within a cell, runs split at wide gaps
    and jumps in size. Cells of one digit each side by side are a comb: one
    number (one box per digit); a wall beside a cell of more parts numbers,
    and a box's side parts what stands inside it from what stands beyond."""
    cells: list[list[Glyph]] = []
    boxed: list[bool] = []  # each cell: begun beyond a box's side (not a comb's wall)
    for g in glyphs:
        if cells and not divided(cells[-1][-1], g, ruled):
            if not boxed_off(cells[-1][-1], g, ruled):
                cells[-1].append(g)
                continue
            boxed.append(True)
        else:
            boxed.append(False)
        cells.append([g])
    def one_digit(part: list[Glyph]) -> bool:
        tallest = max(g.h for g in part)
        return sum(g.h >= SMALL * tallest for g in part) == 1

    runs: list[list[Glyph]] = []
    comb = False  # the last run ends a cell with one digit: a comb may go on
    for cell, beyond in zip(cells, boxed):
        parts = split_at_gaps(cell)
        if comb and not beyond and one_digit(parts[0]):
            last = max(runs[-1], key=lambda g: g.h)
            g = max(parts[0], key=lambda g: g.h)  # the digits of the two cells, their heights alike
            if parts[0][0].x - (runs[-1][-1].x + runs[-1][-1].w) <= COMB * max(last.h, g.h) \
                    and max(last.h, g.h) <= JUMP * min(last.h, g.h):
                runs[-1].extend(parts[0])
                parts = parts[1:]
                if not parts:
                    continue
        runs.extend(parts)
        comb = one_digit(parts[-1])
    return runs


def find_walls(glyphs: list[Glyph], labels: np.ndarray, ruled: np.ndarray) -> list[Glyph]:
    """The walls of boxes left standing among a line's glyphs (a comb's tick
    drawn heavier than the rule it stands on): thin upright strokes
    (``TICK_THIN``, ``WALL_TILT``) whose foot stands on a rule taken out,
    ``WALL_TALL`` times as tall as the nearest other glyphs beside them at least."""
    def stroke(g: Glyph) -> bool:
        return (g.w <= TICK_THIN * g.h and ruled[g.y + g.h : g.y + g.h + 2, max(0, g.x - 1) : g.x + g.w + 1].any()
                and abs(_axis(g, labels)[0]) <= WALL_TILT)

    strokes = [stroke(g) for g in glyphs]
    walls = []
    for i, g in enumerate(glyphs):
        if not strokes[i]:
            continue
        left = [q.h for q, s in zip(glyphs[:i], strokes[:i]) if not s and q.h >= SPECK_H][-1:]
        right = [q.h for q, s in zip(glyphs[i + 1 :], strokes[i + 1 :]) if not s and q.h >= SPECK_H][:1]
        if left + right and g.h >= WALL_TALL * max(left + right):
            walls.append(g)
    return walls


def wall_off(glyphs: list[Glyph], labels: np.ndarray, ruled: np.ndarray) -> tuple[list[Glyph], np.ndarray]:
    """(a line's glyphs without the walls left standing (:func:`find_walls`), the
    rules taken out with those walls added: they part cells as the others do)."""
    walls = find_walls(glyphs, labels, ruled)
    if not walls:
        return glyphs, ruled
    ruled = ruled.copy()
    for g in walls:
        ruled[g.y : g.y + g.h, g.x : g.x + g.w] |= pixels_of(g, labels[g.y : g.y + g.h, g.x : g.x + g.w]).view(np.uint8)
    return [g for g in glyphs if g not in walls], ruled


def drop_ticks(run: list[Glyph]) -> list[Glyph]:
    """A run without a comb's ticks left standing (the rule under them not
    found): ``TICKS`` or more thin upright strokes (``TICK_THIN``) whose tops
    and feet lie on the same rows (``TICK_ALIGN``), evenly spaced
    (``TICK_EVEN``). Printed ticks line up to the pixel; written 1s do not."""
    thin = [g for g in run if g.w <= TICK_THIN * g.h]
    if len(thin) < TICKS:
        return run
    for first in thin:
        ticks = [g for g in thin if abs(g.y - first.y) <= TICK_ALIGN and abs(g.y + g.h - first.y - first.h) <= TICK_ALIGN]
        if len(ticks) < TICKS:
            continue
        steps = [b.x - a.x for a, b in zip(ticks, ticks[1:])]
        step = middle(steps)
        if step > 0 and all(abs(d - step) <= TICK_EVEN * step for d in steps):
            return [g for g in run if g not in ticks]
    return run


def drop_words(run: list[Glyph], labels: np.ndarray) -> list[list[Glyph]]:
    """A run without its written words: the run parted at gaps of ``WORD_SPACE``
    of its tallest glyph or more, the parts that are words (:func:`is_word`) left
    out, the others kept as runs of their own where a word stood between them
    ('Ethan 432' -> '432')."""
    if len(run) < 2:
        return [run]
    top = max(g.h for g in run)
    parts: list[list[Glyph]] = [[run[0]]]
    for g in run[1:]:
        last = parts[-1][-1]
        if g.x - (last.x + last.w) >= WORD_SPACE * top:
            parts.append([g])
        else:
            parts[-1].append(g)
    words = [is_word(part, labels) for part in parts]
    if not any(words):
        return [run]
    out: list[list[Glyph]] = [[]]
    for part, word in zip(parts, words):
        if word:
            out.append([])
        else:
            out[-1].extend(part)
    return [r for r in out if r]



def is_word(part: list[Glyph], labels: np.ndarray) -> bool:
    """Letters written or set as a word: beside its tall letters (capitals,
    ascenders), ``X_LETTERS`` or more small ones, ``X_SHARE`` of them at least
    (x-height: ``X_LOW`` to ``X_LEVEL`` of the tallest), standing on the same
    baseline or hanging below it (:func:`descends`). The digits of a number
    are all of one height; a date's slashes, taller, are no letters."""
    letters = [g for g in part if g.h >= SPECK_H and not is_slash_like(g, labels)]
    if len(letters) < 2:
        return False
    top = max(g.h for g in letters)
    small = [g for g in letters if X_LOW * top <= g.h <= X_LEVEL * top]
    tall = [g for g in letters if g.h > X_LEVEL * top]
    if not small or not tall:
        return False
    foot = middle([g.y + g.h for g in tall])
    standing = sum(letters_in(g) for g in small if abs(g.y + g.h - foot) <= X_FEET * top)
    standing += sum(letters_in(g) for g in tall if descends(g, foot, top))
    standing += sum(small_end(g, labels, top) for g in tall if letters_in(g) == JOINED)
    return standing >= max(X_LETTERS, X_SHARE * sum(letters_in(g) for g in letters))


def small_end(g: Glyph, labels: np.ndarray, top: int) -> bool:
    """Whether a tall glyph as wide as two letters ends in a small one ('Ma'
    run together): the ink of its first or last ``END`` of columns reaches
    only x-height (``X_LOW`` to ``X_LEVEL`` of the word's tallest letter)."""
    own = pixels_of(g, labels[g.y : g.y + g.h, g.x : g.x + g.w])
    k = max(1, int(END * g.w))
    for end in (own[:, :k], own[:, -k:]):
        rows = np.flatnonzero(end.any(axis=1))
        if rows.size and X_LOW * top <= g.h - rows[0] <= X_LEVEL * top:
            return True
    return False


def descends(g: Glyph, foot: float, top: int) -> bool:
    """A small letter with a descender ('g', 'p', 'y'): its head at x-height
    above the word's baseline (``X_LOW`` to ``X_LEVEL`` of its tallest letter),
    its tail hanging below it."""
    return g.y + g.h - foot > X_FEET * top and X_LOW * top <= foot - g.y <= X_LEVEL * top


def letters_in(g: Glyph) -> int:
    """How many letters a glyph may hold: small letters written joined ('ar') are
    about as wide as they are many (``JOINED`` at most)."""
    return min(JOINED, max(1, round(g.w / g.h)))


def is_logo(part: list[Glyph], labels: np.ndarray) -> bool:
    """A logo: every glyph of the run that is not small a filled shape about as
    wide as tall (:func:`is_filled`), the letters cut out of a printed block."""
    top = max(g.h for g in part)
    return all(is_filled(g, labels) for g in part if g.h >= SMALL * top)


def is_filled(g: Glyph, labels: np.ndarray) -> bool:
    """Ink filling ``FILLED`` of the glyph's box, or strokes ``HEAVY`` of its size
    thick, the glyph about as wide as tall (a '1' is a thin block)."""
    if g.w < BLOCK_ASPECT * g.h or g.h < BLOCK_ASPECT * g.w:
        return False
    if g.area >= FILLED * g.w * g.h:
        return True
    return widest_stroke(padded_pixels(g, labels)) >= HEAVY * max(g.w, g.h)


def is_slash_like(g: Glyph, labels: np.ndarray) -> bool:
    """A thin stroke leaning right as a date's slash does (``DATE_TILT``, ``DATE_THIN``)."""
    tilt, thin = _axis(g, labels)
    return tilt >= DATE_TILT and thin <= DATE_THIN


def sizable(g: Glyph) -> bool:
    """A glyph that tells the height of its neighbours: not flat (a minus, a
    stroke's tail cut by a box's edge) nor a speck."""
    return 2 * g.h >= g.w and g.h >= SPECK_H and g.w >= SLIVER


def split_at_gaps(glyphs: list[Glyph]) -> list[list[Glyph]]:
    """Glyphs (left to right) -> runs split at gaps wider than ``GAP`` digit
    heights and at jumps in size (a label beside a number), but for a lone
    small mark before digits (a minus, a point, a speck)."""
    runs: list[list[Glyph]] = []
    big = 0  # height of the current run's last glyph that is not small or flat (a minus)
    for g in glyphs:
        if runs:
            last = runs[-1][-1]
            ref = max(big, g.h)
            gap = g.x - (last.x + last.w)
            jump = big > 0 and max(big, g.h) > JUMP * min(big, g.h) and g.h > SMALL * big
            lone = len(runs[-1]) == 1 and g.h > JUMP * last.h  # a lone small mark before a digit: a minus, a point
            if (not jump or lone) and gap <= GAP * ref:
                runs[-1].append(g)
                if g.h >= SMALL * big and sizable(g):
                    big = g.h
                continue
        runs.append([g])
        big = g.h if sizable(g) else 0
    return runs


def is_printed(run: list[Glyph], digit_h: float, sizes: list[tuple[float, float]], labels: np.ndarray) -> bool:
    """Type: a typeset run, or a short one of the page's type size, half of it
    on one baseline at least (a label: 'Date:', 'No.', 'Amount')."""
    if is_typeset(run, labels):
        return True
    main = [g for g in run if g.h >= SMALL * digit_h]
    return any(lo <= digit_h <= hi for lo, hi in sizes) and on_baseline(main, 0.5)


def read_number(run: list[Glyph], labels: np.ndarray, tall: float,
                sizes: list[tuple[float, float]], written: bool = False,
                ruled: np.ndarray | None = None) -> Number | None:
    """A run of glyphs -> a handwritten number, or None (printed, or no digit in
    it); ``written``: standing on a rule, it is not taken for type; ``ruled``:
    the rules taken out, which may have cut a point (:func:`is_unsure_point`)."""
    top = max(g.h for g in run)
    if top < tall:
        return None
    digit_h = middle([g.h for g in run if g.h >= SMALL * top])
    if digit_h < SMALL_TYPE * tall:  # a label's or a footer's small type, a colon after a word
        return None
    if not written and (is_printed(run, digit_h, sizes, labels) or is_text_line(run, labels)):
        return None
    main = [g.h >= SMALL * digit_h and is_digit_like(g, labels) for g in run]
    slash = read_slashes(run, main, labels, digit_h)
    if ruled is not None:  # a stroke a box's wall parts from its neighbour stands in a cell of its own: a digit
        slash = [sl and not walled_beside(run, i, ruled) for i, sl in enumerate(slash)]
    inner = [i for i, m in enumerate(main) if m and not slash[i]]
    if not inner:
        return None
    line_top = min(g.y for g, m in zip(run, main) if m)
    line_bottom = max(g.y + g.h for g, m in zip(run, main) if m)
    digits: list[Glyph] = []
    separators: list[tuple[int, str]] = []
    unread = lead = unsure = trail = 0
    skip = label_marks(run, inner[0], digit_h)
    for g, m, sl in zip(run[skip:], main[skip:], slash[skip:]):
        if m and not sl:
            digits.append(g)
            continue
        kind = "/" if sl else separator_kind(g, line_top, line_bottom, digit_h)
        if kind in (".", ",") and digits and len(digits) < len(inner) \
                and broken_off(g, digits[-1], run[inner[len(digits)]], labels):
            unread += 1  # no point: a piece of a digit a thin or cut stroke left apart (left out: the model reads the rest)
            continue
        if kind == "-" and not digits and g.w > MINUS_LONG * digit_h:  # a word or a label's end, not a sign
            kind = None
        if kind is None:
            unread += bool(digits) and len(digits) < len(inner)  # only between digits
            trail += len(digits) == len(inner) and g.h >= TRAIL_MARK * digit_h
            lead += not digits and (may_be_minus(g, line_top, line_bottom, digit_h) or g.h >= TRAIL_MARK * digit_h)
        elif digits and len(digits) < len(inner) or kind == "-" and not digits:
            separators.append((len(digits), kind))
            if kind in ".,":
                unsure += is_unsure_point(g, kind, digits[-1], run[inner[len(digits)]], line_bottom, digit_h, ruled)
    unread += any(stuck_point(g, labels, digit_h, k > 0, k < len(digits) - 1) for k, g in enumerate(digits))
    doubts = ("a mark between digits was not read",) if unread else ()
    if lead:
        doubts += ("a mark before the digits was not read",)
    if unsure:
        doubts += (UNSURE_POINT,)
    if trail or any(g.h >= SMALL * digit_h and not main[i] for i, g in enumerate(run) if i > inner[-1]):
        doubts += (TRAILING,)  # a digit run into a stroke (a rule's remnant, a tick) is no digit to the reader
    if not well_formed(separators, len(digits)):
        doubts += ("separators that make no number",)
    return Number(digits=tuple(digits), separators=tuple(separators), doubts=doubts)


def is_unsure_point(g: Glyph, kind: str, left: Glyph, right: Glyph, line_bottom: int, digit_h: float,
                    ruled: np.ndarray | None) -> bool:
    """Whether a mark read as a point or comma between two digits may be
    neither: ``UNDER_DIGIT`` of it in a digit's columns (a stroke's end broken
    off), taller than wide by ``POINT_STROKE`` without hanging below the digits'
    feet (a stroke's end, no pen's dot), or, read as a point, hanging below
    the digits' feet to a rule taken out (a comma whose tail went with it)."""
    inside = max(min(g.x + g.w, d.x + d.w) - max(g.x, d.x) for d in (left, right))
    if inside > UNDER_DIGIT * g.w:
        return True
    hangs = g.y + g.h > line_bottom + DOT * digit_h
    if not hangs and g.h >= POINT_STROKE * g.w:
        return True
    if ruled is None or not hangs or kind != ".":
        return False
    H, W = ruled.shape
    return bool(ruled[max(0, g.y - 1) : min(H, g.y + g.h + 1), max(0, g.x - 1) : min(W, g.x + g.w + 1)].any())


def broken_off(g: Glyph, left: Glyph, right: Glyph, labels: np.ndarray) -> bool:
    """Whether a mark between two digits, read as a point or comma, is a piece
    of one of them broken off (a thin stroke broken, a foot cut by a rule):
    in columns the digit's box reaches (no clear column between them) and
    within ``BROKEN_OFF`` of its ink. A written point stands clear of both."""
    for d in (left, right):
        if max(g.x, d.x) > min(g.x + g.w, d.x + d.w):
            continue
        reach = int(BROKEN_OFF) + 1
        x0, y0 = max(0, min(g.x, d.x) - reach), max(0, min(g.y, d.y) - reach)
        x1, y1 = max(g.x + g.w, d.x + d.w) + reach, max(g.y + g.h, d.y + d.h) + reach
        window = labels[y0:y1, x0:x1]
        apart = cv2.distanceTransform((~pixels_of(d, window)).view(np.uint8), cv2.DIST_L2, 5)
        if float(apart[pixels_of(g, window)].min()) <= BROKEN_OFF:
            return True
    return False


def stuck_point(g: Glyph, labels: np.ndarray, digit_h: float, left: bool, right: bool) -> bool:
    """Whether a point touches a digit corner to corner at its feet: the glyph
    two pieces when pixels join side to side only, the smaller a dot (point-
    sized, ``DOT`` to ``POINT_SIZE`` of the digits' height, half its box inked)
    at the glyph's foot, beside the digit's columns more than under them, at
    the glyph's ``left`` or ``right`` edge."""
    own = pixels_of(g, labels[g.y : g.y + g.h, g.x : g.x + g.w]).view(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(own, connectivity=4)
    if n != 3:
        return False
    (X, _, W, _, _), (x, y, w, h, area) = sorted((tuple(int(v) for v in s) for s in stats[1:]), key=lambda s: -s[4])
    if y + h < g.h or not DOT * digit_h <= min(w, h) <= max(w, h) <= POINT_SIZE * digit_h or 2 * area < w * h:
        return False
    if 2 * (min(x + w, X + W) - max(x, X)) >= w:
        return False
    return (left and x == 0) or (right and x + w == g.w)


def label_marks(run: list[Glyph], first: int, digit_h: float) -> int:
    """How many of the marks before a run's first digit (``first``) are a label's
    run into the number: all of them when one is a word (longer than a minus
    can be, ``MINUS_LONG``), none otherwise ('Total: 513' is no '-513')."""
    return first if any(g.w > MINUS_LONG * digit_h for g in run[:first]) else 0


def well_formed(separators: list[tuple[int, str]], count: int) -> bool:
    """Whether separators (``(k, char)``: before digit ``k``) make a number as
    people write one: a minus first; a date's two slashes (1-2, 1-2, 2-4
    digits); thousands marks three digits apart, the first group of 1-3, and
    at most one decimal mark, of the other kind, after them (``12,500.75``,
    ``3,75``, ``1.234,5``); one mark at most between two digits."""
    marks = [(k, c) for k, c in separators if not (c == "-" and k == 0)]
    if not marks:
        return True
    places = [k for k, _ in marks]
    if len(set(places)) < len(places) or any(c == "-" for _, c in marks):
        return False
    kinds = {c for _, c in marks}
    groups = [b - a for a, b in zip([0, *places], [*places, count])]
    if "/" in kinds:
        return kinds == {"/"} and len(marks) == 2 and 1 <= groups[0] <= 2 and 1 <= groups[1] <= 2 and 2 <= groups[2] <= 4
    if len(marks) == 1:
        return True
    decimal = marks[-1][1] if len(kinds) == 2 else None
    thousands = [c for _, c in marks[:-1]] if decimal else [c for _, c in marks]
    if len(set(thousands)) != 1 or (decimal is not None and decimal in thousands):
        return False
    inner = groups[1:-1] if decimal else groups[1:]
    return 1 <= groups[0] <= 3 and all(g == 3 for g in inner)


def pixels_of(g: Glyph, window: np.ndarray) -> np.ndarray:
    """The glyph's own pixels (bool) in a window of the labels."""
    if len(g.labels) == 1:
        return window == g.labels[0]
    return np.isin(window, g.labels)


def _axis(g: Glyph, labels: np.ndarray) -> tuple[float, float]:
    """(tilt of the glyph's long axis from upright in degrees, rising to the right
    positive; its spread across the axis against along it)."""
    own = pixels_of(g, labels[g.y : g.y + g.h, g.x : g.x + g.w]).view(np.uint8)
    m = cv2.moments(own, binaryImage=True)
    if m["m00"] == 0:
        return 0.0, 1.0
    mu20, mu02, mu11 = m["mu20"] / m["m00"], m["mu02"] / m["m00"], m["mu11"] / m["m00"]
    spread = np.sqrt(max(0.0, ((mu20 - mu02) / 2) ** 2 + mu11**2))
    major, minor = (mu20 + mu02) / 2 + spread, max(0.0, (mu20 + mu02) / 2 - spread)
    theta = 0.5 * np.degrees(np.arctan2(2 * mu11, mu20 - mu02))  # long axis from the x axis, y down
    tilt = 90.0 - abs(theta)  # from upright
    if theta > 0:  # going down to the right: a backslash
        tilt = -tilt
    return float(tilt), float(np.sqrt(minor / major)) if major > 0 else 1.0


def is_digit_like(g: Glyph, labels: np.ndarray) -> bool:
    """Drawn like a digit: not much wider than tall (letters run together), of
    a few pieces at most (a stamp and its lettering), none of them nested in
    another (:func:`holds_marks`: a face), drawn with a pen, not
    filled (a logo: the widest stroke over ``SOLID`` of the glyph's size)."""
    if g.w > WIDE * g.h or len(g.labels) > PIECES:
        return False
    if len(g.labels) >= 3 and holds_marks(g, labels) or len(g.labels) == 2 and boxes_mark(g, labels):
        return False
    if g.area <= 0.5 * g.w * g.h:  # open strokes: no need to measure them
        return True
    own = padded_pixels(g, labels)
    if widest_stroke(own) > SOLID * max(g.w, g.h):
        return False
    return not is_block(g, own)


def padded_pixels(g: Glyph, labels: np.ndarray) -> np.ndarray:
    """The glyph's own pixels (uint8 0/1) in its box, a pixel's margin round."""
    return np.pad(pixels_of(g, labels[g.y : g.y + g.h, g.x : g.x + g.w]).view(np.uint8), 1)


def widest_stroke(own: np.ndarray) -> float:
    """The half-width of the widest stroke of a glyph's padded pixels."""
    return float(cv2.distanceTransform(own, cv2.DIST_L2, 3).max())


def is_block(g: Glyph, own: np.ndarray) -> bool:
    """A filled block (a logo's square with its letters cut out): about as wide as
    tall, half of its box inked, its outline filling ``BLOCK`` of the box. A
    digit's outline leaves its box's corners empty."""
    if g.w < BLOCK_ASPECT * g.h or g.h < BLOCK_ASPECT * g.w:
        return False
    contours, _ = cv2.findContours(own, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    outline = max((cv2.contourArea(c) for c in contours), default=0.0)
    return outline >= BLOCK * g.w * g.h


def holds_marks(g: Glyph, labels: np.ndarray) -> bool:
    """Whether two of the glyph's pieces or more lie inside its largest one's
    box, clear of its edges (a face, a drawing: a digit's strokes do not nest)."""
    window = labels[g.y : g.y + g.h, g.x : g.x + g.w]
    boxes = []
    for i in g.labels:
        own = (window == i).view(np.uint8)
        x, y, w, h = cv2.boundingRect(own)
        boxes.append((w * h, x, y, w, h))
    boxes.sort(reverse=True)
    _, X, Y, W, H = boxes[0]
    m = max(1, min(W, H) // 8)
    inside = sum(X + m <= x and Y + m <= y and x + w <= X + W - m and y + h <= Y + H - m for _, x, y, w, h in boxes[1:])
    return inside >= 2


def boxes_mark(g: Glyph, labels: np.ndarray) -> bool:
    """Whether a glyph of two pieces is a box left standing with a mark in it:
    the larger piece drawn in straight lines across or down its whole box
    (``BOX_LINES`` of its ink in rows or columns inked ``WALL_FULL`` of the
    way: a comb's edges and walls), the other inside its box."""
    window = labels[g.y : g.y + g.h, g.x : g.x + g.w]
    pieces = sorted(((window == i) for i in g.labels), key=lambda own: -int(own.sum()))
    outer, inner = pieces
    ys, xs = np.nonzero(outer)
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    iy, ix = np.nonzero(inner)
    if not (x0 < ix.min() and ix.max() < x1 and y0 <= iy.min() and iy.max() < y1):
        return False
    box = outer[y0 : y1 + 1, x0 : x1 + 1]
    lines = (box.mean(axis=1) >= WALL_FULL)[:, None] | (box.mean(axis=0) >= WALL_FULL)[None, :]
    return int(np.count_nonzero(box & lines)) >= BOX_LINES * int(box.sum())


def read_slashes(run: list[Glyph], main: list[bool], labels: np.ndarray, digit_h: float) -> list[bool]:
    """Which of a run's glyphs are a date's slashes. A thin stroke leaning right
    is a slash between digits when it reaches beyond them (taller than they
    are), or when two such strokes (leaning less will do) cut the digits as a
    date does (1-2, 1-2, 2-4 digits; of more such strokes, the two tallest that
    do: :func:`date_pair`); otherwise it is a leaning '1', as it is at either end."""
    axes = [_axis(g, labels) if m and g.w >= 0.2 * g.h else (0.0, 1.0) for g, m in zip(run, main)]
    strong = [t >= SLASH_TILT and th <= SLASH_THIN for t, th in axes]
    weak = [t >= DATE_TILT and th <= DATE_THIN for t, th in axes]
    for lean in (weak, strong):  # a date first; else the tall strokes alone
        digits = [i for i, m in enumerate(main) if m and not lean[i]]
        if not digits:
            continue
        inside = [i for i, x in enumerate(lean) if x and digits[0] < i < digits[-1]]
        groups = [sum(1 for d in digits if lo < d < hi) for lo, hi in zip([-1, *inside], [*inside, len(run)])]
        if len(inside) == 2 and 1 <= groups[0] <= 2 and 1 <= groups[1] <= 2 and 2 <= groups[2] <= 4:
            return [i in inside for i in range(len(run))]
        pair = date_pair(run, main, inside) if len(inside) > 2 else None
        if pair is not None:  # a leaning '1' beside a slash: the two tallest strokes that make a date
            return [i in pair for i in range(len(run))]
    digits = [i for i, m in enumerate(main) if m and not strong[i]]
    if not digits:
        return [False] * len(run)
    return [strong[i] and digits[0] < i < digits[-1] and run[i].h >= SLASH_TALL * digit_h for i in range(len(run))]


def date_pair(run: list[Glyph], main: list[bool], inside: list[int]) -> tuple[int, int] | None:
    """Of more than two leaning strokes between a run's digits, the two that cut
    its digits (the other strokes counted as digits, leaning '1's) as a date
    does (1-2, 1-2, 2-4 digits), the tallest such two; None when no two do."""
    pairs = sorted(((a, b) for k, a in enumerate(inside) for b in inside[k + 1 :]),
                   key=lambda p: -(run[p[0]].h + run[p[1]].h))
    for a, b in pairs:
        digits = [i for i, m in enumerate(main) if m and i not in (a, b)]
        groups = [sum(1 for d in digits if lo < d < hi) for lo, hi in ((-1, a), (a, b), (b, len(run)))]
        if 1 <= groups[0] <= 2 and 1 <= groups[1] <= 2 and 2 <= groups[2] <= 4:
            return a, b
    return None


def may_be_minus(g: Glyph, line_top: int, line_bottom: int, digit_h: float) -> bool:
    """A mark before the digits, not read as a minus, that may be one all the same:
    wider than tall (not by ``FLAT``), larger than a speck, as thin and short as a
    minus, and in the middle of the digits' band."""
    centre = (g.y + g.h / 2 - line_top) / max(1, line_bottom - line_top)
    return (g.h < g.w <= MINUS_LONG * digit_h and g.w >= 2 * DOT * digit_h and g.h <= MINUS_THICK * digit_h
            and 0.25 <= centre <= 0.8)


def separator_kind(g: Glyph, line_top: int, line_bottom: int, digit_h: float) -> str | None:
    """What a small mark beside digits is: '-', '.', ',' or None (not read)."""
    span = max(1, line_bottom - line_top)
    centre = (g.y + g.h / 2 - line_top) / span
    if g.w >= FLAT * g.h and 0.25 <= centre <= 0.8 and g.h <= MINUS_THICK * digit_h:
        return "-"
    if g.w > 0.35 * digit_h or min(g.w, g.h) < DOT * digit_h:
        return None
    hangs = g.y + g.h > line_bottom + 0.08 * digit_h  # below the digits' feet: a comma's tail
    if hangs and g.h >= 1.4 * g.w and g.h <= 0.6 * digit_h and g.y >= line_top + 0.5 * span:
        return ","
    if centre >= 0.7 and g.h <= 0.3 * digit_h:
        return "."
    if centre >= 0.7 and g.h <= 0.45 * digit_h:
        return ","
    return None
