"""The small immutable records passed from stage to stage.

decode (imageio) -> Scan -> find_digits (segment) -> [Mark] -> model -> Reading -> results/annotate
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Box = tuple[int, int, int, int]  # x, y, w, h in the original image's pixels

STATUSES = ("ok", "uncertain", "blank", "failed")


@dataclass(frozen=True)
class Scan:
    """One decoded input image.

    A scan whose three channels are equal (a grey file, or grey content in a
    colour file) carries its one plane as ``gray``, and ``image`` is then a
    read-only view of that plane as H x W x 3 (channel stride 0): the same
    values without the copies. Use :meth:`of_gray` to make one.
    """

    image: np.ndarray  # float32 H x W x 3 RGB in 0-1, transparency composited
    width: int
    height: int
    mode: str  # what the file held, e.g. "uint16 gray", "uint8 RGBA", "uint8 palette"
    gray: np.ndarray | None = field(default=None, repr=False, compare=False)  # float32 H x W, or None

    @classmethod
    def of_gray(cls, gray: np.ndarray, mode: str) -> Scan:
        """A scan of one grey plane (float32 H x W, 0-1); ``image`` is its RGB view."""
        gray = np.ascontiguousarray(gray, dtype=np.float32)
        h, w = gray.shape
        # np.broadcast_to(gray[..., None], (h, w, 3)), made directly (a third of the cost)
        image = np.ndarray((h, w, 3), np.float32, buffer=gray, strides=(*gray.strides, 0))
        image.flags.writeable = False
        return cls(image=image, width=w, height=h, mode=mode, gray=gray)

    def __reduce_ex__(self, protocol):  # pickled as its one plane, not three copies of it
        if self.gray is not None:
            return (Scan.of_gray, (self.gray, self.mode))
        return super().__reduce_ex__(protocol)


@dataclass(frozen=True)
class Mark:
    """One digit found on a scan: where it is, and the 28x28 input the model sees.

    ``alt``: on a page, the digit cut from the working pixels as well (``pixels``
    is cut from the scan's own): the digit is read from ``pixels`` and is as
    sure as the less sure of the two."""

    box: Box
    pixels: np.ndarray  # float32 28 x 28, 0-1, white ink on black (MNIST form)
    alt: np.ndarray | None = field(default=None, repr=False, compare=False)  # the same digit cut another way


@dataclass(frozen=True)
class DigitReading:
    digit: int
    confidence: float
    box: Box
    probabilities: tuple[float, ...]  # 10 floats: the digits 0-9 (with "not a digit" they sum to 1 - not_digit)
    pixels: np.ndarray = field(repr=False, compare=False)
    not_digit: float = 0.0  # the model's probability that the mark is not a digit at all (0.0: a 10-output model)


@dataclass(frozen=True)
class Reading:
    """What was read from one image (the part of the result that depends on pixels only)."""

    status: str  # ok | uncertain | blank | failed
    number: str | None
    digits: tuple[DigitReading, ...]
    confidence: float | None
    polarity: str | None = None  # "dark_on_light" | "light_on_dark"
    error: str | None = None
    doubts: tuple[str, ...] = ()  # why the reading is uncertain beyond its confidence


@dataclass(frozen=True)
class Found:
    """One number found on a page: its digits' marks in reading order, and its box.

    ``separators``: the number's own marks between digits, ``(k, char)`` for a
    ``char`` ('.', ',', '-', '/', ...) that stands before digit ``k``.
    ``doubts``: why the number cannot be ``ok`` whatever its digits say
    (e.g. "a mark between digits was not read"). ``printed``: printed, not handwritten.
    """

    marks: tuple[Mark, ...]
    box: Box
    separators: tuple[tuple[int, str], ...] = ()
    doubts: tuple[str, ...] = ()
    printed: bool = False


@dataclass(frozen=True)
class PageFound:
    """What the page reader found on one page: its numbers in reading order.

    ``rotation``: degrees (0, 90, 180, 270) the page was turned clockwise to be
    read upright; boxes are in the page's pixels as decoded. ``doubts``: the
    page's own (e.g. "may be rotated"), shared by each of its numbers.
    """

    numbers: tuple[Found, ...]
    polarity: str | None
    rotation: int = 0
    skew: float = 0.0  # degrees of deskew applied
    doubts: tuple[str, ...] = ()


@dataclass(frozen=True)
class FieldRead:
    """One field of a form page as read: its name, number (None when blank), status,
    box on the page, and why it is not ``ok``."""

    name: str
    number: str | None
    confidence: float | None
    status: str  # ok | uncertain | blank
    box: Box
    doubts: tuple[str, ...] = ()
