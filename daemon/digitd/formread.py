"""Reading a form: the page matched to a template, each field's handwriting found and read.

:func:`match_form` registers the page on every template's boxes and keeps the
best. :func:`find_fields` cuts each field's box out of the page upright (the
alignment undone, about a millimetre inside the printed lines) and finds its
marks as a cropped number's are found; a comb is read cell by cell, one digit a
cell, an empty cell standing in the number as ``_``. :func:`read_fields` gives
each field its reading and :func:`forms.check_value`'s verdict;
:func:`steady_readings` reads each digit again slightly changed and doubts a
reading that does not hold; :func:`read_form` does it all with two model calls.
:func:`draft_template` drafts a template from a scan of the empty form. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .forms import A4_MM, Field, Template, check_value
from .records import Box, FieldRead, Found, Mark, Reading, Scan
from .register import (Alignment, align_frames, apply, bounds, find_boxes, find_frames, ink_of, pixel_scale,
                       to_page, to_uint8)
from .segment import SPECK, Ink, components, digits_of_mask, ink_map, ink_mask_and_ratio, mark_of

if TYPE_CHECKING:
    from .recognize import Recognizer

INSET_MM = 1.0  # a field is read this far inside its box, the printed lines left out
LINE_MM = 0.6  # a piece along the crop's edge at most this thick is what is left of a printed line
EDGE_RUN = 0.8  # ... and runs along at least this share of that edge (a 5's top bar written close to it is shorter)
MIN_MARK_MM = 2.0  # a mark shorter than this is a speck, not a digit
STEADY_TURN = 8.0  # degrees a digit is turned either way to see whether its reading holds
EMPTY_CELL = "_"  # an empty cell of a comb, in the number where its digit would be
COMB_WALL = 0.9  # a column inked in this share of a box's middle rows is a wall between cells
COMB_EVEN = 1.25  # a comb's cells are this even: no cell wider or narrower than this times the mean


@dataclass(frozen=True)
class FormReading:
    """A page read as a form: the template's name, how well the page fit it, its fields in order."""

    form: str
    quality: float
    fields: dict[str, FieldRead]


def grey_of(scan: Scan) -> np.ndarray:
    """The scan's grey plane, or its image when it has none."""
    return scan.gray if scan.gray is not None else scan.image


def match_form(scan: Scan, templates: Sequence[Template]) -> tuple[Template, Alignment] | None:
    """The template the page fits best and how it sits there, or None when it fits none.

    The best quality wins; at equal quality, more boxes matched."""
    page = to_uint8(grey_of(scan))
    frames = find_frames(page)  # once for every template
    best: tuple[Template, Alignment] | None = None
    for template in templates:
        alignment = align_frames(frames, page.shape[1], [f.box for f in template.fields], template.size)
        if alignment is None:
            continue
        if best is None or (alignment.quality, alignment.matched) > (best[1].quality, best[1].matched):
            best = (template, alignment)
    return best


def crop_matrix(alignment: Alignment, box_mm: tuple[float, float, float, float]) -> tuple[np.ndarray, int, int]:
    """(2 x 3 affine: crop pixels -> page pixels, crop width, crop height) for a box read
    upright at the page's own scale, INSET_MM inside it."""
    x, y, w, h = box_mm
    k = pixel_scale(alignment.matrix)
    inset = min(INSET_MM, w / 4, h / 4)
    to_mm = np.array([[1 / k, 0, x + inset], [0, 1 / k, y + inset], [0, 0, 1]], np.float64)
    m = alignment.matrix @ to_mm
    return m, max(1, round((w - 2 * inset) * k)), max(1, round((h - 2 * inset) * k))


def cut_box(scan: Scan, alignment: Alignment, box_mm: tuple[float, float, float, float]
            ) -> tuple[np.ndarray, np.ndarray]:
    """(the box's inside, upright, float32 0-1, its matrix: crop pixels -> page pixels)."""
    m, w, h = crop_matrix(alignment, box_mm)
    plane = np.ascontiguousarray(grey_of(scan), dtype=np.float32)
    crop = cv2.warpAffine(plane, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)
    return crop, m


def clear_edge_lines(mask: np.ndarray, thin: float) -> np.ndarray:
    """The mask without what is left of a printed line along its edges (the inset did not
    leave it out): straight runs over EDGE_RUN of its side within ``thin`` of an edge, then thin
    pieces lying along an edge (along a side only when shorter than half of it). A 1
    written against a side within ``thin`` of it goes too. Handwriting crossing them
    keeps its other pixels."""
    H, W = mask.shape
    band = int(np.ceil(thin))
    across = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((1, max(3, round(W * EDGE_RUN))), np.uint8))
    down = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((max(3, round(H * EDGE_RUN)), 1), np.uint8))
    runs = np.zeros_like(mask)
    runs[:band] |= across[:band]
    runs[H - band:] |= across[H - band:]
    runs[:, :band] |= down[:, :band]
    runs[:, W - band:] |= down[:, W - band:]
    if runs.any():
        mask = mask & (runs ^ 1)
    n, labels, stats = components(mask)
    x, y, w, h = (stats[:, i] for i in range(4))
    flat = ((y == 0) | (y + h == H)) & (h <= thin)  # along the top or the floor
    # along a side, and shorter than half of it (a 1 written close to the side is taller)
    upright = ((x == 0) | (x + w == W)) & (w <= thin) & (h < H / 2)
    lines = flat | upright
    lines[0] = False
    if not lines.any():
        return mask
    return np.where(lines[labels], 0, mask).astype(np.uint8)


def cell_mark(mask: np.ndarray, ratio: np.ndarray, ink: Ink) -> Mark | None:
    """A comb cell's one digit: its largest piece of ink with every piece above or below it
    or clear of the cell's sides (a 5's top bar written apart from its body, which alone
    would pass for a ruled line), specks left out; None: no ink."""
    n, labels, stats = components(mask)
    if n <= 1:
        return None
    x, w, area = stats[1:n, 0], stats[1:n, 2], stats[1:n, 4]
    big = int(np.argmax(area))
    W = mask.shape[1]
    beside = (x < x[big] + w[big]) & (x + w > x[big])
    clear = (x > 0) & (x + w < W)
    keep = np.flatnonzero((area >= SPECK * area[big]) & (beside | clear)) + 1
    own = np.isin(labels, keep)
    ys, xs = np.nonzero(own)
    y0, y1 = max(0, ys.min() - 2), min(mask.shape[0], ys.max() + 3)
    x0, x1 = max(0, xs.min() - 2), min(W, xs.max() + 3)
    s = ink.scale
    box = (int(xs.min() / s), int(ys.min() / s), max(1, round((xs.max() + 1 - xs.min()) / s)),
           max(1, round((ys.max() + 1 - ys.min()) / s)))
    return mark_of(np.ascontiguousarray(own[y0:y1, x0:x1]), ratio[y0:y1, x0:x1], box)


def find_marks(scan: Scan, alignment: Alignment, box_mm: tuple[float, float, float, float],
               max_digits: int, *, cell: bool = False) -> list[Mark]:
    """The handwriting inside one box as marks (boxes in page pixels), left to right;
    ``cell``: a comb's cell, all its ink one digit (:func:`cell_mark`)."""
    crop, m = cut_box(scan, alignment, box_mm)
    ink = ink_map(crop)
    mask, ratio = ink_mask_and_ratio(ink)
    if mask is None or ratio is None:
        return []
    k = pixel_scale(alignment.matrix) * ink.scale  # working pixels per mm
    mask = clear_edge_lines(mask, max(2.0, LINE_MM * k))
    if not mask.any():
        return []
    if cell:
        one = cell_mark(mask, ratio, ink)
        marks = [one] if one is not None else []
    else:
        marks, _ = digits_of_mask(mask, ratio, ink, max_digits)
    tall = MIN_MARK_MM * pixel_scale(alignment.matrix)
    out = []
    for mark in marks:
        bx, by, bw, bh = mark.box
        if bh < tall:
            continue
        corners = np.array([[bx, by], [bx + bw, by], [bx + bw, by + bh], [bx, by + bh]], np.float64)
        out.append(Mark(box=bounds(apply(m, corners)), pixels=mark.pixels))
    return out


def find_field(scan: Scan, alignment: Alignment, field: Field, max_digits: int = 12) -> Found:
    """One field's handwriting: its marks in order, its box on the page. A comb field's
    cells are read one by one (one mark a cell); an empty cell between is a separator
    ``EMPTY_CELL`` at its place. No marks: an empty field."""
    box = to_page(alignment, field.box)
    if not field.digits:
        return Found(marks=tuple(find_marks(scan, alignment, field.box, max_digits)), box=box)
    cells = [find_marks(scan, alignment, cell, 1, cell=True) for cell in field.cells()]
    if not any(cells):
        return Found(marks=(), box=box)
    marks: list[Mark] = []
    gaps: list[tuple[int, str]] = []
    for found in cells:
        if found:
            marks.append(found[0])
        else:
            gaps.append((len(marks), EMPTY_CELL))
    return Found(marks=tuple(marks), box=box, separators=tuple(gaps))


def find_fields(scan: Scan, template: Template, alignment: Alignment,
                max_digits: int = 12) -> dict[str, Found]:
    """Every field's handwriting (:func:`find_field`), in the template's order."""
    return {f.name: find_field(scan, alignment, f, max_digits) for f in template.fields}


def place_separators(number: str, separators: Sequence[tuple[int, str]]) -> str:
    """Digits with their separators put back: ``(k, char)`` stands before digit ``k``."""
    chars = list(number)
    for k, char in sorted(separators, key=lambda s: s[0], reverse=True):
        chars.insert(k, char)
    return "".join(chars)


def read_field(field: Field, found: Found, reading: Reading) -> FieldRead:
    """A field's reading judged: blank when nothing is written, uncertain when the model
    doubts it or the value breaks the field's ``digits`` or ``pattern`` (the reason in
    ``doubts``), else ok."""
    if reading.number is None:
        status, reasons = check_value(field, None)
        return FieldRead(field.name, None, None, status, found.box, tuple(dict.fromkeys((*reading.doubts, *reasons))))
    number = place_separators(reading.number, found.separators)
    status, reasons = check_value(field, number)
    doubts = tuple(dict.fromkeys((*reading.doubts, *found.doubts, *reasons)))
    if status == "ok" and (reading.status != "ok" or doubts):
        status = "uncertain"
    return FieldRead(field.name, number, reading.confidence, status, found.box, doubts)


def read_fields(template: Template, found: dict[str, Found], readings: Sequence[Reading]
                ) -> dict[str, FieldRead]:
    """The fields' readings (``readings`` in ``found``'s order), judged by :func:`read_field`."""
    fields = {f.name: f for f in template.fields}
    return {name: read_field(fields[name], f, r) for (name, f), r in zip(found.items(), readings, strict=True)}


def variants(pixels: np.ndarray) -> np.ndarray:
    """A digit's MNIST form (28 x 28) slightly changed, as another hand or scan might give it:
    turned STEADY_TURN degrees either way, a tenth smaller and larger, a pixel higher and
    lower, its strokes thicker and thinner (8 x 28 x 28)."""
    centre = (14.0, 14.0)
    moves = [cv2.getRotationMatrix2D(centre, STEADY_TURN, 1.0), cv2.getRotationMatrix2D(centre, -STEADY_TURN, 1.0),
             cv2.getRotationMatrix2D(centre, 0.0, 0.9), cv2.getRotationMatrix2D(centre, 0.0, 1.1),
             np.float64([[1, 0, 0], [0, 1, -1]]), np.float64([[1, 0, 0], [0, 1, 1]])]
    out = [cv2.warpAffine(pixels, m, (28, 28)) for m in moves]
    out += [cv2.dilate(pixels, np.ones((2, 2), np.uint8)), cv2.erode(pixels, np.ones((2, 2), np.uint8))]
    return np.stack(out).astype(np.float32)


def steady_readings(recognizer: Recognizer, found: Sequence[Found], readings: Sequence[Reading]) -> list[Reading]:
    """The readings (of ``found``'s marks), each digit read again with its :func:`variants`
    (and its mark's ``alt`` cut, when it has one): a
    digit whose average over itself and them is another digit, or below the confidence
    threshold, makes its reading uncertain, with the doubt ``the 7 in place 1 may be a 1``. One
    model call; a digit's own probabilities are its reading's (the model reads an image
    the same in any batch), when each mark has its digit."""
    checked = [j for j, r in enumerate(readings) if r.number is not None and r.digits]
    if len(found) != len(readings):
        raise ValueError("a reading for every field's marks")
    marks = [m for j in checked for m in found[j].marks]
    if not marks:
        return list(readings)
    alts = [i for i, m in enumerate(marks) if m.alt is not None]
    alt_views = [np.stack([marks[i].alt for i in alts])] if alts else []
    if all(len(readings[j].digits) == len(found[j].marks) for j in checked):
        own = [(*d.probabilities, d.not_digit) for j in checked for d in readings[j].digits]
        read = recognizer.probabilities(np.concatenate([variants(m.pixels) for m in marks] + alt_views))
        changed = read[: 8 * len(marks)].reshape(len(marks), 8, -1)
        outputs = changed.shape[2]
        every = np.concatenate([np.float32([p[:outputs] for p in own])[:, None], changed], axis=1)
    else:  # a reading not of these marks: each read here too
        stacked = [np.concatenate([m.pixels[None], variants(m.pixels)]) for m in marks]
        read = recognizer.probabilities(np.concatenate(stacked + alt_views))
        every = read[: 9 * len(marks)].reshape(len(marks), 9, -1)
    sums, views = every.sum(axis=1), np.full(len(marks), every.shape[1])
    if alts:  # a mark's other cut is one view more
        sums[alts] += read[len(read) - len(alts) :]
        views[alts] += 1
    probs = sums / views[:, None]
    out = list(readings)
    k = 0
    for j in checked:
        r = readings[j]
        doubts = []
        for i, digit in enumerate(r.digits):
            mean = probs[k + i, :10]
            if int(mean.argmax()) != digit.digit or mean[digit.digit] < recognizer.confidence_threshold:
                other = mean.copy()
                other[digit.digit] = -1.0
                doubts.append(f"the {digit.digit} in place {i + 1} may be a {int(other.argmax())}")
        k += len(found[j].marks)
        if doubts:
            out[j] = replace(r, status="uncertain" if r.status == "ok" else r.status, doubts=(*r.doubts, *doubts))
    return out


def read_form(scan: Scan, templates: Sequence[Template], recognizer: Recognizer,
              max_digits: int = 12) -> FormReading | None:
    """A page read as the form it fits best, every field in one model call and its digits
    checked in another (:func:`steady_readings`); None when it fits none."""
    matched = match_form(scan, templates)
    if matched is None:
        return None
    template, alignment = matched
    found = find_fields(scan, template, alignment, max_digits)
    readings = recognizer.classify([(list(f.marks), None) for f in found.values()])
    readings = steady_readings(recognizer, list(found.values()), readings)
    return FormReading(template.name, alignment.quality, read_fields(template, found, readings))


def draft_template(scan: Scan, name: str, dpi: float | None = None) -> Template:
    """A starting template from a scan of the empty form: each printed box a field,
    ``field_1``, ``field_2``, ... in reading order (rows top to bottom, each left to
    right), in mm at ``dpi`` (unknown: the page taken as A4 wide)."""
    grey = grey_of(scan)
    height, width = grey.shape[:2]
    mm = 25.4 / dpi if dpi else A4_MM[0] / width
    boxes = find_boxes(grey)
    row = 5.0 / mm  # boxes whose tops lie within 5 mm are one row
    rows: list[list[tuple[int, int, int, int]]] = []
    for box in sorted(boxes, key=lambda b: b[1]):
        if rows and box[1] - rows[-1][0][1] < row:
            rows[-1].append(box)
        else:
            rows.append([box])
    ink = ink_of(to_uint8(grey))
    fields = tuple(Field(f"field_{i}", tuple(round(v * mm, 1) for v in box), digits=comb_cells(ink, box))
                   for i, box in enumerate((b for r in rows for b in sorted(r)), 1))
    return Template(name, (round(width * mm, 1), round(height * mm, 1)), fields, "")


def comb_cells(ink: np.ndarray, box: tuple[int, int, int, int]) -> int | None:
    """How many cells a printed box is divided into by upright lines running its
    whole height, evenly spaced (a comb); None for a plain box."""
    x, y, w, h = box
    inner = ink[y + h // 5 : y + h - h // 5, x + 3 : x + w - 3]  # its middle rows, its walls left out
    if inner.size == 0 or inner.shape[1] < 6:
        return None
    full = np.flatnonzero(inner.mean(axis=0) >= COMB_WALL)
    if full.size == 0:
        return None
    walls = [float(run.mean()) for run in np.split(full, np.flatnonzero(np.diff(full) > 1) + 1)]
    edges = [0.0, *walls, float(inner.shape[1])]
    gaps = np.diff(edges)
    if len(walls) < 2 or gaps.max() > COMB_EVEN * gaps.mean() or gaps.min() < gaps.mean() / COMB_EVEN:
        return None
    return len(walls) + 1


def draft_from_scan(scan: Scan, name: str, dpi: float | None = None) -> tuple[Template, bytes]:
    """:func:`draft_template` and its picture (PNG bytes: the scan, each field boxed and named)."""
    from .annotate import template_picture

    template = draft_template(scan, name, dpi)
    grey = grey_of(scan)
    return template, template_picture(grey, template, grey.shape[1] / template.size[0])
