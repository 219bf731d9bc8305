"""The model, loaded once, called on stacked batches; scans in, readings out."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .model import batched
from .records import DigitReading, Mark, Reading, Scan
from .segment import find_digits


def model_name(path: Path) -> str:
    """The model's name/version: its card's name, else the file's stem."""
    card = Path(path).with_suffix(".json")
    try:
        return str(json.loads(card.read_text())["name"])
    except (OSError, ValueError, KeyError, TypeError):
        return Path(path).stem


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
        """(N, 28, 28) MNIST-form digits -> (N, 10) probabilities."""
        return batched(self._call, pixels, self.engine.buckets, self.engine.pad)

    def read(self, scans: Sequence[Scan]) -> list[Reading]:
        """Find the digits on each scan, then read them all in one batch."""
        return self.classify([find_digits(s.image, self.max_digits) for s in scans])

    def classify(self, found: Sequence[tuple[list[Mark], str | None]]) -> list[Reading]:
        """Per scan, its digits already found (``segment.find_digits``: the marks and
        the polarity) -> its reading; one batched model call for all of them."""
        stacked = [m.pixels for marks, _ in found for m in marks]
        probs = self.probabilities(np.stack(stacked) if stacked else np.zeros((0, 28, 28), np.float32))
        readings, k = [], 0
        for marks, polarity in found:
            digits = []
            for m in marks:
                p = probs[k]
                k += 1
                d = int(p.argmax())
                digits.append(DigitReading(digit=d, confidence=float(p[d]), box=m.box,
                                           probabilities=tuple(float(v) for v in p), pixels=m.pixels))
            readings.append(self.reading(digits, polarity))
        return readings

    def reading(self, digits: list[DigitReading], polarity: str | None) -> Reading:
        if not digits:
            return Reading(status="blank", number=None, digits=(), confidence=None, polarity=polarity)
        confs = [d.confidence for d in digits]
        conf = float(np.prod(confs)) if self.number_confidence == "product" else min(confs)
        status = "ok" if conf >= self.confidence_threshold else "uncertain"
        return Reading(status=status, number="".join(str(d.digit) for d in digits), digits=tuple(digits),
                       confidence=conf, polarity=polarity)
