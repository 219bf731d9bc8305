"""``digitd run``: the hot-folder service (DESIGN.md, "A file's life").

Threads:

* the watchdog observer and the settler (:mod:`digitd.watcher`) notice files
  and decide when each is complete;
* ONE worker owns the model: it claims ready files by renaming them into its
  work folder (:mod:`digitd.workdir`), recognises them in micro-batches
  through :mod:`digitd.pipeline`, writes the results and moves the originals;
  it also takes over the work folders of dead instances, retries transient
  failures with backoff, and reloads the model when its file is replaced;
  reading, decoding and segmenting the files, and drawing their pictures,
  it hands to worker processes (:mod:`digitd.workers`, one per core), so
  they run on every core while it runs the model and writes;
* the main thread waits for SIGTERM/SIGINT, and meanwhile writes
  ``outbox/status.json`` and speaks sd_notify (``READY``, ``STATUS``,
  ``WATCHDOG`` while the other threads are alive and the worker is not stuck,
  ``STOPPING``).

One input, once (the order is what makes ``kill -9`` at any moment harmless,
and a power cut unable to lose a result whose original was moved):

1. claim: rename into ``inbox/.digitd/work/<instance>/``;
2. a NAME is reserved in the outbox for each input of the batch
   (``results/.NAME.reserve``) and recorded in ONE journal per batch next to
   the claimed files (:func:`digitd.workdir.write_journal`);
3. the batch is recognised; per input ``annotated/NAME.png``, the CSV row
   and the JSON are written, the JSON into its reservation file; then the
   group commit (:class:`digitd.results.Batch`): all CSV rows in one write,
   one sync of rows, JSONs and journal, every JSON renamed to
   ``results/NAME.json`` (last), ``results/`` fsynced;
4. the originals to ``outbox/originals/`` (or deleted; or, when one failed,
   to ``outbox/failed/`` with ``NAME.error.json``);
5. the journal is removed once every input in it is finished or has a
   per-file state record of its own (written only for a retry or quarantine).

Redoing a file after a crash: if ``results/NAME.json`` exists only step 4
is left; otherwise the result is written again under the same NAME, without
a second CSV row when results.csv already has one pointing at
``results/NAME.json``. A move in step 4 is a hard link then an unlink; if the
crash fell between the two, the redo finds the link by inode and only
unlinks.

Failures are per file. Permanent ones (not an image, truncated, too large, a
symlink, not a regular file, recognition raising on this file only) give a
*failed* result (JSON and CSV row, as ``digitd predict`` writes) and the
original goes to ``failed/``. Transient ones (any OSError: disk full,
permission, I/O) leave the file claimed and are retried after
``retry_backoff_seconds``, doubling; after ``retry_max_attempts`` the file is
failed with the last error as reason; if even that cannot be written the
file stays claimed and is tried again every few minutes - never dropped.
"""

from __future__ import annotations

import collections
import datetime as _dt
import heapq
import itertools
import logging
import os
import signal
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Config
from .errors import ConfigError, one_line
from .notify import Notifier
from .status import Counters, status_line, write_status
from .workdir import State, WorkArea, remove_quietly, source_of, state_path, write_journal

log = logging.getLogger(__name__)

EXIT_THREAD_DIED = 70
TICK = 0.2  # main loop and idle worker wake-up, seconds
STOP_JOIN_SECONDS = 25.0  # the unit's TimeoutStopSec is 30
MAX_BACKOFF = 300.0  # longest wait between two attempts at a file
MODEL_CHECK_SECONDS = 1.0
MIN_HANG_SECONDS = 60.0  # a worker silent this long is stuck (no WATCHDOG=1)
ARRIVING_POLL = 0.005  # filling a batch: how often to look whether more files are coming
INSTANCE_ENV = "DIGITD_INSTANCE"  # set by digitd@.service: status-<instance>.json


class Permanent(Exception):
    """This file cannot be processed, and retrying will not help."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Journal:
    """A batch journal on disk and how many of its inputs still depend on it."""

    __slots__ = ("path", "pending")

    def __init__(self, path: Path, pending: int = 0) -> None:
        self.path = path
        self.pending = pending


@dataclass(eq=False)
class Job:
    """One claimed input, from claim to finished."""

    path: Path  # the claimed file in a work folder
    folder: Path  # that work folder (ours or adopted)
    state: State
    resumed: bool = False  # found after a crash: anything may already be written
    check_csv: bool = False  # an earlier attempt may have appended its CSV row
    record: bool = False  # a per-file state record exists on disk
    journal: _Journal | None = None  # the batch journal that records its NAME
    due: float = 0.0
    scheduled: bool = False  # waiting in the retry queue
    finished: bool = False

    @property
    def source(self) -> str:
        return self.state.source

    @property
    def state_file(self) -> Path:
        return state_path(self.path)


def preflight(config: Config) -> None:
    """Refuse to start, with one line naming the key, on missing or read-only folders."""
    where = f" in {config.source}" if config.source else ""
    for key in ("inbox", "outbox"):
        path: Path = getattr(config, key)
        if not path.exists():
            raise ConfigError(f"{key} folder {path} does not exist (key '{key}'{where})")
        if not path.is_dir():
            raise ConfigError(f"{key} {path} is not a folder (key '{key}'{where})")
        if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
            raise ConfigError(f"{key} folder {path} is not writable by this user "
                              f"(key '{key}'{where})")


def _file_key(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _words(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        from .pipeline import os_reason

        return os_reason(exc).removeprefix("cannot read: ")
    return f"{type(exc).__name__}: {one_line(exc)}"


def _linked_copy(path: Path, folder: Path) -> Path | None:
    """A hard link of ``path`` in ``folder`` (a move cut short between link and unlink)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if st.st_nlink < 2:
        return None
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.inode() == st.st_ino:
                    if os.lstat(entry.path).st_dev == st.st_dev:
                        return Path(entry.path)
    except FileNotFoundError:
        pass
    return None


# watchdog holds an unmatched IN_MOVED_FROM for 0.5 s to pair it with its
# IN_MOVED_TO, and its queue is first in, first out: every event after it waits
# too. Each claim is such a move (out of the watched inbox into the work
# folder), so under a steady trickle every new file was seen 0.5 s late. The two
# halves of a rename are queued by the kernel one after the other, so a short
# wait still pairs them; an unpaired half is only a hint (the watcher checks
# every candidate on disk, and rescans).
MOVE_PAIR_SECONDS = 0.02


def _observer(polling: bool, poll_interval: float):
    """:func:`digitd.watcher.make_observer`, without watchdog's 0.5 s hold on moves."""
    from .watcher import make_observer

    if not polling:
        try:
            from watchdog.observers.inotify_move_event_grouper import InotifyMoveEventGrouper
        except ImportError:  # another watchdog version or platform: its own default
            pass
        else:
            InotifyMoveEventGrouper.delay = min(InotifyMoveEventGrouper.delay, MOVE_PAIR_SECONDS)
    return make_observer(polling, poll_interval)


def _default_recognizer(config: Config):
    from .recognize import Recognizer

    return Recognizer.from_config(config)


class Service:
    """The running service. ``start()``, then ``serve()`` until the stop event is set.

    The keyword arguments let tests plug fakes in through the real interfaces:
    ``recognizer_factory(config)`` returns an object with ``.read(scans)`` and
    ``.name`` (and ``.classify(found)`` to take the digits the worker processes
    found; without it the scans are decoded and read in this process);
    ``outbox`` an :class:`digitd.results.Outbox`-like object; ``workers`` a
    :class:`digitd.workers.Workers` (default: one process per core).
    """

    def __init__(self, config: Config, *, stop_event: threading.Event | None = None,
                 recognizer_factory: Callable[[Config], Any] | None = None,
                 outbox: Any = None, notifier: Notifier | None = None,
                 observer_factory: Callable | None = None, pictures: Any = None,
                 workers: Any = None,
                 instance_id: str | None = None) -> None:
        self.config = config
        self.stop_event = stop_event or threading.Event()
        self._recognizer_factory = recognizer_factory or _default_recognizer
        self.outbox = outbox
        self.notifier = notifier or Notifier()
        self._observer_factory = observer_factory
        self.pictures = pictures
        self.workers = workers
        self._instance_id = instance_id
        self.counters = Counters()
        self.recognizer: Any = None
        self.inbox: Any = None
        self.work: WorkArea | None = None
        self._worker: threading.Thread | None = None
        self._retry: list[tuple[float, int, Job]] = []
        self._recovered: collections.deque[Job] = collections.deque()
        self._seq = itertools.count()
        self._outstanding: dict[Path, int] = {}  # adopted folder -> jobs not finished
        self._in_batch = 0
        self._beat = time.monotonic()
        self._model_key: tuple[int, int, int] | None = None
        self._model_candidate: tuple[int, int, int] | None = None
        self._bad_model_key: tuple[int, int, int] | None = None
        self._model_missing_logged = False
        self._next_model_check = 0.0
        self._next_adopt = 0.0
        self._inbox_prefix = os.path.join(os.fspath(config.inbox), "")
        self._last_line = ""
        self.exit_code = 0
        instance = os.environ.get(INSTANCE_ENV, "")
        self.status_path = config.outbox / (f"status-{instance}.json" if instance else "status.json")

    # ------------------------------------------------------------------
    # Start and stop

    def start(self) -> None:
        """Check folders, load the model, take over leftovers, start watching; READY=1."""
        from .watcher import Inbox

        config = self.config
        log.info("config: %s", ", ".join(f"{k}={v}" for k, v in config.as_dict().items()))
        preflight(config)
        self.work = WorkArea(config.inbox, self._instance_id)
        try:
            self.work.open()
        except OSError as exc:
            raise ConfigError(f"inbox folder {config.inbox}: cannot create the work folder "
                              f"{self.work.folder}: {exc.strerror or exc} (key 'inbox')") from None
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
        t0 = time.monotonic()
        if self.workers is None:
            from .workers import Workers, default_processes

            # Reading and segmenting the inputs, and drawing their pictures, run
            # in worker processes on every core (they start now, while the model
            # loads); this process keeps the model and the bookkeeping.
            self.workers = Workers(default_processes())
        self.recognizer = self._recognizer_factory(config)  # ModelLoadError: exit 3
        self._model_key = _file_key(config.model)
        if self.outbox is None:
            from .results import Outbox

            self.outbox = Outbox(config.outbox)
        if self.pictures is None and config.annotate:
            from .annotate import Pictures

            self.pictures = Pictures(workers=self.workers)
        from .pipeline import limits

        self._limits = limits(config)
        engine = getattr(getattr(self.recognizer, "engine", None), "description", None)
        log.info("model %s loaded in %.1f s%s; %s", self.recognizer.name,
                 time.monotonic() - t0, f" ({engine})" if engine else "",
                 f"{self.workers.processes} worker processes" if self.workers.processes
                 else "no worker processes")
        self.inbox = Inbox(
            config.inbox, recursive=config.recursive, polling=config.polling,
            poll_interval=config.poll_interval_seconds, settle_seconds=config.settle_seconds,
            rescan_seconds=config.rescan_seconds, ignore=self.work.base,
            observer_factory=self._observer_factory or _observer)
        self.inbox.start()
        self._worker = threading.Thread(target=self._work_loop, name="digitd-worker", daemon=True)
        self._worker.start()
        mode = f"polling every {config.poll_interval_seconds:g} s" if self.inbox.polling else "inotify"
        log.info("watching %s (%s%s) as instance %s; results to %s", config.inbox, mode,
                 ", recursive" if config.recursive else "", self.work.id, config.outbox)
        if not self.stop_event.is_set():
            self.notifier.ready(f"watching {config.inbox}")

    def serve(self) -> int:
        """Run until the stop event is set (or a thread dies); returns the exit code."""
        wd = self.notifier.watchdog_seconds
        now = time.monotonic()
        next_status, next_watchdog = now, now
        while not self.stop_event.is_set():
            now = time.monotonic()
            dead = self._dead_thread()
            if dead:
                log.error("the %s stopped unexpectedly; exiting so that the service is restarted",
                          dead)
                self.exit_code = EXIT_THREAD_DIED
                break
            if wd is not None and now >= next_watchdog:
                if self.healthy():
                    self.notifier.watchdog()
                else:
                    log.warning("worker busy for %.0f s: not telling systemd it is alive",
                                now - self._beat)
                next_watchdog = now + wd
            if now >= next_status:
                self.report()
                next_status = now + self.config.status_interval_seconds
            wait = TICK if wd is None else min(TICK, max(0.0, next_watchdog - now))
            self.stop_event.wait(wait)
        self.shutdown()
        return self.exit_code

    def stop(self) -> None:
        self.stop_event.set()

    def shutdown(self) -> None:
        """STOPPING=1; stop watching; let the worker finish its batch; last status."""
        self.stop_event.set()
        snap_line = status_line(self._snapshot())
        self.notifier.stopping(f"stopping: {snap_line}")
        log.info("stopping: finishing the current batch")
        if self.inbox is not None:
            self.inbox.stop()
        if self._worker is not None:
            self._worker.join(STOP_JOIN_SECONDS)
            if self._worker.is_alive():
                log.error("the worker did not finish within %.0f s; exiting anyway "
                          "(its files are redone at the next start)", STOP_JOIN_SECONDS)
        self.report()
        if self.pictures is not None and hasattr(self.pictures, "close"):
            self.pictures.close()
        self.close_workers()
        if self.work is not None:
            self.work.close()
        self.notifier.close()
        log.info("stopped: %s", status_line(self._snapshot()))

    # ------------------------------------------------------------------
    # Health and status

    def _dead_thread(self) -> str | None:
        if self._worker is not None and not self._worker.is_alive():
            return "worker thread"
        if self.inbox is not None and not self.inbox.alive():
            return "inbox watcher"
        return None

    def healthy(self) -> bool:
        """Observer, settler and worker alive, and the worker not stuck."""
        if self._dead_thread():
            return False
        limit = max(MIN_HANG_SECONDS, 4 * (self.notifier.watchdog_seconds or 0))
        return time.monotonic() - self._beat < limit

    def _snapshot(self) -> dict[str, Any]:
        queued = (self.inbox.waiting if self.inbox is not None else 0) + self._in_batch \
            + len(self._recovered)
        self.counters.retrying = len(self._retry)
        return self.counters.snapshot(
            model=getattr(self.recognizer, "name", None) or "", queued=queued,
            instance=self.work.id if self.work else "")

    def report(self) -> None:
        """status.json, STATUS=, and a log line when the counts changed."""
        snap = self._snapshot()
        line = status_line(snap)
        try:
            write_status(self.status_path, snap)
        except OSError as exc:
            log.debug("cannot write %s: %s", self.status_path, exc)
        self.notifier.status(line)
        counts = (snap["processed"], snap["failed"], snap["queued"], snap["retrying"])
        if counts != self._last_line:
            self._last_line = counts
            log.info("status: %s", line)

    # ------------------------------------------------------------------
    # The worker

    def _work_loop(self) -> None:
        """Batches in a pipeline of two: while the worker processes read and
        segment batch N (started by :meth:`_begin`), this thread recognises and
        writes batch N-1 (:meth:`_complete`). A batch is completed as soon as no
        further file is ready, so a lone file never waits for a next one."""
        pending: _Stage | None = None
        while True:
            self._beat = time.monotonic()
            stage: _Stage | None = None
            jobs: list[Job] = []
            try:
                if not self.stop_event.is_set():
                    self._maybe_adopt()
                    self._maybe_reload_model()
                    jobs = self._next_batch(wait=pending is None)
                    self._in_batch = len(jobs) + (len(pending.jobs) if pending else 0)
                    if jobs:
                        stage = self._begin(jobs)
            except Exception as exc:  # noqa: BLE001 - the worker must survive anything
                self._unexpected(jobs, exc)
            if pending is not None:
                try:
                    self._complete(pending)
                except Exception as exc:  # noqa: BLE001
                    self._unexpected(pending.jobs, exc)
            self._in_batch = 0
            pending = stage
            if pending is None and self.stop_event.is_set():
                return

    def _unexpected(self, jobs: list[Job], exc: Exception) -> None:
        log.exception("unexpected error in a batch; its files will be retried")
        for job in jobs:
            if not (job.finished or job.scheduled):
                self._transient(job, exc)
        self.stop_event.wait(1.0)

    def _maybe_adopt(self) -> None:
        """At start and every rescan: take over the work folders of dead instances."""
        now = time.monotonic()
        if now < self._next_adopt:
            return
        self._next_adopt = now + self.config.rescan_seconds
        for folder in self.work.adopt():
            jobs: list[Job] = []
            try:
                leftovers, journal_paths = self.work.leftovers(folder)
                journals = {path: _Journal(path) for path in journal_paths}
                for left in leftovers:
                    if left.exists:
                        state = left.state or State(source=source_of(left.path.name))
                        job = Job(path=left.path, folder=folder, state=state, resumed=True,
                                  check_csv=state.name is not None,
                                  record=left.state is not None and left.journal is None)
                        if left.journal is not None:
                            job.journal = journals[left.journal]
                            job.journal.pending += 1
                        jobs.append(job)
                    else:  # only its record is left: the input was finished
                        self._tidy_orphan_state(left.path, left.state, left.journal is None)
                for journal in journals.values():
                    if journal.pending == 0:
                        remove_quietly(journal.path)
            except OSError as exc:
                log.warning("cannot take over %s now (%s); trying again at the next rescan",
                            folder, _words(exc))
                self.work.finished_with(folder)  # gives its lock back (the folder is not empty)
                continue
            self._recovered.extend(jobs)
            n = len(jobs)
            if n:
                log.info("taking over %d claimed file(s) from %s", n, folder.name)
            self._outstanding[folder] = n
            if n == 0:
                self.work.finished_with(folder)

    def _tidy_orphan_state(self, path: Path, state: State | None, record: bool = True) -> None:
        if state is not None and state.name:
            done = (self.config.outbox / "results" / f"{state.name}.json").exists() \
                or (self.config.outbox / "failed" / f"{state.name}.error.json").exists()
            if not done:
                log.warning("%s: claimed file missing and no result (was it removed by hand?)",
                            state.source)
            self.outbox.release(state.name)
        if record:
            remove_quietly(state_path(path))

    def _maybe_reload_model(self) -> None:
        """Load the model again when its file was replaced (and has stayed put for a check)."""
        now = time.monotonic()
        if now < self._next_model_check:
            return
        self._next_model_check = now + MODEL_CHECK_SECONDS
        key = _file_key(self.config.model)
        if key is None:
            if not self._model_missing_logged:
                log.warning("model file %s is gone; still serving with %s", self.config.model,
                            self.recognizer.name)
                self._model_missing_logged = True
            return
        self._model_missing_logged = False
        if key in (self._model_key, self._bad_model_key):
            return
        if key != self._model_candidate:  # changed: wait until it stays the same
            self._model_candidate = key
            return
        log.info("model file %s changed: loading it", self.config.model)
        try:
            recognizer = self._recognizer_factory(self.config)
        except Exception as exc:  # noqa: BLE001 - a bad new model must not stop the service
            self._bad_model_key = key
            message = getattr(exc, "message", None) or f"{type(exc).__name__}: {one_line(exc)}"
            log.error("new model not loaded, still serving with %s: %s", self.recognizer.name,
                      message)
            self.counters.add(error=f"model: {message}")
            return
        old = self.recognizer.name
        self.recognizer = recognizer
        self._model_key = key
        log.info("model reloaded: %s (was %s)", recognizer.name, old)

    def _next_batch(self, wait: bool = True) -> list[Job]:
        """Up to batch_max jobs: recovered, due for retry, then ready in the inbox
        (waiting up to a tick for one when ``wait``)."""
        limit = self.config.batch_max
        jobs: list[Job] = []
        while self._recovered and len(jobs) < limit:
            jobs.append(self._recovered.popleft())
        now = time.monotonic()
        while self._retry and len(jobs) < limit and self._retry[0][0] <= now:
            job = heapq.heappop(self._retry)[2]
            job.scheduled = False
            jobs.append(job)
        room = limit - len(jobs)
        if room <= 0 or self.stop_event.is_set():
            return jobs
        timeout = 0.0 if jobs or not wait else TICK
        if self._retry:
            timeout = min(timeout, max(0.0, self._retry[0][0] - now))
        paths = self.inbox.take(room, timeout)
        if paths and len(jobs) + len(paths) < limit and self.config.batch_wait_ms > 0:
            # Wait for more only while more files are on their way (noticed, not
            # yet ready): in a burst that fills the batch; under a trickle the
            # file goes at once instead of waiting batch_wait_ms for nothing.
            deadline = time.monotonic() + self.config.batch_wait_ms / 1000.0
            while len(jobs) + len(paths) < limit and self.inbox.arriving():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                more = self.inbox.take(limit - len(jobs) - len(paths), min(left, ARRIVING_POLL))
                paths.extend(more)
        for path in paths:
            key = self.inbox.done(path)  # before the claim: see Inbox.done
            if self.stop_event.is_set():
                continue  # stopping: not claimed, it stays in the inbox
            job = self._claim(path, key)
            if job is not None:
                jobs.append(job)
        return jobs

    def _claim(self, path: Path, key: tuple[int, int, int] | None) -> Job | None:
        from .watcher import file_key

        text = os.fspath(path)
        rel = text[len(self._inbox_prefix):] if text.startswith(self._inbox_prefix) \
            else os.path.relpath(text, self.config.inbox)
        if key is not None:
            try:
                now = file_key(os.lstat(text))
            except FileNotFoundError:
                log.debug("%s was gone before it could be claimed", rel)
                return None
            except OSError:
                now = None
            if now != key:  # replaced or written again since it was judged complete
                log.debug("%s changed since it was complete; settling it again", rel)
                self.inbox.notice(path)
                return None
        try:
            dest = self.work.claim(path, rel)
        except OSError as exc:
            log.warning("cannot claim %s: %s (left in the inbox)", rel, _words(exc))
            return None
        if dest is None:
            log.debug("%s was gone before it could be claimed", rel)
            return None
        return Job(path=dest, folder=self.work.folder, state=State(source=rel))

    # ------------------------------------------------------------------
    # One batch

    def _begin(self, jobs: list[Job]) -> _Stage | None:
        """Triage a batch (finishing what a crash left half done), reserve and record
        the NAMEs of its fresh inputs, and start reading and segmenting them in the
        worker processes. None when nothing is left to recognise."""
        log.debug("batch of %d file(s)", len(jobs))
        fresh: list[Job] = []
        for job in jobs:
            self._beat = time.monotonic()
            try:
                kind = self._triage(job)
                if kind == "gone":
                    continue
                if kind == "written":
                    self._conclude(job)
                elif kind == "quarantine":
                    self._quarantine(job, job.state.reason or "failed")
                else:
                    fresh.append(job)
            except Permanent as exc:
                self._fail(job, exc.reason)
            except OSError as exc:
                self._transient(job, exc)
        if not fresh:
            return None
        fresh = self._reserve(fresh)
        if not fresh:
            return None
        analysed = None
        analysers = self._analysers()
        if analysers is not None:
            from .pipeline import Item, start

            items = [Item(path=j.path, source=j.source, name=j.state.name) for j in fresh]
            analysed = start(items, self.recognizer, analysers, pictures=self.pictures,
                             **self._limits)
        return _Stage(jobs=fresh, analysed=analysed)

    def _complete(self, stage: _Stage) -> None:
        """Recognise a begun batch (one model call) and write it (one group commit)."""
        ready: list[tuple[Job, Any, Any]] = []  # (job, its work, the Prepared it came in)
        for job, (work, prepared) in zip(stage.jobs, self._recognise(stage.jobs, stage.analysed),
                                         strict=True):
            try:
                if isinstance(work, BaseException):
                    raise work
                if work.retry is not None:
                    raise work.retry
                job.state.sha256 = work.sha256
                ready.append((job, work, prepared))
            except Permanent as exc:
                self._fail(job, exc.reason)
            except OSError as exc:
                self._transient(job, exc)
        if ready:
            self._write(ready)

    def _reserve(self, jobs: list[Job]) -> list[Job]:
        """A NAME for each job that has none, recorded - one journal per work folder
        for the batch - before anything is written. Returns the jobs that have one."""
        named: list[Job] = []
        for job in jobs:
            if job.state.name is None:
                try:
                    job.state.name = self.outbox.claim_name(Path(job.source).stem)
                except OSError as exc:
                    self._transient(job, exc)
                    continue
            named.append(job)
        unrecorded: dict[Path, list[Job]] = {}
        for job in named:
            if not job.record and job.journal is None:
                unrecorded.setdefault(job.folder, []).append(job)
        failed: set[int] = set()
        for folder, group in unrecorded.items():
            try:
                path = write_journal(folder, {job.path.name: job.state for job in group})
            except OSError as exc:
                for job in group:
                    failed.add(id(job))
                    self._transient(job, exc)
                continue
            journal = _Journal(path, len(group))
            for job in group:
                job.journal = journal
        return [job for job in named if id(job) not in failed]

    def _write(self, ready: list[tuple[Job, Any, Any]]) -> None:
        """pipeline.finish for the batch into one group commit, then each original's move."""
        from .pipeline import finish
        from .results import Batch

        outbox = self.outbox
        rows_written: set[str] = set()
        if any(job.check_csv for job, _, _ in ready):
            existing = outbox.csv_results()
            rows_written = {rel for job, _, _ in ready if job.check_csv
                            and (rel := outbox.result_rel(job.state.name)) in existing}
        journals = {id(job.journal): job.journal for job, _, _ in ready if job.journal is not None}
        batch = Batch(outbox, {job.state.name for job, _, _ in ready}, rows_written=rows_written,
                      sync_paths=[os.fspath(j.path) for j in journals.values()])
        groups: dict[int, tuple[Any, list[Job], list[Any]]] = {}
        for job, work, prepared in ready:
            groups.setdefault(id(prepared), (prepared, [], []))
            groups[id(prepared)][1].append(job)
            groups[id(prepared)][2].append(work)
        done: list[tuple[Job, Any]] = []
        for prepared, jobs, works in groups.values():
            self._beat = time.monotonic()
            prepared.work = works
            done.extend(zip(jobs, finish(prepared, batch), strict=True))
        self._beat = time.monotonic()
        try:
            batch.commit()
        except OSError as exc:
            log.error("cannot write the results of a batch of %d to %s: %s", len(done),
                      outbox.root, _words(exc))
            for job, outcome in done:
                job.check_csv = True
                self._transient(job, outcome.error if outcome.error is not None else exc)
            return
        for job, outcome in done:
            self._beat = time.monotonic()
            try:
                if outcome.error is not None:
                    job.check_csv = True
                    raise outcome.error
                self._conclude(job, outcome.result)
            except Permanent as exc:
                self._fail(job, exc.reason)
            except OSError as exc:
                self._transient(job, exc)

    def _triage(self, job: Job) -> str:
        """What is left to do: "fresh", "written" (result complete), "quarantine", "gone"."""
        try:
            st = os.lstat(job.path)
        except FileNotFoundError:
            log.warning("%s: claimed file disappeared from %s", job.source, job.folder)
            if job.state.name:
                self.outbox.release(job.state.name)
            if job.record:
                remove_quietly(job.state_file)
            self._done(job)
            return "gone"
        if job.state.phase == "quarantine":
            return "quarantine"
        if job.state.name and self._result_path(job.state.name).exists():
            return "written"
        if stat.S_ISLNK(st.st_mode):
            try:
                target = os.readlink(job.path)
            except OSError:
                target = "?"
            raise Permanent(f"a symbolic link (to {target}); links are not followed")
        if not stat.S_ISREG(st.st_mode):
            raise Permanent(f"not a regular file ({_file_type(st.st_mode)})")
        return "fresh"

    def _analysers(self):
        """The worker processes, when there are some and the recognizer can take
        digits found elsewhere (``classify``); else None: all of it here."""
        workers = self.workers
        if workers is None or not workers.processes or not hasattr(self.recognizer, "classify"):
            return None
        return workers

    def close_workers(self) -> None:
        if self.workers is not None:
            self.workers.close()

    def _recognise(self, jobs: list[Job], analysed=None) -> list[tuple[Any, Any]]:
        """pipeline.prepare for the batch (``analysed``: its reading and segmenting,
        already under way): one model call. If it raises, each file alone: one that
        raises alone is failed; if every one does, all are retried.
        Returns (work or exception, the Prepared it belongs to) per job."""
        from .pipeline import Item, prepare

        def run(batch: list[Job], analysed=None):
            items = [Item(path=j.path, source=j.source, name=j.state.name) for j in batch]
            return prepare(items, self.recognizer, pictures=self.pictures, read_errors="retry",
                           analysers=self._analysers(), analysed=analysed, **self._limits)

        try:
            prepared = run(jobs, analysed)
            return [(w, prepared) for w in prepared.work]
        except Exception as exc:  # noqa: BLE001 - isolate the file that causes it
            error = exc
            if len(jobs) > 1:
                log.warning("recognition of a batch of %d failed (%s); trying each file alone",
                            len(jobs), _words(exc))
        if len(jobs) == 1:
            return [(_Retry(error), None)]
        out: list[tuple[Any, Any]] = []
        for job in jobs:
            self._beat = time.monotonic()
            try:
                prepared = run([job])
                out.extend((w, prepared) for w in prepared.work)
            except Exception as exc:  # noqa: BLE001
                out.append((exc, None))
        if all(isinstance(w, BaseException) for w, _ in out):
            return [(_Retry(w), None) for w, _ in out]
        return [(Permanent(f"recognition failed: {_words(w)}"), None)
                if isinstance(w, BaseException) else (w, p) for w, p in out]

    # ------------------------------------------------------------------
    # Steps of one input

    def _result_path(self, name: str) -> Path:
        return self.config.outbox / "results" / f"{name}.json"

    def _row_exists(self, name: str) -> bool:
        return self.outbox.result_rel(name) in self.outbox.csv_results()

    def _save_state(self, job: Job) -> None:
        """The per-file state record (then the batch journal no longer holds this job)."""
        job.state.save(job.state_file)
        job.record = True
        self._unjournal(job)

    def _conclude(self, job: Job, result: dict[str, Any] | None = None) -> None:
        """The result JSON exists: archive (or delete) the original, or quarantine it."""
        from .predict import human_line

        redone = result is None
        if redone:
            try:
                import json

                result = json.loads(self._result_path(job.state.name).read_text("utf-8"))
            except (OSError, ValueError):
                result = {"status": "?", "error": None}
        if result.get("status") == "failed":
            self._quarantine(job, result.get("error") or "failed")
            return
        again = job.resumed or job.state.attempts or redone  # anything may be done already
        if not again or os.path.lexists(job.path):
            if self.config.on_success == "delete":
                os.unlink(job.path)
            else:
                linked = _linked_copy(job.path, self.config.outbox / "originals") \
                    if again else None
                if linked is not None:
                    os.unlink(job.path)
                else:
                    self._archive(job)
        if again:
            self.outbox.release(job.state.name)  # a marker of an older version, if any
        if job.record:
            remove_quietly(job.state_file)
        self._done(job)
        self.counters.add(processed=1)
        if redone or "elapsed_ms" not in result:
            log.info("%s -> finished (its result was written before a restart)", job.source)
        else:
            log.info("%s", human_line(job.source, result))

    def _archive(self, job: Job) -> None:
        """The original to originals/ under its own name (suffixed if taken)."""
        from .results import ORIGINALS, move_no_replace

        move_no_replace(job.path, self.outbox.folder(ORIGINALS), os.path.basename(job.source))

    def _fail(self, job: Job, reason: str) -> None:
        """A permanent failure found before a result was written: the failed result
        (JSON and CSV row, as predict writes them), then quarantine."""
        from .results import csv_row, result_dict

        try:
            if job.state.name is None:
                job.state.name = self.outbox.claim_name(Path(job.source).stem)
                self._save_state(job)
            name = job.state.name
            result = result_dict(
                job.source, None, sha256=job.state.sha256,
                model=getattr(self.recognizer, "name", ""),
                processed_at=_dt.datetime.now(_dt.UTC), elapsed_ms=0.0, annotated=None,
                error=reason)
            if not (job.check_csv and self._row_exists(name)):
                self.outbox.append_csv(csv_row(result, self.outbox.result_rel(name)))
            job.check_csv = True
            self.outbox.write_json(name, result)
            self._quarantine(job, reason)
        except OSError as exc:
            self._transient(job, exc, giving_up=reason)

    def _quarantine(self, job: Job, reason: str) -> None:
        """The original (a file, or a link itself) to failed/ with NAME.error.json."""
        state = job.state
        try:
            if state.name is None:
                state.name = self.outbox.claim_name(Path(job.source).stem)
            state.phase, state.reason = "quarantine", reason
            self._save_state(job)
            if os.path.lexists(job.path):
                linked = _linked_copy(job.path, self.config.outbox / "failed") \
                    if job.resumed or state.attempts else None
                if linked is not None:
                    os.unlink(job.path)
                else:
                    self.outbox.quarantine(job.path, state.name, reason, state.attempts + 1,
                                           source=Path(job.source).name, sha256=state.sha256)
            self.outbox.release(state.name)
            remove_quietly(job.state_file)
        except OSError as exc:
            self._transient(job, exc, giving_up=reason)
            return
        self._done(job)
        self.counters.add(failed=1, error=f"{job.source}: {reason}")
        log.warning("%s -> failed: %s", job.source, reason)

    def _transient(self, job: Job, exc: BaseException, giving_up: str | None = None) -> None:
        """Keep the file claimed and try again later; after retry_max_attempts, fail it."""
        state = job.state
        state.attempts += 1
        state.last_error = _words(exc)
        job.check_csv = job.check_csv or state.name is not None
        limit = self.config.retry_max_attempts
        if giving_up is None and state.attempts >= limit:
            reason = f"gave up after {state.attempts} attempts: {state.last_error}"
            log.error("%s: %s", job.source, reason)
            self._fail(job, reason)  # may come back here with giving_up set
            return
        delay = min(self.config.retry_backoff_seconds * 2 ** (min(state.attempts, 30) - 1),
                    MAX_BACKOFF)
        try:
            self._save_state(job)
        except OSError:
            pass  # the attempt count survives a crash only if it can be written
        what = f"cannot fail it either ({giving_up})" if giving_up else \
            f"attempt {state.attempts} of {limit}"
        log.warning("%s: %s; %s, trying again in %.1f s", job.source, state.last_error, what, delay)
        self.counters.add(error=f"{job.source}: {state.last_error}")
        job.due = time.monotonic() + delay
        job.scheduled = True
        heapq.heappush(self._retry, (job.due, next(self._seq), job))

    def _unjournal(self, job: Job) -> None:
        """The job no longer needs its batch journal; the last one out removes it."""
        journal, job.journal = job.journal, None
        if journal is not None:
            journal.pending -= 1
            if journal.pending <= 0:
                remove_quietly(journal.path)

    def _done(self, job: Job) -> None:
        """The input is finished: its journal and an adopted folder may now be empty."""
        job.finished = True
        self._unjournal(job)
        folder = job.folder
        if folder in self._outstanding:
            self._outstanding[folder] -= 1
            if self._outstanding[folder] <= 0:
                del self._outstanding[folder]
                self.work.finished_with(folder)


@dataclass
class _Stage:
    """A batch begun: its fresh jobs (NAMEs recorded) and their analysis under way."""

    jobs: list[Job]
    analysed: Any = None  # digitd.workers.Pending, or None: read and decoded when completed


class _Retry(OSError):
    """Recognition failed for every file of a batch: retry them all (as if transient)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"recognition failed: {_words(cause)}")
        self.cause = cause


def _file_type(mode: int) -> str:
    for test, word in ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISDIR, "a folder")):
        if test(mode):
            return word
    return "unknown type"


def run(config: Config) -> int:
    """``digitd run``: the service in the foreground until SIGTERM or SIGINT; exit code."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if not stop.is_set():
            log.info("%s received", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    service = Service(config, stop_event=stop)
    try:
        service.start()
    except BaseException:
        service.close_workers()
        if service.inbox is not None:
            service.inbox.stop()
        if service.work is not None:
            service.work.close()
        raise
    return service.serve()
