"""The page reader on pages drawn here: real-dev digits on a white A4 page at 200 dpi.

Handwriting is real (digits from ``../shared/data/real-dev``, their ink taken
from the file and pasted at a handwritten size with jitter); printed text,
boxes, combs and rules are drawn with OpenCV. Each test asserts where the
numbers are, how many digits each has, and what is left out.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
from digitd.imageio import decode, read_bytes
from digitd.page import estimate_skew, find_numbers, is_page
from digitd.records import Scan
from digitd.segment import find_digits_scan, ink_map, ink_mask_and_ratio, pieces

A4 = (2339, 1654)  # rows, columns: A4 at 200 dpi
REAL_DEV = [Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "real-dev",
            Path("/work/shared/data/real-dev")]


def real_dev() -> Path:
    for p in REAL_DEV:
        if (p / "labels.csv").is_file():
            return p
    pytest.skip("real-dev digits not found; looked at: " + ", ".join(str(p) for p in REAL_DEV))


def labelled_digits() -> dict[str, list[Path]]:
    """digit -> real-dev files of it (not ambiguous)."""
    root = real_dev()
    out: dict[str, list[Path]] = {}
    with open(root / "labels.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["ambiguous"] == "0":
                out.setdefault(row["label"], []).append(root / row["file"])
    return out


_INK: dict[Path, np.ndarray] = {}


def digit_ink(path: Path) -> np.ndarray:
    """A real-dev digit's ink, 0-1, cropped to it (its paper and shadows left out)."""
    if path not in _INK:
        scan = decode(read_bytes(path, 1 << 28), 10**9)
        ink = ink_map(scan.image, scan.gray)
        mask, ratio = ink_mask_and_ratio(ink)
        labels, kept = pieces(mask)
        keep = np.isin(labels, [p.label for p in kept]).astype(np.uint8)
        alpha = np.minimum(ratio, 1.0) * cv2.dilate(keep, np.ones((3, 3), np.uint8))
        x, y, w, h = cv2.boundingRect((alpha > 0.2).astype(np.uint8))
        _INK[path] = alpha[y : y + h, x : x + w].astype(np.float32)
    return _INK[path]


class Page:
    """A white A4 page at 200 dpi being drawn on; ``truth`` holds the handwritten numbers."""

    def __init__(self, seed: int = 0, shape: tuple[int, int] = A4):
        self.rng = np.random.default_rng(seed)
        self.img = np.full(shape, 245, np.uint8)
        self.truth: list[tuple[str, tuple[int, int, int, int]]] = []
        self.pool = labelled_digits()

    def paste(self, alpha: np.ndarray, x: int, y: int, h: int) -> tuple[int, int, int, int]:
        w = max(2, int(round(alpha.shape[1] * h / alpha.shape[0])))
        if alpha.shape[1] < 0.25 * alpha.shape[0]:  # a bare stroke '1': keep a pen's width
            w = max(w, h // 10)
        a = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_AREA)
        if 2 * a.sum() / max(1.0, cv2.arcLength(max(cv2.findContours((a > 0.5).astype(np.uint8), cv2.RETR_LIST,
                cv2.CHAIN_APPROX_NONE)[0], key=len, default=np.zeros((1, 1, 2), np.int32)), True)) < 3:
            a = cv2.dilate(a, np.ones((3, 3), np.uint8))  # a pen at 200 dpi is 3 pixels wide at least
        region = self.img[y : y + h, x : x + w]
        region[:] = np.round(region * (1 - a) + 35.0 * a).astype(np.uint8)
        return x, y, w, h

    def number(self, text: str, x: int, y: int, height: int = 70, gap: float = 0.25) -> tuple[int, int, int, int]:
        """Handwritten digits of ``text`` from (x, y); other characters are drawn as
        separators ('.', ',', '-', '/'). Returns the box of the digits."""
        boxes = []
        for ch in text:
            if ch.isdigit():
                files = self.pool[ch]
                alpha = digit_ink(files[int(self.rng.integers(len(files)))])
                h = int(height * self.rng.uniform(0.9, 1.1))
                dy = int(height * self.rng.uniform(-0.08, 0.08))
                boxes.append(self.paste(alpha, x, y + dy + (height - h), h))
                x = boxes[-1][0] + boxes[-1][2] + int(height * gap * self.rng.uniform(0.7, 1.3))
            else:
                x = self.separator(ch, x, y, height)
        x0 = min(b[0] for b in boxes)
        y0 = min(b[1] for b in boxes)
        box = (x0, y0, max(b[0] + b[2] for b in boxes) - x0, max(b[1] + b[3] for b in boxes) - y0)
        self.truth.append(("".join(c for c in text if c.isdigit()), box))
        return box

    def separator(self, ch: str, x: int, y: int, height: int) -> int:
        pen = max(3, height // 14)
        if ch == "/":
            cv2.line(self.img, (x, y + height), (x + height // 2, y - height // 10), 35, pen, cv2.LINE_AA)
            return x + height // 2 + height // 5
        if ch == "-":
            cv2.line(self.img, (x, y + height // 2), (x + height // 3, y + height // 2), 35, pen, cv2.LINE_AA)
            return x + height // 3 + height // 5
        if ch in ".,":
            cv2.circle(self.img, (x + pen, y + height - pen), pen, 35, -1, cv2.LINE_AA)
            if ch == ",":
                cv2.line(self.img, (x + pen, y + height - pen), (x, y + height + pen * 3), 35, pen // 2 + 1,
                         cv2.LINE_AA)
            return x + 2 * pen + height // 5
        raise ValueError(ch)

    def text(self, s: str, x: int, y: int, scale: float = 1.0, font: int = cv2.FONT_HERSHEY_SIMPLEX,
             thickness: int = 2) -> None:
        cv2.putText(self.img, s, (x, y), font, scale, 20, thickness, cv2.LINE_AA)

    def scan(self) -> Scan:
        noisy = self.img.astype(np.float32) + self.rng.normal(0, 3, self.img.shape).astype(np.float32)
        return Scan.of_gray(np.clip(noisy, 0, 255).astype(np.uint8).astype(np.float32) / 255.0, "uint8 gray")


def inside(box, truth, slack: int = 12) -> bool:
    """box covers the true box (within slack pixels each side) and no more."""
    bx, by, bw, bh = box
    tx, ty, tw, th = truth
    return (abs(bx - tx) <= slack and abs(by - ty) <= slack
            and abs(bx + bw - tx - tw) <= slack and abs(by + bh - ty - th) <= slack)


WORDS = ("name", "candidate", "signature", "office", "total", "amount", "please", "write", "number", "clearly",
         "form", "date", "reference", "account", "score", "the", "of", "in", "this", "box", "2026", "page", "No.")
FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_TRIPLEX,
         cv2.FONT_HERSHEY_PLAIN)


def field_number(rng: np.random.Generator) -> str:
    kind = int(rng.integers(6))
    digits = lambda n: "".join(str(int(d)) for d in rng.integers(0, 10, n))  # noqa: E731
    if kind == 0:
        return f"{int(rng.integers(1, 29)):02d}/{int(rng.integers(1, 13)):02d}/2026"
    if kind == 1:
        return digits(int(rng.integers(1, 3))) + "." + digits(2)
    return digits(int(rng.integers(1, 7)))


def varied_page(seed: int, heights: tuple[int, int] = (55, 95)) -> Page:
    """A form: a printed title and text, labelled fields holding handwritten numbers
    (plain, in a box, on an underline, in comb boxes), some with separators."""
    page = Page(seed)
    rng = page.rng
    font = FONTS[seed % len(FONTS)]
    page.text(" ".join(rng.choice(WORDS, 3)).upper(), 150, 180, 1.4, font, 2)
    y = 300
    for _ in range(int(rng.integers(1, 4))):
        page.text(" ".join(rng.choice(WORDS, 8)), 150, y, 0.9, font, 2)
        y += 60
    y += 120
    while y < A4[0] - 250:
        label = str(rng.choice(WORDS)).capitalize() + ":"
        page.text(label, 150, y, 1.0, font, 2)
        height = int(rng.integers(*heights))
        style = int(rng.integers(4))
        text = field_number(rng)
        if style == 3:  # comb: one box per digit
            text = text.replace("/", "").replace(".", "")
            cell = int(height * 1.5)
            for i in range(len(text)):
                cv2.rectangle(page.img, (500 + i * cell, y - height - 10), (500 + (i + 1) * cell, y + 25), 20, 2)
            for i, ch in enumerate(text):
                page.number(ch, 500 + i * cell + int(cell * 0.15), y - height, int(height * 0.85))
            boxes = [b for _, b in page.truth[-len(text):]]
            del page.truth[-len(text):]
            x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
            x1, y1 = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
            page.truth.append((text, (x0, y0, x1 - x0, y1 - y0)))
            box = page.truth[-1][1]
        else:
            box = page.number(text, 500, y - height, height)
            if style == 1:
                cv2.rectangle(page.img, (470, y - height - 30), (box[0] + box[2] + 40, y + 30), 20, 2)
            elif style == 2:
                cv2.line(page.img, (470, y + 22), (box[0] + box[2] + 60, y + 22), 20, 2)
        if box[0] + box[2] < 1000 and rng.random() < 0.5:  # a second number on the line, far right
            page.number(str(int(rng.integers(1, 10**int(rng.integers(1, 4))))), min(1250, A4[1] - 5 * height),
                        y - height, height)
        y += int(rng.integers(170, 260))
    return page


def matched(found, truth) -> tuple[int, int, int]:
    """(numbers found at a true number's place with its count of digits, missed, extra)."""
    left = list(found)
    hits = 0
    for text, (tx, ty, tw, th) in truth:
        for f in left:
            cx, cy = f.box[0] + f.box[2] / 2, f.box[1] + f.box[3] / 2
            if tx - 10 <= cx <= tx + tw + 10 and ty - 10 <= cy <= ty + th + 10:
                left.remove(f)
                hits += len(f.marks) == len(text)
                break
    return hits, len(truth) - hits, len(left)


def counts(found) -> list[int]:
    return [len(f.marks) for f in found.numbers]


def turned_box(box, m: np.ndarray) -> tuple[int, int, int, int]:
    """A box's corners through the 2 x 3 affine m, as a box."""
    x, y, w, h = box
    pts = np.array([[x, y, 1], [x + w, y, 1], [x, y + h, 1], [x + w, y + h, 1]], np.float64) @ m.T
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)


def scan_of(img: np.ndarray) -> Scan:
    return Scan.of_gray(img.astype(np.float32) / 255.0, "uint8 gray")


# ------------------------------------------------------------ reading order and lines
def test_three_numbers_come_in_reading_order_with_their_boxes():
    page = Page(11)
    page.text("Order form", 150, 150, 1.2)
    late = page.number("275", 1000, 420)  # top right: first
    left = page.number("48", 200, 900)  # a lower line, left: second
    right = page.number("9031", 1100, 905)  # the same line, right: third
    found = find_numbers(page.scan())
    assert counts(found) == [3, 2, 4]
    for number, truth in zip(found.numbers, (late, left, right)):
        assert inside(number.box, truth), (number.box, truth)
        assert (number.separators, number.doubts, number.printed) == ((), (), False)
    assert (found.rotation, found.skew, found.doubts, found.polarity) == (0, 0.0, (), "dark_on_light")


def test_two_lines_are_two_numbers():
    page = Page(12)
    top = page.number("317", 400, 600)
    below = page.number("5268", 400, 600 + 95)  # the next line, close under it
    found = find_numbers(page.scan())
    assert counts(found) == [3, 4]
    assert inside(found.numbers[0].box, top) and inside(found.numbers[1].box, below)


# ------------------------------------------------------------ boxes, underlines, combs
def test_a_number_in_a_printed_box_is_read_without_the_box():
    page = Page(13)
    page.text("Score:", 150, 700, 1.0)
    truth = page.number("86", 450, 640)
    cv2.rectangle(page.img, (410, 600), (700, 740), 20, 3)
    found = find_numbers(page.scan())
    assert counts(found) == [2]
    assert inside(found.numbers[0].box, truth)


def test_a_single_digit_in_a_box_it_touches_is_read_without_the_box():
    page = Page(14)
    truth = page.number("2", 520, 1000, 80)
    cv2.rectangle(page.img, (500, truth[1] - 2), (620, 1110), 20, 2)  # the box's top edge on the digit's top
    found = find_numbers(page.scan())
    assert counts(found) == [1]
    assert inside(found.numbers[0].box, truth)


def test_a_number_on_a_printed_underline_is_read_without_the_line():
    page = Page(15)
    page.text("Amount:", 150, 1200, 1.0)
    truth = page.number("4075", 450, 1120)
    cv2.line(page.img, (420, 1208), (1000, 1208), 20, 2)
    found = find_numbers(page.scan())
    assert counts(found) == [4]
    assert inside(found.numbers[0].box, truth)


def test_comb_boxes_give_one_number_of_one_digit_a_cell():
    page = Page(16)
    page.text("Candidate number:", 150, 900, 1.0)
    cell, top = 100, 800
    text = "1073"
    for i in range(6):  # six cells, the last two left empty
        cv2.rectangle(page.img, (600 + i * cell, top), (600 + (i + 1) * cell, top + 120), 20, 2)
    for i, ch in enumerate(text):
        page.number(ch, 600 + i * cell + 22, top + 22, 72)
    boxes = [b for _, b in page.truth]
    found = find_numbers(page.scan())
    assert counts(found) == [4]
    assert [m.box[0] // cell for m in found.numbers[0].marks] == [b[0] // cell for b in boxes]


# ------------------------------------------------------------ what is not handwriting
def test_printed_text_alone_has_no_handwritten_numbers():
    page = Page(17)
    y = 180
    for i, font in enumerate(FONTS * 4):
        page.text(" ".join(page.rng.choice(WORDS, 6)) + f" {1000 + 37 * i}", 150, y, 0.9 + 0.1 * (i % 3), font, 2)
        y += 105
    found = find_numbers(page.scan())
    assert found.numbers == ()


def test_a_blank_page_with_the_scanners_shadow_and_dust_has_no_numbers():
    page = Page(18)
    img = page.img.astype(np.float32)
    img[:, :70] *= np.linspace(0.25, 1.0, 70, dtype=np.float32)[None, :]  # the lid's shadow down the left
    img[-45:, :] *= np.linspace(1.0, 0.5, 45, dtype=np.float32)[:, None]  # and along the bottom
    page.img = img.astype(np.uint8)
    for x, y, r in ((800, 900, 2), (300, 1500, 1), (1200, 400, 2)):
        cv2.circle(page.img, (x, y), r, 70, -1)
    found = find_numbers(page.scan())
    assert found.numbers == ()


def test_ruled_paper_has_no_numbers():
    page = Page(19)
    for y in range(200, A4[0], 70):
        cv2.line(page.img, (0, y), (A4[1] - 1, y), 150, 2)
    cv2.line(page.img, (200, 0), (200, A4[0] - 1), 120, 2)  # the margin
    found = find_numbers(page.scan())
    assert found.numbers == ()


def test_handwriting_on_ruled_paper_is_read_without_the_rules():
    page = Page(20)
    for y in range(200, A4[0], 90):
        cv2.line(page.img, (0, y), (A4[1] - 1, y), 150, 2)
    truth = page.number("609", 400, 2 * 90 + 200 + 12)  # sitting on the fourth rule
    found = find_numbers(page.scan())
    assert counts(found) == [3]
    assert inside(found.numbers[0].box, truth)


# ------------------------------------------------------------ separators
@pytest.mark.parametrize(("text", "separators"), [
    ("3.75", ((1, "."),)),
    ("-42", ((0, "-"),)),
    ("12/05/2026", ((2, "/"), (4, "/"))),
    ("12,500", ((2, ","),)),
])
def test_separators_are_kept_with_their_number(text, separators):
    page = Page(21)
    truth = page.number(text, 300, 900)
    found = find_numbers(page.scan())
    assert counts(found) == [sum(c.isdigit() for c in text)]
    assert found.numbers[0].separators == separators
    assert found.numbers[0].doubts == ()
    assert inside(found.numbers[0].box, truth)


def test_a_mark_between_digits_that_is_not_read_is_a_doubt():
    page = Page(22)
    truth = page.number("58", 300, 900, 80)
    cv2.circle(page.img, (truth[0] + truth[2] + 14, 900 + 15), 6, 35, -1)  # a blot high between the digits
    page.number("3", truth[0] + truth[2] + 30, 900, 80)
    found = find_numbers(page.scan())
    assert counts(found) == [3]
    assert found.numbers[0].separators == ()
    assert found.numbers[0].doubts == ("a mark between digits was not read",)


def test_a_number_longer_than_max_digits_keeps_every_digit_and_says_so():
    page = Page(23)
    page.number("3141592", 200, 900)
    found = find_numbers(page.scan(), max_digits=5)
    assert counts(found) == [7]
    assert found.numbers[0].doubts == ("longer than max_digits (5): all 7 digits kept",)


# ------------------------------------------------------------ orientation and skew
def sideways_box(box, turn: int) -> tuple[int, int, int, int]:
    """An upright page's box (x, y, w, h) in the page as scanned, turned by cv2.rotate's ``turn``."""
    x, y, w, h = box
    H, W = A4
    if turn == cv2.ROTATE_90_COUNTERCLOCKWISE:
        return y, W - x - w, h, w
    if turn == cv2.ROTATE_90_CLOCKWISE:
        return H - y - h, x, h, w
    return W - x - w, H - y - h, w, h


@pytest.mark.parametrize(("turn", "rotation"), [
    (cv2.ROTATE_90_COUNTERCLOCKWISE, 90), (cv2.ROTATE_90_CLOCKWISE, 270), (cv2.ROTATE_180, 180)])
def test_a_form_scanned_turned_is_turned_back_by_its_type(turn, rotation):
    page = varied_page(2)
    found = find_numbers(scan_of(cv2.rotate(np.asarray(page.scan().gray * 255, np.uint8), turn)))
    assert (found.rotation, found.doubts) == (rotation, ())
    assert counts(found) == [len(t) for t, _ in page.truth]
    for number, (_, box) in zip(found.numbers, page.truth):
        assert inside(number.box, sideways_box(box, turn)), (number.box, sideways_box(box, turn))


def test_handwriting_alone_a_quarter_turned_is_turned_and_flagged():
    page = Page(25)
    for i, text in enumerate(("2048", "371", "96", "5120")):
        page.number(text, 300 + 250 * (i % 2), 400 + 300 * i)
    found = find_numbers(scan_of(cv2.rotate(np.asarray(page.scan().gray * 255, np.uint8),
                                            cv2.ROTATE_90_COUNTERCLOCKWISE)))
    assert (found.rotation, found.doubts) == (90, ("may be rotated",))
    assert counts(found) == [4, 3, 2, 4]


@pytest.mark.parametrize("angle", [3.0, -2.0])
def test_a_skewed_page_is_deskewed_and_read(angle):
    page = varied_page(5)
    m = cv2.getRotationMatrix2D((A4[1] / 2, A4[0] / 2), angle, 1.0)
    img = cv2.warpAffine(page.img, m, (A4[1], A4[0]), flags=cv2.INTER_LINEAR, borderValue=245)
    found = find_numbers(scan_of(img))
    assert abs(found.skew + angle) <= 0.2
    assert counts(found) == [len(t) for t, _ in page.truth]
    for number, (_, box) in zip(found.numbers, page.truth):  # in the right place (a digit's stroke
        x, y, w, h = turned_box(box, m)  # along a turned underline may go with the line)
        assert x <= number.box[0] + number.box[2] / 2 <= x + w and y <= number.box[1] + number.box[3] / 2 <= y + h


def test_estimate_skew_finds_the_slant_of_text_lines():
    mask = np.zeros((1000, 700), np.uint8)
    for y in range(100, 900, 40):
        cv2.line(mask, (50, y), (650, y), 1, 2)
    m = cv2.getRotationMatrix2D((350, 500), 2.0, 1.0)
    assert estimate_skew(mask) == 0.0
    assert abs(estimate_skew(cv2.warpAffine(mask, m, (700, 1000), flags=cv2.INTER_NEAREST)) + 2.0) <= 0.15


# ------------------------------------------------------------ a set of forms
def test_varied_forms_find_their_numbers_and_nothing_else():
    """20 forms (printed title and text in five fonts, labelled fields: plain,
    boxed, underlined, combs, dates and decimals): measured 211 of 211 numbers
    found with their count of digits, none extra."""
    hits = missed = extra = 0
    for seed in range(20):
        page = varied_page(seed)
        h, m, e = matched(find_numbers(page.scan()).numbers, page.truth)
        hits, missed, extra = hits + h, missed + m, extra + e
    assert (hits + missed, extra) == (211, 0)
    assert hits >= 209


def test_pages_are_pages_and_a_cropped_number_is_not():
    page = Page(24)
    page.text("Reference:", 150, 700, 1.0)
    x, y, w, h = page.number("4075", 500, 620)
    scan = page.scan()
    ink = ink_map(scan.image, scan.gray)
    mask, _ = ink_mask_and_ratio(ink)
    assert is_page(mask, ink.scale)
    assert counts(find_numbers(scan)) == [4]
    crop = scan_of(np.asarray(scan.gray * 255, np.uint8)[y - 30 : y + h + 30, x - 30 : x + w + 30])
    ink = ink_map(crop.image, crop.gray)
    mask, _ = ink_mask_and_ratio(ink)
    assert not is_page(mask, ink.scale)
    assert counts(find_numbers(crop)) == [4]


def test_a_leaning_stroke_no_taller_than_the_digits_is_a_one_not_a_slash():
    page = Page(26)
    left = page.number("4", 300, 900, 80)
    x = left[0] + left[2] + 20
    cv2.line(page.img, (x, 900 + 78), (x + 36, 900 + 2), 35, 6, cv2.LINE_AA)  # 25 degrees, the digits' height
    page.number("7", x + 56, 900, 80)
    found = find_numbers(page.scan())
    assert counts(found) == [3]
    assert (found.numbers[0].separators, found.numbers[0].doubts) == ((), ())


def test_a_logo_a_stamp_and_a_signature_are_not_numbers():
    page = Page(30)
    page.text("ACME Ltd - invoice", 150, 150, 1.2)
    cv2.circle(page.img, (1400, 200), 70, 30, -1)  # a logo: filled shapes
    cv2.rectangle(page.img, (1300, 120), (1360, 300), 60, -1)
    cv2.circle(page.img, (1200, 1900), 110, 60, 4)  # a stamp: two rings and lettering
    cv2.circle(page.img, (1200, 1900), 85, 60, 2)
    cv2.putText(page.img, "PAID", (1130, 1915), cv2.FONT_HERSHEY_SIMPLEX, 1.3, 60, 3)
    cv2.putText(page.img, "2026-05-12", (1110, 1960), cv2.FONT_HERSHEY_SIMPLEX, 0.6, 60, 2)
    wave = np.array([[300 + 12 * i, 2000 + int(30 * np.sin(i / 2.0))] for i in range(40)], np.int32)
    cv2.polylines(page.img, [wave], False, 30, 3, cv2.LINE_AA)  # a signature
    truth = page.number("4821", 500, 900)
    found = find_numbers(page.scan())
    assert counts(found) == [4]
    assert inside(found.numbers[0].box, truth)


def test_two_lines_in_a_cropped_image_are_two_numbers():
    page = Page(31, shape=(330, 520))
    top = page.number("123", 40, 40, 90)
    below = page.number("45", 60, 190, 90)
    scan = page.scan()
    assert max(m.box[3] for m in find_digits_scan(scan)[0]) > 200  # the cropped path: marks across both lines
    found = find_numbers(scan)
    assert counts(found) == [3, 2]
    assert inside(found.numbers[0].box, top) and inside(found.numbers[1].box, below)


def test_numbers_in_a_tables_cells_stay_apart():
    page = Page(40)
    page.text("Marks table", 150, 150, 1.2)
    xs, ys = [150, 500, 800, 1100, 1400], [300, 420, 540, 660]
    for x in xs:
        cv2.line(page.img, (x, ys[0]), (x, ys[-1]), 20, 2)
    for y in ys:
        cv2.line(page.img, (xs[0], y), (xs[-1], y), 20, 2)
    for r in range(3):
        page.text(f"Student {r + 1}", 170, ys[r] + 75, 0.9)
        for c, val in enumerate(["17", "8", "205"]):
            page.number(val, xs[c + 1] + 40 + (0 if c else 150), ys[r] + 20, 75)
    found = find_numbers(page.scan())
    assert counts(found) == [2, 1, 3] * 3
    for number, (_, truth) in zip(found.numbers, page.truth):
        assert inside(number.box, truth), (number.box, truth)


@pytest.mark.parametrize("seed", range(3))
def test_a_letter_of_dense_type_gives_only_its_handwritten_number(seed):
    page = Page(50 + seed)
    y, truth = 150, None
    for i in range(38):
        if i == 20:
            truth = page.number(str(int(page.rng.integers(10, 99999))), 900, y - 30, 70)
            y += 90
            continue
        words = " ".join(page.rng.choice(WORDS, 9)) + (f" {int(page.rng.integers(1, 9999))}" if i % 3 == 0 else "")
        page.text(words, 120, y, 0.8 + 0.1 * seed, FONTS[seed], 2)
        y += 55
    found = find_numbers(page.scan())
    assert counts(found) == [len(page.truth[0][0])]
    assert inside(found.numbers[0].box, truth)


def test_numbers_are_found_beside_the_scanners_shadow():
    page = Page(32)
    truth = page.number("705", 300, 700)
    img = page.img.astype(np.float32)
    img[:, :80] *= np.linspace(0.3, 1.0, 80, dtype=np.float32)[None, :]
    page.img = img.astype(np.uint8)
    found = find_numbers(page.scan())
    assert counts(found) == [3]
    assert inside(found.numbers[0].box, truth)


def test_a_column_of_single_digits_is_not_a_page_turned():
    page = Page(33)
    for i, ch in enumerate("7294615"):
        page.number(ch, 700, 300 + 220 * i, 80)
    found = find_numbers(page.scan())
    assert (found.rotation, found.doubts) == (0, ())
    assert counts(found) == [1] * 7


@pytest.mark.parametrize(("text", "separators"), [("-42", ((0, "-"),)), ("3.75", ((1, "."),)), ("12,500", ((2, ","),))])
def test_a_cropped_number_keeps_its_marks_and_gains_its_separators(text, separators):
    page = Page(34, shape=(180, 120 + 95 * len(text)))
    page.number(text, 40, 50, 80)
    scan = page.scan()
    ink = ink_map(scan.image, scan.gray)
    assert not is_page(ink_mask_and_ratio(ink)[0], ink.scale)
    marks, _ = find_digits_scan(scan)
    found = find_numbers(scan)
    assert len(found.numbers) == 1
    number = found.numbers[0]
    assert [m.box for m in number.marks] == [m.box for m in marks]  # today's marks, bit for bit
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(number.marks, marks))
    assert len(marks) == sum(c.isdigit() for c in text)
    assert (number.separators, number.doubts) == (separators, ())


@pytest.mark.parametrize("seed", [35, 36, 37])
def test_a_cropped_date_reads_its_digits_without_the_slashes(seed):
    page = Page(seed, shape=(200, 1000))
    page.number("12/05/2026", 40, 50, 90)
    scan = page.scan()
    marks, _ = find_digits_scan(scan)
    assert len(marks) == 10  # the cropped path's marks hold the two slashes
    number = find_numbers(scan).numbers[0]
    digits = [marks[i] for i in (0, 1, 3, 4, 6, 7, 8, 9)]
    assert [m.box for m in number.marks] == [m.box for m in digits]  # today's marks, the slashes left out
    assert all(np.array_equal(a.pixels, b.pixels) for a, b in zip(number.marks, digits))
    assert (number.separators, number.doubts) == (((2, "/"), (4, "/")), ())


def test_a_cropped_date_whose_slash_touches_a_digit_is_flagged():
    page = Page(35, shape=(200, 1000))
    page.number("12/05/2026", 40, 50, 90)
    slash, zero = (m.box for m in find_digits_scan(page.scan())[0][2:4])
    y = zero[1] + zero[3] // 2
    cv2.line(page.img, (slash[0] + slash[2] // 2, y), (zero[0] + 10, y), 35, 6, cv2.LINE_AA)  # the slash run into the 0
    scan = page.scan()
    marks, _ = find_digits_scan(scan)
    assert len(marks) == 9
    number = find_numbers(scan).numbers[0]
    assert [m.box for m in number.marks] == [m.box for m in marks]
    assert (number.separators, number.doubts) == ((), ("a mark between digits was not read",))


@pytest.mark.parametrize("seed", range(12))
def test_components_are_opencvs_labels_and_statistics(seed):
    """segment.components labels a crop of the ink: the same labels and boxes as
    OpenCV's connectedComponentsWithStats on the whole mask, few pieces or many,
    wherever the ink lies (odd offsets included)."""
    from digitd.segment import components

    rng = np.random.default_rng(seed)
    mask = np.zeros((int(rng.integers(20, 300)), int(rng.integers(20, 300))), np.uint8)
    for _ in range(int(rng.integers(1, 3 if seed % 2 else 40))):
        x, y = int(rng.integers(0, mask.shape[1] - 3)), int(rng.integers(0, mask.shape[0] - 3))
        cv2.ellipse(mask, (x, y), (int(rng.integers(1, 15)), int(rng.integers(1, 15))),
                    float(rng.uniform(0, 180)), 0, 360, 1, int(rng.integers(1, 4)))
    n, labels, stats = components(mask)
    m, want_labels, want, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    assert n == m and np.array_equal(labels, want_labels)
    assert np.array_equal(stats[1:], want[1:])
