"""Reading a form's fields, on A4 forms drawn here at 200 dpi and filled with real MNIST handwriting.

Two forms: an exam cover sheet (a comb of 8 cells and four boxes) and a lab
sheet. Each page is shifted, scaled and turned before it is read with the
shipped model; the digits are MNIST test digits the model reads right alone.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from digitd.formread import EMPTY_CELL, clear_edge_lines, find_fields, match_form, read_field, read_form
from digitd.forms import Field, load_template
from digitd.records import Found, Mark, Reading, Scan
from digitd.recognize import Recognizer

SIZE = (1654, 2339)  # columns, rows: A4 at 200 dpi
PX = 200 / 25.4  # pixels per mm

EXAM = {  # name -> (box in mm, extra template keys)
    "student_id": ((40.0, 60.0, 96.0, 12.0), {"digits": 8}),
    "score": ((40.0, 95.0, 30.0, 14.0), {"pattern": r"\d{1,3}"}),
    "room": ((120.0, 95.0, 45.0, 14.0), {}),
    "year": ((40.0, 135.0, 50.0, 14.0), {"pattern": r"20\d\d"}),
    "code": ((120.0, 135.0, 50.0, 14.0), {}),
}
LAB = {
    "sample": ((20.0, 50.0, 60.0, 20.0), {}),
    "batch": ((120.0, 60.0, 70.0, 12.0), {}),
    "volume": ((60.0, 120.0, 25.0, 30.0), {}),
    "shelf": ((30.0, 200.0, 150.0, 25.0), {}),
}
# the exam sheet as an older template had it: the code box elsewhere (the page fits it less well)
OLD_EXAM = {**EXAM, "code": ((120.0, 175.0, 50.0, 14.0), {})}
COMB = "student_id"
CELLS = 8
# dx, dy (pixels), scale, degrees: upright page -> scan
MOVES = [(25, -30, 1.03, 2.0), (-30, 20, 0.97, -2.0)]


def px(v: float) -> int:
    return round(v * PX)


def write_template(path, name: str, fields: dict) -> None:
    lines = [f"form: {name}", "fields:"]
    for field, ((x, y, w, h), extra) in fields.items():
        lines.append(f"  - name: {field}")
        lines.append(f"    box_mm: [{x}, {y}, {w}, {h}]")
        for key, value in extra.items():
            lines.append(f"    {key}: '{value}'" if key == "pattern" else f"    {key}: {value}")
    path.write_text("\n".join(lines) + "\n")


def draw_form(title: str, fields: dict) -> np.ndarray:
    """An empty form: a title, each field's printed box (a comb drawn as adjacent cells) and its label."""
    page = np.full((SIZE[1], SIZE[0]), 255, np.uint8)
    cv2.putText(page, title, (px(20), px(25)), cv2.FONT_HERSHEY_SIMPLEX, 2.0, 20, 4)
    for name, ((x, y, w, h), extra) in fields.items():
        cells = extra.get("digits", 1)
        for k in range(cells):
            x0 = x + w * k / cells
            cv2.rectangle(page, (px(x0), px(y)), (px(x0 + w / cells), px(y + h)), 20, 2)
        cv2.putText(page, name.replace("_", " ").upper(), (px(x), px(y) - 12), cv2.FONT_HERSHEY_SIMPLEX,
                    0.8, 20, 2)
    return page


def glyph(image: np.ndarray, height: int) -> np.ndarray:
    """An MNIST digit's ink (0-255, white on black) cut to its ink and scaled to ``height`` pixels."""
    ys, xs = np.nonzero(image > 30)
    ink = image[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    width = max(1, round(ink.shape[1] * height / ink.shape[0]))
    return cv2.resize(ink, (width, height), interpolation=cv2.INTER_CUBIC)


def write(page: np.ndarray, ink: np.ndarray, x: int, y: int) -> None:
    """Dark handwriting on the page, its top-left at (x, y)."""
    h, w = ink.shape
    region = page[y:y + h, x:x + w]
    np.minimum(region, 255 - ink, out=region)


def fill(page: np.ndarray, box: tuple[float, float, float, float], digits: list[np.ndarray], *,
         cells: int = 0, high: bool = False) -> None:
    """Handwriting in a box: one digit a cell (None leaves a cell empty), or left to right from its
    left side, centred on the box's height (or ``high``: its top 1.5 mm under the box's top)."""
    x, y, w, h = box
    height = px(h * 0.62)
    top = px(y + 1.5) if high else px(y + h / 2) - height // 2
    if cells:
        for k, digit in enumerate(digits):
            if digit is None:
                continue
            ink = glyph(digit, height)
            centre = px(x + w * (k + 0.5) / cells)
            write(page, ink, centre - ink.shape[1] // 2, top)
        return
    left = px(x + 4)
    for digit in digits:
        ink = glyph(digit, height)
        write(page, ink, left, top)
        left += ink.shape[1] + px(2)


def scan_of(page: np.ndarray, move: tuple[float, float, float, float], *, poor: bool = False) -> Scan:
    """The page as scanned: moved; ``poor``: blurred, noised and saved as JPEG at quality 50."""
    dx, dy, scale, degrees = move
    m = cv2.getRotationMatrix2D((SIZE[0] / 2, SIZE[1] / 2), degrees, scale)
    m[:, 2] += (dx, dy)
    out = cv2.warpAffine(page, m, SIZE, flags=cv2.INTER_LINEAR, borderValue=255)
    if poor:
        out = cv2.GaussianBlur(out, (0, 0), 1.0)
        out = np.clip(out + np.random.default_rng(1).normal(0, 6.0, out.shape), 0, 255).astype(np.uint8)
        ok, data = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, 50])
        assert ok
        out = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
    return Scan.of_gray(out.astype(np.float32) / 255.0, "uint8 gray")


@pytest.fixture(scope="module")
def recognizer(shipped_model) -> Recognizer:
    return Recognizer(shipped_model)


@pytest.fixture(scope="module")
def handwriting(mnist_path, recognizer) -> dict[int, list[np.ndarray]]:
    """MNIST test digits by label, only those the shipped model reads right alone (confidence >= 0.95)."""
    with np.load(mnist_path) as data:
        images, labels = data["x_test"][:400], data["y_test"][:400]
    marks = [Mark(box=(0, 0, 28, 28), pixels=im.astype(np.float32) / 255.0) for im in images]
    readings = recognizer.classify([([m], None) for m in marks])
    out: dict[int, list[np.ndarray]] = {d: [] for d in range(10)}
    for image, label, reading in zip(images, labels, readings):
        if reading.number == str(int(label)) and reading.confidence >= 0.95:
            out[int(label)].append(image)
    assert all(len(v) >= 3 for v in out.values()), {d: len(v) for d, v in out.items()}
    return out


def digits_of(text: str, handwriting: dict[int, list[np.ndarray]]) -> list[np.ndarray | None]:
    """The handwriting for a string of digits (a space: an empty cell); a digit's writings taken in turn."""
    used: dict[int, int] = {}
    out = []
    for ch in text:
        if ch == " ":
            out.append(None)
            continue
        d = int(ch)
        k = used.get(d, 0)
        used[d] = k + 1
        out.append(handwriting[d][k % len(handwriting[d])])
    return out


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    folder = tmp_path_factory.mktemp("forms")
    write_template(folder / "exam.yaml", "exam", EXAM)
    write_template(folder / "lab.yaml", "lab", LAB)
    return load_template(folder / "exam.yaml"), load_template(folder / "lab.yaml")


@pytest.fixture(scope="module")
def old_exam(tmp_path_factory):
    path = tmp_path_factory.mktemp("old") / "exam-old.yaml"
    write_template(path, "exam-old", OLD_EXAM)
    return load_template(path)


def exam_page(handwriting, student_id: str) -> np.ndarray:
    """The exam sheet filled in: student_id in the comb, score 87, room left empty (but a speck),
    year 1995 (breaks its pattern 20dd), code 305 written high in its box."""
    page = draw_form("EXAM COVER SHEET", EXAM)
    fill(page, EXAM["student_id"][0], digits_of(student_id, handwriting), cells=CELLS)
    fill(page, EXAM["score"][0], digits_of("87", handwriting))
    fill(page, EXAM["year"][0], digits_of("1995", handwriting))
    fill(page, EXAM["code"][0], digits_of("305", handwriting), high=True)
    x, y, w, h = EXAM["room"][0]
    cv2.circle(page, (px(x + w / 2), px(y + h / 2)), 3, 40, -1)  # a speck of dust in the empty box
    return page


@pytest.mark.parametrize("move", MOVES, ids=["right-up-larger-left-turn", "left-down-smaller-right-turn"])
def test_a_filled_exam_sheet_is_read_field_by_field(templates, handwriting, recognizer, move):
    scan = scan_of(exam_page(handwriting, "31415926"), move)
    form = read_form(scan, templates, recognizer)
    assert form is not None
    assert form.form == "exam"
    assert form.quality > 0.8
    assert list(form.fields) == list(EXAM)
    got = {name: (f.number, f.status) for name, f in form.fields.items()}
    assert got == {
        "student_id": ("31415926", "ok"),
        "score": ("87", "ok"),
        "room": (None, "blank"),
        "year": ("1995", "uncertain"),
        "code": ("305", "ok"),
    }
    assert form.fields["year"].doubts == (r"does not match pattern 20\d\d",)
    assert form.fields["room"].doubts == () and form.fields["room"].confidence is None
    for name in ("student_id", "score", "code"):
        assert form.fields[name].confidence >= recognizer.confidence_threshold
        assert form.fields[name].doubts == ()


def test_a_poor_scan_turned_3_degrees_is_read_alike(templates, handwriting, recognizer):
    scan = scan_of(exam_page(handwriting, "314 5926"), (-40, 40, 0.97, -3.0), poor=True)
    form = read_form(scan, templates, recognizer)
    assert form is not None and form.form == "exam"
    got = {name: (f.number, f.status) for name, f in form.fields.items()}
    assert got == {
        "student_id": (f"314{EMPTY_CELL}5926", "uncertain"),
        "score": ("87", "ok"),
        "room": (None, "blank"),
        "year": ("1995", "uncertain"),
        "code": ("305", "ok"),
    }


def test_the_marks_lie_inside_their_field_on_the_page(templates, handwriting):
    scan = scan_of(exam_page(handwriting, "31415926"), MOVES[0])
    matched = match_form(scan, templates)
    assert matched is not None
    template, alignment = matched
    found = find_fields(scan, template, alignment)
    assert [len(f.marks) for f in found.values()] == [8, 2, 0, 4, 3]
    for f in found.values():
        x, y, w, h = f.box
        for mark in f.marks:
            mx, my, mw, mh = mark.box
            assert x <= mx and y <= my and mx + mw <= x + w and my + mh <= y + h, (f.box, mark.box)
    xs = [m.box[0] for m in found["student_id"].marks]
    assert xs == sorted(xs)


def test_a_comb_with_an_empty_cell_is_uncertain_and_keeps_the_places(templates, handwriting, recognizer):
    scan = scan_of(exam_page(handwriting, "314 5926"), MOVES[1])
    form = read_form(scan, templates, recognizer)
    assert form is not None and form.form == "exam"
    comb = form.fields["student_id"]
    assert (comb.number, comb.status) == (f"314{EMPTY_CELL}5926", "uncertain")
    assert comb.doubts == ("expected 8 digits, read 7",)
    assert (form.fields["score"].number, form.fields["score"].status) == ("87", "ok")


def test_the_lab_sheet_is_told_from_the_exam_sheet(templates, handwriting, recognizer):
    page = draw_form("LAB SAMPLE SHEET", LAB)
    fill(page, LAB["sample"][0], digits_of("4021", handwriting))
    fill(page, LAB["volume"][0], digits_of("7", handwriting))
    scan = scan_of(page, MOVES[0])
    exam, lab = templates
    assert read_form(scan, [exam], recognizer) is None
    form = read_form(scan, [exam, lab], recognizer)
    assert form is not None and form.form == "lab"
    got = {name: (f.number, f.status) for name, f in form.fields.items()}
    assert got == {"sample": ("4021", "ok"), "batch": (None, "blank"), "volume": ("7", "ok"),
                   "shelf": (None, "blank")}


def test_a_page_with_no_form_matches_no_template(templates, recognizer):
    page = np.full((SIZE[1], SIZE[0]), 255, np.uint8)
    for row in range(30):
        cv2.putText(page, "minutes of the meeting 0123456789", (px(20), px(30 + row * 8)),
                    cv2.FONT_HERSHEY_SIMPLEX, 1.0, 20, 2)
    assert read_form(scan_of(page, MOVES[0]), templates, recognizer) is None


def test_of_two_templates_that_fit_the_page_the_better_wins(templates, old_exam, handwriting):
    scan = scan_of(exam_page(handwriting, "31415926"), MOVES[1])
    exam, lab = templates
    older = match_form(scan, [old_exam])
    assert older is not None  # four of its five boxes are on the page
    matched = match_form(scan, [old_exam, lab, exam])
    assert matched is not None
    template, alignment = matched
    assert template.name == "exam"
    assert alignment.quality > older[1].quality
    assert alignment.matched == 5 and older[1].matched == 4


BOX = (10, 20, 300, 100)


def reading(number: str | None, status: str, confidence: float | None) -> Reading:
    return Reading(status=status, number=number, digits=(), confidence=confidence)


def test_a_low_confidence_reading_stays_uncertain_though_its_value_fits():
    field = Field("score", (40.0, 95.0, 30.0, 14.0), pattern=r"\d{1,3}")
    got = read_field(field, Found(marks=(), box=BOX), reading("87", "uncertain", 0.41))
    assert (got.number, got.status, got.confidence, got.box, got.doubts) == ("87", "uncertain", 0.41, BOX, ())
    ok = read_field(field, Found(marks=(), box=BOX), reading("87", "ok", 0.99))
    assert (ok.status, ok.doubts) == ("ok", ())


def test_an_empty_required_field_is_blank_with_the_reason():
    field = Field("student_id", (40.0, 60.0, 96.0, 12.0), digits=8, required=True)
    got = read_field(field, Found(marks=(), box=BOX), reading(None, "blank", None))
    assert (got.number, got.status, got.doubts) == (None, "blank", ("required field is empty",))


def test_a_printed_line_along_the_crops_edge_is_cleared_and_a_digit_touching_it_kept():
    mask = np.zeros((80, 200), np.uint8)
    mask[0:3, :] = 1  # what is left of the box's top line
    mask[:, 197:] = 1  # and of its right side
    cv2.circle(mask, (60, 45), 25, 1, 6)  # a 0 ...
    mask[40:80, 120:126] = 1  # ... and a 1 running down to the crop's floor
    out = clear_edge_lines(mask, 4)
    assert out[0:3, 30:190].sum() == 0 and out[:, 197:].sum() == 0
    assert out[40:80, 120:126].all()
    assert out[45, 35:86].sum() > 0
    bits = np.zeros((80, 200), np.uint8)
    bits[0:3, 20:60] = 1  # the end of a turned top line
    bits[30:50, 0:3] = 1  # a short bit of the left side
    bits[5:80, 189:192] = 1  # a thin 1 near the right side, down to the floor
    bits[2:30, 197:200] = 1  # a bit of the right side beside it
    out = clear_edge_lines(bits, 4)
    assert out[0:3].sum() == 0 and out[:, 0:3].sum() == 0 and out[:, 197:].sum() == 0
    assert out[5:80, 189:192].all()


def test_a_comb_cells_ink_is_one_digit_though_its_top_bar_stands_apart():
    from digitd.formread import cell_mark
    from digitd.segment import ink_map, ink_mask_and_ratio

    cell = np.full((100, 80), 255, np.uint8)
    cv2.line(cell, (22, 14), (60, 14), 0, 5)  # a 5's top bar, written apart from its body
    cv2.line(cell, (22, 22), (22, 50), 0, 5)
    cv2.ellipse(cell, (38, 66), (18, 18), 0, -120, 150, 0, 5)
    cv2.circle(cell, (70, 90), 1, 0, -1)  # a speck
    cell[30:60, 0:4] = 0  # a neighbour's stroke over the cell's side, beside no ink of its own
    ink = ink_map(cell.astype(np.float32)[..., None].repeat(3, axis=2) / 255.0)
    mask, ratio = ink_mask_and_ratio(ink)
    mark = cell_mark(mask, ratio, ink)
    assert mark.box == (19, 11, 45, 77)  # the bar to the bowl's foot; not the speck, not the neighbour's stroke
    assert cell_mark(np.zeros_like(mask), ratio, ink) is None


class Unsteady:
    """A model that reads every slightly changed copy of a digit as a 1 (its own
    pixels, a sure 7, are read in the reading given)."""

    confidence_threshold = 0.8

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        out = np.zeros((len(pixels), 11), np.float32)
        out[:, 1] = 1.0
        return out


def test_a_reading_that_does_not_hold_when_its_digit_is_slightly_changed_is_uncertain():
    from digitd.formread import steady_readings, variants
    from digitd.records import DigitReading

    pixels = np.zeros((28, 28), np.float32)
    pixels[4:24, 12:16] = 1.0
    assert variants(pixels).shape == (8, 28, 28)
    marks = (Mark(box=(0, 0, 9, 9), pixels=pixels),) * 2
    digits = tuple(DigitReading(digit=7, confidence=1.0, box=(0, 0, 9, 9),
                                probabilities=(0.0,) * 7 + (1.0, 0.0, 0.0), pixels=pixels) for _ in marks)
    sure = Reading(status="ok", number="77", digits=digits, confidence=1.0)
    blank = reading(None, "blank", None)
    got = steady_readings(Unsteady(), [Found(marks=(), box=BOX), Found(marks=marks, box=BOX)], [blank, sure])
    assert got[0] is blank
    assert (got[1].number, got[1].status, got[1].doubts) == ("77", "uncertain", ("the 7 in place 1 may be a 1",
                                                                              "the 7 in place 2 may be a 1"))


def test_steady_readings_take_each_digits_own_probabilities_from_its_reading(recognizer):
    """The shipped model reads an image the same in any batch, so a digit's own
    probabilities come from its reading: the same verdicts, bit for bit, as reading
    it again with its variants."""
    from digitd.formread import steady_readings, variants

    rng = np.random.default_rng(8)
    found, readings = [], []
    for n in (1, 3, 2, 5):
        marks = []
        for _ in range(n):
            pixels = np.zeros((28, 28), np.float32)
            x, y = (int(v) for v in rng.integers(6, 16, 2))
            pixels[y : y + 10, x : x + 3] = 1.0  # a stroke down, a bar across somewhere
            pixels[y : y + 2, max(0, x - 5) : x + 5] = rng.random()
            marks.append(Mark(box=(0, 0, 9, 9), pixels=pixels))
        found.append(Found(marks=tuple(marks), box=BOX))
        readings.append(recognizer.classify([(marks, "dark_on_light")])[0])
    got = steady_readings(recognizer, found, readings)
    every = [m for f, r in zip(found, readings) if r.number is not None and r.digits for m in f.marks]
    stacked = np.concatenate([np.concatenate([m.pixels[None], variants(m.pixels)]) for m in every])
    mean = recognizer.probabilities(stacked).reshape(len(every), 9, -1).mean(axis=1)
    k = 0
    for f, r, g in zip(found, readings, got):
        if r.number is None or not r.digits:
            assert g == r
            continue
        doubts = [i for i, d in enumerate(r.digits) if int(mean[k + i, :10].argmax()) != d.digit
                  or mean[k + i, d.digit] < recognizer.confidence_threshold]
        k += len(f.marks)
        assert len(g.doubts) - len(r.doubts) == len(doubts)
