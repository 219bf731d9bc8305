"""Noticing files in the inbox and deciding when each one is complete.

Three parts, three kinds of thread:

* the watchdog observer thread runs :class:`_Handler`, which only filters
  names and appends a hint (path, kind) to a deque - nothing slow, nothing that
  can raise out of it;
* the settler thread (:meth:`Inbox._run`) turns hints and periodic rescans
  into candidates, ``lstat``s them and moves each one that is complete to the
  ready queue;
* the worker (in :mod:`digitd.service`) takes ready paths with
  :meth:`Inbox.take` and claims them.

Events are hints, never trusted: the inbox is scanned at start (the backlog)
and every ``rescan_seconds``, and every candidate is checked on disk.

A file is *ready* when

* it was renamed into the inbox (a move event) and has not changed since:
  renaming a finished file into place is how scanners, rsync, ``mv`` and
  careful programs publish a file atomically, so it is complete at once -
  unless a write event follows, which puts it back under the rules below;
* a close-after-write event was seen and its size, mtime and inode have not
  changed since, with no write event after it, for ``CLOSE_GRACE`` seconds
  (a writer that closes and at once reopens the file is waited for); or
* its size, mtime and inode have stayed unchanged for ``settle_seconds``
  (the only rule in polling mode for files not renamed in, as there are no
  close events) - or, for a file written to and not closed since, for much
  longer (a slow copy may pause longer than the settle time and then go on).

Cost per event matters (at 1,000 files/s the observer thread shares the GIL
with the worker): inotify is asked only for the events used here (no opens,
reads, deletions; in a non-recursive inbox no IN_MOVED_FROM either, which is
what every claim produces), the handler only appends to a deque, and
between its ticks the settler looks only at files just closed or moved in,
and at closed ones again when their grace is over (one or two ``lstat`` per
file), at all candidates once a tick.

Skipped without touching, each name logged once: hidden and temporary names,
folders (unless ``recursive``), and names that are not an image type.
"""

from __future__ import annotations

import collections
import errno
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)

from .errors import one_line
from .files import file_key

log = logging.getLogger(__name__)

# Kept in step with digitd.imageio.IMAGE_EXTENSIONS (tests/test_watcher.py checks
# they agree); repeated here so that watching the inbox does not import OpenCV.
# skip_reason() is the one rule of which names are inputs: predict uses it too.
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".jpe", ".tif", ".tiff", ".bmp", ".dib", ".webp"})
TEMP_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload", ".download", ".swp")
SYSTEM_NAMES = frozenset({"thumbs.db", "desktop.ini", ".ds_store"})
TICK = 0.1  # seconds between checks of all candidates (a touched one is checked at once)
CLOSE_GRACE = 0.02  # a closed file is ready this long after its close, if unchanged
ARRIVING_WINDOW = 0.01  # arriving(): files whose events are closer than this are a burst
SKIP_MEMORY = 10_000  # names remembered for "logged once"
# A file written to and not yet closed counts as complete only after this many
# times settle_seconds (at least OPEN_SETTLE_MIN s) without change: a safety
# net for a lost close event, not the normal way.
OPEN_SETTLE_FACTOR, OPEN_SETTLE_MIN = 10, 30.0

CHANGED = (-1, -1, -1)  # the key of a ready file written again: matches no file

# Hint kinds
SEEN, WRITTEN, CLOSED, MOVED, FOLDER = "seen", "written", "closed", "moved", "folder"

# The watchdog events the handler uses; the inotify mask is built from them.
EVENT_FILTER = [FileCreatedEvent, FileModifiedEvent, FileAttribEvent, FileClosedEvent,
                FileMovedEvent, DirCreatedEvent, DirMovedEvent]


def skip_reason(name: str) -> str | None:
    """Why a file name is left alone, or None if it may be an input. Pure."""
    lower = name.lower()
    if lower in SYSTEM_NAMES:
        return "system file"
    if name.startswith(".~lock"):
        return "temporary name (lock file)"
    if name.startswith("."):
        return "hidden name"
    if name.startswith("~$"):
        return "temporary name (lock file)"
    if lower.endswith(TEMP_SUFFIXES) or name.endswith("~"):
        return "temporary name (still being written?)"
    ext = os.path.splitext(lower)[1]
    if ext not in IMAGE_EXTENSIONS:
        return f"not an image type ({ext or 'no extension'})"
    return None


@dataclass
class _Candidate:
    key: tuple[int, int, int] | None = None  # (size, mtime_ns, inode) last seen
    since: float = 0.0  # when key was first seen unchanged
    closed_key: tuple[int, int, int] | None = None  # key at a close or move-in event
    closed_seen: bool = False  # such an event came; its key is taken at the next look
    ready_at: float = 0.0  # when that event makes it ready (if unchanged)
    writing: bool = False  # a write event came and no close-after-write since


class _Handler(FileSystemEventHandler):
    """Runs on the observer thread: filter, then enqueue. Never raises."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    def on_any_event(self, event: FileSystemEvent) -> None:
        try:
            self._dispatch(event)
        except Exception:  # noqa: BLE001 - an exception would end the observer thread
            log.exception("ignoring a watch event that could not be handled: %r", event)

    def _dispatch(self, event: FileSystemEvent) -> None:
        hint = self.inbox._hint
        if isinstance(event, (DirCreatedEvent, DirMovedEvent)):
            path = event.dest_path if isinstance(event, DirMovedEvent) else event.src_path
            hint(os.fsdecode(path), FOLDER)
        elif isinstance(event, FileClosedEvent):
            hint(os.fsdecode(event.src_path), CLOSED)
        elif isinstance(event, FileModifiedEvent):
            hint(os.fsdecode(event.src_path), WRITTEN)
        elif isinstance(event, (FileCreatedEvent, FileAttribEvent)):
            hint(os.fsdecode(event.src_path), SEEN)
        elif isinstance(event, FileMovedEvent):
            if event.dest_path:  # renamed into place (from outside: src_path "")
                hint(os.fsdecode(event.dest_path), MOVED)
            # dest_path "": moved out (a claim, in a recursive inbox)
        # deleted, opened, closed-without-write: not asked for (EVENT_FILTER)


MOVE_PAIR_SECONDS = 0.02  # how long an unpaired half of a rename waits for its other half


def make_observer(polling: bool, poll_interval: float):
    """A watchdog observer: inotify (or the platform's), or the polling one.

    inotify reports a file renamed in from outside the inbox as a move with
    no source (``generate_full_events``), so it is told from a new file; and
    in a non-recursive inbox it is not asked for IN_MOVED_FROM: each claim
    renames a file out of the inbox, and watchdog would hold every such event
    (and, its queue being first in first out, every event after it) to pair
    it with an IN_MOVED_TO that never comes."""
    if polling:
        from watchdog.observers.polling import PollingObserver

        return PollingObserver(timeout=poll_interval)
    try:
        from watchdog.observers.api import BaseObserver
        from watchdog.observers.inotify import (
            InotifyFD,
            InotifyFullEmitter,
            InotifyObserver,
        )
        from watchdog.observers.inotify_c import InotifyConstants
        from watchdog.observers.inotify_move_event_grouper import (
            InotifyMoveEventGrouper,
        )
    except ImportError:  # not Linux, or another watchdog
        from watchdog.observers import Observer

        return Observer()

    # watchdog holds an unpaired IN_MOVED_FROM 0.5 s (and, first in first out,
    # every event after it); the kernel queues a rename's halves together, so a
    # short wait still pairs them. No public setting exists: set here, only here.
    InotifyMoveEventGrouper.delay = min(InotifyMoveEventGrouper.delay, MOVE_PAIR_SECONDS)

    class InboxEmitter(InotifyFullEmitter):
        def get_event_mask_from_filter(self):
            mask = super().get_event_mask_from_filter()
            if not self.watch.is_recursive:
                mask &= ~InotifyConstants.IN_MOVED_FROM
            return mask

    class InboxObserver(InotifyObserver):
        def __init__(self) -> None:  # InotifyObserver's own set-up, with our emitter
            self._inotify_fd = InotifyFD()
            self._inotify_fd.start()
            BaseObserver.__init__(self, InboxEmitter, inotify_fd=self._inotify_fd)

    return InboxObserver()


class Inbox:
    """Watches one inbox folder; hands out paths of complete files.

    ``ignore`` is the service's own hidden folder inside the inbox (never a
    candidate, never logged). ``observer_factory(polling, poll_interval)`` is
    :func:`make_observer` unless a test replaces it.
    """

    def __init__(self, root: Path, *, recursive: bool = False, polling: bool = False,
                 poll_interval: float = 2.0, settle_seconds: float = 1.0,
                 rescan_seconds: float = 60.0, ignore: Path | None = None,
                 observer_factory: Callable[[bool, float], object] | None = None) -> None:
        self.root = Path(root)
        self.recursive = recursive
        self.polling = polling
        self.poll_interval = poll_interval
        self.settle_seconds = settle_seconds
        self.rescan_seconds = rescan_seconds
        self.open_settle_seconds = max(OPEN_SETTLE_FACTOR * settle_seconds, OPEN_SETTLE_MIN)
        self.ignore = Path(ignore) if ignore else None
        self._prefix = os.path.join(os.fspath(self.root), "")
        self._ignore_prefix = os.path.join(os.fspath(self.ignore), "") if ignore else None
        self._observer_factory = observer_factory or make_observer
        self._observer = None
        self._hints: collections.deque[tuple[str, str]] = collections.deque()
        self._cond = threading.Condition()
        self._ready: collections.deque[str] = collections.deque()
        self._queued: set[str] = set()  # in _ready, or taken and not yet done()
        self._keys: dict[str, tuple[int, int, int] | None] = {}  # of queued paths, when ready
        self._candidates: dict[str, _Candidate] = {}
        self._skipped: set[str] = set()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._rescan_requested = threading.Event()
        self._thread: threading.Thread | None = None
        self._touched: set[str] = set()  # candidates to look at in the next step
        self._waiting: dict[str, float] = {}  # closed candidates -> end of their grace
        self._next_full_check = 0.0
        self._next_due = float("inf")  # earliest ready_at of a candidate waiting for it
        self._last_event = 0.0  # monotonic time of the last hint
        self.last_rescan = 0.0
        self.rescans = 0

    # -- life -------------------------------------------------------------

    def start(self) -> None:
        """Start watching (falls back to polling on inotify limits), then scan."""
        self._start_observer()
        self._rescan_requested.set()  # the backlog scan, first thing the settler does
        self._thread = threading.Thread(target=self._run, name="digitd-inbox", daemon=True)
        self._thread.start()

    def _start_observer(self) -> None:
        observer = self._observer_factory(self.polling, self.poll_interval)
        observer.schedule(_Handler(self), str(self.root), recursive=self.recursive,
                          event_filter=EVENT_FILTER)
        try:
            observer.start()
        except OSError as exc:
            if self.polling or exc.errno not in (errno.ENOSPC, errno.EMFILE, errno.ENOMEM):
                raise
            log.warning("cannot watch %s with inotify (%s): polling every %g s instead",
                        self.root, one_line(exc.strerror or exc), self.poll_interval)
            self.polling = True
            observer = self._observer_factory(True, self.poll_interval)
            observer.schedule(_Handler(self), str(self.root), recursive=self.recursive,
                              event_filter=EVENT_FILTER)
            observer.start()
        self._observer = observer

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        with self._cond:
            self._cond.notify_all()
        if self._observer is not None:
            logging.getLogger("watchdog.observers.inotify").addFilter(_quiet_stop)
            try:
                self._observer.stop()
                self._observer.join(timeout)
            except Exception:  # noqa: BLE001 - stopping must not fail
                log.debug("observer did not stop cleanly", exc_info=True)
        if self._thread is not None:
            self._thread.join(timeout)

    def alive(self) -> bool:
        """True while the observer (and its emitters) and the settler thread run."""
        obs = self._observer
        if obs is None or not obs.is_alive():
            return False
        if any(not e.is_alive() for e in getattr(obs, "emitters", ())):
            return False
        return self._thread is not None and self._thread.is_alive()

    def request_rescan(self) -> None:
        self._rescan_requested.set()
        self._wake.set()

    # -- the worker's side -------------------------------------------------

    def take(self, limit: int, timeout: float) -> list[Path]:
        """Up to ``limit`` ready paths; waits up to ``timeout`` for the first one."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._ready and not self._stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                self._cond.wait(left)
            out = []
            while self._ready and len(out) < limit:
                out.append(Path(self._ready.popleft()))
            return out

    def done(self, path: Path) -> tuple[int, int, int] | None:
        """The worker takes ``path`` off the books (to claim it); returns the
        (size, mtime_ns, inode) it had when judged complete (None: not a regular file).

        Call this BEFORE claiming: an event for a new file of the same name
        that arrives after the claim must not be ignored. The worker compares
        the returned key with the file just before claiming it: a file replaced
        or written again since it was judged complete goes back to settling
        (:meth:`notice`), so a new file under a name just claimed by another
        instance is never taken half-written.
        """
        with self._cond:
            self._queued.discard(str(path))
            return self._keys.pop(str(path), None)

    def notice(self, path: Path) -> None:
        """Look at ``path`` again from the start (settle it anew)."""
        self._hint(str(path), SEEN)

    def arriving(self) -> bool:
        """Whether more files seem on their way: events not yet looked at, or an
        event in the last ARRIVING_WINDOW s (in a burst events come far closer
        than that; under a trickle the file alone is not kept waiting). The
        worker waits for those to fill a batch, and for nothing else."""
        return bool(self._hints) or time.monotonic() - self._last_event < ARRIVING_WINDOW

    @property
    def waiting(self) -> int:
        """Files noticed but not yet taken (settling or ready)."""
        with self._cond:
            return len(self._candidates) + len(self._ready)

    # -- the observer's side -----------------------------------------------

    def _hint(self, path: str, kind: str) -> None:
        self._hints.append((path, kind))  # deque.append is thread-safe
        self._last_event = time.monotonic()
        if not self._wake.is_set():
            self._wake.set()

    # -- the settler thread --------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # before the step: a hint that comes during it wakes the next
            try:
                self._step()
            except Exception:  # noqa: BLE001 - keep watching whatever happens
                log.exception("inbox check failed; continuing")
                self._stop.wait(1.0)
            wait = min(self._next_full_check, self._next_due) - time.monotonic()
            if wait > 0:
                self._wake.wait(wait)

    def _step(self) -> None:
        now = time.monotonic()
        if self._rescan_requested.is_set() or now - self.last_rescan >= self.rescan_seconds:
            self._rescan_requested.clear()
            self.last_rescan = now
            self._scan()
            self.rescans += 1
        while self._hints:
            path, kind = self._hints.popleft()
            self._take_hint(path, kind)
        if now >= self._next_full_check:
            self._next_full_check = now + TICK
            paths = list(self._candidates)
        else:  # between ticks: only what a close or move touched, or whose grace is over
            look = self._touched
            look.update(p for p, due in self._waiting.items() if due <= now)
            paths = [p for p in look if p in self._candidates]
        self._touched = set()
        self._check_candidates(paths)
        self._waiting = {p: due for p, due in self._waiting.items() if p in self._candidates}
        self._next_due = min(self._waiting.values(), default=float("inf"))

    def _relative(self, path: str) -> str | None:
        """Path relative to the inbox, or None if outside it."""
        if path.startswith(self._prefix):
            return path[len(self._prefix):] or None
        try:
            rel = os.path.relpath(path, self.root)
        except ValueError:
            return None
        if rel == "." or rel.startswith(".." + os.sep) or rel == "..":
            return None
        return rel

    def _filtered(self, path: str, is_folder: bool = False) -> bool:
        """True if ``path`` is to be left alone (logging the reason once)."""
        rel = self._relative(path)
        if rel is None:
            return True
        parts = rel.split(os.sep)
        if parts[0] == ".digitd" or (self._ignore_prefix is not None and (
                path.startswith(self._ignore_prefix) or path == self._ignore_prefix[:-1])):
            return True
        if not self.recursive and len(parts) > 1:
            return True
        for folder in parts[:-1]:  # inside a hidden or temporary folder: silently
            if folder.startswith((".", "~$")):
                return True
        if is_folder:
            return False
        reason = skip_reason(parts[-1])
        if reason is not None:
            self._skip_once(rel, reason)
            return True
        return False

    def _skip_once(self, rel: str, reason: str) -> None:
        if rel in self._skipped:
            return
        if len(self._skipped) >= SKIP_MEMORY:
            self._skipped.clear()
        self._skipped.add(rel)
        log.info("skipped %s: %s", rel, reason)

    def _take_hint(self, path: str, kind: str) -> None:
        if kind == FOLDER:
            if self._filtered(path, is_folder=True):
                return
            if self.recursive:
                self._scan(Path(path))
            else:
                self._skip_once(self._relative(path) or path, "a folder")
            return
        if self._filtered(path):
            return
        with self._cond:
            if path in self._queued:
                if kind == WRITTEN and path in self._keys:
                    # written again after it was judged complete, before the
                    # worker took it: the worker's key check must fail
                    self._keys[path] = CHANGED
                return
        cand = self._candidates.get(path)
        if cand is None:
            cand = self._candidates[path] = _Candidate()
        if kind in (CLOSED, MOVED):
            cand.writing = False
            cand.closed_key, cand.closed_seen = None, True
            cand.ready_at = time.monotonic() + (CLOSE_GRACE if kind == CLOSED else 0.0)
            self._touched.add(path)  # looked at in this step
        elif kind == WRITTEN:
            cand.closed_key, cand.closed_seen = None, False
            self._waiting.pop(path, None)
            # inotify's write events mean "open for writing, not complete"; the
            # polling observer's "modified" only means the snapshot changed.
            cand.writing = not self.polling

    def _scan(self, folder: Path | None = None) -> None:
        """Every candidate in the inbox (or one folder of it) becomes a candidate."""
        top = folder or self.root
        stack = [top]
        found = 0
        while stack:
            current = stack.pop()
            try:
                entries = list(os.scandir(current))
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning("cannot scan %s: %s", current, one_line(exc.strerror or exc))
                continue
            for entry in entries:
                path = entry.path
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    continue
                if is_dir:
                    if self._filtered(path, is_folder=True):
                        continue
                    if self.recursive:
                        stack.append(Path(path))
                    elif not entry.name.startswith("."):
                        self._skip_once(self._relative(path) or path, "a folder")
                    continue
                if self._filtered(path):
                    continue
                with self._cond:
                    if path in self._queued:
                        continue
                if path not in self._candidates:
                    self._candidates[path] = _Candidate()
                    found += 1
        if folder is None and found:
            log.info("scan of %s: %d new file(s)", self.root, found)

    def _check_candidates(self, paths: list[str]) -> None:
        now = time.monotonic()
        ready: list[tuple[str, tuple[int, int, int] | None]] = []
        for path in paths:
            cand = self._candidates[path]
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                log.debug("%s vanished before it was ready", path)
                del self._candidates[path]
                continue
            except OSError as exc:
                log.debug("cannot stat %s: %s", path, one_line(exc.strerror or exc))
                continue
            if stat.S_ISDIR(st.st_mode):
                del self._candidates[path]
                self._skip_once(self._relative(path) or path, "a folder")
                continue
            if not stat.S_ISREG(st.st_mode):
                # symlinks, FIFOs...: complete as they are; the worker quarantines them
                ready.append((path, None))
                continue
            key = file_key(st)
            if key != cand.key:
                cand.key, cand.since = key, now
            if cand.closed_seen:  # the first look since the close or move event
                cand.closed_key, cand.closed_seen = key, False
            closed = cand.closed_key is not None and cand.closed_key == key
            if closed and now < cand.ready_at:  # closed: ready once the grace has passed
                self._waiting[path] = cand.ready_at
                continue
            # A file still open for writing (a write event, no close yet) waits
            # much longer than settle_seconds: a slow copy pauses, then goes on.
            settle = self.open_settle_seconds if cand.writing else self.settle_seconds
            if closed or now - cand.since >= settle:
                ready.append((path, key))
        if ready:
            with self._cond:
                for path, key in ready:
                    del self._candidates[path]
                    if path not in self._queued:
                        self._queued.add(path)
                        self._keys[path] = key
                        self._ready.append(path)
                self._cond.notify_all()


def _quiet_stop(record: logging.LogRecord) -> bool:
    """Drop watchdog's harmless "called when the thread is inactive" race at stop."""
    return "called when the thread is inactive" not in str(record.msg)


