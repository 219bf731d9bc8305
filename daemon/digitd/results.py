"""Result records: an input's reading as the contract's JSON object and CSV row.

Pure functions, no files (the files are :mod:`digitd.outbox` and
:mod:`digitd.writer`); the schema is in ``docs/DESIGN.md``, "Results".
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import os
from collections.abc import Mapping
from typing import Any

from . import __version__
from .records import Reading

RESULT_KEYS = ("source", "status", "number", "digits", "confidence", "model", "sha256",
               "processed_at", "elapsed_ms", "annotated", "error")
CSV_COLUMNS = ("processed_at", "source", "status", "number", "confidence", "model", "sha256",
               "result", "error")
DIGITS = 6  # decimals kept for confidences and probabilities



# ---------------------------------------------------------------------------
# Pure: records


def printable(name: str) -> str:
    """A file name as valid Unicode: unchanged unless it holds bytes that are not
    UTF-8 (Python keeps those as lone surrogates), which become ``\\xNN``."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")


def utc_timestamp(when: _dt.datetime | None = None) -> str:
    """ISO 8601 UTC with milliseconds and 'Z', e.g. ``2024-05-01T12:34:56.789Z``."""
    when = _dt.datetime.now(_dt.UTC) if when is None else when
    if when.tzinfo is None:
        raise ValueError("processed_at must be timezone-aware")
    return when.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _round(x: float | None) -> float | None:
    return None if x is None else round(float(x), DIGITS)


def result_dict(source: str, reading: Reading | None, *, sha256: str | None, model: str,
                processed_at: str | _dt.datetime, elapsed_ms: float, annotated: str | None,
                error: str | None = None, image: Any = None) -> dict[str, Any]:
    """The result JSON object for one input, contract keys first and in order.

    ``reading`` None (or ``error`` given) means the input failed: status
    ``failed``, number null, digits [], confidence null, ``error`` the reason.
    Extra keys after the contract's: ``polarity``, ``image`` ({width, height,
    mode} when decoded), ``digitd_version``.
    """
    if isinstance(processed_at, _dt.datetime):
        processed_at = utc_timestamp(processed_at)
    failed = reading is None or error is not None or reading.status == "failed"
    if failed:
        reason = error or (reading.error if reading is not None else None) or "failed"
        status, number, digits, confidence = "failed", None, [], None
    else:
        reason = None
        status, number, confidence = reading.status, reading.number, _round(reading.confidence)
        digits = [
            {
                "digit": int(d.digit),
                "confidence": _round(d.confidence),
                "box": [int(v) for v in d.box],
                "probabilities": [_round(p) for p in d.probabilities],
            }
            for d in reading.digits
        ]
    shown = printable(source)
    out: dict[str, Any] = {
        "source": shown,
        "status": status,
        "number": number,
        "digits": digits,
        "confidence": confidence,
        "model": model,
        "sha256": sha256,
        "processed_at": processed_at,
        "elapsed_ms": round(float(elapsed_ms), 1),
        "annotated": None if failed else annotated,
        "error": reason,
        # extras
        "polarity": None if reading is None else reading.polarity,
        "image": None if image is None else {"width": image.width, "height": image.height,
                                             "mode": image.mode},
        "digitd_version": __version__,
    }
    if shown != source:  # not UTF-8: the name's exact bytes too
        out["source_hex"] = os.fsencode(source).hex()
    return out


def failed_result(source: str, reason: str, *, model: str, sha256: str | None = None,
                  processed_at: str | _dt.datetime | None = None, image: Any = None
                  ) -> dict[str, Any]:
    """The result of an input that failed, with ``reason`` as its error."""
    return result_dict(source, None, sha256=sha256, model=model,
                       processed_at=processed_at or _dt.datetime.now(_dt.UTC), elapsed_ms=0.0,
                       annotated=None, error=reason, image=image)


def csv_row(result: Mapping[str, Any], result_path: str) -> dict[str, str]:
    """The results.csv row for a result object; ``result_path`` is its JSON, relative."""

    def text(v: Any) -> str:
        return "" if v is None else str(v)

    return {
        "processed_at": text(result["processed_at"]),
        "source": text(result["source"]),
        "status": text(result["status"]),
        "number": text(result["number"]),
        "confidence": "" if result["confidence"] is None else f"{result['confidence']:.{DIGITS}f}",
        "model": text(result["model"]),
        "sha256": text(result["sha256"]),
        "result": result_path,
        "error": text(result["error"]),
    }


def csv_line(values: Mapping[str, str] | None = None) -> bytes:
    """One CSV record (the header when ``values`` is None), ``\\n``-terminated, UTF-8."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS if values is None else [values.get(c, "") for c in CSV_COLUMNS])
    return buf.getvalue().encode("utf-8")


def json_bytes(obj: Any) -> bytes:
    """One line of JSON and a newline (the C encoder: indenting costs 4x the time)."""
    return (json.dumps(obj, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")




def human_line(shown: str, result: Mapping[str, Any]) -> str:
    """One result as a log line: ``scans/a.png -> 7 (0.99) 12 ms`` and the like."""
    shown = printable(shown)
    status = result["status"]
    ms = f"{result['elapsed_ms']:.0f} ms"
    if status == "failed":
        return f"{shown} -> failed: {result['error']}"
    if status == "blank":
        return f"{shown} -> blank (no digits found) {ms}"
    mark = "?" if status == "uncertain" else ""
    tail = " uncertain" if status == "uncertain" else ""
    return f"{shown} -> {result['number']}{mark} ({result['confidence']:.2f}){tail} {ms}"
