"""Result records: an input's pages and numbers as the contract's JSON object and CSV rows.

Pure functions, no files (the files are :mod:`digitd.outbox` and
:mod:`digitd.writer`); the schema is in ``docs/DESIGN.md``, "Results". The
CSV rows are a view of the JSON: one per handwritten number, or one for an
input with none; a page read as a form also gives one row of its form's CSV.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import __version__
from .records import Box, FieldRead, Reading

RESULT_KEYS = ("source", "status", "number", "digits", "confidence", "model", "sha256",
               "processed_at", "elapsed_ms", "annotated", "error")
CSV_COLUMNS = ("processed_at", "source", "status", "number", "confidence", "model", "sha256",
               "result", "error", "page", "index", "box")
DIGITS = 6  # decimals kept for confidences and probabilities


@dataclass(frozen=True)
class NumberRead:
    """One number found on a page, as read: separators in its string, its doubts
    kept (``reading``), where it is (``box``), and whether it is printed."""

    reading: Reading
    box: Box
    printed: bool = False


@dataclass(frozen=True)
class PageRead:
    """One page of an input as read: its numbers in reading order, or the
    ``error`` this page alone could not be read for."""

    page: int
    width: int | None = None
    height: int | None = None
    dpi: float | None = None
    rotation: int = 0
    polarity: str | None = None
    numbers: tuple[NumberRead, ...] = ()
    doubts: tuple[str, ...] = ()  # the page's own ("may be rotated"), already in its numbers'
    error: str | None = None
    annotated: str | None = None
    form: str | None = None  # the template the page matched, None for a plain page
    quality: float | None = None  # how well the page fit it (register.Alignment.quality)
    fields: tuple[FieldRead, ...] = ()  # the form's fields, in the template's order


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


def _unique(items) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def handwritten(page: PageRead) -> list[NumberRead]:
    """The page's handwritten numbers that hold a reading (printed ones are kept apart)."""
    return [n for n in page.numbers if not n.printed and n.reading.number is not None]


def form_status(fields: Sequence[FieldRead]) -> str:
    """A form page's status from its fields: uncertain when one is, or when one is
    blank with a reason (a required field left empty); blank when every one is
    blank; else ok."""
    if any(f.status == "uncertain" or (f.status == "blank" and f.doubts) for f in fields):
        return "uncertain"
    return "blank" if all(f.status == "blank" for f in fields) else "ok"


def page_status(page: PageRead) -> str:
    """failed (its error), a form page's :func:`form_status`, blank (no handwritten
    number, no doubt), ok (every one ok), else uncertain."""
    if page.error is not None:
        return "failed"
    if page.form is not None:
        return form_status(page.fields)
    numbers = handwritten(page)
    if not numbers:
        return "uncertain" if page.doubts else "blank"
    return "ok" if all(n.reading.status == "ok" for n in numbers) else "uncertain"


def summary(pages: Sequence[PageRead]) -> Reading:
    """The input's overall reading from its pages: the one number's reading when
    exactly one handwritten number was found on a one-page input, else no number;
    the status from all of them (failed when every page failed, blank when
    every page is blank, ok when each is ok or blank, else uncertain); pages
    that failed alone named in ``error``."""
    statuses = [page_status(p) for p in pages]
    failed = [p for p in pages if p.error is not None]
    if not pages or len(failed) == len(pages):
        why = "; ".join(f"page {p.page}: {p.error}" for p in failed) if len(pages) > 1 else \
            (failed[0].error if failed else "no pages")
        return Reading("failed", None, (), None, error=why)
    if all(s == "blank" for s in statuses):
        status = "blank"
    elif all(s in ("ok", "blank") for s in statuses):
        status = "ok"
    else:
        status = "uncertain"
    error = "; ".join(f"page {p.page} failed: {p.error}" for p in failed) or None
    numbers = [n for p in pages for n in handwritten(p)]
    doubts = _unique(d for p in pages for d in (*p.doubts, *(d for n in p.numbers if not n.printed
                                                            for d in n.reading.doubts)))
    polarity = next((p.polarity for p in pages if p.polarity is not None), None)
    if len(pages) == 1 and len(numbers) == 1:
        one = numbers[0].reading
        return Reading(status, one.number, one.digits, one.confidence, polarity=polarity,
                       error=error, doubts=doubts)
    return Reading(status, None, (), None, polarity=polarity, error=error, doubts=doubts)


def digit_dicts(reading: Reading, made: dict[int, list] | None = None) -> list[dict[str, Any]]:
    """The digits' JSON; ``made``: those already made, by ``id`` of their tuple (an
    input's one number's digits are shown twice, at the top and in its page)."""
    key = id(reading.digits)
    if made is not None and key in made:
        return made[key]
    out = [
        {
            "digit": int(d.digit),
            "confidence": _round(d.confidence),
            "box": [int(v) for v in d.box],
            "probabilities": [round(float(p), DIGITS) for p in d.probabilities],
        }
        for d in reading.digits
    ]
    if made is not None:
        made[key] = out
    return out


def number_dict(n: NumberRead, made: dict[int, list] | None = None) -> dict[str, Any]:
    r = n.reading
    return {"number": r.number, "confidence": _round(r.confidence), "status": r.status,
            "box": [int(v) for v in n.box], "printed": n.printed, "doubts": list(r.doubts),
            "digits": digit_dicts(r, made)}


def form_dict(p: PageRead) -> dict[str, Any] | None:
    """A page's ``form``: the template's name and the alignment's quality; None for a plain page."""
    if p.form is None:
        return None
    return {"name": p.form, "quality": None if p.quality is None else round(float(p.quality), 3)}


def field_dicts(p: PageRead) -> dict[str, dict[str, Any]]:
    """A page's ``fields``, in the template's order ({} for a plain page)."""
    return {f.name: {"number": f.number, "confidence": _round(f.confidence), "status": f.status,
                     "box": [int(v) for v in f.box], "doubts": list(f.doubts)} for f in p.fields}


def page_dict(p: PageRead, made: dict[int, list] | None = None) -> dict[str, Any]:
    return {"page": p.page, "width": p.width, "height": p.height,
            "dpi": None if p.dpi is None else round(float(p.dpi), 1), "rotation": p.rotation,
            "status": page_status(p), "error": p.error, "doubts": list(p.doubts),
            "annotated": p.annotated, "numbers": [number_dict(n, made) for n in p.numbers],
            "form": form_dict(p), "fields": field_dicts(p)}


def pages_of(reading: Reading, image: Any) -> tuple[PageRead, ...]:
    """The one page of an input known only by its overall reading (``pages`` not given)."""
    numbers = ()
    if reading.number is not None and reading.digits:
        boxes = [d.box for d in reading.digits]
        x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
        x1, y1 = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
        numbers = (NumberRead(reading, (x0, y0, x1 - x0, y1 - y0)),)
    return (PageRead(page=1, width=getattr(image, "width", None),
                     height=getattr(image, "height", None), polarity=reading.polarity,
                     numbers=numbers, doubts=() if numbers else reading.doubts),)


def result_dict(source: str, reading: Reading | None, *, sha256: str | None, model: str,
                processed_at: str | _dt.datetime, elapsed_ms: float, annotated: str | None,
                error: str | None = None, image: Any = None,
                pages: Sequence[PageRead] | None = None) -> dict[str, Any]:
    """The result JSON object for one input, contract keys first and in order.

    ``reading``: the overall one (:func:`summary` of ``pages``). None (or
    ``error`` given) means the input failed: status ``failed``, number null,
    digits [], confidence null, pages [], ``error`` the reason. ``pages``
    None: one page holding ``reading``. Extra keys after the contract's:
    ``polarity``, ``image`` ({width, height, mode} of the first page),
    ``digitd_version``, ``pages``, ``numbers``, ``doubts``, and ``form`` and
    ``fields`` (the one page's, for a one-page input; else null and {}).
    """
    if isinstance(processed_at, _dt.datetime):
        processed_at = utc_timestamp(processed_at)
    failed = reading is None or error is not None or reading.status == "failed"
    made: dict[int, list] = {}  # the digits' JSON, made once (the same reading's digits in its page)
    if failed:
        reason = error or (reading.error if reading is not None else None) or "failed"
        status, number, digits, confidence = "failed", None, [], None
    else:
        reason = reading.error
        status, number, confidence = reading.status, reading.number, _round(reading.confidence)
        digits = digit_dicts(reading, made)
    if reading is not None and pages is None:
        pages = () if failed else pages_of(reading, image)
    pages = pages or ()
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
        "pages": [page_dict(p, made) for p in pages],
        "numbers": [n.reading.number for p in pages for n in handwritten(p)],
        "doubts": [] if reading is None else list(reading.doubts),
        "form": None,
        "fields": {},
    }
    if len(out["pages"]) == 1:
        out["form"], out["fields"] = out["pages"][0]["form"], out["pages"][0]["fields"]
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


def _text(v: Any) -> str:
    return "" if v is None else str(v)


def _confidence(v: float | None) -> str:
    return "" if v is None else f"{v:.{DIGITS}f}"


def csv_row(result: Mapping[str, Any], result_path: str) -> dict[str, str]:
    """The input's own results.csv row (no ``page``, ``index``, ``box``): an input
    with no handwritten number, or a failed one. ``result_path``: its JSON, relative."""
    return {
        "processed_at": _text(result["processed_at"]),
        "source": _text(result["source"]),
        "status": _text(result["status"]),
        "number": _text(result["number"]),
        "confidence": _confidence(result["confidence"]),
        "model": _text(result["model"]),
        "sha256": _text(result["sha256"]),
        "result": result_path,
        "error": _text(result["error"]),
        "page": "",
        "index": "",
        "box": "",
    }


def csv_rows(result: Mapping[str, Any], result_path: str) -> list[dict[str, str]]:
    """The results.csv rows of a result: one per handwritten number (its page, its
    1-based index in that page's ``numbers``, its box as ``x y w h``, its own
    number, confidence and status), else the input's one :func:`csv_row`."""
    base = csv_row(result, result_path)
    rows = []
    for page in result.get("pages") or ():
        for index, n in enumerate(page["numbers"], 1):
            if n["printed"] or n["number"] is None:
                continue
            rows.append({**base, "status": n["status"], "number": n["number"],
                         "confidence": _confidence(n["confidence"]), "page": str(page["page"]),
                         "index": str(index), "box": " ".join(str(v) for v in n["box"])})
    return rows or [base]


def form_columns(fields: Sequence[str]) -> tuple[str, ...]:
    """A form's CSV columns: ``file, page``, its fields in the template's order, ``status, confidence``."""
    return ("file", "page", *fields, "status", "confidence")


def form_rows(result: Mapping[str, Any]) -> list[tuple[str, tuple[str, ...], dict[str, str]]]:
    """The forms CSV rows of a result: per page read as a form, (the form's name, its
    columns, the row). A field's cell is its number (empty when blank); ``status`` the
    page's (its fields' worst), ``confidence`` its fields' lowest."""
    out = []
    for page in result.get("pages") or ():
        form = page.get("form")
        if not form:
            continue
        fields = page["fields"]
        confidences = [f["confidence"] for f in fields.values() if f["confidence"] is not None]
        row = {"file": _text(result["source"]), "page": str(page["page"]),
               **{name: _text(f["number"]) for name, f in fields.items()},
               "status": _text(page["status"]),
               "confidence": _confidence(min(confidences) if confidences else None)}
        out.append((form["name"], form_columns(list(fields)), row))
    return out


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
    """One result as a log line: ``scans/a.png -> 7 (0.99) 12 ms``; an input of
    several numbers or pages:
    ``scan.pdf -> 12/05/2026, 3.75? (2 numbers on 3 pages) uncertain 40 ms``."""
    shown = printable(shown)
    status = result["status"]
    ms = f"{result['elapsed_ms']:.0f} ms"
    if status == "failed":
        return f"{shown} -> failed: {result['error']}"
    if status == "blank":
        return f"{shown} -> blank (no digits found) {ms}"
    mark = "?" if status == "uncertain" else ""
    tail = " uncertain" if status == "uncertain" else ""
    if result["number"] is None:
        pages = result.get("pages") or ()
        said = ", ".join(n["number"] + ("" if n["status"] == "ok" else "?") for p in pages
                         for n in p["numbers"] if not n["printed"] and n["number"] is not None)
        count = len(result.get("numbers") or ())
        where = f"{count} number{'s' * (count != 1)} on {len(pages)} page{'s' * (len(pages) != 1)}"
        return f"{shown} -> {said or 'no number'} ({where}){tail} {ms}"
    return f"{shown} -> {result['number']}{mark} ({result['confidence']:.2f}){tail} {ms}"


def human_lines(shown: str, result: Mapping[str, Any]) -> list[str]:
    """A result as the lines ``digitd predict`` prints: :func:`human_line` for an
    input of one page and at most one number, else one line per number found
    (``scan.pdf p2 #1 -> 12/05/2026 (0.97)``) and per page that failed."""
    pages = result.get("pages") or ()
    forms = any(p.get("form") for p in pages)
    if result["status"] == "failed" or (not forms and len(pages) <= 1
                                         and len(result.get("numbers") or ()) <= 1):
        return [human_line(shown, result)]
    shown = printable(shown)
    lines = []
    for p in pages:
        if p["error"] is not None:
            lines.append(f"{shown} p{p['page']} -> failed: {p['error']}")
        if p.get("form"):
            lines += field_lines(f"{shown} p{p['page']} {p['form']['name']}", p["fields"])
            continue
        for index, n in enumerate(p["numbers"], 1):
            if n["printed"] or n["number"] is None:
                continue
            unsure = n["status"] != "ok"
            why = f" uncertain: {'; '.join(n['doubts'])}" if unsure and n["doubts"] else \
                " uncertain" if unsure else ""
            lines.append(f"{shown} p{p['page']} #{index} -> {n['number']}{'?' * unsure} "
                         f"({n['confidence']:.2f}){why}")
    return lines or [human_line(shown, result)]


def field_lines(head: str, fields: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """A form page's fields, a line each: ``form.png p1 exam-cover student_id 12345678 ok
    0.99``; ``-`` for no number or confidence, and the reasons of a field not ``ok``."""
    lines = []
    for name, f in fields.items():
        conf = "-" if f["confidence"] is None else f"{f['confidence']:.2f}"
        why = f" ({'; '.join(f['doubts'])})" if f["doubts"] else ""
        lines.append(f"{head} {name} {f['number'] or '-'} {f['status']} {conf}{why}")
    return lines
