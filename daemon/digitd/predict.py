"""``digitd predict [--config PATH] [--model PATH] [--out DIR] [--no-annotate] [--json] PATH...``

One-shot recognition of files and folders, writing exactly what the service
writes for each input (``annotated/NAME.png``, a ``results.csv`` row,
``results/NAME.json``) into ``--out DIR`` (default: the config's outbox).

* Folders are expanded non-recursively to their image files, sorted by name,
  skipping what the service skips (hidden and temporary names, other types).
  Files named on the command line are always tried, whatever their name.
* The inputs are the user's files: predict never moves, deletes or
  quarantines them. An input that cannot be read (missing, not an image,
  truncated...) gets a *failed* result - JSON and CSV row with the reason,
  as the service writes - but no ``failed/NAME.error.json`` (that record
  describes an original moved into ``failed/``, and predict moves nothing).
* Output: with ``--json``, one compact result object per input on stdout, in
  input order; otherwise one line per input on stderr, e.g.
  ``scans/a.png -> 7 (0.99) 12 ms``. A summary line ends either way.
* Exit codes: 0 when every input was read (ok, uncertain or blank), 1 if any
  failed, 3 if the model cannot be loaded (from :mod:`digitd.cli`).

Batches of ``batch_max`` inputs (at most :data:`BATCH_CAP`): worker processes
(:mod:`digitd.workers`) read and segment the next batches and draw the
pictures, this process runs the model on one batch, and a writer thread
writes the files of the one before.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .errors import one_line

log = logging.getLogger(__name__)

MIN_FOR_WORKERS = 32  # fewer inputs than this: read them and draw pictures in this process
BATCH_CAP = 64  # overlap reading and writing; the recognizer pads model calls to 1/4/16/64/256
AHEAD = 2  # batches being read and segmented by the workers ahead of the model


def expand(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Command-line paths -> input files in order: folders become their image files
    (sorted, not recursive, skipping hidden/temporary/other names); anything else is
    kept as given (a missing file fails later with its reason). Duplicates are
    dropped, first one kept."""
    from .watcher import skip_reason

    out: list[Path] = []
    seen: set[str] = set()

    def add(path: Path) -> None:
        key = os.path.realpath(path)
        if key in seen:
            log.info("%s: named twice, read once", path)
            return
        seen.add(key)
        out.append(path)

    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            add(path)
            continue
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except OSError as exc:
            add(path)  # fails with its reason like any unreadable input
            log.debug("cannot list %s: %s", path, exc)
            continue
        found = 0
        for entry in entries:
            reason = skip_reason(entry.name)
            if reason is None and entry.is_dir():
                reason = "a folder (folders are not searched recursively)"
            if reason is not None:
                log.info("skipped %s: %s", path / entry.name, reason)
                continue
            add(path / entry.name)
            found += 1
        if found == 0:
            log.warning("%s: no image files in this folder", path)
    return out


def human_line(shown: str, result: dict) -> str:
    """``scans/a.png -> 7 (0.99) 12 ms`` and the like."""
    status = result["status"]
    ms = f"{result['elapsed_ms']:.0f} ms"
    if status == "failed":
        return f"{shown} -> failed: {result['error']}"
    if status == "blank":
        return f"{shown} -> blank (no digits found) {ms}"
    mark = "?" if status == "uncertain" else ""
    tail = " uncertain" if status == "uncertain" else ""
    return f"{shown} -> {result['number']}{mark} ({result['confidence']:.2f}){tail} {ms}"


def _unwritten(outcome, model: str) -> dict:
    """The result shown for an input whose files could not be written."""
    import datetime as dt

    from .results import result_dict

    reason = f"cannot write results: {one_line(outcome.error.strerror or outcome.error)}"
    return result_dict(outcome.item.source, None, sha256=None, model=model,
                       processed_at=dt.datetime.now(dt.UTC), elapsed_ms=0.0, annotated=None,
                       error=reason)


def main(config, args) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter

    from .pipeline import Item, batches, finish, limits, prepare, start
    from .recognize import Recognizer
    from .results import Outbox
    from .workers import Workers, default_processes

    t_start = time.perf_counter()
    paths = expand(args.paths)
    items = [Item(path=p, source=p.name) for p in paths]
    as_json = bool(getattr(args, "json", False))
    # Worker processes read and segment the inputs (and draw their pictures)
    # on every core while this process runs the model; they start now, while
    # the model loads. A few inputs are quicker done here.
    workers = Workers(default_processes() if len(items) >= MIN_FOR_WORKERS else 0)
    try:
        pictures = None
        if config.annotate:
            from .annotate import Pictures

            pictures = Pictures(workers=workers)
        recognizer = Recognizer.from_config(config)  # ModelLoadError -> exit 3
        outbox = Outbox(config.outbox, fsync=False)  # see digitd.results: rerun after a power cut
        engine = getattr(getattr(recognizer, "engine", None), "description", "?")
        log.info("model %s loaded in %.1f s (%s); %d input(s), %s; results to %s",
                 recognizer.name, time.perf_counter() - t_start, engine, len(items),
                 f"{workers.processes} worker processes" if workers.processes else "no workers",
                 outbox.root)
        t_work = time.perf_counter()
        counts: Counter[str] = Counter()
        shown = {id(item): str(path) for item, path in zip(items, paths, strict=True)}
        lim = limits(config)

        def report(outcomes: Iterable) -> None:
            for outcome in outcomes:
                result = outcome.result or _unwritten(outcome, recognizer.name)
                counts[result["status"]] += 1
                if as_json:
                    sys.stdout.write(json.dumps(result, ensure_ascii=False, separators=(",", ":")) + "\n")
                else:
                    print(human_line(shown[id(outcome.item)], result), file=sys.stderr)
            if as_json:
                sys.stdout.flush()

        # The workers read and segment up to AHEAD batches ahead; this thread
        # recognises batch N while the writer thread writes batch N-1's files
        # (waiting for its pictures); results are reported in input order.
        todo = list(batches(items, min(config.batch_max, BATCH_CAP)))
        started: list = []

        def keep_busy(upto: int) -> None:
            while workers.processes and len(started) < min(upto, len(todo)):
                started.append(start(todo[len(started)], recognizer, workers, pictures=pictures,
                                     **lim))

        writer = ThreadPoolExecutor(1, thread_name_prefix="digitd-writer")
        try:
            pending = None
            for i, batch in enumerate(todo):
                keep_busy(i + 1 + AHEAD)
                prepared = prepare(batch, recognizer, pictures=pictures, read_errors="fail",
                                   analysed=started[i] if workers.processes else None,
                                   recognize_errors="isolate", **lim)
                if pending is not None:
                    report(pending.result())
                pending = writer.submit(finish, prepared, outbox)
            if pending is not None:
                report(pending.result())
        finally:
            writer.shutdown(wait=True, cancel_futures=True)
    finally:
        workers.close()

    seconds = time.perf_counter() - t_work
    n = len(items)
    parts = ", ".join(f"{counts[s]} {s}" for s in ("ok", "uncertain", "blank", "failed") if counts[s])
    rate = f" ({n / seconds:.0f} images/s)" if n and seconds > 0 else ""
    print(f"digitd: {n} input(s): {parts or 'nothing to do'} in {seconds:.2f} s{rate}; "
          f"results in {outbox.root}", file=sys.stderr)
    return 1 if counts["failed"] else 0
