"""Registering a page on a form's printed boxes, on A4 forms drawn here at 200 dpi.

A form is a title, printed labels, a rule, field boxes (one a comb of 8 cells)
and handwriting-like digits in some boxes, drawn with OpenCV; the page is then
shifted, scaled and turned, and optionally blurred, noised and JPEG'd. The
truth is the template's boxes through the same transform.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from digitd.imageio import pages
from digitd.register import Alignment, align, find_boxes, to_page

PAGE_MM = (210.0, 297.0)
SIZE = (1654, 2339)  # columns, rows: A4 at 200 dpi
PX = SIZE[0] / PAGE_MM[0]  # pixels per mm

FORM = {  # name -> (x, y, w, h) mm; "student_id" is the comb
    "student_id": (40.0, 60.0, 96.0, 12.0),
    "score": (40.0, 95.0, 30.0, 14.0),
    "room": (120.0, 95.0, 45.0, 14.0),
    "date": (40.0, 135.0, 60.0, 12.0),
    "notes": (25.0, 175.0, 160.0, 40.0),
    "signature": (120.0, 240.0, 65.0, 18.0),
}
COMB = "student_id"
CELLS = 8
OTHER_FORM = {
    "a": (20.0, 60.0, 50.0, 20.0),
    "b": (140.0, 70.0, 50.0, 10.0),
    "c": (60.0, 120.0, 20.0, 30.0),
    "d": (20.0, 200.0, 170.0, 25.0),
    "e": (100.0, 260.0, 40.0, 15.0),
}


def px(v: float) -> int:
    return round(v * PX)


def draw_form(fields: dict[str, tuple[float, float, float, float]], *, comb: str | None = COMB,
              handwriting: bool = True, paper: int = 255, crossing: bool = False,
              border: bool = False) -> np.ndarray:
    """An upright form (uint8, ink 20 on `paper`)."""
    page = np.full((SIZE[1], SIZE[0]), paper, np.uint8)
    ink = 20
    cv2.putText(page, "SAMPLE EXAM COVER SHEET", (px(20), px(25)), cv2.FONT_HERSHEY_SIMPLEX, 2.0, ink, 4)
    cv2.line(page, (px(20), px(32)), (px(190), px(32)), ink, 2)  # a rule under the title: no box
    cv2.putText(page, "Write one digit per box, in black ink.", (px(20), px(45)),
                cv2.FONT_HERSHEY_SIMPLEX, 0.9, ink, 2)
    rng = np.random.default_rng(7)
    for name, (x, y, w, h) in fields.items():
        cv2.rectangle(page, (px(x), px(y)), (px(x + w), px(y + h)), ink, 2)
        cv2.putText(page, name.replace("_", " ").upper(), (px(x), px(y) - 12),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.8, ink, 2)
        if name == comb:
            for k in range(1, CELLS):
                cx = px(x + w * k / CELLS)
                cv2.line(page, (cx, px(y)), (cx, px(y + h)), ink, 2)
        if not handwriting or name in ("date", "signature"):
            continue
        cells = CELLS if name == comb else 3
        for k in range(cells):
            digit = str(rng.integers(0, 10))
            ox = px(x + w * k / cells) + 12 + int(rng.integers(-4, 5))
            oy = px(y + h) - 16 + int(rng.integers(-6, 3))
            cv2.putText(page, digit, (ox, oy), cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, 2.0 if h < 20 else 3.0,
                        ink + 30, 5)
    # a scribble in the notes box: strokes, not a box
    pts = np.array([[px(35), px(190)], [px(60), px(182)], [px(80), px(200)], [px(110), px(185)],
                    [px(150), px(205)]], np.int32)
    cv2.polylines(page, [pts], False, ink + 40, 6)
    if crossing:  # digits written across box edges: a long "1" through the score box's floor, a "7" over room's wall
        x, y, w, h = fields["score"]
        cv2.line(page, (px(x + w * 0.8), px(y + 2)), (px(x + w * 0.75), px(y + h + 6)), ink + 30, 6)
        x, y, w, h = fields["room"]
        cv2.putText(page, "7", (px(x + w) - 40, px(y + h) - 10), cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, 3.0, ink + 30, 6)
        cv2.line(page, (px(x + 5), px(y - 3)), (px(x + 40), px(y + 1.5)), ink + 30, 5)  # a dash across its top
    if border:  # a printed frame around the whole form: a box, though not a field
        cv2.rectangle(page, (px(15), px(50)), (px(195), px(285)), ink, 3)
    return page


def draw_text_page() -> np.ndarray:
    page = np.full((SIZE[1], SIZE[0]), 255, np.uint8)
    cv2.putText(page, "MINUTES OF THE MEETING", (px(20), px(25)), cv2.FONT_HERSHEY_SIMPLEX, 2.0, 20, 4)
    words = "the quick brown fox jumps over the lazy dog 0123456789 LOREM IPSUM DOLOR".split()
    for k, (size, weight) in enumerate([(1.5, 4), (2.0, 5), (2.5, 6), (3.0, 8)]):  # bold headings
        cv2.putText(page, "COVER SHEET: HE BOX DOOR HELD", (px(20), px(255 + k * 12)), cv2.FONT_HERSHEY_SIMPLEX,
                    size, 20, weight)
    rng = np.random.default_rng(3)
    for row in range(38):
        line = " ".join(rng.choice(words, 6))
        cv2.putText(page, line, (px(20), px(45 + row * 5.5)), cv2.FONT_HERSHEY_SIMPLEX, 1.0, 20, 2)
    return page


def transform(dx: float, dy: float, scale: float, degrees: float) -> np.ndarray:
    """2 x 3: upright page pixels -> scanned page pixels (turned and scaled about the page's centre)."""
    m = cv2.getRotationMatrix2D((SIZE[0] / 2, SIZE[1] / 2), degrees, scale)
    m[:, 2] += (dx, dy)
    return m


def scan(page: np.ndarray, m: np.ndarray, *, blur: float = 0.0, noise: float = 0.0, jpeg: int = 0,
         edge: int = 255) -> np.ndarray:
    out = cv2.warpAffine(page, m, SIZE, flags=cv2.INTER_LINEAR, borderValue=edge)
    if blur:
        out = cv2.GaussianBlur(out, (0, 0), blur)
    if noise:
        out = np.clip(out + np.random.default_rng(1).normal(0, noise, out.shape), 0, 255).astype(np.uint8)
    if jpeg:
        ok, data = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, jpeg])
        assert ok
        out = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
    return out


def truth(m: np.ndarray, box_mm: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    """Where a template box lands on the scan: the box around its corners, drawn at whole pixels."""
    x, y, w, h = box_mm
    c = np.array([[px(x), px(y)], [px(x + w), px(y)], [px(x + w), px(y + h)], [px(x), px(y + h)]], np.float64)
    c = c @ m[:, :2].T + m[:, 2]
    x0, y0 = c.min(axis=0)
    x1, y1 = c.max(axis=0)
    return round(x0), round(y0), round(x1 - x0), round(y1 - y0)


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    return w * h / float(aw * ah + bw * bh - w * h)


def corner_error(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """The largest difference between two boxes' edges (left, top, right, bottom), in pixels."""
    return max(abs(a[0] - b[0]), abs(a[1] - b[1]), abs(a[0] + a[2] - b[0] - b[2]), abs(a[1] + a[3] - b[1] - b[3]))


def assert_boxes(found: list[tuple[int, int, int, int]], m: np.ndarray, fields=FORM) -> None:
    expected = [truth(m, b) for b in fields.values()]
    for name, t in zip(fields, expected):
        best = max((iou(t, f) for f in found), default=0.0)
        assert best >= 0.8, f"{name}: best IoU {best:.2f} with {t} among {found}"
    extra = [f for f in found if max(iou(t, f) for t in expected) < 0.5]
    assert extra == [], f"boxes that are not printed boxes: {extra}"
    assert len(found) == len(expected), found


CASES = [  # dx, dy, scale, degrees
    (0, 0, 1.0, 0.0),
    (40, -40, 1.0, 0.0),
    (-40, 25, 1.03, 0.0),
    (15, 30, 0.97, 0.0),
    (0, 0, 1.0, 3.0),
    (0, 0, 1.0, -3.0),
    (-30, 40, 1.03, 3.0),
    (40, 10, 0.97, -3.0),
    (25, -35, 1.02, 1.5),
    (-40, -40, 0.98, -2.0),
]
DEGRADE = [  # blur sigma, noise sigma, JPEG quality, edge (scanner bed), paper
    (0.0, 0.0, 0, 255, 255),
    (1.2, 6.0, 60, 90, 255),
    (0.8, 4.0, 40, 255, 200),
]


def case_id(c) -> str:
    return "dx{}_dy{}_s{}_r{}".format(*c)


@pytest.fixture(scope="module")
def form() -> np.ndarray:
    return draw_form(FORM)


@pytest.fixture(scope="module")
def grey_form() -> np.ndarray:
    return draw_form(FORM, paper=200)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_find_boxes_finds_each_printed_box_once(form, case):
    m = transform(*case)
    assert_boxes(find_boxes(scan(form, m)), m)


@pytest.mark.parametrize("degrade", DEGRADE[1:], ids=["blur-noise-jpeg-dark-bed", "grey-paper-jpeg"])
def test_find_boxes_survives_a_poor_scan(form, grey_form, degrade):
    blur, noise, jpeg, edge, paper = degrade
    m = transform(-30, 40, 1.03, 3.0)
    page = scan(grey_form if paper != 255 else form, m, blur=blur, noise=noise, jpeg=jpeg, edge=edge)
    assert_boxes(find_boxes(page), m)


def test_find_boxes_takes_float_planes(form):
    m = transform(10, 10, 1.0, 1.0)
    assert find_boxes(scan(form, m).astype(np.float32) / 255) == find_boxes(scan(form, m))


@pytest.mark.parametrize("case", [(0, 0, 1.0, 0.0), (20, 20, 1.0, 2.0), (-20, 10, 0.97, -3.0)], ids=case_id)
def test_find_boxes_finds_none_on_text_or_a_blank_page(case):
    text = draw_text_page()
    assert find_boxes(scan(text, transform(*case), blur=1.0, jpeg=50, edge=60)) == []
    assert find_boxes(scan(np.full_like(text, 255), transform(*case), noise=5.0, jpeg=50, edge=60)) == []


def test_many_alike_boxes_align_to_their_own_places():
    """A grid of 48 equal boxes: a hypothesis one cell off fits all but a row, and loses. The scribble
    runs across two of them (joining them into one piece of lines), and both are still found."""
    grid = {f"g{r}{c}": (20.0 + c * 30, 60.0 + r * 25, 22.0, 12.0) for r in range(8) for c in range(6)}
    m = transform(-40, 40, 0.97, -3.0)
    page = scan(draw_form(grid, comb=None), m, blur=1.0, jpeg=50)
    assert_boxes(find_boxes(page), m, grid)
    a = align(page, list(grid.values()), PAGE_MM)
    assert a is not None and a.matched == len(grid)
    assert max(corner_error(to_page(a, b), truth(m, b)) for b in grid.values()) <= 4


@pytest.mark.parametrize("degrade", DEGRADE, ids=["clean", "blur-noise-jpeg-dark-bed", "grey-paper-jpeg"])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_align_puts_every_field_within_4_px(form, grey_form, case, degrade):
    blur, noise, jpeg, edge, paper = degrade
    m = transform(*case)
    page = scan(grey_form if paper != 255 else form, m, blur=blur, noise=noise, jpeg=jpeg, edge=edge)
    a = align(page, list(FORM.values()), PAGE_MM)
    assert isinstance(a, Alignment)
    errors = {name: corner_error(to_page(a, box), truth(m, box)) for name, box in FORM.items()}
    assert max(errors.values()) <= 4, errors
    assert a.matched == len(FORM)
    assert a.quality > 0.9
    assert a.residual_px < 2


def test_digits_written_across_box_edges_leave_the_boxes_in_place():
    m = transform(25, -35, 1.02, 1.5)
    assert_boxes(find_boxes(scan(draw_form(FORM, crossing=True), m)), m)


def test_a_printed_frame_around_the_fields_is_a_box_and_does_not_disturb_the_alignment():
    m = transform(20, -30, 1.02, 2.0)
    page = scan(draw_form(FORM, border=True), m, blur=0.8, jpeg=60)
    found = find_boxes(page)
    assert len(found) == len(FORM) + 1
    a = align(page, list(FORM.values()), PAGE_MM)
    assert a is not None and a.matched == len(FORM)
    assert max(corner_error(to_page(a, b), truth(m, b)) for b in FORM.values()) <= 4


def test_the_turned_case_is_far_off_without_alignment():
    """What the alignment saves: assuming the page is upright at its nominal scale misses by far."""
    m = transform(-30, 40, 1.03, 3.0)
    naive = np.array([[PX, 0, 0], [0, PX, 0]])
    errors = [corner_error(to_page(Alignment(naive, 1.0, 0, 0.0), box), truth(m, box)) for box in FORM.values()]
    assert max(errors) > 40


def test_align_works_on_a_page_scanned_at_another_resolution(form):
    """A page drawn at 200 dpi, scanned at 150: the scale comes from the page's width."""
    m = transform(20, -20, 1.0, 2.0)
    page = cv2.resize(scan(form, m), (round(SIZE[0] * 0.75), round(SIZE[1] * 0.75)), interpolation=cv2.INTER_AREA)
    a = align(page, list(FORM.values()), PAGE_MM)
    assert a is not None
    for box in FORM.values():
        t = tuple(round(v * 0.75) for v in truth(m, box))
        assert corner_error(to_page(a, box), t) <= 4


def test_a_page_that_is_not_the_form_does_not_align(form):
    m = transform(-30, 40, 1.03, 3.0)
    good = align(scan(form, m), list(FORM.values()), PAGE_MM)
    assert good is not None and good.quality > 0.75
    other = scan(draw_form(OTHER_FORM, comb=None), m)
    assert len(find_boxes(other)) == len(OTHER_FORM)  # it has boxes, just not these
    assert align(other, list(FORM.values()), PAGE_MM) is None
    assert align(scan(form, m), list(OTHER_FORM.values()), PAGE_MM) is None
    assert align(np.full((SIZE[1], SIZE[0]), 255, np.uint8), list(FORM.values()), PAGE_MM) is None
    assert align(draw_text_page(), list(FORM.values()), PAGE_MM) is None


def test_a_form_missing_some_of_its_boxes_scores_lower(form):
    """Quality is the share of the template's boxes found where they should be."""
    m = transform(10, 10, 1.0, 1.0)
    half = dict(list(FORM.items())[:3])
    partial = draw_form(half)
    full = align(scan(form, m), list(FORM.values()), PAGE_MM)
    part = align(scan(partial, m), list(FORM.values()), PAGE_MM)
    assert full is not None and full.quality > 0.75
    assert part is None or part.quality < 0.55
    wanted = align(scan(partial, m), list(half.values()), PAGE_MM)
    assert wanted is not None and wanted.matched == 3
    assert align(scan(draw_form(dict(list(FORM.items())[:2])), m), list(FORM.values()), PAGE_MM) is None


def test_to_page_is_the_box_around_the_turned_corners():
    m = np.array([[PX * math.cos(0.05), -PX * math.sin(0.05), 10.0], [PX * math.sin(0.05), PX * math.cos(0.05), 5.0]])
    x, y, w, h = to_page(Alignment(m, 1.0, 2, 0.0), (10.0, 20.0, 100.0, 10.0))
    corners = np.array([[10, 20], [110, 20], [110, 30], [10, 30]], float) @ m[:, :2].T + m[:, 2]
    assert (x, y) == tuple(np.rint(corners.min(axis=0)).astype(int))
    assert (x + w, y + h) == tuple(np.rint(corners.max(axis=0)).astype(int))
    assert h > PX * 10 + 30  # the turn makes a wide box taller


def test_align_takes_a_decoded_scan(form):
    """From the file's bytes as the service reads them: a grey PNG (float plane) and a tinted colour JPEG."""
    m = transform(30, -20, 1.02, -2.0)
    page = scan(form, m)
    ok, png = cv2.imencode(".png", page)
    tinted = cv2.merge([page, np.clip(page.astype(int) - 25, 0, 255).astype(np.uint8), page])  # bluish paper
    ok2, jpg = cv2.imencode(".jpg", tinted, [cv2.IMWRITE_JPEG_QUALITY, 70])
    assert ok and ok2
    for data in (png.tobytes(), jpg.tobytes()):
        (decoded,) = list(pages(data, 50_000_000))
        plane = decoded.scan.gray if decoded.scan.gray is not None else decoded.scan.image
        a = align(plane, list(FORM.values()), PAGE_MM)
        assert a is not None
        assert max(corner_error(to_page(a, b), truth(m, b)) for b in FORM.values()) <= 4


def test_frames_found_once_align_two_templates_as_align_does(form):
    from digitd.register import align_frames, find_frames, to_uint8

    page = scan(form, transform(-30, 20, 0.97, -2.0))
    frames = find_frames(to_uint8(page))
    for fields in (FORM, OTHER_FORM):
        once = align_frames(frames, page.shape[1], list(fields.values()), PAGE_MM)
        alone = align(page, list(fields.values()), PAGE_MM)
        assert (once is None) == (alone is None)
        if once is not None:
            assert np.array_equal(once.matrix, alone.matrix)
            assert (once.quality, once.matched, once.residual_px) == (alone.quality, alone.matched, alone.residual_px)
    assert align_frames(frames, page.shape[1], list(FORM.values()), PAGE_MM).matched == len(FORM)
    assert align_frames(frames, page.shape[1], list(OTHER_FORM.values()), PAGE_MM) is None
    assert align_frames(frames[:1], page.shape[1], list(FORM.values()), PAGE_MM) is None
