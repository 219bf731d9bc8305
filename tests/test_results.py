"""Result records and the outbox files: exact keys, CSV rows, names never reused,
atomic writes, moves that never overwrite, and several processes at once."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pytest
from digitd import __version__
from digitd.records import DigitReading, Reading, Scan
from digitd.results import (
    CSV_COLUMNS,
    RESULT_KEYS,
    csv_row,
    failed_result,
    human_line,
    result_dict,
    utc_timestamp,
)

WHEN = dt.datetime(2024, 5, 1, 12, 34, 56, 789000, tzinfo=dt.UTC)
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def digit(d: int, conf: float, box=(1, 2, 3, 4)) -> DigitReading:
    probs = np.full(10, (1 - conf) / 9, np.float64)
    probs[d] = conf
    return DigitReading(digit=d, confidence=conf, box=box, probabilities=tuple(probs),
                        pixels=np.zeros((28, 28), np.float32))


def reading(*digits: DigitReading, status: str = "ok") -> Reading:
    conf = min(d.confidence for d in digits) if digits else None
    number = "".join(str(d.digit) for d in digits) or None
    return Reading(status=status, number=number, digits=tuple(digits), confidence=conf,
                   polarity="dark_on_light")


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# --- result_dict -----------------------------------------------------------------------


def test_result_dict_has_the_contract_keys_in_order_with_the_right_types():
    scan = Scan(image=np.zeros((5, 7, 3), np.float32), width=7, height=5, mode="uint8 RGB")
    r = reading(digit(2, 0.91234567, (10, 20, 30, 40)), digit(7, 0.99))
    out = result_dict("scan 1.png", r, sha256="ab" * 32, model="cnn-v1", processed_at=WHEN,
                      elapsed_ms=12.345, annotated="annotated/scan 1.png", image=scan)
    assert tuple(out)[: len(RESULT_KEYS)] == RESULT_KEYS
    assert out["source"] == "scan 1.png"
    assert out["status"] == "ok"
    assert out["number"] == "27"
    assert out["confidence"] == 0.912346  # rounded to 6 decimals
    assert out["model"] == "cnn-v1"
    assert out["sha256"] == "ab" * 32
    assert out["processed_at"] == "2024-05-01T12:34:56.789Z"
    assert out["elapsed_ms"] == 12.3
    assert out["annotated"] == "annotated/scan 1.png"
    assert out["error"] is None
    first = out["digits"][0]
    assert list(first) == ["digit", "confidence", "box", "probabilities"]
    assert first["digit"] == 2 and isinstance(first["digit"], int)
    assert first["box"] == [10, 20, 30, 40]
    assert len(first["probabilities"]) == 10
    assert all(isinstance(p, float) for p in first["probabilities"])
    assert out["polarity"] == "dark_on_light"
    assert out["image"] == {"width": 7, "height": 5, "mode": "uint8 RGB"}
    assert out["digitd_version"] == __version__
    json.dumps(out, allow_nan=False)  # plain JSON types only


def test_a_failed_input_has_no_reading_and_says_why():
    out = result_dict("x.png", None, sha256=None, model="m", processed_at=WHEN, elapsed_ms=1,
                      annotated="annotated/x.png", error="empty file (0 bytes)")
    assert (out["status"], out["number"], out["digits"], out["confidence"]) == ("failed", None, [], None)
    assert out["error"] == "empty file (0 bytes)"
    assert out["annotated"] is None  # never a picture for a failed input
    assert out["image"] is None


@pytest.mark.parametrize("status", ["blank", "uncertain"])
def test_blank_and_uncertain_keep_their_status(status):
    r = reading(status="blank") if status == "blank" else reading(digit(4, 0.5), status="uncertain")
    out = result_dict("x.png", r, sha256="0", model="m", processed_at=WHEN, elapsed_ms=1,
                      annotated=None)
    assert out["status"] == status
    assert out["error"] is None


def test_timestamps_are_utc_with_z():
    assert ISO_Z.match(utc_timestamp())
    paris = dt.timezone(dt.timedelta(hours=2))
    assert utc_timestamp(dt.datetime(2024, 5, 1, 14, 0, tzinfo=paris)) == "2024-05-01T12:00:00.000Z"
    with pytest.raises(ValueError):
        utc_timestamp(dt.datetime(2024, 5, 1))


def test_csv_row_columns():
    out = result_dict("a,b.png", reading(digit(0, 0.5)), sha256="f", model="m", processed_at=WHEN,
                      elapsed_ms=1, annotated=None)
    row = csv_row(out, "results/a,b.json")
    assert tuple(row) == CSV_COLUMNS
    assert row["number"] == "0"
    assert row["confidence"] == "0.500000"
    assert row["error"] == ""


def test_failed_result_says_why_and_has_no_reading():
    result = failed_result("x.png", "not an image: the file holds text", model="m",
                           sha256="h", processed_at=WHEN)
    assert result == result_dict("x.png", None, sha256="h", model="m", processed_at=WHEN,
                                 elapsed_ms=0.0, annotated=None,
                                 error="not an image: the file holds text")
    assert (result["status"], result["number"], result["error"]) == \
        ("failed", None, "not an image: the file holds text")


def test_human_lines():
    ok = result_dict("a.png", reading(digit(7, 0.99)), sha256="h", model="m", processed_at=WHEN,
                     elapsed_ms=12.4, annotated=None)
    assert human_line("in/a.png", ok) == "in/a.png -> 7 (0.99) 12 ms"
    failed = failed_result("b.png", "cannot read: no such file", model="m")
    assert human_line("b.png", failed) == "b.png -> failed: cannot read: no such file"

