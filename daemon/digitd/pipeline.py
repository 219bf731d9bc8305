"""One batch of inputs from bytes to outbox files: the stage both ``digitd predict``
and the service run.

``process_batch(items, recognizer, outbox, pictures)``:

1. each input's bytes are read once (their sha256 kept), decoded and its
   digits found - in worker processes (:mod:`digitd.workers`) when the
   caller has them, else here; a bad input becomes a *failed* result with its
   reason, never an exception;
2. all the digits found go to the model together (one batched call:
   ``recognizer.classify``, or ``recognizer.read`` on scans decoded here);
3. the annotated pictures are rendered (in worker processes when
   :class:`Pictures` has them);
4. per input, in this order: ``annotated/NAME.png``, the CSV row, and
   ``results/NAME.json`` last (its presence means the result is complete).

It does not move or delete inputs; the caller decides (the service archives
or quarantines, predict leaves the user's files alone). :func:`prepare` and
:func:`finish` are the two halves, so a caller can recognise the next batch
while the pictures of this one are still being drawn.

``elapsed_ms`` of an input is the time spent on it: reading and decoding it,
its share of the batch's recognition (batch time / inputs recognised),
drawing its picture and writing its files.
"""

from __future__ import annotations

import datetime as _dt
import errno
import logging
import os
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import one_line
from .imageio import InputError, decode, read_bytes, sha256
from .records import Mark, Reading, Scan
from .results import Outbox, csv_row, result_dict
from .workers import ImageInfo, Shown

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------
# Errors in words

_OS_WORDS = {
    errno.ENOENT: "no such file",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EISDIR: "is a folder, not a file",
    errno.ENOSPC: "disk full",
    errno.EIO: "input/output error",
    errno.ELOOP: "too many levels of symbolic links",
    errno.ENAMETOOLONG: "file name too long",
}


def os_reason(exc: OSError) -> str:
    """An OSError as plain words, e.g. ``cannot read: permission denied``."""
    words = _OS_WORDS.get(exc.errno or 0) or one_line(exc.strerror or exc).lower()
    return f"cannot read: {words}"


# ---------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class Item:
    """One input to process: where its bytes are, and the name it is reported under.

    ``name``: an outbox NAME the caller already reserved with
    :meth:`Outbox.claim_name` (the service records it before writing, so a
    redo after a crash writes to the same NAME); None = claim one from the
    stem of ``source``. ``redo``: this input may already have a CSV row from
    an interrupted attempt; the row is then not appended twice.
    """

    path: Path
    source: str  # the input's file name: the result's ``source``; NAME is its stem
    name: str | None = None
    redo: bool = False

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> Item:
        path = Path(path)
        return cls(path=path, source=path.name)


@dataclass(frozen=True)
class Outcome:
    """What became of one item. ``result`` is None only when nothing was written:
    then ``error`` says why (a transient OSError; the caller may retry)."""

    item: Item
    name: str | None = None  # NAME used in the outbox
    result: dict[str, Any] | None = None
    error: OSError | None = None

    @property
    def status(self) -> str:
        return self.result["status"] if self.result else "error"


@dataclass
class _Work:
    item: Item
    started: float
    seconds: float = 0.0  # time spent on this item so far
    sha256: str | None = None
    scan: Scan | ImageInfo | None = None  # ImageInfo when decoded in a worker process
    found: tuple[list[Mark], str | None] | None = None  # digits found in a worker process
    shown: Shown | None = None  # the original fitted for its picture, by that worker
    reading: Reading | None = None
    reason: str | None = None  # why it failed
    retry: OSError | None = None
    picture: Future | None = None


@dataclass
class Prepared:
    """A batch recognised, its pictures possibly still being drawn."""

    work: list[_Work]
    model: str
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------
# The stage


def start(items: Sequence[Item], recognizer, analysers, *, pictures=None, max_bytes: int,
          max_pixels: int, **_: Any):
    """Start reading and segmenting ``items`` in the ``analysers``' worker processes
    (a :class:`digitd.workers.Workers`); pass the handle to :func:`prepare` as
    ``analysed``. Lets a caller keep the workers busy with the next batch while
    this one is recognised and written."""
    return analysers.analyse([item.path for item in items], max_bytes=max_bytes,
                             max_pixels=max_pixels,
                             max_digits=getattr(recognizer, "max_digits", 12),
                             picture=pictures is not None)


def prepare(items: Sequence[Item], recognizer, *, pictures=None, analysers=None, analysed=None,
            max_bytes: int, max_pixels: int, threshold: float = 0.8,
            read_errors: Literal["fail", "retry"] = "fail",
            recognize_errors: Literal["raise", "isolate"] = "raise") -> Prepared:
    """Read, decode and recognise a batch; start drawing its pictures.

    Where the reading and segmenting happen: with ``analysers`` (or an
    ``analysed`` handle from :func:`start`), in worker processes, and the
    recognizer's ``classify`` gets the digits found; otherwise here, and its
    ``read`` gets the decoded scans. Either way the model is called once.

    ``read_errors="fail"``: an OSError while reading (missing file,
    permission) makes the input failed with the reason in words; ``"retry"``:
    nothing is written for it and its :class:`Outcome` carries the error
    (the service retries those with backoff).

    ``recognize_errors="isolate"``: if the batched recognition raises, each
    input is recognised alone and one that still raises is failed with the
    error as its reason; ``"raise"`` lets the exception out.
    """
    work: list[_Work] = []

    def read_error(w: _Work, exc: OSError) -> None:
        if read_errors == "retry":
            w.retry = exc
        else:
            w.reason = os_reason(exc)

    if analysers is not None or analysed is not None:
        if analysed is None:
            analysed = start(items, recognizer, analysers, pictures=pictures, max_bytes=max_bytes,
                             max_pixels=max_pixels)
        t0 = time.perf_counter()
        for item, a in zip(items, analysed.result(), strict=True):
            w = _Work(item=item, started=t0, seconds=a.seconds, sha256=a.sha256)
            if a.reason is not None:
                w.reason = a.reason
            elif a.error is not None:
                read_error(w, a.error)
            else:
                w.scan, w.found, w.shown = a.info, (list(a.marks), a.polarity), a.shown
            work.append(w)

        def recognise(ws: list[_Work]) -> list[Reading]:
            return recognizer.classify([w.found for w in ws])
    else:
        for item in items:
            t0 = time.perf_counter()
            w = _Work(item=item, started=t0)
            try:
                data = read_bytes(item.path, max_bytes)
                w.sha256 = sha256(data)
                w.scan = decode(data, max_pixels)
            except InputError as exc:
                w.reason = exc.reason
            except OSError as exc:
                read_error(w, exc)
            w.seconds += time.perf_counter() - t0
            work.append(w)

        def recognise(ws: list[_Work]) -> list[Reading]:
            return recognizer.read([w.scan for w in ws])

    decoded = [w for w in work if w.scan is not None]
    if decoded:
        t0 = time.perf_counter()
        try:
            readings = recognise(decoded)
        except Exception:
            if recognize_errors == "raise":
                raise
            readings = _one_by_one(decoded, recognise)
        share = (time.perf_counter() - t0) / len(decoded)
        for w, reading in zip(decoded, readings, strict=True):
            w.reading = reading
            w.seconds += share
        decoded = [w for w in decoded if w.reading is not None]

    if pictures is not None:
        from .annotate import make_view

        for w in decoded:
            view = make_view(w.scan, w.reading, source=w.item.source, model=recognizer.name,
                             threshold=threshold, shown=w.shown)
            w.picture = pictures.submit(view)
    return Prepared(work=work, model=recognizer.name)


def _one_by_one(work: list[_Work], recognise) -> list[Reading | None]:
    out: list[Reading | None] = []
    for w in work:
        try:
            (reading,) = recognise([w])
        except Exception as exc:  # noqa: BLE001 - this input fails, the others go on
            log.error("%s: recognition failed: %s: %s", w.item.source, type(exc).__name__, one_line(exc))
            w.reason = f"recognition failed: {type(exc).__name__}: {one_line(exc)}"
            reading = None
        out.append(reading)
    return out


def finish(prepared: Prepared, outbox: Outbox, *, now=None) -> list[Outcome]:
    """Write each input's files (picture, CSV row, JSON last), in input order.

    The NAME's reservation is released once its JSON exists (or on failure).
    """
    now = now or (lambda: _dt.datetime.now(_dt.UTC))
    outcomes = []
    for w in prepared.work:
        if w.retry is not None:
            outcomes.append(Outcome(item=w.item, error=w.retry))
            continue
        png, render_seconds = None, 0.0
        if w.picture is not None:
            try:
                png, render_seconds = w.picture.result()
            except Exception as exc:  # noqa: BLE001 - a picture never fails an input
                log.warning("%s: annotated picture not drawn: %s: %s", w.item.source,
                            type(exc).__name__, one_line(exc))
        t0 = time.perf_counter()
        name = None
        try:
            name = w.item.name or outbox.claim_name(Path(w.item.source).stem)
            annotated = None
            if png is not None:
                annotated = outbox.write_annotated(name, lambda f, png=png: f.write(png))
            elapsed = (w.seconds + render_seconds + time.perf_counter() - t0) * 1000.0
            result = result_dict(
                w.item.source, w.reading, sha256=w.sha256, model=prepared.model,
                processed_at=now(), elapsed_ms=elapsed, annotated=annotated, error=w.reason,
                image=w.scan)
            rel = outbox.result_rel(name)
            if not (w.item.redo and outbox.csv_has_row(rel)):
                outbox.append_csv(csv_row(result, rel))
            outbox.write_json(name, result)
        except OSError as exc:
            log.error("%s: cannot write results to %s: %s", w.item.source, outbox.root,
                      one_line(exc.strerror or exc))
            outcomes.append(Outcome(item=w.item, name=None, error=exc))
            continue
        finally:
            if name is not None:
                outbox.release(name)
        outcomes.append(Outcome(item=w.item, name=name, result=result))
    return outcomes


def process_batch(items: Sequence[Item], recognizer, outbox: Outbox, pictures=None, *,
                  max_bytes: int, max_pixels: int, threshold: float = 0.8,
                  read_errors: Literal["fail", "retry"] = "fail") -> list[Outcome]:
    """:func:`prepare` then :func:`finish`: one batch from input files to outbox files."""
    prepared = prepare(items, recognizer, pictures=pictures, max_bytes=max_bytes,
                       max_pixels=max_pixels, threshold=threshold, read_errors=read_errors)
    return finish(prepared, outbox)


def limits(config) -> dict[str, Any]:
    """The keyword arguments of :func:`prepare` that come from the config."""
    return {
        "max_bytes": int(config.max_file_mb * 1024 * 1024),
        "max_pixels": config.max_image_pixels,
        "threshold": config.confidence_threshold,
    }


def batches(items: Iterable[Item], size: int) -> Iterable[list[Item]]:
    batch: list[Item] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
