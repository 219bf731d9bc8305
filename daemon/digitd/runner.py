"""The one batch runner, shared by ``digitd run`` and ``digitd predict``.

reserve -> analyse (in the pool's worker processes, or here) -> classify (one
model call for every number of every page of the batch, a form's fields
among them) -> read the pages (separators, doubts; a form page's fields
judged by ``formread.read_fields``) -> draw a picture per page -> commit (one
:class:`~digitd.writer.Writer` commit). :meth:`Runner.begin` and
:meth:`Runner.complete` are the two halves, so a caller analyses the next
batch while this one is classified and written.
Failure isolation lives here: a bad input fails alone, never the batch.
"""

from __future__ import annotations

import collections
import datetime as _dt
import errno
import functools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .analyse import Analysis, PageAnalysis, analyse, analyse_all
from .annotate import make_page_view, make_view
from .errors import Transient, describe, os_words
from .outbox import Outbox
from .records import Found, Reading
from .results import NumberRead, PageRead, failed_result, result_dict, summary
from .writer import Record, Writer

log = logging.getLogger(__name__)

# Readings checked again, each digit slightly changed (formread.steady_readings with the recognizer)
Steady = Callable[[Sequence[Found], Sequence[Reading]], list[Reading]]
STEADY_BELOW = 0.99  # a page's number read ok is checked again when one of its digits is less sure than this


def _full(exc: BaseException) -> bool:
    """A full disk: the service waits for space and says so once a minute itself."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True)
class Limits:
    """What the config allows an input: bytes, pixels (per page), a document's
    pages, dpi and seconds, the confidence threshold, and the form templates a
    page is tried against."""

    max_bytes: int
    max_pixels: int
    threshold: float = 0.8
    dpi: float = 200.0
    max_pages: int = 50
    seconds: float | None = None
    templates: tuple[Any, ...] = ()

    @classmethod
    def from_config(cls, config: Any) -> Limits:
        return cls(max_bytes=int(config.max_file_mb * 1024 * 1024),
                   max_pixels=config.max_image_pixels, threshold=config.confidence_threshold,
                   dpi=config.pdf_dpi, max_pages=config.max_pages,
                   seconds=config.max_document_seconds,
                   templates=tuple(getattr(config, "templates", ())))


def with_separators(number: str, separators: Sequence[tuple[int, str]]) -> str:
    """The digits read with the number's own marks put back: ``(k, char)`` stands
    before digit ``k`` (``"12052026"``, ``[(2, "/"), (4, "/")]`` -> ``"12/05/2026"``)."""
    chars = list(number)
    for k, char in reversed(sorted(separators, key=lambda s: s[0])):  # last first: k stays true
        chars.insert(k, char)
    return "".join(chars)


def read_number(reading: Reading, found: Found, page_doubts: Sequence[str]) -> NumberRead:
    """A number's reading finished: its separators in the string, its own and its
    page's doubts kept, and ``uncertain`` (not ``ok``) when there is any."""
    doubts = tuple(dict.fromkeys((*reading.doubts, *found.doubts, *page_doubts)))
    number = None if reading.number is None else with_separators(reading.number,
                                                                  found.separators)
    status = "uncertain" if reading.status == "ok" and doubts else reading.status
    return NumberRead(replace(reading, number=number, doubts=doubts, status=status),
                      box=found.box, printed=found.printed)


def read_form_page(page: PageAnalysis, readings: Sequence[Reading], steady: Steady | None = None
                   ) -> PageRead:
    """A page read as a form (``readings`` in its fields' order): each field's digits
    checked by ``steady`` (``formread.steady_readings``), each field judged
    (``formread.read_fields``); its numbers are the fields that hold one, in the
    template's order; a blank field's reasons (a required one) are the page's doubts."""
    from .formread import read_fields

    form = page.form
    if steady is not None:
        readings = steady(list(form.fields.values()), readings)
    fields = tuple(read_fields(form.template, form.fields, readings).values())
    numbers = tuple(NumberRead(replace(r, number=f.number, status=f.status, doubts=f.doubts),
                               box=f.box)
                    for r, f in zip(readings, fields, strict=True) if f.number is not None)
    doubts = tuple(dict.fromkeys(d for f in fields if f.number is None for d in f.doubts))
    return PageRead(page=page.number, width=page.info.width, height=page.info.height,
                    dpi=page.dpi, numbers=numbers, doubts=doubts, form=form.template.name,
                    quality=form.quality, fields=fields)


def read_page(page: PageAnalysis, readings: Sequence[Reading], steady: Steady | None = None) -> PageRead:
    """One page's numbers read (``readings`` in its numbers' order), or its failure.
    Of several numbers found on a page, each one read ``ok`` is checked by
    ``steady`` (its digits read again slightly changed), and those with no digit
    at all (every mark more likely not a digit: a logo, a letter) are no number;
    one number alone (a cropped number) is read as it is."""
    if page.found is None:
        return PageRead(page=page.number, dpi=page.dpi, error=page.reason or "not read")
    if page.form is not None:
        return read_form_page(page, readings, steady)
    f = page.found
    if steady is not None and len(f.numbers) > 1:
        readings = check_ok(steady, f.numbers, readings)
    numbers = tuple(read_number(r, n, f.doubts) for r, n in zip(readings, f.numbers, strict=True))
    if len(numbers) > 1:
        numbers = tuple(n for n in numbers if n.reading.status != "blank")
    return PageRead(page=page.number, width=page.info.width, height=page.info.height,
                    dpi=page.dpi, rotation=f.rotation, polarity=f.polarity,
                    numbers=numbers, doubts=f.doubts)


def check_ok(steady: Steady, found: Sequence[Found], readings: Sequence[Reading]) -> list[Reading]:
    """``readings`` with those read ``ok`` checked by ``steady``, unless each of
    their digits is surer than ``STEADY_BELOW`` (the others are doubted already)."""
    ok = [j for j, r in enumerate(readings)
          if r.status == "ok" and min(d.confidence for d in r.digits) < STEADY_BELOW]
    out = list(readings)
    for j, r in zip(ok, steady([found[j] for j in ok], [readings[j] for j in ok]) if ok else []):
        out[j] = r
    return out


def numbers_of(a: Analysis) -> list[tuple[list[Any], str | None]]:
    """What the model reads of an input: every number of every page, in order."""
    return [(list(n.marks), p.found.polarity) for p in a.pages if p.found is not None
            for n in p.found.numbers]


def split_pages(a: Analysis, readings: Sequence[Reading], steady: Steady | None = None
                ) -> tuple[PageRead, ...]:
    """An input's readings (as :func:`numbers_of` ordered them) back into its pages."""
    out, k = [], 0
    for p in a.pages:
        n = 0 if p.found is None else len(p.found.numbers)
        out.append(read_page(p, readings[k : k + n], steady))
        k += n
    return tuple(out)


@dataclass(frozen=True)
class Input:
    """One input: where its bytes are, the ``source`` its result names, its NAME
    (None: reserved from the stem of ``source``), and ``redo``: an earlier
    attempt may already have appended its CSV row."""

    path: Path
    source: str
    name: str | None = None
    redo: bool = False

    @classmethod
    def of(cls, path: str | Path) -> Input:
        path = Path(path)
        return cls(path=path, source=path.name)


@dataclass(frozen=True)
class Outcome:
    """What became of one input: the result written, or why nothing was
    (``error``: transient, the caller may retry; only with ``retry=True``, or
    when the outbox itself cannot be written)."""

    input: Input
    result: dict[str, Any] | None = None
    error: BaseException | None = None

    @property
    def status(self) -> str:
        return self.result["status"] if self.result else "error"


class Changed(Transient):
    """The file changed after it was read: nothing is written; the caller settles it anew."""


class RecognitionFailed(Transient):
    """The model raised for every input of a batch, each alone too: worth a retry."""


@dataclass
class Started:
    """A batch begun: its inputs (NAMEs reserved) and their analyses under way."""

    inputs: list[Input]
    pending: Any  # digitd.pool.Pending of Analysis
    unnamed: dict[int, Outcome]  # position in the batch -> an input whose NAME was not reserved

    def analysing(self) -> bool:
        """Whether the workers are still analysing this batch."""
        done = getattr(self.pending, "done", None)
        return done is not None and not done()


class Runner:
    """Runs batches of inputs through the stages into one writer.

    ``retry=True`` (the service): a read error or a batch the model cannot
    read at all comes back as an :class:`Outcome` with ``error`` (nothing
    written); ``retry=False`` (predict): it is written as a failed result.
    ``recognizer`` may be replaced between batches (a model reload).
    """

    def __init__(self, recognizer: Any, writer: Writer, pool: Any, *, limits: Limits,
                 pictures: Any = None, retry: bool = False, analyse_fn=analyse) -> None:
        self.recognizer = recognizer
        self.writer = writer
        self.pool = pool
        self.limits = limits
        self.pictures = pictures
        self.retry = retry
        self._analyse = analyse_fn

    @property
    def outbox(self) -> Outbox:
        return self.writer.outbox

    # -- the stages ---------------------------------------------------------------

    def reserve(self, inputs: Sequence[Input]) -> list[Input | Outcome]:
        """A NAME for each input that has none; an Outcome (error) where that failed."""
        out: list[Input | Outcome] = []
        for item in inputs:
            if item.name is None:
                try:
                    item = replace(item, name=self.outbox.claim_name(Path(item.source).stem))
                except OSError as exc:
                    log.log(logging.DEBUG if _full(exc) and self.retry else logging.ERROR,
                            "%s: cannot reserve a result name in %s: %s", item.source,
                            self.outbox.root, os_words(exc))
                    out.append(Outcome(input=item, error=exc))
                    continue
                except Exception as exc:  # noqa: BLE001 - a bug on one input: it alone fails
                    log.exception("%s: cannot reserve a result name", item.source)
                    out.append(Outcome(input=item, error=exc))
                    continue
            out.append(item)
        return out

    def begin(self, inputs: Sequence[Input]) -> Started:
        """Reserve NAMEs and start analysing the inputs (in the pool's workers)."""
        reserved = self.reserve(inputs)
        named = [i for i in reserved if isinstance(i, Input)]
        unnamed = {n: o for n, o in enumerate(reserved) if isinstance(o, Outcome)}
        limits = self.limits
        forms = {"templates": limits.templates} if limits.templates else {}
        pending = analyse_all(self.pool, [i.path for i in named], analyse=self._analyse,
                              max_bytes=limits.max_bytes, max_pixels=limits.max_pixels,
                              max_digits=getattr(self.recognizer, "max_digits", 12),
                              picture=self.pictures is not None, dpi=limits.dpi,
                              max_pages=limits.max_pages, seconds=limits.seconds, **forms)
        return Started(inputs=named, pending=pending, unnamed=unnamed)

    def complete(self, started: Started, *, sync_paths: Sequence[str] = (),
                 changed: Callable[[Input], bool] | None = None) -> list[Outcome]:
        """Classify, draw and commit a begun batch; one Outcome per input, in order.
        ``changed(input)``, asked once every input is read: True when its file changed
        since (its Outcome is then :class:`Changed`, nothing written)."""
        analyses: list[Analysis] = started.pending.result()
        if changed is not None:
            moved = {i for i, item in enumerate(started.inputs) if changed(item)}
            if moved:
                analyses = [Analysis(error=Changed("changed after it was read"))
                            if i in moved else a for i, a in enumerate(analyses)]
        t0 = time.perf_counter()
        read = self.classify(started.inputs, analyses)
        share = (time.perf_counter() - t0) / max(1, len(analyses))
        pictures = self.draw(started.inputs, analyses, read)
        staged: list[tuple[Input, Record]] = []
        outcomes: list[Outcome | None] = []
        model = self.recognizer.name
        for item, a, pages, drawn in zip(started.inputs, analyses, read, pictures, strict=True):
            result, error = self.result(item, a, pages, drawn, model, share)
            if error is not None:
                outcomes.append(Outcome(input=item, error=error))
                continue
            staged.append((item, self.record(item, result, drawn)))
            outcomes.append(None)
        written = iter(self.commit(staged, sync_paths))
        out = [o if o is not None else next(written) for o in outcomes]
        for position, outcome in sorted(started.unnamed.items()):
            out.insert(position, outcome)
        if not self.retry:  # nothing will come back for these: free their NAMEs
            for outcome in out:
                if outcome.error is not None and outcome.input.name is not None:
                    self.outbox.release(outcome.input.name)
        return out

    def run(self, inputs: Sequence[Input]) -> list[Outcome]:
        """One batch from input files to outbox files."""
        return self.complete(self.begin(inputs))

    def run_all(self, batches: Iterable[Sequence[Input]],
                ahead: int = 2) -> Iterator[list[Outcome]]:
        """Batches in order, the analysis of up to ``ahead`` further batches under way."""
        started: collections.deque[Started] = collections.deque()
        todo = iter(batches)
        exhausted = False
        while True:
            while not exhausted and len(started) <= ahead:
                batch = next(todo, None)
                if batch is None:
                    exhausted = True
                else:
                    started.append(self.begin(batch))
            if not started:
                return
            yield self.complete(started.popleft())

    # -- steps of complete ----------------------------------------------------------

    def classify(self, inputs: Sequence[Input], analyses: Sequence[Analysis]
                 ) -> list[tuple[PageRead, ...] | BaseException | None]:
        """One model call for every number of every page of every analysed input;
        per input its pages read, None for those not analysed.

        If the call raises, each input is classified alone and the one that
        still raises gets its exception; if every one does, each gets
        :class:`RecognitionFailed` (the model, not the inputs, is at fault)."""
        found = [i for i, a in enumerate(analyses) if a.pages]
        out: list[tuple[PageRead, ...] | BaseException | None] = [None] * len(analyses)
        asked = {i: numbers_of(analyses[i]) for i in found}
        classify = self.recognizer.classify
        steady = None
        from .formread import steady_readings  # a page's digits are read again, slightly changed

        steady = functools.partial(steady_readings, self.recognizer)
        try:
            everything = [n for i in found for n in asked[i]]
            readings = classify(everything) if everything else []
            if len(readings) != len(everything):
                raise RuntimeError(f"{len(readings)} readings for {len(everything)} numbers")
            k = 0
            for i in found:
                out[i] = split_pages(analyses[i], readings[k : k + len(asked[i])], steady)
                k += len(asked[i])
            return out
        except Exception as exc:  # noqa: BLE001 - find the input that causes it
            if len(found) > 1:
                log.warning("recognition of a batch of %d failed (%s); trying each input alone",
                            len(found), describe(exc))
            first = exc
        if len(found) > 1:
            for i in found:
                try:
                    out[i] = split_pages(analyses[i], classify(asked[i]) if asked[i] else [], steady)
                except Exception as exc:  # noqa: BLE001 - this input fails, the others go on
                    out[i] = exc
        else:
            out[found[0]] = first
        if all(isinstance(out[i], BaseException) for i in found):
            for i in found:
                out[i] = RecognitionFailed(f"recognition failed: {describe(out[i])}")
        else:
            for i in found:
                if isinstance(out[i], BaseException):
                    log.error("%s: recognition failed: %s", inputs[i].source, describe(out[i]))
        return out

    def views(self, item: Input, a: Analysis, pages: tuple[PageRead, ...]) -> list[Any]:
        """The view of each page's picture (None for a page with none: failed, or not shown)."""
        model, threshold = self.recognizer.name, self.limits.threshold
        out: list[Any] = []
        for pa, p in zip(a.pages, pages, strict=True):
            if pa.shown is None or pa.info is None:
                out.append(None)
            elif pa.shown.kind == "page":
                out.append(make_page_view(pa.info, p, source=item.source, model=model,
                                          threshold=threshold, shown=pa.shown,
                                          of_pages=len(pages)))
            else:
                reading = p.numbers[0].reading if p.numbers else Reading(
                    "uncertain" if p.doubts else "blank", None, (), None, polarity=p.polarity,
                    doubts=p.doubts)
                source = item.source if len(pages) == 1 else f"{item.source} p{p.page}"
                out.append(make_view(pa.info, reading, source=source, model=model,
                                     threshold=threshold, shown=pa.shown))
        return out

    def draw(self, inputs: Sequence[Input], analyses: Sequence[Analysis], read: Sequence[Any]
             ) -> list[list[tuple[bytes, float] | None] | None]:
        """Per input, per page, (PNG, seconds) of its picture, drawn in the pool;
        None where there is none (no pictures asked for, a failed input or page)."""
        if self.pictures is None:
            return [None] * len(inputs)
        futures: list[list[Any] | None] = []
        for item, a, pages in zip(inputs, analyses, read, strict=True):
            if not isinstance(pages, tuple):
                futures.append(None)
                continue
            try:
                views = self.views(item, a, pages)
            except Exception as exc:  # noqa: BLE001 - a picture never fails an input
                log.warning("%s: annotated picture not drawn: %s", item.source, describe(exc))
                views = [None] * len(pages)
            futures.append([None if v is None else self.pictures.submit(v) for v in views])
        out: list[list[tuple[bytes, float] | None] | None] = []
        for item, pending in zip(inputs, futures, strict=True):
            if pending is None:
                out.append(None)
                continue
            drawn = []
            for future in pending:
                try:
                    drawn.append(None if future is None else future.result())
                except Exception as exc:  # noqa: BLE001 - a picture never fails an input
                    log.warning("%s: annotated picture not drawn: %s", item.source,
                                describe(exc))
                    drawn.append(None)
            out.append(drawn)
        return out

    def picture_names(self, item: Input, drawn: Sequence[Any] | None) -> list[str | None]:
        """Per page, the relative path of its picture (None where none was drawn):
        ``annotated/NAME.png`` for a one-page input, ``annotated/NAME.pN.png`` per page."""
        if drawn is None:
            return []
        several = len(drawn) > 1
        return [None if d is None else self.outbox.annotated_rel(item.name, n if several else None)
                for n, d in enumerate(drawn, 1)]

    def record(self, item: Input, result: dict[str, Any], drawn: Sequence[Any] | None) -> Record:
        """The writer's record of one input: its result and its pictures' PNGs."""
        if result["status"] == "failed" or not drawn:
            return Record(item.name, result, row_may_exist=item.redo)
        if len(drawn) == 1:
            return Record(item.name, result, drawn[0][0] if drawn[0] else None,
                          row_may_exist=item.redo)
        return Record(item.name, result, row_may_exist=item.redo,
                      page_pictures=tuple((n, d[0]) for n, d in enumerate(drawn, 1) if d))

    def result(self, item: Input, a: Analysis, pages: Any, drawn: Sequence[Any] | None,
               model: str, share: float) -> tuple[dict[str, Any] | None, BaseException | None]:
        """The result dict of one input, or the transient error that leaves it unwritten."""
        now = _dt.datetime.now(_dt.UTC)
        if isinstance(a.error, Changed):
            return None, a.error
        if a.error is not None:  # reading the file failed (permission, I/O...)
            if self.retry:
                return None, a.error
            return failed_result(item.source, f"cannot read: {os_words(a.error)}", model=model,
                                 sha256=a.sha256, processed_at=now), None
        if isinstance(pages, RecognitionFailed) and self.retry:
            return None, pages
        if isinstance(pages, BaseException):
            reason = describe(pages) if isinstance(pages, RecognitionFailed) \
                else f"recognition failed: {describe(pages)}"
            return failed_result(item.source, reason, model=model, sha256=a.sha256,
                                 processed_at=now, image=a.info), None
        if a.reason is not None:
            return failed_result(item.source, a.reason, model=model, sha256=a.sha256,
                                 processed_at=now), None
        names = self.picture_names(item, drawn)
        if names:
            pages = tuple(replace(p, annotated=rel) for p, rel in zip(pages, names, strict=True))
        seconds = a.seconds + share + sum(d[1] for d in drawn or () if d is not None)
        overall = summary(pages)
        annotated = next((n for n in names if n is not None), None)
        return result_dict(item.source, overall, sha256=a.sha256, model=model, processed_at=now,
                           elapsed_ms=seconds * 1000.0, annotated=annotated, image=a.info,
                           pages=pages), None

    def commit(self, staged: list[tuple[Input, Record]],
               sync_paths: Sequence[str]) -> list[Outcome]:
        """The records through the writer, one group commit; an Outcome each."""
        records = [record for _, record in staged]
        try:
            errors = self.writer.commit(records, sync_paths=sync_paths,
                                        originals=[str(item.path) for item, _ in staged])
        except OSError as exc:
            log.log(logging.DEBUG if _full(exc) and self.retry else logging.ERROR,
                    "cannot write the results of a batch of %d to %s: %s", len(records),
                    self.outbox.root, os_words(exc))
            errors = [exc] * len(records)
        out = []
        for (item, record), error in zip(staged, errors, strict=True):
            if error is None:
                out.append(Outcome(input=item, result=record.result))
            else:
                log.log(logging.DEBUG if _full(error) and self.retry else logging.ERROR,
                        "%s: cannot write its result to %s: %s", item.source, self.outbox.root,
                        describe(error))
                out.append(Outcome(input=item, error=error))
        return out
