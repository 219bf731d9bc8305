"""The one reader: an input's bytes to the digits found on it, as an :class:`Analysis`.

:func:`analyse` reads the file once (its sha256 kept), decodes it with the
bomb limits and finds its digits; it never raises for a bad input. The same
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
from .imageio import InputError, decode, read_bytes, sha256
from .records import Mark
from .segment import find_digits

log = logging.getLogger(__name__)

CRASH_REASON = "the image crashed the decoder (its worker process died)"


@dataclass(frozen=True)
class ImageInfo:
    """What a result says about the decoded image (``image`` in the JSON)."""

    width: int
    height: int
    mode: str


@dataclass(frozen=True)
class Shown:
    """The original as the annotated picture shows it, made where the image is."""

    panel: Any  # uint8 panel (PANEL high), from annotate.display_image
    scale: float
    x0: float
    y0: float


@dataclass(frozen=True)
class Analysis:
    """One input read and segmented.

    Exactly one of: ``marks`` found (``info`` set, maybe no marks = blank page),
    ``reason`` (a permanent failure: not an image, too large, ...) or ``error``
    (an OSError while reading: the caller decides whether to retry).
    """

    sha256: str | None = None
    info: ImageInfo | None = None
    marks: tuple[Mark, ...] = ()
    polarity: str | None = None
    reason: str | None = None
    error: OSError | None = None
    shown: Shown | None = None
    seconds: float = 0.0  # time spent on it in the worker


def analyse(source: str | os.PathLike[str] | bytes, *, max_bytes: int, max_pixels: int,
            max_digits: int = 12, picture: bool = False) -> Analysis:
    """Read (unless given bytes), hash, decode and segment one input.
    Never raises for a bad input: the Analysis says what went wrong."""
    t0 = time.perf_counter()
    digest = None
    path = "<bytes>" if isinstance(source, bytes) else source
    try:
        data = source if isinstance(source, bytes) else read_bytes(source, max_bytes)
        digest = sha256(data)
        scan = decode(data, max_pixels)
        del data
        marks, polarity = find_digits(scan.image, max_digits)
    except InputError as exc:
        return Analysis(sha256=digest, reason=exc.reason, seconds=time.perf_counter() - t0)
    except OSError as exc:
        return Analysis(sha256=digest, error=exc, seconds=time.perf_counter() - t0)
    except MemoryError:
        return Analysis(sha256=digest, reason="image too large to process (out of memory)",
                        seconds=time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001 - a bug on one odd image fails that image only
        log.error("%s: segmentation failed: %s", path, describe(exc))
        return Analysis(sha256=digest, reason=f"recognition failed: {describe(exc)}",
                        seconds=time.perf_counter() - t0)
    shown = None
    if picture:
        from .annotate import (  # matplotlib: only where pictures are
            display_image,
            panel_width,
        )

        panel, s, x0, y0 = display_image(scan.image, panel_width(len(marks)))
        shown = Shown(panel=panel, scale=s, x0=x0, y0=y0)
    return Analysis(sha256=digest, info=ImageInfo(scan.width, scan.height, scan.mode),
                    marks=tuple(marks), polarity=polarity, shown=shown,
                    seconds=time.perf_counter() - t0)


def crashed(_source: Any) -> Analysis:
    return Analysis(reason=CRASH_REASON)


def init_worker() -> None:
    """The pool's initializer: one OpenCV thread per worker (one worker per core)."""
    cv2.setNumThreads(1)


def analyse_all(pool: Any, sources: Sequence[Any], *, analyse=analyse, **options: Any):
    """:func:`analyse` of every source on the pool (in input order; a
    :class:`digitd.pool.Pending`); an input that kills its worker fails with
    :data:`CRASH_REASON`."""
    return pool.map(functools.partial(analyse, **options), [os.fspath(s) if not isinstance(
        s, bytes) else s for s in sources], on_crash=crashed)
