"""The one batch runner, shared by ``digitd run`` and ``digitd predict``.

reserve -> analyse (in the pool's worker processes, or here) -> classify (one
model call) -> draw the pictures -> commit (one :class:`~digitd.writer.Writer`
commit). :meth:`Runner.begin` and :meth:`Runner.complete` are the two halves, so
a caller analyses the next batch while this one is classified and written.
Failure isolation lives here: a bad input fails alone, never the batch.
"""

from __future__ import annotations

import collections
import datetime as _dt
import errno
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .analyse import Analysis, analyse, analyse_all
from .annotate import make_view
from .errors import Transient, describe, os_words
from .outbox import Outbox
from .records import Reading
from .results import failed_result, result_dict
from .writer import Record, Writer

log = logging.getLogger(__name__)


def _full(exc: BaseException) -> bool:
    """A full disk: the service waits for space and says so once a minute itself."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True)
class Limits:
    """What the config allows an input: bytes, pixels, and the confidence threshold."""

    max_bytes: int
    max_pixels: int
    threshold: float = 0.8

    @classmethod
    def from_config(cls, config: Any) -> Limits:
        return cls(max_bytes=int(config.max_file_mb * 1024 * 1024),
                   max_pixels=config.max_image_pixels, threshold=config.confidence_threshold)


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
        pending = analyse_all(self.pool, [i.path for i in named], analyse=self._analyse,
                              max_bytes=limits.max_bytes, max_pixels=limits.max_pixels,
                              max_digits=getattr(self.recognizer, "max_digits", 12),
                              picture=self.pictures is not None)
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
        readings = self.classify(started.inputs, analyses)
        share = (time.perf_counter() - t0) / max(1, len(analyses))
        pictures = self.draw(started.inputs, analyses, readings)
        staged: list[tuple[Input, Record]] = []
        outcomes: list[Outcome | None] = []
        model = self.recognizer.name
        for item, a, reading, picture in zip(started.inputs, analyses, readings, pictures,
                                              strict=True):
            result, error = self.result(item, a, reading, picture, model, share)
            if error is not None:
                outcomes.append(Outcome(input=item, error=error))
                continue
            png = picture[0] if picture is not None else None
            staged.append((item, Record(item.name, result, png, row_may_exist=item.redo)))
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
                 ) -> list[Reading | BaseException | None]:
        """One model call for every analysed input; None for those not analysed.

        If the call raises, each input is classified alone and the one that
        still raises gets its exception; if every one does, each gets
        :class:`RecognitionFailed` (the model, not the inputs, is at fault)."""
        found = [i for i, a in enumerate(analyses) if a.info is not None]
        out: list[Reading | BaseException | None] = [None] * len(analyses)
        if not found:
            return out
        classify = self.recognizer.classify
        try:
            for i, reading in zip(found, classify([(list(analyses[i].marks), analyses[i].polarity)
                                                   for i in found]), strict=True):
                out[i] = reading
            return out
        except Exception as exc:  # noqa: BLE001 - find the input that causes it
            if len(found) > 1:
                log.warning("recognition of a batch of %d failed (%s); trying each input alone",
                            len(found), describe(exc))
            first = exc
        if len(found) > 1:
            for i in found:
                try:
                    (out[i],) = classify([(list(analyses[i].marks), analyses[i].polarity)])
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

    def draw(self, inputs: Sequence[Input], analyses: Sequence[Analysis],
             readings: Sequence[Any]) -> list[tuple[bytes, float] | None]:
        """(PNG, seconds) of each input's picture, drawn in the pool; None when none."""
        if self.pictures is None:
            return [None] * len(inputs)
        futures = []
        for item, a, reading in zip(inputs, analyses, readings, strict=True):
            if not isinstance(reading, Reading):
                futures.append(None)
                continue
            view = make_view(a.info, reading, source=item.source, model=self.recognizer.name,
                             threshold=self.limits.threshold, shown=a.shown)
            futures.append(self.pictures.submit(view))
        out: list[tuple[bytes, float] | None] = []
        for item, future in zip(inputs, futures, strict=True):
            try:
                out.append(None if future is None else future.result())
            except Exception as exc:  # noqa: BLE001 - a picture never fails an input
                log.warning("%s: annotated picture not drawn: %s", item.source, describe(exc))
                out.append(None)
        return out

    def result(self, item: Input, a: Analysis, reading: Any, picture: tuple[bytes, float] | None,
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
        if isinstance(reading, RecognitionFailed) and self.retry:
            return None, reading
        if isinstance(reading, BaseException):
            reason = describe(reading) if isinstance(reading, RecognitionFailed) \
                else f"recognition failed: {describe(reading)}"
            return failed_result(item.source, reason, model=model, sha256=a.sha256,
                                 processed_at=now, image=a.info), None
        if a.reason is not None:
            return failed_result(item.source, a.reason, model=model, sha256=a.sha256,
                                 processed_at=now), None
        seconds = a.seconds + share + (picture[1] if picture is not None else 0.0)
        annotated = self.outbox.annotated_rel(item.name) if picture is not None else None
        return result_dict(item.source, reading, sha256=a.sha256, model=model, processed_at=now,
                           elapsed_ms=seconds * 1000.0, annotated=annotated, image=a.info), None

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
