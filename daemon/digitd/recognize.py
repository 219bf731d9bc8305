"""The model, loaded once, called on stacked batches; scans in, readings out."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .records import DigitReading, Reading, Scan
from .segment import find_digits

BUCKETS = (1, 4, 16, 64, 256)  # batches are padded up to one of these sizes: one trace each


def model_name(path: Path) -> str:
    """The model's name/version: its card's name, else the file's stem."""
    card = Path(path).with_suffix(".json")
    try:
        return str(json.loads(card.read_text())["name"])
    except (OSError, ValueError, KeyError, TypeError):
        return Path(path).stem


class Recognizer:
    """Holds the model; ``read`` takes any number of scans and calls the model once
    per batch of digits (a compiled function on a stacked array)."""

    def __init__(self, model_path: str | Path, *, confidence_threshold: float = 0.8,
                 number_confidence: str = "min", max_digits: int = 12) -> None:
        from . import model as digit_model

        self.path = Path(model_path)
        self.model = digit_model.load(self.path)
        self.name = model_name(self.path)
        self.confidence_threshold = confidence_threshold
        self.number_confidence = number_confidence
        self.max_digits = max_digits
        tf, _ = digit_model.quiet_import()
        self._call = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)

    @classmethod
    def from_config(cls, config, model_path: str | Path | None = None) -> Recognizer:
        return cls(model_path or config.model, confidence_threshold=config.confidence_threshold,
                   number_confidence=config.number_confidence, max_digits=config.max_digits)

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """(N, 28, 28) MNIST-form digits -> (N, 10) probabilities."""
        n = len(pixels)
        if n == 0:
            return np.zeros((0, 10), np.float32)
        out = []
        top = BUCKETS[-1]
        for start in range(0, n, top):
            chunk = pixels[start : start + top]
            size = next(b for b in BUCKETS if b >= len(chunk))
            batch = np.zeros((size, 28, 28, 1), np.float32)
            batch[: len(chunk), ..., 0] = chunk
            out.append(np.asarray(self._call(batch))[: len(chunk)])
        return np.concatenate(out)

    def read(self, scans: Sequence[Scan]) -> list[Reading]:
        found = [find_digits(s.image, self.max_digits) for s in scans]
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
