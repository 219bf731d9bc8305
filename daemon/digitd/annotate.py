"""The annotated picture: what a person checks a reading against at a glance.

One PNG per page. A page holding one number: the number read with its status
and confidence, the original with each digit boxed, and per digit the 28x28
image the model saw with its probabilities (:class:`View`). Any other page
(a form, a document's page): the page ~1200 px high with a labelled box on
each number, or a page read as a form: each field's box, name and value
(:class:`PageView`). Views are small and picklable;
:meth:`Annotator.render` turns one into PNG bytes (Pillow's FreeType text in
matplotlib's DejaVu fonts, on a cached background), here or in the pool's workers.
"""

from __future__ import annotations

import functools
import io
import importlib.util
import os
import struct
import time
import zlib
from dataclasses import dataclass

import cv2
import numpy as np

from .records import Reading, Scan
from .results import PageRead, handwritten, page_status

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
# A page picture of a grey page is written with a palette (a third of the bytes
# to compress): PAGE_GREYS greys, and shades of each colour it draws in towards
# white (its text's edges); one with a pixel further than INK_ERROR from every
# entry (a colour scan) is written in full colour, PAGE_LEVELS levels a channel.
# Fewer shades than a byte holds: a scan's noise then costs deflate far less
# time and bytes, and a picture to check a reading against shows no difference.
PAGE_INKS = (*COLOURS.values(), PRINTED, "#24292f")
INK_SHADES = 12
INK_ERROR = 24
PAGE_GREYS = 64
PAGE_LEVELS = 32


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

    Shrunk with area averaging after a cheap stride for huge scans, bilinear
    for one two to four times the panel's size (a 300 dpi page: its strokes
    are wider than the pixels it skips), else by :func:`shrink`; enlarged with nearest
    neighbours so small drawings show their pixels. ``gray``: a 2-D image
    gives a 2-D panel (a third of the bytes to send between processes).
    """
    h, w = rgb.shape[:2]
    scale = min(width / w, height / h)
    nw, nh = max(1, min(width, round(w * scale))), max(1, min(height, round(h * scale)))
    img = rgb
    if scale < 1:
        step = int(1 / scale) // 2
        if step >= 2:
            small = cv2.resize(img[::step, ::step], (nw, nh), interpolation=cv2.INTER_AREA)
        else:
            small = shrink(img, nw, nh) if scale > 0.5 else \
                cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    else:
        small = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_NEAREST)
    small = cv2.convertScaleAbs(small, alpha=255.0)  # 0-1 -> 0-255, rounded and clipped in one pass
    if small.ndim == 2 and not gray:
        small = np.repeat(small[..., None], 3, axis=2)
    panel = np.full((height, width, *small.shape[2:]), BACKDROP, np.uint8)
    x0, y0 = (width - nw) // 2, (height - nh) // 2
    panel[y0 : y0 + nh, x0 : x0 + nw] = small
    return panel, nw / w, float(x0), float(y0)


def shrink(img: np.ndarray, nw: int, nh: int) -> np.ndarray:
    """A float image shrunk to ``nw`` x ``nh`` (at most four times smaller): halved
    by exact 2x2 means while that leaves it larger (OpenCV's fast case), then
    bilinear, which at half size or more averages as area does, at a third of
    INTER_AREA's time for a ratio that is no whole number. A picture's only,
    never what is read."""
    h, w = img.shape[:2]
    if nw * 2 <= w and nh * 2 <= h:
        img = cv2.resize(img[: h // 2 * 2, : w // 2 * 2], (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    return cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)


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
    if page.form is not None:
        filled = sum(1 for f in page.fields if f.number is not None)
        quality = "" if page.quality is None else f" ({page.quality:.2f})"
        doubt = f" ({'; '.join(page.doubts)})" if page.doubts else ""
        return f"{head}{page.form}{quality}: {filled}/{len(page.fields)} fields filled  \u2014  {status}{doubt}"
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
    if page.form is not None:  # a form: each field's box, name and value
        for f in page.fields:
            x, y, w, h = f.box
            boxes.append((x0 + x * s, y0 + y * s, w * s, h * s))
            conf = "" if f.confidence is None else f"  {f.confidence:.2f}"
            mark = "" if f.status == "ok" else "?" if f.number is not None else ""
            labels.append(f"{f.name}: {f.number or '-'}{mark}{conf}")
            colours.append(COLOURS.get(f.status, COLOURS["uncertain"]))
    for n in page.numbers if page.form is None else ():
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


def _paste(canvas: np.ndarray, at: tuple[int, int], rgb: np.ndarray) -> None:
    """``rgb`` (or a grey plane, as three equal channels) drawn into ``canvas`` at row, column ``at``."""
    r, c = at
    h, w = rgb.shape[:2]
    if rgb.ndim == 2 and rgb.dtype == np.uint8 and canvas.shape[2] == 3:
        rgb = cv2.cvtColor(rgb, cv2.COLOR_GRAY2RGB)  # a tenth of the time of NumPy's broadcast copy
    canvas[r : r + h, c : c + w, :3] = rgb if rgb.ndim == 3 else rgb[..., None]


def _font_file(bold: bool) -> str | None:
    """matplotlib's bundled DejaVu Sans, found without importing matplotlib."""
    spec = importlib.util.find_spec("matplotlib")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(folder, "mpl-data", "fonts", "ttf",
                            "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")
        if os.path.exists(path):
            return path
    return None


@functools.lru_cache(maxsize=None)
def font(points: float, bold: bool = False, dpi: int = DPI):
    """A FreeType font of ``points`` at ``dpi`` (Pillow's own font if DejaVu is absent)."""
    from PIL import ImageFont

    size = max(6, round(points * dpi / 72))
    path = _font_file(bold)
    return ImageFont.truetype(path, size) if path else ImageFont.load_default(size)


def fit(draw, text: str, fnt, width: float) -> str:
    """``text`` cut with an ellipsis to fit ``width`` pixels."""
    if draw.textlength(text, font=fnt) <= width:
        return text
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if draw.textlength(text[:mid] + "\u2026", font=fnt) <= width:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo] + "\u2026"


class _Layout:
    """One layout for a given number of digit columns: its static parts drawn once
    (a white canvas with the columns' frames, the bar charts' axes, the model's
    name); each picture starts from a copy of it."""

    def __init__(self, columns: int, more: bool, model: str, dpi: int) -> None:
        from PIL import Image, ImageDraw

        self.columns, self.more, self.dpi = columns, more, dpi
        pw = panel_width(columns + (1 if more else 0))
        right = max(columns * COLUMN_W + (MORE_W if more else 0), 2 * COLUMN_W)
        self.W = W = MARGIN + pw + 2 * MARGIN + right + MARGIN
        self.H = H = TITLE_H + PANEL + FOOT_H + MARGIN
        self.image_at = (TITLE_H, MARGIN)
        self.x_right = x_right = MARGIN + pw + 2 * MARGIN
        self.right = right
        x_cols = x_right + (right - columns * COLUMN_W - (MORE_W if more else 0)) / 2
        self.x_cols = x_cols
        side = 28 * ZOOM
        back = Image.new("RGB", (W, H), "white")
        draw = ImageDraw.Draw(back)
        self.px, self.plots = [], []
        tick = font(7, dpi=dpi)
        small = font(6, dpi=dpi)
        for i in range(columns):
            x = x_cols + i * COLUMN_W
            left = round(x + (COLUMN_W - side) / 2)
            draw.rectangle((left - 1, TITLE_H + 21, left + side, TITLE_H + 22 + side), outline="#d0d7de")
            self.px.append((TITLE_H + 22, left))  # where the zoomed input is pasted
            # The probabilities' axes: x from -0.6 to 9.6, y from 0 to 1.
            px0, py0 = round(x + 18), TITLE_H + 22 + side + 10
            pwid, phei = COLUMN_W - 24, 96
            plot = (px0, py0, pwid, phei)
            self.plots.append(plot)
            for v in (0.0, 0.5, 1.0):
                y = round(py0 + phei - v * phei)
                draw.line((px0, y, px0 + pwid, y), fill="#eaeef2")
                draw.line((px0 - 2, y, px0, y), fill="black")
                draw.text((px0 - 3, y), {0.0: "0", 0.5: ".5", 1.0: "1"}[v], font=small,
                          fill="black", anchor="rm")
            draw.line((px0, py0, px0, py0 + phei), fill="black")
            draw.line((px0, py0 + phei, px0 + pwid, py0 + phei), fill="black")
            for d in range(10):
                draw.text((self.bar_x(plot, d), py0 + phei + 2), str(d), font=tick, fill="black",
                          anchor="mt")
        foot_y = H - (FOOT_H / 2 + MARGIN / 2)
        self.foot_y = foot_y
        note = font(8, dpi=dpi)
        model_text = _trim(f"model {model}", 40)
        draw.text((W - MARGIN, foot_y), model_text, font=note, fill="#57606a", anchor="rm")
        self.model_left = W - MARGIN - draw.textlength(model_text, font=note)
        self.background = np.array(back)  # converted once: each picture starts from a copy

    @staticmethod
    def bar_x(plot: tuple[int, int, int, int], d: float) -> float:
        px0, _, pwid, _ = plot
        return px0 + (d + 0.6) / 10.2 * pwid

    def render_rgb(self, view: View) -> np.ndarray:
        """The picture as an H x W x 3 uint8 RGB array."""
        from PIL import Image, ImageDraw

        dpi = self.dpi
        colour = COLOURS.get(view.status, "#24292f")
        canvas = self.background.copy()
        _paste(canvas, self.image_at, view.display)
        for i in range(self.columns):
            _paste(canvas, self.px[i], zoom(view.pixels[i]))
        im = Image.fromarray(canvas)
        draw = ImageDraw.Draw(im)
        top, left = self.image_at
        fx, fy, fw, fh = view.frame
        if fw > 0:
            draw.rectangle((left + fx - 1, top + fy - 1, left + fx + fw, top + fy + fh),
                           outline="#6e7781")
        label_font = font(9, bold=True, dpi=dpi)
        for i, (x, y, w, h) in enumerate(view.boxes):
            c = COLOURS["ok"] if view.confidences[i] >= view.threshold else COLOURS["uncertain"]
            x0, y0 = left + x, top + y
            draw.rectangle((x0 - 1, y0 - 1, x0 + max(w, 1.0), y0 + max(h, 1.0)), outline=c, width=2)
            # Above the box; below it for every other digit of a crowded number
            # (labels wider than their boxes would overlap); inside if no room.
            if i % 2 == 1 and w < 14 and y + h + 14 <= PANEL:
                at, anchor = (x0 + 1, y0 + h + 3), "lt"
            elif y >= 14:
                at, anchor = (x0 + 1, y0 - 3), "lb"
            else:
                at, anchor = (x0 + 2, y0 + 2), "lt"
            text = str(view.digits[i])
            bx = draw.textbbox(at, text, font=label_font, anchor=anchor)
            draw.rectangle((bx[0] - 2, bx[1] - 2, bx[2] + 1, bx[3] + 1), fill=c)
            draw.text(at, text, font=label_font, fill="white", anchor=anchor)

        head_font = font(10, bold=True, dpi=dpi)
        for i in range(self.columns):
            p = view.probabilities[i]
            best = int(p.argmax())
            c = COLOURS["ok"] if view.confidences[i] >= view.threshold else COLOURS["uncertain"]
            x = self.x_cols + i * COLUMN_W
            draw.text((x + COLUMN_W / 2, TITLE_H + 10), f"{view.digits[i]}   {view.confidences[i]:.2f}",
                      font=head_font, fill=c, anchor="mm")
            plot = self.plots[i]
            px0, py0, pwid, phei = plot
            half = 0.75 / 2 / 10.2 * pwid
            for d in range(10):
                height = float(np.clip(p[d], 0.0, 1.0)) * phei
                if height < 0.5:
                    continue
                cx = self.bar_x(plot, d)
                draw.rectangle((round(cx - half), round(py0 + phei - height), round(cx + half) - 1,
                                py0 + phei - 1), fill=c if d == best else BAR)
        grey = "#57606a"
        if self.more:
            draw.multiline_text((self.x_cols + self.columns * COLUMN_W + MORE_W / 2, TITLE_H + 64),
                                f"+{len(view.digits) - self.columns}\nmore", font=font(10, dpi=dpi),
                                fill=grey, anchor="mm", align="center")
        if self.columns == 0:
            draw.text((self.x_right + self.right / 2, TITLE_H + PANEL / 2),
                      "no digits found" if view.status != "failed" else "not read",
                      font=font(11, dpi=dpi), fill=grey, anchor="mm")
        title_font = font(14, bold=True, dpi=dpi)
        draw.text((MARGIN, TITLE_H / 2 + 2), fit(draw, title_text(view), title_font,
                                                 self.W - 2 * MARGIN),
                  font=title_font, fill=colour, anchor="lm")
        note = font(8, dpi=dpi)
        info_right = self.model_left - 16
        draw.text((info_right, self.foot_y), view.image_info, font=note, fill=grey, anchor="rm")
        room = info_right - draw.textlength(view.image_info, font=note) - 16 - MARGIN
        draw.text((MARGIN, self.foot_y), fit(draw, view.source, note, max(60.0, room)), font=note,
                  fill=grey, anchor="lm")
        return np.asarray(im)


class _PageLayout:
    """A page picture's layout for one panel size: the title and footer rows, the
    model's name drawn once; each picture starts from a copy of it."""

    def __init__(self, pw: int, ph: int, model: str, dpi: int) -> None:
        from PIL import Image, ImageDraw

        self.dpi = dpi
        self.W = W = MARGIN + pw + MARGIN
        self.H = H = PAGE_TITLE_H + ph + PAGE_FOOT_H
        self.pw, self.ph = pw, ph
        self.image_at = (PAGE_TITLE_H, MARGIN)
        back = Image.new("RGB", (W, H), "white")
        draw = ImageDraw.Draw(back)
        self.foot_y = H - PAGE_FOOT_H / 2
        note = font(11, dpi=dpi)
        model_text = _trim(f"model {model}", 40)
        draw.text((W - MARGIN, self.foot_y), model_text, font=note, fill="#57606a", anchor="rm")
        self.model_left = W - MARGIN - draw.textlength(model_text, font=note)
        self.background = np.array(back)  # converted once: each picture starts from a copy

    def render_rgb(self, view: PageView) -> np.ndarray:
        from PIL import Image, ImageDraw

        dpi = self.dpi
        canvas = self.background.copy()
        _paste(canvas, self.image_at, unpack_panel(view.display))
        im = Image.fromarray(canvas)
        draw = ImageDraw.Draw(im)
        top, left = self.image_at
        fx, fy, fw, fh = view.frame
        draw.rectangle((left + fx - 1, top + fy - 1, left + fx + fw, top + fy + fh), outline="#6e7781")
        label_font = font(PAGE_LABEL_PT, bold=True, dpi=dpi)
        label_h = PAGE_LABEL_PT * 1.9  # the label's height with its pad, in pixels
        for (x, y, w, h), text, colour in zip(view.boxes, view.labels, view.colours, strict=True):
            x0, y0 = left + x, top + y
            draw.rectangle((x0 - 2, y0 - 2, x0 + max(w, 2.0) + 1, y0 + max(h, 2.0) + 1),
                           outline=colour, width=3)
            if y >= label_h:  # above the box; below it when the page's top leaves no room
                at, anchor = (x0, y0 - 8), "lb"
            else:
                at, anchor = (x0, y0 + h + 8), "lt"
            bx = draw.textbbox(at, text, font=label_font, anchor=anchor)
            draw.rectangle((bx[0] - 4, bx[1] - 4, bx[2] + 4, bx[3] + 4), fill=colour)
            draw.text(at, text, font=label_font, fill="white", anchor=anchor)
        title_font = font(20, bold=True, dpi=dpi)
        draw.text((MARGIN, PAGE_TITLE_H / 2), fit(draw, view.title, title_font, self.W - 2 * MARGIN),
                  font=title_font, fill=view.colour, anchor="lm")
        note = font(11, dpi=dpi)
        draw.text((MARGIN, self.foot_y), fit(draw, f"{view.source}   {view.image_info}", note,
                                             max(60.0, self.model_left - 24 - MARGIN)),
                  font=note, fill="#57606a", anchor="lm")
        return np.asarray(im)


class Annotator:
    """Renders views to PNG bytes, reusing one layout per number of columns (not thread-safe)."""

    def __init__(self, dpi: int = DPI, png_level: int = PNG_LEVEL) -> None:
        self.dpi = dpi
        self.png_level = png_level
        self._layouts: dict[tuple, _Layout | _PageLayout] = {}

    def layout(self, n_digits: int, model: str) -> _Layout:
        columns = min(n_digits, MAX_SHOWN)
        key = (columns, n_digits > MAX_SHOWN, model)
        if key not in self._layouts:
            self._layouts[key] = _Layout(*key, dpi=self.dpi)
        return self._layouts[key]

    def page_layout(self, view: PageView) -> _PageLayout:
        w, h = view.size
        key = ("page", w, h, view.model)
        if key not in self._layouts:
            self._layouts[key] = _PageLayout(w, h, view.model, dpi=self.dpi)
        return self._layouts[key]

    def render_rgb(self, view: View | PageView) -> np.ndarray:
        """The picture as an H x W x 3 uint8 RGB array."""
        if isinstance(view, PageView):
            return self.page_layout(view).render_rgb(view)
        return self.layout(len(view.digits), view.model).render_rgb(view)

    def render(self, view: View | PageView) -> bytes:
        """The picture as PNG bytes (a grey page's with a palette, a colour page's
        in PAGE_LEVELS levels a channel)."""
        rgb = self.render_rgb(view)
        if isinstance(view, PageView):
            entries = palette_entries(rgb)
            if entries is not None:
                return palette_png(entries, page_palette()[0], self.png_level)
            rgb = cv2.LUT(rgb, channel_levels())
        # No PNG row filters: adaptive filtering costs more than the deflate
        # itself, and flat figure colours compress as well without it.
        ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_PNG_COMPRESSION, self.png_level,
                                cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE])
        if not ok:  # pragma: no cover - encoding an ordinary array does not fail
            raise RuntimeError("PNG encoding failed")
        return buf.tobytes()


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


@functools.cache
def channel_levels() -> np.ndarray:
    """Each byte value's nearest of PAGE_LEVELS evenly spaced levels, 0 and 255 among them."""
    steps = np.rint(np.arange(256, dtype=np.float32) * ((PAGE_LEVELS - 1) / 255.0))
    return np.rint(steps * (255.0 / (PAGE_LEVELS - 1))).astype(np.uint8)


@functools.cache
def page_palette() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A page picture's colours (uint8 x 3): PAGE_GREYS greys, then INK_SHADES
    shades of each of PAGE_INKS towards white; the entry of each grey level; the
    entry nearest the centre of each RGB cell of 8 x 8 x 8 levels."""
    inks = np.float32([_rgb(c) for c in dict.fromkeys(PAGE_INKS)])
    share = np.arange(1, INK_SHADES + 1, dtype=np.float32)[:, None, None] / INK_SHADES
    shades = np.rint(255.0 - share * (255.0 - inks[None])).reshape(-1, 3)
    greys = np.rint(np.arange(PAGE_GREYS, dtype=np.float32) * (255.0 / (PAGE_GREYS - 1)))
    palette = np.vstack([np.repeat(greys[:, None], 3, axis=1), shades]).astype(np.uint8)
    of_grey = np.rint(np.arange(256) * ((PAGE_GREYS - 1) / 255.0)).astype(np.uint8)
    cells = np.stack(np.meshgrid(*[np.arange(4, 256, 8, dtype=np.float32)] * 3, indexing="ij"),
                     -1).reshape(-1, 3)
    entries = palette.astype(np.float32)
    # squared distances less each cell's own square (the same for every entry): one product
    far = (entries * entries).sum(axis=1) - 2.0 * (cells @ entries.T)
    return palette, of_grey, far.argmin(axis=1).astype(np.uint8)


def palette_entries(rgb: np.ndarray) -> np.ndarray | None:
    """An RGB picture's pixels as :func:`page_palette` entries (H x W uint8), or
    None when it is not grey but for a few pixels close to the palette."""
    palette, of_grey, nearest = page_palette()
    r, g, b = cv2.split(rgb)
    coloured = cv2.bitwise_or(cv2.absdiff(r, g), cv2.absdiff(g, b))
    if cv2.countNonZero(coloured) > coloured.size // 8:
        return None
    entries = cv2.LUT(r, of_grey)
    points = cv2.findNonZero(coloured)  # (x, y) of each, a third of np.flatnonzero's time
    if points is not None:
        xy = points.reshape(-1, 2)
        where = xy[:, 1] * rgb.shape[1] + xy[:, 0]
        pixels = rgb.reshape(-1, 3)[where].astype(np.int32)
        cell = (pixels[:, 0] >> 3 << 10) | (pixels[:, 1] >> 3 << 5) | (pixels[:, 2] >> 3)
        found = nearest[cell]
        if np.abs(palette[found].astype(np.int32) - pixels).max() > INK_ERROR:
            return None
        entries.reshape(-1)[where] = found
    return entries


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def palette_png(entries: np.ndarray, palette: np.ndarray, level: int) -> bytes:
    """An 8-bit palette PNG of H x W ``entries`` into ``palette`` (N x 3 uint8), rows unfiltered."""
    h, w = entries.shape
    rows = np.empty((h, w + 1), np.uint8)
    rows[:, 0] = 0  # filter type None
    rows[:, 1:] = entries
    return b"".join((b"\x89PNG\r\n\x1a\n",
                     _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0)),
                     _png_chunk(b"PLTE", palette.tobytes()),
                     _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), level)),
                     _png_chunk(b"IEND", b"")))


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


def template_picture(pixels: np.ndarray, template, px_per_mm: float) -> bytes:
    """A PNG of a blank form's scan (~``PAGE_H`` px high) with each of ``template``'s
    fields boxed and named, for a person renaming them (``digitd template``)."""
    from PIL import Image, ImageDraw

    grey = np.asarray(pixels)
    if grey.dtype != np.uint8:
        grey = np.clip(grey * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if grey.ndim == 3:
        grey = cv2.cvtColor(grey, cv2.COLOR_RGB2GRAY)
    s = min(1.0, PAGE_H / grey.shape[0])
    small = cv2.resize(grey, (max(1, round(grey.shape[1] * s)), max(1, round(grey.shape[0] * s))),
                       interpolation=cv2.INTER_AREA) if s < 1 else grey
    image = Image.fromarray(small).convert("RGB")
    draw = ImageDraw.Draw(image)
    label = font(PAGE_LABEL_PT * 0.8, bold=True)
    k = px_per_mm * s
    for field in template.fields:
        x, y, w, h = (v * k for v in field.box)
        draw.rectangle((x, y, x + w, y + h), outline=COLOURS["uncertain"], width=3)
        tag = (x + 6, y + 6)  # inside the box: the form's own label beside it stays readable
        box = draw.textbbox(tag, field.name, font=label)
        draw.rectangle((box[0] - 3, box[1] - 3, box[2] + 3, box[3] + 3), fill=COLOURS["uncertain"])
        draw.text(tag, field.name, font=label, fill="white")
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=PNG_LEVEL)
    return out.getvalue()
