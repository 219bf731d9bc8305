"""When a file in the inbox is complete: a settle tracker with no threads.

Hints (seen, written, closed, moved in) and looks on disk go in; paths that
are ready, with the key they had, come out. A closed image that ends early
(:mod:`digitd.formats`) waits for the settle rule. The clock and ``stat`` are
injectable, so every rule is tested without waiting (tests/test_settle.py).
The rules are in docs/DESIGN.md ("A file's life", step 3).
"""

from __future__ import annotations

import logging
import os
import stat as stat_mode
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..errors import one_line
from ..files import file_key
from ..formats import file_ends_early

log = logging.getLogger(__name__)

SEEN, WRITTEN, CLOSED, MOVED = "seen", "written", "closed", "moved"
TICK = 0.1  # seconds between looks at every candidate (a touched one is looked at at once)
CLOSE_GRACE = 0.02  # a closed file is ready this long after its close, if unchanged
# A file written to and not closed since is complete only after this many times
# settle_seconds (at least OPEN_SETTLE_MIN s) unchanged: a net for a lost close event.
OPEN_SETTLE_FACTOR, OPEN_SETTLE_MIN = 10, 30.0

Key = tuple[int, int, int]  # (size, mtime_ns, inode): digitd.files.file_key


@dataclass
class Candidate:
    key: Key | None = None  # last seen
    since: float = 0.0  # when key was first seen unchanged
    closed_key: Key | None = None  # key at a close or move-in event
    closed_seen: bool = False  # such an event came; its key is taken at the next look
    ready_at: float = 0.0  # when that event makes it ready (if unchanged)
    writing: bool = False  # a write event came and no close-after-write since


@dataclass
class Looked:
    """What one :meth:`SettleTracker.step` found."""

    ready: list[tuple[str, Key | None]] = field(default_factory=list)  # None: not a regular file
    folders: list[str] = field(default_factory=list)  # candidates that turned out to be folders


class SettleTracker:
    """Candidates and their settle state. ``writes_mean_open``: a write event
    means "open for writing" (inotify), not just "changed" (polling)."""

    def __init__(self, *, settle_seconds: float, writes_mean_open: bool = True,
                 clock: Callable[[], float] = time.monotonic,
                 stat: Callable[[str], os.stat_result] = os.lstat,
                 ends_early: Callable[[str, int], str | None] = file_ends_early) -> None:
        self.settle_seconds = settle_seconds
        self.open_settle_seconds = max(OPEN_SETTLE_FACTOR * settle_seconds, OPEN_SETTLE_MIN)
        self.writes_mean_open = writes_mean_open
        self.clock = clock
        self.stat = stat
        self.ends_early = ends_early
        self.candidates: dict[str, Candidate] = {}
        self._touched: set[str] = set()  # to look at in the next step
        self._waiting: dict[str, float] = {}  # closed candidates -> end of their grace
        self._next_full = 0.0
        self._next_due = float("inf")

    def __len__(self) -> int:
        return len(self.candidates)

    def __contains__(self, path: str) -> bool:
        return path in self.candidates

    def add(self, path: str) -> bool:
        """Track ``path`` (found by a scan); True if it was not tracked yet."""
        if path in self.candidates:
            return False
        self.candidates[path] = Candidate()
        return True

    def hint(self, path: str, kind: str) -> None:
        """An event for ``path``: SEEN, WRITTEN, CLOSED or MOVED (in)."""
        cand = self.candidates.setdefault(path, Candidate())
        if kind in (CLOSED, MOVED):
            cand.writing = False
            cand.closed_key, cand.closed_seen = None, True
            cand.ready_at = self.clock() + (CLOSE_GRACE if kind == CLOSED else 0.0)
            self._touched.add(path)
        elif kind == WRITTEN:
            cand.closed_key, cand.closed_seen = None, False
            self._waiting.pop(path, None)
            cand.writing = self.writes_mean_open

    def next_step(self) -> float:
        """The clock time by which :meth:`step` should run again."""
        return min(self._next_full, self._next_due)

    def step(self) -> Looked:
        """Look on disk at every candidate once a TICK, between ticks only at the
        ones an event touched or whose grace is over. Ready ones stop being tracked."""
        now = self.clock()
        if now >= self._next_full:
            self._next_full = now + TICK
            paths: Iterable[str] = list(self.candidates)
        else:
            look = self._touched
            look.update(p for p, due in self._waiting.items() if due <= now)
            paths = [p for p in look if p in self.candidates]
        self._touched = set()
        looked = self._look(paths, now)
        self._waiting = {p: due for p, due in self._waiting.items() if p in self.candidates}
        self._next_due = min(self._waiting.values(), default=float("inf"))
        return looked

    def _look(self, paths: Iterable[str], now: float) -> Looked:
        looked = Looked()
        for path in paths:
            cand = self.candidates[path]
            try:
                st = self.stat(path)
            except FileNotFoundError:
                log.debug("%s vanished before it was ready", path)
                del self.candidates[path]
                continue
            except OSError as exc:
                log.debug("cannot stat %s: %s", path, one_line(exc.strerror or exc))
                continue
            if stat_mode.S_ISDIR(st.st_mode):
                del self.candidates[path]
                looked.folders.append(path)
                continue
            if not stat_mode.S_ISREG(st.st_mode):
                # symlinks, FIFOs...: complete as they are; the claim quarantines them
                del self.candidates[path]
                looked.ready.append((path, None))
                continue
            key = file_key(st)
            if key != cand.key:
                cand.key, cand.since = key, now
            if cand.closed_seen:  # the first look since the close or move event
                cand.closed_key, cand.closed_seen = key, False
            closed = cand.closed_key is not None and cand.closed_key == key
            if closed and now < cand.ready_at:
                self._waiting[path] = cand.ready_at
                continue
            if closed and (fmt := self.ends_early(path, key[0])):
                # closed, yet the image is unfinished: a writer that appends in
                # pieces, closing between them. Only the settle rule makes it ready.
                log.debug("%s: closed, but the %s ends early; waiting for it to settle",
                          path, fmt)
                cand.closed_key = None
                closed = False
            settle = self.open_settle_seconds if cand.writing else self.settle_seconds
            if closed or now - cand.since >= settle:
                del self.candidates[path]
                looked.ready.append((path, key))
        return looked
