"""Worker processes for any picklable task: ``submit`` one call, ``map`` a list in chunks.

The pool knows nothing of its tasks. Workers are ``spawn``-started (never a
fork of a process that holds TensorFlow), die with their parent even on
``kill -9``, ignore Ctrl-C (the parent's to handle) and are started at once so
their imports overlap the caller's. A task that kills its worker cannot take the
caller down: the pool is replaced, the chunk is redone item by item, and the item
that kills a worker on its own gets ``on_crash(item)`` as its result. With no
workers (``processes=0``, or when new ones cannot start) the work runs here.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from .errors import describe

log = logging.getLogger(__name__)

CHUNKS_PER_WORKER = 2  # a map is cut into this many tasks per worker: balance vs. messages
MIN_CHUNK = 4  # ... but no task smaller than this many items
START_TIMEOUT = 60.0  # seconds a new worker may take to start before the pool is given up


def default_processes() -> int:
    """Worker processes worth starting: the usable CPUs, up to 4; none on one CPU."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return 0 if cpus < 2 else min(cpus, 4)


def die_with(parent: int) -> None:
    """Make this process end when ``parent`` ends, even by kill -9 (Linux's
    parent-death signal), so no idle worker is ever left behind."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(0)


def _start_worker(parent: int, initializer: Callable[..., Any] | None, initargs: tuple) -> None:
    die_with(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if initializer is not None:
        initializer(*initargs)


def split(n: int, parts: int, weights: Sequence[float] | None = None,
          most: float = float("inf")) -> list[tuple[slice, float]]:
    """``n`` items cut into about ``parts`` runs of at least MIN_CHUNK items, each
    closed early before its ``weights`` pass ``most`` (at least one item a run):
    (slice, weight) per run, in order."""
    size = max(MIN_CHUNK, -(-n // parts)) if n else 0
    out: list[tuple[slice, float]] = []
    start, held = 0, 0.0
    for i in range(n):
        w = weights[i] if weights is not None else 0.0
        if i > start and (i - start >= size or held + w > most):
            out.append((slice(start, i), held))
            start, held = i, 0.0
        held += w
    if n:
        out.append((slice(start, n), held))
    return out


def _run_chunk(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    return [fn(item) for item in items]


def _done(fn: Callable[..., Any], *args: Any) -> Future:
    """``fn(*args)`` run here, as a finished future."""
    future: Future = Future()
    try:
        future.set_result(fn(*args))
    except Exception as exc:  # noqa: BLE001 - reported by whoever waits for it
        future.set_exception(exc)
    return future


class Pending:
    """The results of one :meth:`Pool.map` under way; ``result()`` waits for them, in order."""

    def __init__(self, pool: Pool, fn: Callable[[Any], Any], on_crash: Callable[[Any], Any],
                 chunks: list[tuple[list[Any], Future, Any]]) -> None:
        self._pool = pool
        self._fn = fn
        self._on_crash = on_crash
        self._chunks = chunks

    def done(self) -> bool:
        """Whether every chunk has finished (or failed): ``result()`` will not wait."""
        return all(future.done() for _, future, _ in self._chunks)

    def result(self) -> list[Any]:
        out: list[Any] = []
        for items, future, executor in self._chunks:
            try:
                out.extend(future.result())
            except BrokenProcessPool as exc:  # a dead worker: redo this chunk's items
                out.extend(self._pool.redo(self._fn, items, self._on_crash, executor, exc))
        return out


class Pool:
    """``processes`` spawned worker processes (0: everything runs in the calling process)."""

    def __init__(self, processes: int, *, initializer: Callable[..., Any] | None = None,
                 initargs: tuple = ()) -> None:
        self.processes = max(0, int(processes))
        self._initializer = initializer
        self._initargs = tuple(initargs)
        self._lock = threading.Lock()
        self._closed = False
        self._executor: ProcessPoolExecutor | None = None
        self._warming: list[Future] = []
        if self.processes:
            self._executor = self._start()
            # start them now: their imports overlap the caller's
            self._warming = [self._executor.submit(os.getpid) for _ in range(self.processes)]

    def wait_started(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the workers started with the pool to be
        up (imports done); True when they are, or when there are none."""
        return not wait(self._warming, timeout=timeout).not_done

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start_worker,
                                   initargs=(os.getpid(), self._initializer, self._initargs))

    def pids(self) -> list[int]:
        """The process ids of the current workers (none when the work runs here):
        this process's living children, as a pool is the only thing that starts them."""
        with self._lock:
            executor = self._executor
        if executor is None:
            return []
        return sorted(p.pid for p in multiprocessing.active_children())

    def _submit(self, fn: Callable[..., Any], *args: Any) -> tuple[Future, Any]:
        """``fn(*args)`` in a worker (or here, when there are none): its future and the
        executor it went to. A broken executor is replaced (once per call)."""
        for _ in range(2):
            with self._lock:
                executor = self._executor
            if executor is None:
                break
            try:
                return executor.submit(fn, *args), executor
            except (BrokenProcessPool, RuntimeError) as exc:
                self._replace(executor, exc)
        return _done(fn, *args), None

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Future of ``fn(*args)``, run in a worker, or here when there are none."""
        return self._submit(fn, *args)[0]

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], *,
            on_crash: Callable[[Any], Any], weights: Sequence[float] | None = None,
            most: float = float("inf")) -> Pending:
        """Start ``fn(item)`` for every item, in a few chunks; ``.result()`` gives the
        results in input order, ``on_crash(item)`` for an item that kills a worker.
        ``weights``: each item's cost, roughly; a chunk holds up to ``most`` of it (at
        least one item), and the heaviest chunks start first (the last to finish
        are light ones, so no worker waits long for another at the end)."""
        items = list(items)
        parts = split(len(items), max(1, self.processes * CHUNKS_PER_WORKER), weights, most)
        order = sorted(range(len(parts)), key=lambda k: -parts[k][1]) if weights else range(len(parts))
        submitted = {k: self._submit(_run_chunk, fn, items[parts[k][0]]) for k in order}
        chunks = [(items[part], *submitted[k]) for k, (part, _) in enumerate(parts)]
        return Pending(self, fn, on_crash, chunks)

    def _replace(self, broken: Any, exc: BaseException) -> None:
        with self._lock:
            if broken is None or self._executor is not broken or self._closed:
                return
            log.warning("a worker process died (%s); starting new workers", describe(exc))
            broken.shutdown(wait=False, cancel_futures=True)
            self._executor = None
            try:
                executor = self._start()
                executor.submit(os.getpid).result(timeout=START_TIMEOUT)  # can it work at all?
            except Exception as err:  # noqa: BLE001 - then the work is done here
                log.error("cannot start worker processes (%s); working in the main process",
                          describe(err))
                return
            self._executor = executor

    def redo(self, fn: Callable[[Any], Any], items: list[Any], on_crash: Callable[[Any], Any],
              broken: Any, exc: BaseException) -> list[Any]:
        """A chunk's worker died: replace the pool, then run each item alone in it; the
        item that kills a worker alone gets ``on_crash(item)`` (it would kill this process)."""
        self._replace(broken, exc)
        out = []
        for item in items:
            with self._lock:
                executor = self._executor
            if executor is None:  # no workers left: running here is all there is
                out.append(fn(item))
                continue
            try:
                (one,) = executor.submit(_run_chunk, fn, [item]).result()
            except BrokenProcessPool as err:
                self._replace(executor, err)
                one = on_crash(item)
            out.append(one)
        return out

    def close(self, wait: bool = True) -> None:
        """Let the tasks under way finish; or, without ``wait``, kill the workers
        at once (their callers get BrokenProcessPool)."""
        pids = [] if wait else self.pids()
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is None:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        executor.shutdown(wait=wait, cancel_futures=True)

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
