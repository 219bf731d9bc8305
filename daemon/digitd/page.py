"""The page reader: every number on a page, in reading order, as :class:`~digitd.records.Found`.

:func:`find_numbers` is the one entry point the pipeline calls for each page or
image. Today it reads the whole image as one number (the cropped-number case);
the page-layout work of issue 11 (lines, gaps, boxes, printed text,
separators, orientation) replaces its inside, never its contract.
"""

from __future__ import annotations

from .records import Found, PageFound, Scan
from .segment import find_digits_scan


def find_numbers(scan: Scan, max_digits: int = 12) -> PageFound:
    """The numbers on one page or image; no numbers for a blank page."""
    marks, polarity = find_digits_scan(scan, max_digits)
    if not marks:
        return PageFound(numbers=(), polarity=polarity)
    x0 = min(m.box[0] for m in marks)
    y0 = min(m.box[1] for m in marks)
    x1 = max(m.box[0] + m.box[2] for m in marks)
    y1 = max(m.box[1] + m.box[3] for m in marks)
    return PageFound(numbers=(Found(marks=tuple(marks), box=(x0, y0, x1 - x0, y1 - y0)),),
                     polarity=polarity)
