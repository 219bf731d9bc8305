"""``digitd predict``: the one-shot command over files and folders.

The same :class:`~digitd.runner.Runner` as the service, with a writer that
does not fsync and no dispositions: the user's files are never moved. Its
options, output and exit codes are in ``docs/DESIGN.md``, "Commands". On a
terminal (stderr a tty, no ``--verbose``) a tqdm progress bar replaces the
per-input lines; failed inputs are still named, one line each. An input of
several numbers or pages gets a line per number (``scan.pdf p2 #1 -> 3.75 (0.97)``).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from .analyse import init_worker
from .annotate import Pictures
from .errors import UsageError, os_words
from .inbox.names import skip_reason
from .outbox import Outbox
from .pool import Pool, default_processes
from .results import failed_result, human_line, human_lines
from .runner import Input, Limits, Outcome, Runner
from .writer import Writer

log = logging.getLogger(__name__)

MIN_FOR_WORKERS = 32  # fewer inputs than this: read them and draw pictures in this process
BATCH_CAP = 64  # batches small enough that reading, recognising and writing overlap
AHEAD = 2  # batches being analysed by the workers ahead of the one being recognised
WORKERS_START_SECONDS = 10.0  # the timing starts once the workers are up, or after this long

def expand(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Command-line paths -> input files in order: folders become their image files
    (sorted, not recursive, skipping hidden/temporary/other names); anything else is
    kept as given (a missing file fails later with its reason). Duplicates are
    dropped, first one kept."""
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


def shown_result(outcome: Outcome, model: str) -> dict:
    """The result to show for an input: the one written, or why none was."""
    if outcome.result is not None:
        return outcome.result
    return failed_result(outcome.input.source, f"cannot write results: {os_words(outcome.error)}"
                         if isinstance(outcome.error, OSError) else str(outcome.error), model=model)


def progress_bar(total: int):
    """A tqdm bar on stderr (count, rate, ETA); None when stderr is not a terminal."""
    try:
        if not sys.stderr.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    from tqdm import tqdm  # only on a terminal

    try:
        sized = os.get_terminal_size(sys.stderr.fileno()).columns > 0
    except (OSError, ValueError):
        sized = False
    return tqdm(total=total, unit="img", file=sys.stderr, smoothing=0.1,
                dynamic_ncols=sized, ncols=None if sized else 80)  # a terminal of no size: 80


def main(config, args) -> int:
    from .recognize import Recognizer  # the model runtime, after the cheap checks

    t_start = time.perf_counter()
    paths = expand(args.paths)
    if not paths:
        raise UsageError("no image files to read in " + ", ".join(str(p) for p in args.paths))
    items = [Input(path=p, source=p.name) for p in paths]
    as_json = bool(getattr(args, "json", False))
    # Worker processes read and segment the inputs and draw their pictures on
    # every core; they start now, while the model loads. A few inputs are
    # quicker done here.
    with Pool(default_processes() if len(items) >= MIN_FOR_WORKERS else 0,
              initializer=init_worker) as pool:
        pictures = Pictures(pool) if config.annotate else None
        recognizer = Recognizer.from_config(config)  # ModelLoadError -> exit 3
        outbox = Outbox(config.outbox)
        runner = Runner(recognizer, Writer(outbox, durable=False), pool,
                        limits=Limits.from_config(config), pictures=pictures)
        engine = getattr(getattr(recognizer, "engine", None), "description", "?")
        pool.wait_started(WORKERS_START_SECONDS)  # their imports, started with the pool
        log.info("model %s loaded in %.1f s (%s) from %s; config %s; %d input(s), %s; results to %s",
                 recognizer.name, time.perf_counter() - t_start, engine, config.model,
                 config.source or "defaults (no config file)", len(items),
                 f"{pool.processes} worker processes" if pool.processes else "no workers",
                 outbox.root)
        t_work = time.perf_counter()
        counts: Counter[str] = Counter()
        shown = {item.path: str(path) for item, path in zip(items, paths, strict=True)}
        size = min(config.batch_max, BATCH_CAP)
        batches = [items[i : i + size] for i in range(0, len(items), size)]
        bar = None if getattr(args, "verbose", False) else progress_bar(len(items))
        try:
            for outcomes in runner.run_all(batches, ahead=AHEAD):
                for outcome in outcomes:
                    result = shown_result(outcome, recognizer.name)
                    counts[result["status"]] += 1
                    if as_json:
                        sys.stdout.write(json.dumps(result, ensure_ascii=False,
                                                    separators=(",", ":")) + "\n")
                    if bar is None:
                        if not as_json:
                            for line in human_lines(shown[outcome.input.path], result):
                                print(line, file=sys.stderr)
                    elif result["status"] == "failed":
                        bar.write(human_line(shown[outcome.input.path], result), file=sys.stderr)
                if as_json:
                    sys.stdout.flush()
                if bar is not None:
                    bar.update(len(outcomes))
        finally:
            if bar is not None:
                bar.close()
    seconds = time.perf_counter() - t_work
    n = len(items)
    parts = ", ".join(f"{counts[s]} {s}" for s in ("ok", "uncertain", "blank", "failed")
                      if counts[s])
    rate = f" ({n / seconds:.0f} images/s)" if n and seconds > 0 else ""
    print(f"digitd: {n} input(s): {parts or 'nothing to do'} in {seconds:.2f} s{rate}; results in {outbox.root}",
          file=sys.stderr)
    return 1 if counts["failed"] else 0
