"""The inbox watcher: watchdog events in, complete files out.

A producer, a queue and a consumer kept apart: the watchdog observer thread
runs :class:`Hints`, which only filters and appends a hint to a deque; the
settler thread turns hints and rescans into a :class:`SettleTracker`'s
candidates and queues the ready ones; the batch thread takes them with
:meth:`Inbox.take`. Events are hints, never trusted: the inbox is scanned at
start and every ``rescan_seconds``. Every watchdog tweak lives in this module.
"""

from __future__ import annotations

import collections
import errno
import logging
import os
import threading
import time
from collections.abc import Callable
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
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

try:  # Linux: inotify, tuned below
    from watchdog.observers.api import BaseObserver
    from watchdog.observers.inotify import InotifyFD, InotifyFullEmitter, InotifyObserver
    from watchdog.observers.inotify_c import InotifyConstants
    from watchdog.observers.inotify_move_event_grouper import InotifyMoveEventGrouper
except ImportError:  # another platform: its default observer
    InotifyObserver = None

from ..errors import one_line
from .names import NameFilter
from .settle import CLOSED, MOVED, SEEN, WRITTEN, Key, SettleTracker

log = logging.getLogger(__name__)

FOLDER = "folder"  # a hint kind the settle tracker never sees
ARRIVING_WINDOW = 0.01  # arriving(): files whose events are closer than this are a burst
SKIP_MEMORY = 10_000  # names remembered for "logged once"
MOVE_PAIR_SECONDS = 0.02  # how long an unpaired half of a rename waits for its other half
CHANGED: Key = (-1, -1, -1)  # the key of a ready file written again: matches no file

# The watchdog events used; the inotify mask is built from them.
EVENT_FILTER = [FileCreatedEvent, FileModifiedEvent, FileAttribEvent, FileClosedEvent,
                FileMovedEvent, DirCreatedEvent, DirMovedEvent]


class Hints(FileSystemEventHandler):
    """Runs on the observer thread: turns an event into a hint. Never raises."""

    def __init__(self, hint: Callable[[str, str], None]) -> None:
        self.hint = hint

    def on_any_event(self, event: FileSystemEvent) -> None:
        try:
            self.dispatch_hint(event)
        except Exception:  # noqa: BLE001 - an exception would end the observer thread
            log.exception("ignoring a watch event that could not be handled: %r", event)

    def dispatch_hint(self, event: FileSystemEvent) -> None:
        if isinstance(event, (DirCreatedEvent, DirMovedEvent)):
            path = event.dest_path if isinstance(event, DirMovedEvent) else event.src_path
            self.hint(os.fsdecode(path), FOLDER)
        elif isinstance(event, FileClosedEvent):
            self.hint(os.fsdecode(event.src_path), CLOSED)
        elif isinstance(event, FileModifiedEvent):
            self.hint(os.fsdecode(event.src_path), WRITTEN)
        elif isinstance(event, (FileCreatedEvent, FileAttribEvent)):
            self.hint(os.fsdecode(event.src_path), SEEN)
        elif isinstance(event, FileMovedEvent) and event.dest_path:
            self.hint(os.fsdecode(event.dest_path), MOVED)  # renamed in (src_path "": from outside)
        # moved out (a claim), deleted, opened: not asked for, or nothing to do


if InotifyObserver is not None:
    class InboxEmitter(InotifyFullEmitter):
        """Full events (a rename from outside is a move with no source), and in a
        flat inbox no IN_MOVED_FROM: every claim makes one, and watchdog would hold
        it, and every event after it, waiting for an IN_MOVED_TO that never comes."""

        def get_event_mask_from_filter(self):
            mask = super().get_event_mask_from_filter()
            if not self.watch.is_recursive:
                mask &= ~InotifyConstants.IN_MOVED_FROM
            return mask

    class InboxObserver(InotifyObserver):
        """InotifyObserver's own set-up, with :class:`InboxEmitter`."""

        def __init__(self) -> None:
            self._inotify_fd = InotifyFD()
            self._inotify_fd.start()
            BaseObserver.__init__(self, InboxEmitter, inotify_fd=self._inotify_fd)

    # watchdog holds an unpaired IN_MOVED_FROM 0.5 s; the kernel queues a rename's
    # halves together, so a short wait still pairs them. No public setting exists.
    InotifyMoveEventGrouper.delay = min(InotifyMoveEventGrouper.delay, MOVE_PAIR_SECONDS)


def make_observer(polling: bool, poll_interval: float):
    """A watchdog observer: the polling one, the tuned inotify one, or the platform's."""
    if polling:
        return PollingObserver(timeout=poll_interval)
    return InboxObserver() if InotifyObserver is not None else Observer()


class Inbox:
    """Watches one inbox folder and hands out the paths of complete files.

    ``ignore`` is the service's own folder inside the inbox (never a candidate,
    never logged). ``observer_factory(polling, poll_interval)`` is
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
        self.rescan_seconds = rescan_seconds
        self.names = NameFilter(self.root, recursive=recursive, ignore=ignore)
        self.settler = SettleTracker(settle_seconds=settle_seconds, writes_mean_open=not polling)
        self._observer_factory = observer_factory or make_observer
        self._observer = None
        self._hints: collections.deque[tuple[str, str]] = collections.deque()
        self._cond = threading.Condition()
        self._ready: collections.deque[str] = collections.deque()
        self._queued: set[str] = set()  # in _ready, or taken and not yet done()
        self._keys: dict[str, Key | None] = {}  # of queued paths, when judged complete
        self._skipped: set[str] = set()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._rescan_requested = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_event = 0.0  # monotonic time of the last hint
        self.last_rescan = 0.0
        self.rescans = 0

    # -- life -------------------------------------------------------------

    def start(self) -> None:
        """Start watching (falls back to polling on inotify limits), then scan."""
        self._observer = self._start_observer()
        self._rescan_requested.set()  # the backlog scan, first thing the settler does
        self._thread = threading.Thread(target=self._settle_loop, name="digitd-inbox",
                                        daemon=True)
        self._thread.start()

    def _start_observer(self):
        observer = self._observer_factory(self.polling, self.poll_interval)
        observer.schedule(Hints(self.hint), str(self.root), recursive=self.recursive,
                          event_filter=EVENT_FILTER)
        try:
            observer.start()
            return observer
        except OSError as exc:
            if self.polling or exc.errno not in (errno.ENOSPC, errno.EMFILE, errno.ENOMEM):
                raise
            log.warning("cannot watch %s with inotify (%s): polling every %g s instead",
                        self.root, one_line(exc.strerror or exc), self.poll_interval)
        self.polling = True
        self.settler.writes_mean_open = False
        observer = self._observer_factory(True, self.poll_interval)
        observer.schedule(Hints(self.hint), str(self.root), recursive=self.recursive,
                          event_filter=EVENT_FILTER)
        observer.start()
        return observer

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

    # -- the consumer's side (the batch thread) ----------------------------

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

    def done(self, path: Path) -> Key | None:
        """Take ``path`` off the books, before claiming it; returns the key it had
        when judged complete (None: not a regular file; CHANGED: written since).

        The caller compares it with the file just before the claim: a file
        replaced or written again since goes back to settling (:meth:`notice`).
        """
        with self._cond:
            self._queued.discard(str(path))
            return self._keys.pop(str(path), None)

    def notice(self, path: Path) -> None:
        """Look at ``path`` again from the start (settle it anew)."""
        self.hint(str(path), SEEN)

    def arriving(self) -> bool:
        """Whether more files seem on their way: hints not yet looked at, or an
        event in the last ARRIVING_WINDOW s (a burst's events come far closer)."""
        return bool(self._hints) or time.monotonic() - self._last_event < ARRIVING_WINDOW

    @property
    def waiting(self) -> int:
        """Files noticed but not yet taken (settling or ready)."""
        with self._cond:
            return len(self.settler) + len(self._ready)

    # -- the producer's side (the observer thread) --------------------------

    def hint(self, path: str, kind: str) -> None:
        self._hints.append((path, kind))  # deque.append is thread-safe
        self._last_event = time.monotonic()
        if not self._wake.is_set():
            self._wake.set()

    # -- the settler thread ------------------------------------------------

    def _settle_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # before the step: a hint during it wakes the next one
            try:
                self._settle_step()
            except Exception:  # noqa: BLE001 - keep watching whatever happens
                log.exception("inbox check failed; continuing")
                self._stop.wait(1.0)
            wait = self.settler.next_step() - time.monotonic()
            if wait > 0:
                self._wake.wait(wait)

    def _settle_step(self) -> None:
        now = time.monotonic()
        if self._rescan_requested.is_set() or now - self.last_rescan >= self.rescan_seconds:
            self._rescan_requested.clear()
            self.last_rescan = now
            self._scan()
            self.rescans += 1
        while self._hints:
            self._take_hint(*self._hints.popleft())
        looked = self.settler.step()
        for path in looked.folders:
            self._skip_once(self.names.relative(path) or path, "a folder")
        if looked.ready:
            with self._cond:
                for path, key in looked.ready:
                    if path not in self._queued:
                        self._queued.add(path)
                        self._keys[path] = key
                        self._ready.append(path)
                self._cond.notify_all()

    def _skipped_path(self, path: str, is_folder: bool = False) -> bool:
        skip = self.names.skip(path, is_folder)
        if skip is not None and skip.reason is not None:
            self._skip_once(skip.rel, skip.reason)
        return skip is not None

    def _skip_once(self, rel: str, reason: str) -> None:
        if rel in self._skipped:
            return
        if len(self._skipped) >= SKIP_MEMORY:
            self._skipped.clear()
        self._skipped.add(rel)
        log.info("skipped %s: %s", rel, reason)

    def _take_hint(self, path: str, kind: str) -> None:
        if kind == FOLDER:
            if self._skipped_path(path, is_folder=True):
                return
            if self.recursive:
                self._scan(Path(path))
            else:
                self._skip_once(self.names.relative(path) or path, "a folder")
            return
        if self._skipped_path(path):
            return
        with self._cond:
            if path in self._queued:
                if kind == WRITTEN and path in self._keys:
                    self._keys[path] = CHANGED  # written again after it was judged complete
                return
        self.settler.hint(path, kind)

    def _scan(self, folder: Path | None = None) -> None:
        """Every file in the inbox (or one folder of it) becomes a candidate."""
        stack = [folder or self.root]
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
                    if self._skipped_path(path, is_folder=True):
                        continue
                    if self.recursive:
                        stack.append(Path(path))
                    elif not entry.name.startswith("."):
                        self._skip_once(self.names.relative(path) or path, "a folder")
                    continue
                if self._skipped_path(path):
                    continue
                with self._cond:
                    if path in self._queued:
                        continue
                found += self.settler.add(path)
        if folder is None and found:
            log.info("scan of %s: %d new file(s)", self.root, found)


def _quiet_stop(record: logging.LogRecord) -> bool:
    """Drop watchdog's harmless "called when the thread is inactive" race at stop."""
    return "called when the thread is inactive" not in str(record.msg)
