"""The annotated picture: what it shows, that reusing figures leaks nothing from one
picture into the next, that it stays cheap, and that worker processes draw the same."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import cv2
import numpy as np
import pytest
from digitd.annotate import (
    MAX_SHOWN,
    PANEL,
    Annotator,
    Pictures,
    display_image,
    make_view,
    panel_width,
    title_text,
)
from digitd.pool import Pool
from digitd.records import DigitReading, Reading, Scan


def scan_of(gray: np.ndarray) -> Scan:
    rgb = np.repeat((gray.astype(np.float32) / 255.0)[..., None], 3, axis=2)
    return Scan(image=rgb, width=gray.shape[1], height=gray.shape[0], mode="uint8 gray")


def digit(d: int, conf: float, box) -> DigitReading:
    probs = np.full(10, (1 - conf) / 9)
    probs[d] = conf
    pixels = np.zeros((28, 28), np.uint8)
    cv2.putText(pixels, str(d), (6, 23), cv2.FONT_HERSHEY_SIMPLEX, 0.9, 255, 3)
    return DigitReading(digit=d, confidence=conf, box=box, probabilities=tuple(probs),
                        pixels=pixels.astype(np.float32) / 255.0)


def reading(digits, threshold=0.8) -> Reading:
    if not digits:
        return Reading(status="blank", number=None, digits=(), confidence=None, polarity="dark_on_light")
    conf = min(d.confidence for d in digits)
    return Reading(status="ok" if conf >= threshold else "uncertain",
                   number="".join(str(d.digit) for d in digits), digits=tuple(digits),
                   confidence=conf, polarity="dark_on_light")


def number_scan(n: int) -> tuple[Scan, Reading]:
    """A scan with n digit-sized boxes and a reading of them."""
    gray = np.full((200, 110 * n + 40), 255, np.uint8)
    digits = []
    for i in range(n):
        d = (i * 7 + 3) % 10
        cv2.putText(gray, str(d), (20 + 110 * i, 160), cv2.FONT_HERSHEY_SIMPLEX, 5, 0, 14)
        digits.append(digit(d, 0.97 - 0.01 * i, (20 + 110 * i, 40, 100, 125)))
    return scan_of(gray), reading(digits)


def png_image(data: bytes) -> np.ndarray:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return img


@pytest.fixture(scope="module")
def annotator() -> Annotator:
    return Annotator()


@pytest.mark.parametrize("n", [0, 1, 4, MAX_SHOWN, MAX_SHOWN + 5])
def test_pictures_for_any_number_of_digits(annotator, n):
    scan, r = number_scan(max(n, 1)) if n else (scan_of(np.full((300, 300), 250, np.uint8)), reading([]))
    img = png_image(annotator.render(make_view(scan, r, source="s.png", model="m")))
    assert img.shape[0] > PANEL
    assert img.shape[1] >= panel_width(n) + 2 * 112  # original + at least two columns' room


def test_the_picture_shows_the_original_and_the_model_input(annotator):
    gray = np.full((280, 280), 255, np.uint8)
    cv2.rectangle(gray, (100, 60), (180, 220), 0, -1)  # a black block where the "digit" is
    r = reading([digit(7, 0.99, (100, 60, 81, 161))])
    view = make_view(scan_of(gray), r, source="s.png", model="m")
    rgb = annotator.render_rgb(view)
    # The block shows in the original's panel, scaled 240/280 and placed below the title.
    s = PANEL / 280
    y, x = 36 + int(140 * s), 10 + int(140 * s)
    assert rgb[y, x].max() < 40
    assert rgb[36 + 10, 10 + 10].min() > 200  # paper stays white
    # The model input (white ink on black) is drawn in its column: mostly black pixels.
    right = rgb[60:140, 10 + PANEL + 20 :]
    assert (right.max(axis=2) < 30).mean() > 0.1


def test_reusing_a_figure_leaks_nothing_between_pictures(annotator):
    """Blitting onto a cached background: drawing B between two A's changes nothing in A."""
    a = make_view(*number_scan(3), source="a.png", model="m")
    b_scan, _ = number_scan(3)
    b = make_view(b_scan, reading([digit(1, 0.3, (5, 5, 20, 20)), digit(2, 0.5, (40, 5, 20, 20)),
                                   digit(8, 0.6, (80, 5, 20, 20))]),
                  source="a much longer name than before.png", model="m")
    first = annotator.render(a)
    other = annotator.render(b)
    again = annotator.render(a)
    assert first == again
    assert other != first


def test_a_fresh_annotator_draws_the_same(annotator):
    view = make_view(*number_scan(2), source="x.png", model="m")
    assert Annotator().render(view) == annotator.render(view)


@pytest.mark.parametrize("shape", [(1, 1), (3000, 200), (200, 3000), (4000, 3000)])
def test_any_image_size_fits_the_panel(annotator, shape):
    gray = np.full(shape, 255, np.uint8)
    gray[shape[0] // 3 : 2 * shape[0] // 3 + 1, shape[1] // 3 : 2 * shape[1] // 3 + 1] = 0
    h, w = shape
    r = reading([digit(1, 0.9, (w // 3, h // 3, max(1, w // 3), max(1, h // 3)))])
    view = make_view(scan_of(gray), r, source="s.png", model="m")
    assert view.display.shape == (PANEL, panel_width(1), 3)
    x, y, fw, fh = view.frame
    assert 0 <= x and 0 <= y and x + fw <= panel_width(1) + 1e-6 and y + fh <= PANEL + 1e-6
    assert max(fw, fh) == pytest.approx(PANEL, abs=1)
    png_image(annotator.render(view))


def test_display_image_enlarges_small_drawings_pixel_by_pixel():
    img = np.zeros((2, 2, 3), np.float32)
    img[0, 0] = 1.0
    panel, scale, x0, y0 = display_image(img, 240, 240)
    assert scale == 120 and (x0, y0) == (0, 0)
    assert panel[:120, :120].min() == 255 and panel[120:, 120:].max() == 0


def test_titles_say_answer_status_and_confidence():
    scan, r = number_scan(4)
    assert title_text(make_view(scan, r, source="s", model="m")) == f"Read {r.number}  \u2014  ok, confidence {r.confidence:.2f}"
    blank = make_view(scan_of(np.full((9, 9), 255, np.uint8)), reading([]), source="s", model="m")
    assert title_text(blank) == "Blank: no digits found"
    unsure = make_view(scan, reading([digit(4, 0.41, (1, 1, 5, 5))]), source="s", model="m")
    assert "uncertain, confidence 0.41" in title_text(unsure)


def test_drawing_is_cheap(annotator):
    """The service draws one picture per input; budget well under the naive ~100 ms."""
    view = make_view(*number_scan(1), source="s.png", model="m")
    annotator.render(view)
    t0 = time.perf_counter()
    for _ in range(20):
        annotator.render(view)
    per_picture = (time.perf_counter() - t0) / 20
    assert per_picture < 0.040, f"{per_picture * 1000:.1f} ms per picture"


def test_worker_processes_draw_the_same_pictures(annotator):
    views = [make_view(*number_scan(n), source=f"{n}.png", model="m") for n in (1, 2, 1, 7)]
    with Pool(2) as pool:
        pictures = Pictures(pool)
        futures = [pictures.submit(v) for v in views]
        drawn = [f.result(timeout=120) for f in futures]
    assert [png for png, _seconds in drawn] == [annotator.render(v) for v in views]
    assert all(seconds > 0 for _png, seconds in drawn)


def test_drawing_here_when_no_workers(annotator):
    view = make_view(*number_scan(1), source="s.png", model="m")
    with Pool(0) as pool:
        png, seconds = Pictures(pool).submit(view).result()
    assert png == annotator.render(view)


def test_drawing_imports_no_matplotlib():
    """Pictures are drawn with Pillow in matplotlib's DejaVu fonts: importing matplotlib
    would cost a lone picture half a second."""
    code = textwrap.dedent("""
        import sys, numpy as np
        from digitd.annotate import Annotator, font, make_view
        from digitd.records import Reading, Scan
        scan = Scan(image=np.ones((10, 10, 3), np.float32), width=10, height=10, mode="uint8 gray")
        Annotator().render(make_view(scan, Reading("blank", None, (), None), source="s", model="m"))
        assert "matplotlib" not in sys.modules and "PIL" in sys.modules
        print(font(10).path.replace("\\\\", "/").split("/")[-1])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "DejaVuSans.ttf", out.stderr


def test_a_file_name_in_any_script_is_drawn():
    """Glyphs the font lacks (CJK) are drawn as boxes, with no warning and no error."""
    view = make_view(*number_scan(1), source="\u626b\u63cf \u0444\u0430\u0439\u043b.png", model="m")
    img = png_image(Annotator().render(view))
    assert img.shape[0] > PANEL


# --- page pictures ------------------------------------------------------------------------------

from digitd.analyse import ImageInfo, Shown, show_page, wants_page_picture  # noqa: E402
from digitd.annotate import (  # noqa: E402
    MARGIN,
    PAGE_FOOT_H,
    PAGE_GREYS,
    PAGE_H,
    PAGE_LEVELS,
    PAGE_TITLE_H,
    channel_levels,
    make_page_view,
    page_panel_size,
    page_title,
    unpack_panel,
)
from digitd.records import Found, PageFound  # noqa: E402
from digitd.results import NumberRead, PageRead  # noqa: E402


@pytest.mark.parametrize(("size", "panel"), [
    ((1654, 2339), (900, 1200)),  # A4 portrait at 200 dpi
    ((2339, 1654), (1600, 1200)),  # A4 landscape
    ((3000, 600), (1600, 400)),  # a wide strip
    ((300, 3000), (900, 1200)),  # a narrow one: wide enough for the title
])
def test_page_panels_are_page_high_in_steps(size, panel):
    assert page_panel_size(*size) == panel


def found(*boxes, printed=False) -> PageFound:
    return PageFound(numbers=tuple(Found(marks=(), box=b, printed=printed) for b in boxes),
                     polarity="dark_on_light")


def test_which_pages_get_the_page_picture():
    assert not wants_page_picture(200, 120, found((10, 10, 180, 100)))  # a cropped number
    assert not wants_page_picture(3000, 4000, found((100, 100, 2800, 1000)))  # a close-up photo
    assert wants_page_picture(1654, 2339, found((300, 400, 300, 80)))  # a number on a page
    assert wants_page_picture(400, 300, found((0, 0, 50, 50), (200, 200, 50, 50)))  # two
    assert wants_page_picture(200, 120, found((10, 10, 180, 100), printed=True))
    assert not wants_page_picture(300, 200, found())  # a small blank image
    assert wants_page_picture(1654, 2339, found())  # a blank page


def a4_page() -> tuple[Scan, PageRead]:
    gray = np.full((2339, 1654), 250, np.uint8)
    numbers = []
    for i, (text, x, y) in enumerate([("12", 300, 500), ("3.75", 800, 1200), ("2026", 200, 2000)]):
        cv2.putText(gray, text, (x, y + 70), cv2.FONT_HERSHEY_SIMPLEX, 3, 20, 8)
        w = 75 * len(text)
        status, conf = ("uncertain", 0.55) if i == 1 else ("ok", 0.98)
        numbers.append(NumberRead(Reading(status, text, (), conf), (x, y, w, 70), printed=i == 2))
    page = PageRead(2, 1654, 2339, 200.0, numbers=tuple(numbers))
    return Scan.of_gray(gray.astype(np.float32) / 255.0, "uint8 gray"), page


def test_a_page_picture_shows_the_page_with_a_labelled_box_per_number(annotator):
    scan, page = a4_page()
    shown = show_page(scan, found(*(n.box for n in page.numbers)))
    assert shown.kind == "page" and shown.size == (900, 1200)
    assert unpack_panel(shown.panel).shape == (1200, 900)  # grey: one plane, as a JPEG
    assert len(shown.panel) < 100_000
    view = make_page_view(ImageInfo(1654, 2339, "uint8 gray"), page, source="scan.pdf",
                          model="m", shown=shown, of_pages=3)
    assert view.labels == ("12  0.98", "3.75?  0.55", "printed 2026")
    assert view.title == "Page 2 of 3  \u2014  2 numbers: 12, 3.75  + 1 printed  \u2014  uncertain"
    img = png_image(annotator.render(view))
    assert img.shape == (PAGE_TITLE_H + PAGE_H + PAGE_FOOT_H, 900 + 2 * MARGIN, 3)

    def near(bgr) -> int:
        return int((np.abs(img.astype(int) - bgr).sum(axis=2) < 30).sum())

    # a green box and label (ok), an orange one (uncertain), a grey one (printed)
    assert near([0x37, 0x7F, 0x1A]) > 1500 and near([0x00, 0x4C, 0xBC]) > 1500
    assert near([0x81, 0x77, 0x6E]) > 1500
    # the page's ink is there, at the panel's scale (the "12" near (300, 500) * 0.513)
    s = shown.scale
    r0, c0 = PAGE_TITLE_H + int(shown.y0 + 500 * s), MARGIN + int(shown.x0 + 300 * s)
    assert img[r0 : r0 + int(70 * s), c0 : c0 + int(150 * s)].min() < 60


def test_page_pictures_hold_few_shades(annotator):
    """A grey page's picture: PAGE_GREYS greys and the shades of its inks; a colour
    page's: PAGE_LEVELS levels of each channel, black and white among them."""
    scan, page = a4_page()
    grey = np.rint(np.arange(PAGE_GREYS) * (255 / (PAGE_GREYS - 1)))
    shown = show_page(scan, found(*(n.box for n in page.numbers)))
    view = make_page_view(ImageInfo(1654, 2339, "uint8 gray"), page, source="p.pdf", model="m", shown=shown)
    img = png_image(annotator.render(view))
    plain = img[..., 0][(img[..., 0] == img[..., 1]) & (img[..., 1] == img[..., 2])]
    assert set(np.unique(plain).tolist()) <= set(grey.tolist())
    tinted = scan.image * np.float32([1.0, 0.9, 0.7])  # the same page on yellow paper
    colour = Scan(image=tinted, width=scan.width, height=scan.height, mode="uint8 RGB")
    shown = show_page(colour, found(*(n.box for n in page.numbers)))
    view = make_page_view(ImageInfo(1654, 2339, "uint8 RGB"), page, source="p.pdf", model="m", shown=shown)
    img = png_image(annotator.render(view))
    levels = np.unique(channel_levels())
    assert len(levels) == PAGE_LEVELS and levels[0] == 0 and levels[-1] == 255
    assert set(np.unique(img).tolist()) <= set(levels.tolist())
    assert len(np.unique(img[..., 0])) > 10  # the paper's tint and the ink's shades show


def test_page_titles():
    assert page_title(PageRead(1), 1) == "no handwritten number found  \u2014  blank"
    assert page_title(PageRead(3, doubts=("may be rotated",)), 4) == \
        "Page 3 of 4  \u2014  no handwritten number found  \u2014  uncertain (may be rotated)"


def test_workers_draw_the_same_page_pictures(annotator):
    scan, page = a4_page()
    shown = show_page(scan, found(*(n.box for n in page.numbers)))
    view = make_page_view(ImageInfo(1654, 2339, "uint8 gray"), page, source="p.pdf", model="m",
                          shown=shown)
    with Pool(2) as pool:
        png, seconds = Pictures(pool).submit(view).result(timeout=120)
    assert png == annotator.render(view) and seconds > 0
    assert isinstance(shown, Shown)


def test_a_titles_doubts_say_why_it_is_uncertain():
    scan, r = number_scan(2)
    doubted = Reading("uncertain", "4.4", r.digits, 0.99, doubts=("may be rotated",))
    assert title_text(make_view(scan, doubted, source="s", model="m")) == \
        "Read 4.4  \u2014  uncertain, confidence 0.99 (may be rotated)"
    nothing = Reading("uncertain", None, (), None, doubts=("not a digit: 2 marks",))
    assert title_text(make_view(scan, nothing, source="s", model="m")) == \
        "No digits read  \u2014  uncertain (not a digit: 2 marks)"
