"""Reading and segmenting inputs on every core: file paths in, digits found out.

The model lives in the main process (TensorFlow is big and not fork-safe);
everything before it - reading the file once, its sha256, decoding, finding
the digits and bringing each to MNIST form - is plain NumPy and OpenCV work
that runs in worker processes, in parallel with the model and the writing of
results. :func:`analyse_file` is that work for one file; it never raises: a
bad input comes back as an :class:`Analysis` with its reason.

:class:`Workers` is the pool: ``spawn``-started processes (they import OpenCV
and NumPy, never TensorFlow; matplotlib only once they draw a picture) that
die with their parent even on ``kill -9``. ``analyse(paths)`` sends the files
in a few chunks (one task per file would cost more in messages than the work
itself) and returns a handle whose ``result()`` gives the analyses in input
order. The same workers draw the annotated pictures (``render``), so the
service keeps one set of helper processes, not two.

A file that kills its worker (a decoder crash on a hostile file, the OOM
killer) cannot take the caller down: the pool is restarted, the chunk's files
are tried again one by one, and the one that kills a worker on its own is
failed with a reason. With ``processes=0`` everything runs in the calling
process (one file does not need a pool).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from .errors import one_line
from .records import Mark

log = logging.getLogger(__name__)

CHUNKS_PER_WORKER = 2  # a batch is cut into this many tasks per worker: balance vs. messages
MIN_CHUNK = 4  # ... but no task smaller than this many files
START_TIMEOUT = 60.0  # seconds a new worker may take to start before the pool is given up
CRASH_REASON = "the image crashed the decoder (its worker process died)"


@dataclass(frozen=True)
class ImageInfo:
    """What a result says about the decoded image (``image`` in the JSON)."""

    width: int
    height: int
    mode: str


@dataclass(frozen=True)
class Shown:
    """The original as the annotated picture shows it, made where the image is."""

    panel: Any  # uint8 panel (PANEL high), from annotate.display_image
    scale: float
    x0: float
    y0: float


@dataclass(frozen=True)
class Analysis:
    """One input read and segmented.

    Exactly one of: ``marks`` found (``info`` set, maybe no marks = blank page),
    ``reason`` (a permanent failure: not an image, too large, ...) or ``error``
    (an OSError while reading: the caller decides whether to retry).
    """

    sha256: str | None = None
    info: ImageInfo | None = None
    marks: tuple[Mark, ...] = ()
    polarity: str | None = None
    reason: str | None = None
    error: OSError | None = None
    shown: Shown | None = None
    seconds: float = 0.0  # time spent on it in the worker


def analyse_file(path: str | os.PathLike[str], *, max_bytes: int, max_pixels: int,
                 max_digits: int = 12, picture: bool = False) -> Analysis:
    """Read, hash, decode and segment one file. Never raises for a bad input."""
    from .imageio import InputError, decode, read_bytes, sha256
    from .segment import find_digits

    t0 = time.perf_counter()
    digest = None
    try:
        data = read_bytes(path, max_bytes)
        digest = sha256(data)
        scan = decode(data, max_pixels)
        del data
        marks, polarity = find_digits(scan.image, max_digits)
    except InputError as exc:
        return Analysis(sha256=digest, reason=exc.reason, seconds=time.perf_counter() - t0)
    except OSError as exc:
        return Analysis(sha256=digest, error=exc, seconds=time.perf_counter() - t0)
    except MemoryError:
        return Analysis(sha256=digest, reason="image too large to process (out of memory)",
                        seconds=time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001 - a bug on one odd image fails that image only
        log.error("%s: segmentation failed: %s: %s", path, type(exc).__name__, one_line(exc))
        return Analysis(sha256=digest, reason=f"recognition failed: {type(exc).__name__}: "
                        f"{one_line(exc)}", seconds=time.perf_counter() - t0)
    shown = None
    if picture:
        from .annotate import display_image, panel_width

        panel, s, x0, y0 = display_image(scan.image, panel_width(len(marks)))
        shown = Shown(panel=panel, scale=s, x0=x0, y0=y0)
    return Analysis(sha256=digest, info=ImageInfo(scan.width, scan.height, scan.mode),
                    marks=tuple(marks), polarity=polarity, shown=shown,
                    seconds=time.perf_counter() - t0)


def _analyse_chunk(analyse, paths: Sequence[str], options: dict[str, Any]) -> list[Analysis]:
    return [analyse(p, **options) for p in paths]


# ---------------------------------------------------------------------------
# Worker processes


def die_with(parent: int) -> None:
    """Make this worker end when the process that started it ends, even by kill -9
    (Linux's parent-death signal), so no idle worker is ever left behind."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(0)


def _init(parent: int) -> None:
    die_with(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    import cv2  # imported now, while the parent loads its model

    # One worker per core: OpenCV's own threads would only compete with the
    # sibling worker (and waking them costs more than they save on a scan).
    cv2.setNumThreads(1)

    from . import imageio, segment  # noqa: F401


_annotators: dict[tuple[int, int], Any] = {}


def render(view: Any, dpi: int, png_level: int) -> tuple[bytes, float]:
    """One annotated picture as PNG bytes, and the seconds it took (in a worker
    or here; the Annotator for these settings is made once per process)."""
    from .annotate import Annotator

    t0 = time.perf_counter()
    annotator = _annotators.get((dpi, png_level))
    if annotator is None:
        annotator = _annotators[(dpi, png_level)] = Annotator(dpi, png_level)
    return annotator.render(view), time.perf_counter() - t0


def pid() -> int:
    return os.getpid()


def default_processes() -> int:
    """Worker processes worth starting: the usable CPUs, up to 4; none on one CPU."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return 0 if cpus < 2 else min(cpus, 4)


class Pending:
    """Analyses under way for a list of paths; ``result()`` waits for them, in order."""

    def __init__(self, workers: Workers, options: dict[str, Any],
                 chunks: list[tuple[list[str], Future, Any]]) -> None:
        self._workers = workers
        self._options = options
        self._chunks = chunks

    def result(self) -> list[Analysis]:
        out: list[Analysis] = []
        for paths, future, pool in self._chunks:
            try:
                out.extend(future.result())
            except Exception as exc:  # noqa: BLE001 - a dead worker: redo this chunk's files
                out.extend(self._workers._redo(paths, self._options, pool, exc))
        return out


class Workers:
    """A pool of worker processes for analysing inputs and drawing pictures."""

    def __init__(self, processes: int = 0, *, analyse=analyse_file) -> None:
        """``analyse``: the function run on each file, :func:`analyse_file` (tests
        plug in one that fails on purpose; it must be importable by name)."""
        self.processes = max(0, int(processes))
        self._analyse = analyse
        self._lock = threading.Lock()
        self._pool = None
        self._closed = False
        if self.processes:
            self._pool = self._start()
            for _ in range(self.processes):  # start them now: their imports overlap the caller's
                self._pool.submit(pid)

    def _start(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init, initargs=(os.getpid(),))

    def _submit(self, fn, *args) -> tuple[Future, Any]:
        """Run ``fn(*args)`` in a worker (or here, when there are none): its future and
        the pool it went to. A broken pool is replaced (once per call)."""
        from concurrent.futures.process import BrokenProcessPool

        for _ in range(2):
            with self._lock:
                pool = self._pool
            if pool is None:
                break
            try:
                return pool.submit(fn, *args), pool
            except (BrokenProcessPool, RuntimeError) as exc:
                self._replace(pool, exc)
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except Exception as exc:  # noqa: BLE001 - reported by whoever waits for it
            future.set_exception(exc)
        return future, None

    def _replace(self, broken, exc: BaseException) -> None:
        with self._lock:
            if broken is None or self._pool is not broken or self._closed:
                return
            log.warning("a worker process died (%s); starting new workers", exc or "killed")
            broken.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            try:
                pool = self._start()
                pool.submit(pid).result(timeout=START_TIMEOUT)  # can it work at all?
            except Exception as err:  # noqa: BLE001 - then the work is done here
                log.error("cannot start worker processes (%s); working in the main process",
                          one_line(err) or type(err).__name__)
                return
            self._pool = pool

    # -- analysing ------------------------------------------------------------

    def analyse(self, paths: Sequence[str | os.PathLike[str]], *, max_bytes: int,
                max_pixels: int, max_digits: int = 12, picture: bool = False) -> Pending:
        """Start analysing ``paths``; ``.result()`` gives one Analysis per path."""
        options = {"max_bytes": max_bytes, "max_pixels": max_pixels, "max_digits": max_digits,
                   "picture": picture}
        names = [os.fspath(p) for p in paths]
        chunks = []
        if names:
            parts = max(1, self.processes * CHUNKS_PER_WORKER)
            size = max(MIN_CHUNK, -(-len(names) // parts))
            for start in range(0, len(names), size):
                part = names[start : start + size]
                chunks.append((part, *self._submit(_analyse_chunk, self._analyse, part, options)))
        return Pending(self, options, chunks)

    def _redo(self, paths: list[str], options: dict[str, Any], broken: Any,
              exc: BaseException) -> list[Analysis]:
        """A chunk's worker died: restart the pool, then each file alone in it; the file
        that kills a worker alone is failed (it would kill this process too)."""
        self._replace(broken, exc)
        out = []
        for path in paths:
            with self._lock:
                pool = self._pool
            if pool is None:  # no workers left: decoding here is all there is
                out.append(self._analyse(path, **options))
                continue
            try:
                (one,) = pool.submit(_analyse_chunk, self._analyse, [path], options).result()
            except Exception as err:  # noqa: BLE001
                log.error("%s: %s", path, CRASH_REASON)
                self._replace(pool, err)
                one = Analysis(reason=CRASH_REASON)
            out.append(one)
        return out

    # -- drawing ----------------------------------------------------------------

    def render(self, view: Any, dpi: int, png_level: int) -> Future:
        """Future of (PNG bytes, seconds) for one :class:`digitd.annotate.View`."""
        return self._submit(render, view, dpi, png_level)[0]

    # -- life ---------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
