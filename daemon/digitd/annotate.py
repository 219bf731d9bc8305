"""The annotated picture: what a person checks a reading against at a glance.

One PNG per page. A page holding one number: the number read with its status
and confidence, the original with each digit boxed, and per digit the 28x28
image the model saw with its probabilities (:class:`View`). Any other page
(a form, a document's page): the page ~1200 px high with a labelled box on
each number (:class:`PageView`). Views are small and picklable;
:meth:`Annotator.render` turns one into PNG bytes with cached matplotlib
figures (Figure API, Agg), in this process or in the pool's workers.
"""

from __future__ import annotations

import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass

import cv2
import numpy as np

from .records import Reading, Scan
from .results import PageRead, handwritten, page_status

# A file name in a script the bundled font lacks (CJK, say) is drawn with
# placeholder boxes; matplotlib's multi-line warning about each missing glyph
# would break the one-line-per-file log.
warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font", category=UserWarning)

MAX_SHOWN = 6  # digit columns drawn; more digits get "+N more"
PANEL = 240  # height of the original's panel, pixels; its width grows with the digits shown
DPI = 100
MARGIN = 10
TITLE_H = 36
FOOT_H = 24
COLUMN_W = 112
MORE_W = 64
ZOOM = 3  # the 28x28 inputs are drawn at 84x84 pixels
BACKDROP = 232  # letterbox grey around the original in its panel

COLOURS = {"ok": "#1a7f37", "uncertain": "#bc4c00", "blank": "#57606a", "failed": "#cf222e"}
PRINTED = "#6e7781"  # printed numbers' boxes: shown, not read as handwriting
# A page picture: the page fitted into at most PAGE_W x PAGE_H pixels (sizes
# rounded up to PAGE_STEP, so few figure layouts), a title and a footer.
PAGE_H = 1200
PAGE_W = 1600
PAGE_MIN_W = 900  # wide enough for the title
PAGE_STEP = 100
PAGE_TITLE_H = 60
PAGE_FOOT_H = 30
PAGE_LABEL_PT = 17  # the labels on the boxes: readable at a glance at page size
BOX_PAD = 5  # pixels between a number's ink and its box on a page picture
PANEL_QUALITY = 90  # JPEG quality of a page's panel between processes
BAR = "#afb8c1"
PNG_LEVEL = 1  # zlib level: fast; pictures are ~30-60 KB
TEXT_CACHE = 256  # drawn texts kept per layout (a title is ~30 KB of pixels)
# Set only while drawing (rc_context restores them): FreeType hinting costs a
# third of the drawing time and is invisible at these sizes.
RC = {"text.hinting": "no_hinting", "font.family": "DejaVu Sans"}


@dataclass(frozen=True)
class View:
    """Everything a picture shows, small and picklable (no full-size image)."""

    source: str
    model: str
    status: str
    number: str | None
    confidence: float | None
    display: np.ndarray  # uint8 PANEL x panel_width(...) x 3: the original letterboxed
    frame: tuple[float, float, float, float]  # where the original lies in display: x, y, w, h
    boxes: tuple[tuple[float, float, float, float], ...]  # digit boxes in display pixels
    digits: tuple[int, ...]
    confidences: tuple[float, ...]
    probabilities: np.ndarray  # (k, 10) float32 for the shown digits
    pixels: np.ndarray  # (k, 28, 28) float32 for the shown digits
    image_info: str  # e.g. "1240x1754 uint8 RGB"
    threshold: float = 0.8
    error: str | None = None
    doubts: tuple[str, ...] = ()  # why it is uncertain beyond its confidence


def panel_width(n_digits: int) -> int:
    """Width of the original's panel: wider for numbers, which are mostly wide scans."""
    columns = min(n_digits, MAX_SHOWN)
    return PANEL if columns <= 2 else (3 * PANEL) // 2 if columns == 3 else 2 * PANEL


def display_image(rgb: np.ndarray, width: int = PANEL, height: int = PANEL, *,
                  gray: bool = False) -> tuple[np.ndarray, float, float, float]:
    """The image fitted into a height x width uint8 panel: (panel, scale, x0, y0).

    Shrunk with area averaging (after a cheap stride for huge scans), enlarged
    with nearest neighbours so small drawings show their pixels. ``gray``: a
    2-D image gives a 2-D panel (a third of the bytes to send between processes).
    """
    h, w = rgb.shape[:2]
    scale = min(width / w, height / h)
    nw, nh = max(1, min(width, round(w * scale))), max(1, min(height, round(h * scale)))
    img = rgb
    if scale < 1:
        step = int(1 / scale) // 2
        if step >= 2:
            img = img[::step, ::step]
        small = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
    else:
        small = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_NEAREST)
    small = np.clip(small * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if small.ndim == 2 and not gray:
        small = np.repeat(small[..., None], 3, axis=2)
    panel = np.full((height, width, *small.shape[2:]), BACKDROP, np.uint8)
    x0, y0 = (width - nw) // 2, (height - nh) // 2
    panel[y0 : y0 + nh, x0 : x0 + nw] = small
    return panel, nw / w, float(x0), float(y0)


def make_view(scan: Scan | None, reading: Reading, *, source: str, model: str,
              threshold: float = 0.8, shown=None) -> View:
    """Reduce a scan and its reading to what the picture shows.

    ``shown``: the original already fitted into its panel where the image was
    (a :class:`digitd.analyse.Shown`, made by ``display_image`` with the
    width for this many digits); ``scan`` then only needs width, height and
    mode (a :class:`digitd.analyse.ImageInfo`).
    """
    digits = reading.digits
    width = panel_width(len(digits))
    if shown is not None and scan is not None:
        panel, s, x0, y0 = shown.panel, shown.scale, shown.x0, shown.y0
        frame = (x0, y0, scan.width * s, scan.height * s)
        info = f"{scan.width}x{scan.height} {scan.mode}"
    elif scan is not None:
        panel, s, x0, y0 = display_image(scan.image, width, PANEL)
        frame = (x0, y0, scan.width * s, scan.height * s)
        info = f"{scan.width}x{scan.height} {scan.mode}"
    else:
        panel = np.full((PANEL, width, 3), BACKDROP, np.uint8)
        s, x0, y0, frame, info = 1.0, 0.0, 0.0, (0.0, 0.0, 0.0, 0.0), "not decoded"
    shown = digits[:MAX_SHOWN]
    return View(
        source=source,
        model=model,
        status=reading.status,
        number=reading.number,
        confidence=reading.confidence,
        display=panel,
        frame=frame,
        boxes=tuple((x0 + d.box[0] * s, y0 + d.box[1] * s, d.box[2] * s, d.box[3] * s) for d in digits),
        digits=tuple(d.digit for d in digits),
        confidences=tuple(float(d.confidence) for d in digits),
        probabilities=np.array([d.probabilities for d in shown], np.float32).reshape(-1, 10),
        pixels=np.array([d.pixels for d in shown], np.float32).reshape(-1, 28, 28),
        image_info=info,
        threshold=threshold,
        error=reading.error,
        doubts=reading.doubts,
    )


def pack_panel(panel: np.ndarray) -> bytes:
    """A page's panel as JPEG bytes (quality PANEL_QUALITY): what travels from the
    reader to the drawer and waits in a batch, 5-50 times smaller than its pixels."""
    bgr = panel if panel.ndim == 2 else cv2.cvtColor(panel, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, PANEL_QUALITY])
    if not ok:  # pragma: no cover - encoding an ordinary array does not fail
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def unpack_panel(data: bytes) -> np.ndarray:
    """:func:`pack_panel`'s pixels again (H x W grey, or H x W x 3 RGB)."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    return img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def page_panel_size(width: int, height: int) -> tuple[int, int]:
    """The panel (width, height) a page of this size is fitted into: PAGE_H high
    (PAGE_W wide for a wide page), in steps of PAGE_STEP."""
    if width * PAGE_H >= height * PAGE_W:  # wide: the width is the limit
        h = -(-round(height * PAGE_W / width) // PAGE_STEP) * PAGE_STEP
        return PAGE_W, max(PAGE_STEP, min(PAGE_H, h))
    w = -(-round(width * PAGE_H / height) // PAGE_STEP) * PAGE_STEP
    return max(PAGE_MIN_W, min(PAGE_W, w)), PAGE_H


@dataclass(frozen=True)
class PageView:
    """Everything a page picture shows, small and picklable: the page fitted into
    its panel, and per number its box (panel pixels), label and colour."""

    source: str
    model: str
    title: str
    colour: str
    display: bytes  # the page's panel, from display_image with page_panel_size, packed (pack_panel)
    frame: tuple[float, float, float, float]
    boxes: tuple[tuple[float, float, float, float], ...]
    labels: tuple[str, ...]
    colours: tuple[str, ...]
    image_info: str
    size: tuple[int, int]  # the panel's width and height


def page_title(page: PageRead, of_pages: int) -> str:
    """``Page 2 of 3 - 2 numbers: 12, 345 - ok`` and the like (one page: no page number)."""
    status = page_status(page)
    head = f"Page {page.page} of {of_pages}  \u2014  " if of_pages > 1 else ""
    numbers = [n.reading.number for n in handwritten(page)]
    if not numbers:
        what = "no handwritten number found"
    else:
        what = f"{len(numbers)} number{'s' * (len(numbers) != 1)}: {', '.join(numbers)}"
    printed = sum(1 for x in page.numbers if x.printed)
    if printed:
        what += f"  + {printed} printed"
    doubt = f" ({'; '.join(page.doubts)})" if page.doubts else ""
    return f"{head}{what}  \u2014  {status}{doubt}"


def make_page_view(info, page: PageRead, *, source: str, model: str, shown,
                   threshold: float = 0.8, of_pages: int = 1) -> PageView:
    """A page and its numbers as the page picture shows them. ``info``: the page's
    width, height and mode; ``shown``: the page already fitted into its panel
    (a :class:`digitd.analyse.Shown` of kind ``"page"``)."""
    s, x0, y0 = shown.scale, shown.x0, shown.y0
    boxes, labels, colours = [], [], []
    for n in page.numbers:
        r = n.reading
        x, y, w, h = n.box  # drawn BOX_PAD pixels outside the ink, so the ink shows
        boxes.append((x0 + x * s - BOX_PAD, y0 + y * s - BOX_PAD, w * s + 2 * BOX_PAD,
                      h * s + 2 * BOX_PAD))
        conf = "" if r.confidence is None else f"  {r.confidence:.2f}"
        if n.printed:
            labels.append(f"printed {r.number or ''}".strip())
            colours.append(PRINTED)
        else:
            sure = r.status == "ok"
            labels.append(f"{r.number or '?'}{'' if sure else '?'}{conf}")
            colours.append(COLOURS["ok"] if sure else COLOURS["uncertain"])
    return PageView(source=source, model=model, title=page_title(page, of_pages),
                    colour=COLOURS.get(page_status(page), "#24292f"), display=shown.panel,
                    size=shown.size,
                    frame=(x0, y0, info.width * s, info.height * s), boxes=tuple(boxes),
                    labels=tuple(labels), colours=tuple(colours),
                    image_info=f"{info.width}x{info.height} {info.mode}")


def zoom(pixels: np.ndarray) -> np.ndarray:
    """A 28x28 0-1 model input as a ZOOM-times larger uint8 RGB picture (white ink on black)."""
    g = np.clip(pixels * 255.0 + 0.5, 0, 255).astype(np.uint8)
    g = np.repeat(np.repeat(g, ZOOM, axis=0), ZOOM, axis=1)
    return np.repeat(g[..., None], 3, axis=2)


def title_text(view: View) -> str:
    conf = "" if view.confidence is None else f", confidence {view.confidence:.2f}"
    if view.status == "failed":
        return f"Failed: {view.error or 'unknown error'}"
    if view.status == "blank":
        return "Blank: no digits found"
    why = f" ({'; '.join(view.doubts)})" if view.doubts else ""
    if view.number is None:
        return f"No digits read  \u2014  {view.status}{why}"
    return f"Read {view.number}  \u2014  {view.status}{conf}{why}"


def _trim(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _bar_verts(heights: np.ndarray, width: float = 0.75) -> np.ndarray:
    """(10, 4, 2) corners of bars at x = 0..9 with the given heights."""
    x0 = np.arange(len(heights), dtype=float) - width / 2
    h = np.asarray(heights, dtype=float)
    zero = np.zeros_like(h)
    return np.stack([np.stack([x0, zero], 1), np.stack([x0, h], 1),
                     np.stack([x0 + width, h], 1), np.stack([x0 + width, zero], 1)], axis=1)


def _paste(canvas: np.ndarray, at: tuple[int, int], rgb: np.ndarray) -> None:
    r, c = at
    h, w = rgb.shape[:2]
    canvas[r : r + h, c : c + w, :3] = rgb if rgb.ndim == 3 else rgb[..., None]


class _Layout:
    """One figure for a given number of digit columns, with its background cached."""

    def __init__(self, columns: int, more: bool, model: str, dpi: int) -> None:
        # matplotlib's figure machinery: loaded only by a process that draws
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.collections import PolyCollection
        from matplotlib.figure import Figure
        from matplotlib.patches import Rectangle

        self.columns = columns
        pw = panel_width(columns + (1 if more else 0))
        right = max(columns * COLUMN_W + (MORE_W if more else 0), 2 * COLUMN_W)
        self.W = W = MARGIN + pw + 2 * MARGIN + right + MARGIN
        self.H = H = TITLE_H + PANEL + FOOT_H + MARGIN
        self.fig = fig = Figure(figsize=(W / dpi, H / dpi), dpi=dpi, facecolor="white")
        self.canvas = FigureCanvasAgg(fig)

        def rect(x: float, y_top: float, w: float, h: float) -> list[float]:
            """Figure fraction from pixels measured from the top-left corner."""
            return [x / W, 1 - (y_top + h) / H, w / W, h / H]

        dyn = []  # the artists that change per picture, drawn in this order

        # Original, in a fixed square panel: axes data coordinates = panel pixels.
        # Its pixels are copied straight into the canvas (a resampling
        # AxesImage/FigureImage costs ~1.5 ms each): the panel is exactly
        # pw x PANEL pixels at (rows, cols) ``self.image_at``.
        ax = fig.add_axes(rect(MARGIN, TITLE_H, pw, PANEL))
        ax.set_axis_off()
        ax.set_xlim(0, pw)
        ax.set_ylim(PANEL, 0)
        self.ax_img = ax
        self.image_at = (TITLE_H, MARGIN)
        self.frame = Rectangle((0, 0), 1, 1, fill=False, edgecolor="#6e7781", linewidth=0.8,
                               clip_on=False, animated=True)
        ax.add_patch(self.frame)
        dyn.append(self.frame)
        self.boxes: list = []
        self.labels: list = []

        x_right = MARGIN + pw + 2 * MARGIN
        x_cols = x_right + (right - columns * COLUMN_W - (MORE_W if more else 0)) / 2
        self.px, self.bars, self.heads = [], [], []
        for i in range(columns):
            x = x_cols + i * COLUMN_W
            head = fig.text((x + COLUMN_W / 2) / W, 1 - (TITLE_H + 10) / H, "", ha="center",
                            va="center", fontsize=10, fontweight="bold", animated=True)
            side = 28 * ZOOM
            left = round(x + (COLUMN_W - side) / 2)
            axp = fig.add_axes(rect(left - 1, TITLE_H + 21, side + 2, side + 2))  # a 1 px frame
            axp.set_xticks([])
            axp.set_yticks([])
            for spine in axp.spines.values():
                spine.set_edgecolor("#d0d7de")
            self.px.append((TITLE_H + 22, left))  # where the zoomed input is copied
            axb = fig.add_axes(rect(x + 18, TITLE_H + 22 + side + 10, COLUMN_W - 24, 96))
            # The ten bars as ONE collection: one draw call instead of ten patches.
            bars = PolyCollection(_bar_verts(np.zeros(10)), facecolors=BAR, edgecolors="none",
                                  linewidths=0, animated=True)
            axb.add_collection(bars, autolim=False)
            axb.set_ylim(0, 1)
            axb.set_xlim(-0.6, 9.6)
            axb.set_xticks(range(10))
            axb.tick_params(axis="x", labelsize=7, length=0, pad=2)
            axb.set_yticks([0, 0.5, 1], ["0", ".5", "1"])
            axb.tick_params(axis="y", labelsize=6, length=2, pad=1)
            axb.yaxis.grid(True, color="#eaeef2", linewidth=0.6)
            axb.set_axisbelow(True)
            for side_name in ("top", "right"):
                axb.spines[side_name].set_visible(False)
            self.bars.append(bars)
            self.heads.append(head)
            dyn += [head, bars]
        self.more = None
        if more:
            self.more = fig.text((x_cols + columns * COLUMN_W + MORE_W / 2) / W,
                                 1 - (TITLE_H + 22 + 42) / H, "", ha="center", va="center",
                                 fontsize=10, color="#57606a", animated=True)
            dyn.append(self.more)
        self.note = fig.text((x_right + right / 2) / W, 1 - (TITLE_H + PANEL / 2) / H, "",
                             ha="center", va="center", fontsize=11, color="#57606a",
                             wrap=False, animated=True)
        self.title = fig.text(MARGIN / W, 1 - (TITLE_H / 2 + 2) / H, "", ha="left", va="center",
                              fontsize=14, fontweight="bold", animated=True)
        foot_y = (FOOT_H / 2 + MARGIN / 2) / H
        self.footer = fig.text(MARGIN / W, foot_y, "", ha="left", va="center", fontsize=8,
                               color="#57606a", animated=True)
        # The model is the same for every picture: drawn once, in the background.
        model_text = fig.text(1 - MARGIN / W, foot_y, _trim(f"model {model}", 40), ha="right",
                              va="center", fontsize=8, color="#57606a")
        renderer = self.canvas.get_renderer()
        model_left = model_text.get_window_extent(renderer).x0
        self.info = fig.text((model_left - 16) / W, foot_y, "", ha="right", va="center",
                             fontsize=8, color="#57606a", animated=True)
        dyn += [self.note, self.title, self.info, self.footer]
        self.dynamic = dyn
        # Texts at fixed places whose strings repeat ("Read 7 - ok, confidence
        # 1.00"): their pixels are kept and pasted instead of drawn again.
        self.cached = {id(a) for a in (*self.heads, self.title, self.info, self.note, self.more)
                       if a is not None}
        self._texts: OrderedDict[tuple, tuple[int, int, np.ndarray]] = OrderedDict()

        self.canvas.draw()  # static parts only: animated artists are left out
        self.background = self.canvas.copy_from_bbox(fig.bbox)
        self.background_pixels = np.asarray(self.canvas.buffer_rgba()).copy()
        self.max_chars = int(W / 7.5)  # footer/title truncation at ~7.5 px per character
        self.footer_chars = int((model_left - MARGIN) / 6.0) - 4

    def _box(self, i: int):
        from matplotlib.patches import Rectangle  # loaded by __init__ already

        while len(self.boxes) <= i:
            box = Rectangle((0, 0), 1, 1, fill=False, linewidth=1.6, animated=True)
            label = self.ax_img.text(0, 0, "", fontsize=9, fontweight="bold", color="white",
                                     ha="left", va="bottom", animated=True,
                                     bbox={"boxstyle": "square,pad=0.15", "linewidth": 0})
            self.ax_img.add_patch(box)
            self.boxes.append(box)
            self.labels.append(label)
        return self.boxes[i], self.labels[i]

    def render_rgba(self, view: View) -> np.ndarray:
        """The picture as an H x W x 4 uint8 RGBA array (a view of the canvas)."""
        colour = COLOURS.get(view.status, "#24292f")
        self.canvas.restore_region(self.background)
        pixels = np.asarray(self.canvas.buffer_rgba())
        _paste(pixels, self.image_at, view.display)
        fx, fy, fw, fh = view.frame
        self.frame.set_bounds(fx - 0.5, fy - 0.5, fw + 1, fh + 1)
        self.frame.set_visible(view.frame[2] > 0)
        drawn = list(self.dynamic)

        for i, (x, y, w, h) in enumerate(view.boxes):
            box, label = self._box(i)
            sure = view.confidences[i] >= view.threshold
            c = COLOURS["ok"] if sure else COLOURS["uncertain"]
            box.set_bounds(x, y, max(w, 1.0), max(h, 1.0))
            box.set_edgecolor(c)
            label.set_text(str(view.digits[i]))
            label.get_bbox_patch().set_facecolor(c)
            # Above the box; below it for every other digit of a crowded number
            # (labels wider than their boxes would overlap); inside if no room.
            crowded = i % 2 == 1 and w < 14 and y + h + 14 <= PANEL
            if crowded:
                label.set_position((x, y + h + 1))
                label.set_va("top")
            elif y >= 14:
                label.set_position((x, y - 1))
                label.set_va("bottom")
            else:
                label.set_position((x + 1, y + 1))
                label.set_va("top")
            drawn += [box, label]

        for i in range(self.columns):
            p = view.probabilities[i]
            best = int(p.argmax())
            sure = view.confidences[i] >= view.threshold
            _paste(pixels, self.px[i], zoom(view.pixels[i]))
            colours = [BAR] * 10
            colours[best] = COLOURS["ok"] if sure else COLOURS["uncertain"]
            self.bars[i].set_verts(_bar_verts(p))
            self.bars[i].set_facecolor(colours)
            self.heads[i].set_text(f"{view.digits[i]}   {view.confidences[i]:.2f}")
            self.heads[i].set_color(COLOURS["ok"] if sure else COLOURS["uncertain"])
        if self.more is not None:
            self.more.set_text(f"+{len(view.digits) - self.columns}\nmore")

        if self.columns == 0:
            self.note.set_text("no digits found" if view.status != "failed" else "not read")
        else:
            self.note.set_text("")
        self.title.set_text(_trim(title_text(view), self.max_chars // 2 + 10))
        self.title.set_color(colour)
        self.info.set_text(view.image_info)
        used = len(view.image_info) + 4
        self.footer.set_text(_trim(view.source, max(12, self.footer_chars - used)))

        fig = self.fig
        for artist in drawn:
            if id(artist) in self.cached:
                self._draw_text(artist, pixels)
            else:
                fig.draw_artist(artist)
        return pixels

    def _draw_text(self, text, pixels: np.ndarray) -> None:
        """Draw a text artist, or paste its pixels from an earlier identical drawing.

        Kept only when the text's area held nothing but the static background
        before it was drawn, so the pasted pixels are exactly what drawing
        would give (a test compares against a fresh annotator's pictures).
        """
        s = text.get_text()
        if not s:
            return
        key = (id(text), s, text.get_color())
        hit = self._texts.get(key)
        if hit is not None:
            r, c, patch = hit
            pixels[r : r + patch.shape[0], c : c + patch.shape[1]] = patch
            self._texts.move_to_end(key)
            return
        box = text.get_window_extent(self.canvas.get_renderer())
        H, W = pixels.shape[:2]
        c0, c1 = max(0, int(box.x0) - 2), min(W, int(np.ceil(box.x1)) + 2)
        r0, r1 = max(0, H - int(np.ceil(box.y1)) - 2), min(H, H - int(box.y0) + 2)
        clean = np.array_equal(pixels[r0:r1, c0:c1], self.background_pixels[r0:r1, c0:c1])
        self.fig.draw_artist(text)
        if clean and r1 > r0 and c1 > c0:
            self._texts[key] = (r0, c0, pixels[r0:r1, c0:c1].copy())
            if len(self._texts) > TEXT_CACHE:
                self._texts.popitem(last=False)


class _PageLayout:
    """One figure for a page picture of a given panel size, its background cached."""

    def __init__(self, pw: int, ph: int, model: str, dpi: int) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Rectangle

        self.W = W = MARGIN + pw + MARGIN
        self.H = H = PAGE_TITLE_H + ph + PAGE_FOOT_H
        self.pw, self.ph = pw, ph
        self.fig = fig = Figure(figsize=(W / dpi, H / dpi), dpi=dpi, facecolor="white")
        self.canvas = FigureCanvasAgg(fig)
        ax = fig.add_axes([MARGIN / W, 1 - (PAGE_TITLE_H + ph) / H, pw / W, ph / H])
        ax.set_axis_off()
        ax.set_xlim(0, pw)
        ax.set_ylim(ph, 0)
        self.ax = ax
        self.image_at = (PAGE_TITLE_H, MARGIN)
        self.frame = Rectangle((0, 0), 1, 1, fill=False, edgecolor="#6e7781", linewidth=1,
                               clip_on=False, animated=True)  # the page's edge
        ax.add_patch(self.frame)
        self.title = fig.text(MARGIN / W, 1 - (PAGE_TITLE_H / 2) / H, "", ha="left",
                              va="center", fontsize=20, fontweight="bold", animated=True)
        foot_y = (PAGE_FOOT_H / 2) / H
        self.footer = fig.text(MARGIN / W, foot_y, "", ha="left", va="center", fontsize=11,
                               color="#57606a", animated=True)
        fig.text(1 - MARGIN / W, foot_y, _trim(f"model {model}", 40), ha="right", va="center",
                 fontsize=11, color="#57606a")
        self.canvas.draw()
        # the whole canvas, copied back before each picture (restore_region
        # leaves the last column: a long title's pixels stayed there)
        self.background = np.asarray(self.canvas.buffer_rgba()).copy()
        self.max_chars = int(W / 15)  # title truncation at ~15 px per character at 20 pt
        self.foot_chars = int(W / 8) - 40
        self.boxes: list = []
        self.labels: list = []

    def _box(self, i: int):
        from matplotlib.patches import Rectangle

        while len(self.boxes) <= i:
            box = Rectangle((0, 0), 1, 1, fill=False, linewidth=3, animated=True)
            label = self.ax.text(0, 0, "", fontsize=PAGE_LABEL_PT, fontweight="bold",
                                 color="white", ha="left", va="bottom", animated=True,
                                 bbox={"boxstyle": "square,pad=0.2", "linewidth": 0})
            self.ax.add_patch(box)
            self.boxes.append(box)
            self.labels.append(label)
        return self.boxes[i], self.labels[i]

    def render_rgba(self, view: PageView) -> np.ndarray:
        pixels = np.asarray(self.canvas.buffer_rgba())
        np.copyto(pixels, self.background)
        _paste(pixels, self.image_at, unpack_panel(view.display))
        fig = self.fig
        fx, fy, fw, fh = view.frame
        self.frame.set_bounds(fx - 0.5, fy - 0.5, fw + 1, fh + 1)
        fig.draw_artist(self.frame)
        label_h = PAGE_LABEL_PT * 1.9  # the label's height with its pad, in pixels
        for i, ((x, y, w, h), text, colour) in enumerate(
                zip(view.boxes, view.labels, view.colours, strict=True)):
            box, label = self._box(i)
            box.set_bounds(x, y, max(w, 2.0), max(h, 2.0))
            box.set_edgecolor(colour)
            label.set_text(text)
            label.get_bbox_patch().set_facecolor(colour)
            if y >= label_h:  # above the box; below it when the page's top leaves no room
                label.set_position((x, y - 4))
                label.set_va("bottom")
            else:
                label.set_position((x, y + h + 4))
                label.set_va("top")
            fig.draw_artist(box)
            fig.draw_artist(label)
        self.title.set_text(_trim(view.title, self.max_chars))
        self.title.set_color(view.colour)
        fig.draw_artist(self.title)
        self.footer.set_text(_trim(f"{view.source}   {view.image_info}", self.foot_chars))
        fig.draw_artist(self.footer)
        return pixels


def _drawing_settings():
    """matplotlib's rc_context(RC); matplotlib is imported only by processes that draw."""
    import matplotlib  # 0.1-0.2 s and ~40 MB: not in a service whose workers draw

    return matplotlib.rc_context(RC)


class Annotator:
    """Renders views to PNG bytes, reusing one figure per layout (not thread-safe)."""

    def __init__(self, dpi: int = DPI, png_level: int = PNG_LEVEL) -> None:
        self.dpi = dpi
        self.png_level = png_level
        self._layouts: dict[tuple, _Layout | _PageLayout] = {}

    def layout(self, n_digits: int, model: str) -> _Layout:
        columns = min(n_digits, MAX_SHOWN)
        key = (columns, n_digits > MAX_SHOWN, model)
        if key not in self._layouts:
            with _drawing_settings():
                self._layouts[key] = _Layout(*key, dpi=self.dpi)
        return self._layouts[key]

    def page_layout(self, view: PageView) -> _PageLayout:
        w, h = view.size
        key = ("page", w, h, view.model)
        if key not in self._layouts:
            with _drawing_settings():
                self._layouts[key] = _PageLayout(w, h, view.model, dpi=self.dpi)
        return self._layouts[key]

    def _rgba(self, view: View | PageView) -> np.ndarray:
        with _drawing_settings():
            if isinstance(view, PageView):
                return self.page_layout(view).render_rgba(view)
            return self.layout(len(view.digits), view.model).render_rgba(view)

    def render_rgb(self, view: View | PageView) -> np.ndarray:
        """The picture as an H x W x 3 uint8 RGB array (a copy)."""
        return self._rgba(view)[..., :3].copy()

    def render(self, view: View | PageView) -> bytes:
        """The picture as PNG bytes."""
        rgba = self._rgba(view)
        # No PNG row filters: adaptive filtering costs more than the deflate
        # itself, and flat figure colours compress as well without it.
        ok, buf = cv2.imencode(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGR),
                               [cv2.IMWRITE_PNG_COMPRESSION, self.png_level,
                                cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE])
        if not ok:  # pragma: no cover - encoding an ordinary array does not fail
            raise RuntimeError("PNG encoding failed")
        return buf.tobytes()


# ---------------------------------------------------------------------------
# Drawing many pictures: in a pool's worker processes, or here

_annotators: dict[tuple[int, int], Annotator] = {}


def render(view: View, dpi: int, png_level: int) -> tuple[bytes, float]:
    """One picture as PNG bytes, and the seconds it took (the Annotator for these
    settings is made once per process)."""
    t0 = time.perf_counter()
    annotator = _annotators.get((dpi, png_level))
    if annotator is None:
        annotator = _annotators[(dpi, png_level)] = Annotator(dpi, png_level)
    return annotator.render(view), time.perf_counter() - t0


class Pictures:
    """Draws annotated pictures on a :class:`digitd.pool.Pool`:
    ``submit(view)`` -> Future of (PNG bytes, seconds)."""

    def __init__(self, pool, *, dpi: int = DPI, png_level: int = PNG_LEVEL) -> None:
        self.pool = pool
        self.dpi, self.png_level = dpi, png_level

    def submit(self, view: View):
        return self.pool.submit(render, view, self.dpi, self.png_level)

    def close(self) -> None:
        """Nothing to close: the pool belongs to whoever made it."""
