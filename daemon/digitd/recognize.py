"""The model, loaded once, called on stacked batches; scans in, readings out.

A model with an 11th output ("not a digit") makes a mark more likely not a
digit than its best digit a doubt: the reading is then ``uncertain``, or
``blank`` when no mark is digit-like. A 10-output model never rejects.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from .model import DIGITS, NOT_DIGIT, batched
from .records import DigitReading, Mark, Reading, Scan
from .segment import find_digits


def model_name(path: Path) -> str:
    """The model's name/version: its card's name, else the file's stem."""
    card = Path(path).with_suffix(".json")
    try:
        return str(json.loads(card.read_text())["name"])
    except (OSError, ValueError, KeyError, TypeError):
        return Path(path).stem


def ordinal(n: int) -> str:
    """1 -> "1st", 2 -> "2nd", 3 -> "3rd", 11 -> "11th", 22 -> "22nd"."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def not_digit_doubt(positions: Sequence[int], count: int) -> str:
    """The doubt for the marks at ``positions`` (0-based) of ``count`` that are not digits."""
    if len(positions) == count:
        return "no digit: " + ("a mark that is not a digit" if count == 1 else f"{count} marks that are not digits")
    where = ", ".join(ordinal(i + 1) for i in positions)
    return f"a mark that is not a digit ({where})" if len(positions) == 1 else f"marks that are not digits ({where})"


def read_marks(probs: np.ndarray, marks: Sequence[Mark]) -> list[DigitReading]:
    """Each mark's probabilities (10, or 11 with "not a digit") -> its DigitReading:
    the best of 0-9, its probability, the ten digit probabilities and ``not_digit``."""
    if not len(marks):
        return []
    best = probs[:, :DIGITS].argmax(axis=1).tolist()
    return [DigitReading(digit=d, confidence=p[d], box=m.box, probabilities=tuple(p[:DIGITS]),
                         pixels=m.pixels, not_digit=p[NOT_DIGIT] if len(p) > NOT_DIGIT else 0.0)
            for m, p, d in zip(marks, probs.tolist(), best)]


class Recognizer:
    """Holds the model; ``read`` takes any number of scans, ``classify`` the digits
    already found on them, and the model is called once per batch of digits.

    ``engine`` says what serves the model (``engine.kind`` is ``"tflite"`` or
    ``"tf.function"``, ``engine.description`` a line for the log); see
    :func:`digitd.model.load_engine`."""

    def __init__(self, model_path: str | Path, *, confidence_threshold: float = 0.8,
                 number_confidence: str = "min", max_digits: int = 12) -> None:
        from . import model as digit_model

        self.path = Path(model_path)
        self.engine = digit_model.load_engine(self.path)  # ModelLoadError
        self._call = self.engine  # one model call: float32 (B, 28, 28, 1), B in engine.buckets -> (B, 10)
        self.name = model_name(self.path)
        self.confidence_threshold = confidence_threshold
        self.number_confidence = number_confidence
        self.max_digits = max_digits

    @classmethod
    def from_config(cls, config, model_path: str | Path | None = None) -> Recognizer:
        return cls(model_path or config.model, confidence_threshold=config.confidence_threshold,
                   number_confidence=config.number_confidence, max_digits=config.max_digits)

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """(N, 28, 28) MNIST-form digits -> (N, 10) probabilities, or (N, 11) with "not a digit"."""
        return batched(self._call, pixels, self.engine.buckets, self.engine.pad, self.engine.outputs)

    def read(self, scans: Sequence[Scan]) -> list[Reading]:
        """Find the digits on each scan, then read them all in one batch."""
        return self.classify([find_digits(s.image, self.max_digits) for s in scans])

    def classify(self, found: Sequence[tuple[list[Mark], str | None]]) -> list[Reading]:
        """Per scan, its digits already found (``segment.find_digits``: the marks and
        the polarity) -> its reading; one batched model call for all of them."""
        every = [m for marks, _ in found for m in marks]
        alts = [i for i, m in enumerate(every) if m.alt is not None]
        inputs = [m.pixels for m in every] + [every[i].alt for i in alts]
        probs = self.probabilities(np.stack(inputs) if inputs else np.zeros((0, 28, 28), np.float32))
        digits = read_marks(probs[: len(every)], every)
        # a mark cut two ways is read from its first cut, as sure as the less sure cut
        for i, p in zip(alts, probs[len(every) :].tolist()):
            digits[i] = replace(digits[i], confidence=min(digits[i].confidence, p[digits[i].digit]))
        readings, k = [], 0
        for marks, polarity in found:
            readings.append(self.reading(digits[k : k + len(marks)], polarity))
            k += len(marks)
        return readings

    def reading(self, digits: list[DigitReading], polarity: str | None, doubts: Sequence[str] = ()) -> Reading:
        """A number's digits -> its Reading. ``blank`` without marks, or when every mark
        is more likely not a digit (the reason in ``doubts``); ``uncertain`` when its
        confidence is below the threshold, a mark is not a digit, or ``doubts`` (the
        finder's own) are given; else ``ok``. Marks that are not digits stay in the
        number as their best digit, so the doubt's positions point into it."""
        if not digits:
            return Reading(status="blank", number=None, digits=(), confidence=None, polarity=polarity,
                           doubts=tuple(doubts))
        rejected = [i for i, d in enumerate(digits) if d.not_digit > d.probabilities[d.digit]]
        if rejected:
            doubts = (*doubts, not_digit_doubt(rejected, len(digits)))
        if len(rejected) == len(digits):
            return Reading(status="blank", number=None, digits=(), confidence=None, polarity=polarity,
                           doubts=tuple(doubts))
        confs = [d.confidence for d in digits]
        conf = float(np.prod(confs)) if self.number_confidence == "product" else min(confs)
        status = "ok" if conf >= self.confidence_threshold and not doubts else "uncertain"
        return Reading(status=status, number="".join(str(d.digit) for d in digits), digits=tuple(digits),
                       confidence=conf, polarity=polarity, doubts=tuple(doubts))
