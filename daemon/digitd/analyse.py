"""The one reader: an input's bytes to the numbers on each of its pages, an :class:`Analysis`.

:func:`analyse` reads the file once (its sha256 kept), decodes its pages one
by one with the bomb limits (``imageio.pages``), finds the numbers on each
(``page.find_numbers``) - or, for a page-sized scan that fits one of the
form templates given, each field's handwriting (``formread.match_form``,
``find_fields``) - and keeps only what later stages need: no page's
pixels outlive its own reading. It never raises for a bad input. The same
function runs in this process or in the pool's workers (:func:`analyse_all`),
so an input is judged the same wherever it is read.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2

from .errors import describe
from .imageio import InputError, pages, read_bytes, sha256
from .page import find_numbers
from .records import Found, PageFound

log = logging.getLogger(__name__)

CRASH_REASON = "the image crashed the decoder (its worker process died)"
OOM_REASON = "image too large to process (out of memory)"
SMALL_PAGE = 1000  # a blank image up to this long (pixels) keeps the digits picture
FORM_SIDE = 600  # a scan this many pixels or more on each side is tried against the templates
TASK_BYTES = 64 << 10  # inputs up to this many bytes together make one task for a worker


@dataclass(frozen=True)
class ImageInfo:
    """What a result says about a decoded page (``image`` in the JSON)."""

    width: int
    height: int
    mode: str


@dataclass(frozen=True)
class Shown:
    """A page as its annotated picture shows it, made where the page's pixels are.

    ``kind``: ``"digits"`` (today's picture: one number, its digits and
    probabilities; ``panel`` PANEL high) or ``"page"`` (the whole page with a
    box on each number; ``panel`` about PAGE_PANEL high)."""

    panel: Any  # uint8 H x W x 3, from annotate.display_image; a page's: JPEG bytes (pack_panel)
    scale: float
    x0: float
    y0: float
    kind: str = "digits"
    size: tuple[int, int] = (0, 0)  # a page panel's width and height


@dataclass(frozen=True)
class FormFound:
    """A page that fits a form template: the template (``forms.Template``), how well the
    page fits it, and each field's handwriting in the template's order."""

    template: Any
    quality: float
    fields: dict[str, Found]


@dataclass(frozen=True)
class PageAnalysis:
    """One page read: its 1-based ``number``, and either what was found on it
    (``info`` and ``found`` set) or the ``reason`` this page alone could not be read."""

    number: int
    info: ImageInfo | None = None
    dpi: float | None = None
    found: PageFound | None = None
    shown: Shown | None = None
    reason: str | None = None
    form: FormFound | None = None  # the page read as a form: ``found`` holds its fields


@dataclass(frozen=True)
class Analysis:
    """One input read, page by page.

    Exactly one of: ``pages`` (each read or failed alone; a blank page has no
    numbers), ``reason`` (the input as a whole failed for good: not an image,
    too large, ...) or ``error`` (an OSError while reading: the caller decides
    whether to retry).
    """

    sha256: str | None = None
    pages: tuple[PageAnalysis, ...] = ()
    reason: str | None = None
    error: OSError | None = None
    seconds: float = 0.0  # time spent on it in the worker

    @property
    def info(self) -> ImageInfo | None:
        """The first page's image (``image`` in the JSON), if any page was decoded."""
        return next((p.info for p in self.pages if p.info is not None), None)


def wants_page_picture(width: int, height: int, found: PageFound) -> bool:
    """Whether a page is shown whole with a box on each number (a page of a
    document, a form) rather than as today's picture of one number's digits:
    several numbers, a printed one, a number small on its page, or a large blank page."""
    numbers = found.numbers
    if len(numbers) > 1 or any(n.printed for n in numbers):
        return True
    if not numbers:
        return max(width, height) > SMALL_PAGE
    _, _, w, h = numbers[0].box
    return h * 6 < height and w * 3 < width


def show_page(scan: Any, found: PageFound, whole: bool = False) -> Shown:
    """The page fitted into its picture's panel (``whole``: shown whole, as a form is)."""
    from .annotate import display_image, pack_panel, page_panel_size, panel_width

    pixels = scan.gray if scan.gray is not None else scan.image
    if whole or wants_page_picture(scan.width, scan.height, found):
        width, height = page_panel_size(scan.width, scan.height)
        panel, s, x0, y0 = display_image(pixels, width, height, gray=True)
        return Shown(panel=pack_panel(panel), scale=s, x0=x0, y0=y0, kind="page",
                     size=(width, height))
    digits = len(found.numbers[0].marks) if found.numbers else 0
    panel, s, x0, y0 = display_image(pixels, panel_width(digits))
    return Shown(panel=panel, scale=s, x0=x0, y0=y0)


def find_form(scan: Any, templates: Sequence[Any], max_digits: int) -> FormFound | None:
    """The fields of the template a page-sized scan fits best; None for a smaller scan
    (a cropped number), one that fits none, or one the form reader fails on."""
    if not templates or min(scan.width, scan.height) < FORM_SIDE:
        return None
    from .formread import find_fields, match_form

    try:
        matched = match_form(scan, templates)
        if matched is None:
            return None
        template, alignment = matched
        return FormFound(template=template, quality=alignment.quality,
                         fields=find_fields(scan, template, alignment, max_digits))
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - a bug in reading a form: read the page plainly
        log.error("reading the page as a form failed: %s; read as a plain page", describe(exc))
        return None


def analyse_page(page: Any, max_digits: int, picture: bool,
                 templates: Sequence[Any] = ()) -> PageAnalysis:
    """One decoded page (an ``imageio.Page``) -> its numbers (a form's: its fields, one
    number each), and its picture's panel."""
    if page.reason is not None:
        return PageAnalysis(number=page.number, dpi=page.dpi, reason=page.reason)
    scan = page.scan
    try:
        form = find_form(scan, templates, max_digits)
        if form is None:
            found = find_numbers(scan, max_digits)
        else:
            found = PageFound(numbers=tuple(form.fields.values()), polarity=None)
        shown = show_page(scan, found, form is not None) if picture else None
    except MemoryError:
        return PageAnalysis(number=page.number, dpi=page.dpi, reason=OOM_REASON)
    except Exception as exc:  # noqa: BLE001 - a bug on one odd page fails that page only
        log.error("page %d: reading failed: %s", page.number, describe(exc))
        return PageAnalysis(number=page.number, dpi=page.dpi,
                            reason=f"recognition failed: {describe(exc)}")
    return PageAnalysis(number=page.number, info=ImageInfo(scan.width, scan.height, scan.mode),
                        dpi=page.dpi, found=found, shown=shown, form=form)


def analyse(source: str | os.PathLike[str] | bytes, *, max_bytes: int, max_pixels: int,
            max_digits: int = 12, picture: bool = False, dpi: float = 200.0,
            max_pages: int = 50, seconds: float | None = None,
            templates: Sequence[Any] = ()) -> Analysis:
    """Read (unless given bytes), hash, decode and read one input, page by page.
    Never raises for a bad input: the Analysis says what went wrong.
    ``dpi``, ``max_pages``, ``seconds``: a document's (``imageio.pages``);
    ``templates``: the form templates a page-sized page is tried against."""
    t0 = time.perf_counter()
    digest = None
    read: list[PageAnalysis] = []
    try:
        data = source if isinstance(source, bytes) else read_bytes(source, max_bytes)
        digest = sha256(data)
        for page in pages(data, max_pixels, dpi=dpi, max_pages=max_pages, seconds=seconds):
            read.append(analyse_page(page, max_digits, picture, templates))
            del page
        del data
    except InputError as exc:
        return Analysis(sha256=digest, reason=exc.reason, seconds=time.perf_counter() - t0)
    except OSError as exc:
        return Analysis(sha256=digest, error=exc, seconds=time.perf_counter() - t0)
    except MemoryError:
        return Analysis(sha256=digest, reason=OOM_REASON, seconds=time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001 - a bug on one odd input fails that input only
        path = "<bytes>" if isinstance(source, bytes) else source
        log.error("%s: reading failed: %s", path, describe(exc))
        return Analysis(sha256=digest, reason=f"recognition failed: {describe(exc)}",
                        seconds=time.perf_counter() - t0)
    if not read:
        return Analysis(sha256=digest, reason="no pages", seconds=time.perf_counter() - t0)
    if len(read) == 1 and read[0].reason is not None:  # a one-page input fails with its page
        return Analysis(sha256=digest, reason=read[0].reason, seconds=time.perf_counter() - t0)
    return Analysis(sha256=digest, pages=tuple(read), seconds=time.perf_counter() - t0)


def crashed(_source: Any) -> Analysis:
    return Analysis(reason=CRASH_REASON)


# glibc's mallopt parameters, and how much freed memory a worker keeps for its next page
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
HEAP_KEEP = 256 << 20  # bytes: a 300 dpi colour page's arrays, with room


def keep_freed_memory() -> None:
    """Have glibc's malloc keep a page's freed arrays (up to HEAP_KEEP) for the
    next page's, rather than unmapping each and having the kernel zero fresh
    pages for the next (a tenth of a page's CPU time). The peak is the same;
    a worker idles with up to HEAP_KEEP more resident. A no-op elsewhere."""
    try:
        import ctypes  # only here: glibc's mallopt

        libc = ctypes.CDLL(None)
        libc.mallopt(M_MMAP_THRESHOLD, HEAP_KEEP)
        libc.mallopt(M_TRIM_THRESHOLD, HEAP_KEEP)
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        pass


def init_worker() -> None:
    """The pool's initializer: one OpenCV thread per worker (one worker per core),
    freed memory kept for the next page (:func:`keep_freed_memory`)."""
    cv2.setNumThreads(1)
    keep_freed_memory()


def input_size(source: Any) -> int:
    """An input's bytes (0 when it cannot be looked at: its reading will say why)."""
    if isinstance(source, bytes):
        return len(source)
    try:
        return os.stat(source).st_size
    except (OSError, ValueError):
        return 0


def analyse_all(pool: Any, sources: Sequence[Any], *, analyse=analyse, **options: Any):
    """:func:`analyse` of every source on the pool (in input order; a
    :class:`digitd.pool.Pending`); an input that kills its worker fails with
    :data:`CRASH_REASON`. Inputs go to the workers in tasks of up to
    TASK_BYTES (a page scan alone, the heaviest first)."""
    items = [os.fspath(s) if not isinstance(s, bytes) else s for s in sources]
    return pool.map(functools.partial(analyse, **options), items, on_crash=crashed,
                    weights=[input_size(s) for s in items], most=TASK_BYTES)
