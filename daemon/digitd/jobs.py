"""Claimed inputs as jobs, the queue they wait in, and the retry policy.

A :class:`Job` is one claimed file from claim to finished. The
:class:`JobQueue` holds jobs taken over after a crash (first) and jobs waiting
for a retry (when due); it has an injectable clock and no threads.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .workdir import State, state_path


class Permanent(Exception):
    """This file cannot be processed, and retrying will not help."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Journal:
    """A batch journal on disk and how many of its jobs still depend on it."""

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
    row_may_exist: bool = False  # an earlier attempt may have appended its CSV row
    record: bool = False  # a per-file state record exists on disk
    journal: Journal | None = None  # the batch journal that records its NAME
    placed: Path | None = None  # its original's new name in originals/ (source not yet gone)
    key: tuple[int, int, int] | None = None  # (size, mtime_ns, inode) when claimed
    scheduled: bool = False  # waiting in the retry queue
    finished: bool = False

    @property
    def source(self) -> str:
        return self.state.source

    @property
    def state_file(self) -> Path:
        return state_path(self.path)

    @property
    def redone(self) -> bool:
        """Anything of this input may have been done already (a crash or a retry)."""
        return self.resumed or self.state.attempts > 0 or self.state.waits > 0


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait before attempt n+1, and when to give up."""

    backoff_seconds: float
    max_attempts: int
    max_backoff: float = 300.0

    def delay(self, attempts: int) -> float:
        """Seconds to wait after ``attempts`` failed attempts: doubling, capped."""
        return min(self.backoff_seconds * 2 ** (min(attempts, 30) - 1), self.max_backoff)

    def gives_up(self, attempts: int) -> bool:
        return attempts >= self.max_attempts


class JobQueue:
    """Recovered jobs (first, in order) and jobs scheduled for a retry (when due)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._recovered: collections.deque[Job] = collections.deque()
        self._retry: list[tuple[float, int, Job]] = []
        self._seq = itertools.count()

    def recover(self, jobs: list[Job]) -> None:
        self._recovered.extend(jobs)

    def schedule(self, job: Job, delay: float) -> None:
        job.scheduled = True
        heapq.heappush(self._retry, (self.clock() + delay, next(self._seq), job))

    def take(self, limit: int) -> list[Job]:
        """Up to ``limit`` jobs: recovered ones, then those due for a retry."""
        jobs: list[Job] = []
        while self._recovered and len(jobs) < limit:
            jobs.append(self._recovered.popleft())
        now = self.clock()
        while self._retry and len(jobs) < limit and self._retry[0][0] <= now:
            job = heapq.heappop(self._retry)[2]
            job.scheduled = False
            jobs.append(job)
        return jobs

    def next_due_in(self) -> float | None:
        """Seconds until the next retry is due (0 if one is), None if none waits."""
        if not self._retry:
            return None
        return max(0.0, self._retry[0][0] - self.clock())

    @property
    def recovered(self) -> int:
        return len(self._recovered)

    @property
    def retrying(self) -> int:
        return len(self._retry)
