"""PDF documents, with pypdfium2: opened with their limits checked, then each page
rasterised on its own, its size read first so that no page is drawn larger than
the pixel limit allows. A page too large at the dpi is drawn at a lower dpi, down
to a quarter of it (16 times fewer pixels); larger still, it is refused.

Before PDFium sees the bytes, every compressed stream that is not an image is
inflated once, counting, to refuse a decompression bomb (PDFium would hold it all
in memory; images it decodes reduced to the size drawn). pypdfium2 is imported
with the first PDF (a quarter of a second saved at every start without one).
PDFium is not thread-safe: every call into it holds one lock.
"""

from __future__ import annotations

import math
import re
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np

from .formats import REDUCE_MAX, InputError

if TYPE_CHECKING:
    from pypdfium2 import PdfDocument

# Bytes a stream that is not an image may inflate to: a page's drawing (PDFium
# holds some 20 times its size while drawing it: 60 MB of lines took 1.3 GB and
# 33 s), and a font (held as it is); all of them together.
STREAM_MAX = 16 << 20
FONT_MAX = 64 << 20
STREAMS_MAX = 512 << 20
_LOCK = threading.Lock()
# PDFium's FPDF_ERR_* codes. A failed load may set none (a PDF without pages), and
# the code is the process's last one: each load is preceded by one that sets
# FPDF_ERR_FILE (2), which a document read from memory never gives.
_NO_ERROR = 2
_OPEN_ERRORS = {
    0: "empty PDF: it has no pages",
    _NO_ERROR: "empty PDF: it has no pages",  # PDFium loads no document without a page tree
    3: "broken PDF: not in PDF format, or corrupted",
    4: "password-protected PDF: it cannot be opened without its password",
    5: "encrypted PDF: its security handler is not supported",
}


@contextmanager
def open_pdf(data: bytes, max_pages: int) -> Iterator[PdfDocument]:
    """The PDF in ``data``, open while the block runs; InputError if it is broken,
    encrypted, a decompression bomb, has no pages or more than ``max_pages``."""
    check_streams(data)
    import pypdfium2 as pdfium

    with _LOCK:
        pdfium.raw.FPDF_LoadDocument(b"/nonexistent/digitd.pdf", None)  # sets _NO_ERROR
        try:
            doc = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            raise InputError(_OPEN_ERRORS.get(exc.err_code, f"broken PDF: {exc}")) from None
        count = len(doc)
    try:
        if count == 0:
            raise InputError(_OPEN_ERRORS[0])
        if count > max_pages:
            raise InputError(f"too many pages: {count} > limit {max_pages} (max_pages)")
        yield doc
    finally:
        with _LOCK:
            doc.close()


_STREAM = re.compile(rb"stream\r?\n")  # an "endstream" too, skipped: a look-behind would slow the search
_IMAGE = re.compile(rb"/Subtype\s*/Image\b")
_FONT = re.compile(rb"/Length1\b|/Subtype\s*/(?:Type1C|CIDFontType0C|OpenType)\b")  # an embedded font file


def check_streams(data: bytes) -> None:
    """InputError if a Flate stream that is not an image inflates past
    :data:`STREAM_MAX` bytes (a font: :data:`FONT_MAX`), or all of them past
    :data:`STREAMS_MAX`; each is inflated a megabyte at a time and thrown
    away, stopping at the limit."""
    total = 0
    for match in _STREAM.finditer(data):
        if data.endswith(b"end", 0, match.start()):
            continue
        head = data[max(0, match.start() - 4096): match.start()]
        head = head[head.rfind(b" obj") + 1:]  # the stream's dictionary, from its object's start
        if b"/FlateDecode" not in head or _IMAGE.search(head):
            continue
        most = FONT_MAX if _FONT.search(head) else STREAM_MAX
        inflate, size, at = zlib.decompressobj(), 0, match.end()
        try:
            while not inflate.eof and at < len(data):
                pending, at = data[at: at + (1 << 16)], at + (1 << 16)
                while pending and not inflate.eof:
                    size += len(inflate.decompress(pending, 1 << 20))
                    pending = inflate.unconsumed_tail
                    if size > most:
                        raise InputError(f"PDF decompression bomb: a stream inflates to more than {most >> 20} MB")
                    if total + size > STREAMS_MAX:
                        raise InputError(f"PDF decompression bomb: its streams inflate to more than "
                                         f"{STREAMS_MAX >> 20} MB")
        except zlib.error:
            pass  # not Flate after all, or broken: PDFium decides
        total += size


def page_count(doc: PdfDocument) -> int:
    with _LOCK:
        return len(doc)


def fit_dpi(width: float, height: float, dpi: float, max_pixels: int) -> float:
    """The dpi to draw a page of ``width`` x ``height`` points at: ``dpi``, or less
    so that it has at most ``max_pixels``; InputError below ``dpi / REDUCE_MAX``."""
    if not (width > 0 and height > 0):
        raise InputError(f"page has no area: {width:g}x{height:g} points")
    w, h = math.ceil(width * dpi / 72), math.ceil(height * dpi / 72)
    if w * h <= max_pixels:
        return dpi
    at = math.floor(dpi * math.sqrt(max_pixels / (w * h)) * 10) / 10  # to a tenth of a dot per inch
    while at > 0 and math.ceil(width * at / 72) * math.ceil(height * at / 72) > max_pixels:
        at = round(at - 0.1, 1)
    if at < dpi / REDUCE_MAX:
        raise InputError(
            f"page too large: {width / 72:.0f}x{height / 72:.0f} inches, {w}x{h} = {w * h} pixels "
            f"at {dpi:g} dpi > limit {max_pixels} (max_image_pixels), even at {dpi / REDUCE_MAX:g} dpi")
    return at


def render_page(doc: PdfDocument, index: int, dpi: float, max_pixels: int) -> tuple[np.ndarray, float]:
    """Page ``index`` (0-based) drawn on white in uint8 BGR, and the dpi it was drawn
    at (:func:`fit_dpi`); InputError if the page cannot be read or drawn. Drawn once,
    in colour: a grey page is told afterwards by its equal channels
    (``imageio.pages``); a small drawing first to tell would cost as much (PDFium
    decodes a scanned page's image whole for either)."""
    import pypdfium2 as pdfium

    with _LOCK:
        try:
            page = doc[index]
        except pdfium.PdfiumError:
            raise InputError("cannot read the page: it is missing or corrupt") from None
        try:
            at = fit_dpi(*page.get_size(), dpi, max_pixels)
            try:
                # pypdfium2 sizes the bitmap by ceil(points * scale): a hair under the
                # scale keeps a 3 in page at 150 dpi 450 pixels, not 451 by rounding.
                bitmap = page.render(scale=at / 72 * (1 - 1e-9), bitmap_maker=pdfium.PdfBitmap.new_native)
            except pdfium.PdfiumError as exc:
                raise InputError(f"cannot draw the page: {exc}") from None
            pixels = bitmap.to_numpy()  # a view of memory Python owns (new_native), kept by the array
            bitmap.close()
        finally:
            page.close()
    return pixels, at
