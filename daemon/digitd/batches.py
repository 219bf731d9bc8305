"""The service's batch thread: claim ready files, run them in batches, dispose of them.

Batches go in a pipeline of two: while the worker processes analyse batch N,
this thread classifies and commits batch N-1 through the one
:class:`~digitd.runner.Runner`. It also takes over the work of dead instances
(:mod:`digitd.recovery`) and reloads the model (:mod:`digitd.reload`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .dispositions import Dispositions, Ledger, disk_full
from .errors import Transient, describe
from .files import FileKey, file_key, remove_quietly, rename_no_replace
from .jobs import Job, JobQueue, Journal, Permanent
from .recovery import Phase, adopt, triage
from .reload import ModelReloader
from .runner import Changed, Input, Runner, Started
from .workdir import State, WorkArea, has_record, write_journal

log = logging.getLogger(__name__)

TICK = 0.2  # an idle batch thread looks for work this often, seconds
ARRIVING_POLL = 0.005  # filling a batch: how often to look whether more files are coming
BUSY_POLL = 0.02  # a batch being analysed: how often to look for files to begin meanwhile


@dataclass
class Stage:
    """A batch begun: its fresh jobs (NAMEs recorded) and their analysis under way."""

    jobs: list[Job]
    started: Started


class BatchThread:
    """The one thread that owns the model: ``run()`` until ``stop_event`` is set."""

    def __init__(self, config: Any, runner: Runner, inbox: Any, work: WorkArea,
                 queue: JobQueue, dispositions: Dispositions, ledger: Ledger,
                 reloader: ModelReloader, stop_event: threading.Event) -> None:
        self.config = config
        self.runner = runner
        self.inbox = inbox
        self.work = work
        self.queue = queue
        self.dispositions = dispositions
        self.ledger = ledger
        self.reloader = reloader
        self.stop_event = stop_event
        self.beat = time.monotonic()  # last sign of life, for the watchdog
        self.in_batch = 0
        self._next_adopt = 0.0
        self._inbox_prefix = os.path.join(os.fspath(config.inbox), "")
        self._claim_warned: set[str] = set()  # files that could not be claimed, said once
        dispositions.leave_in_inbox = self.leave_in_inbox

    def run(self) -> None:
        """While batch N is analysed (begun), batch N-1 is completed; a batch is
        completed as soon as no further file is ready, so a lone file never waits."""
        pending: Stage | None = None
        while True:
            self.beat = time.monotonic()
            stage: Stage | None = None
            jobs: list[Job] = []
            try:
                if not self.stop_event.is_set():
                    self.maybe_adopt()
                    self.maybe_reload()
                    jobs = self.next_batch(wait=pending is None,
                                           busy=pending.started.analysing if pending else None)
                    self.in_batch = len(jobs) + (len(pending.jobs) if pending else 0)
                    if jobs:
                        stage = self.begin(jobs)
            except Exception as exc:  # noqa: BLE001 - the thread must survive anything
                self.unexpected(jobs, exc)
            if pending is not None:
                try:
                    self.complete(pending)
                except Exception as exc:  # noqa: BLE001
                    self.unexpected(pending.jobs, exc)
            self.in_batch = 0
            pending = stage
            if pending is None and self.stop_event.is_set():
                return

    def unexpected(self, jobs: list[Job], exc: Exception) -> None:
        """A bug met in a batch: its unfinished files are retried."""
        log.error("unexpected error in a batch; its files will be retried",
                  exc_info=(type(exc), exc, exc.__traceback__))
        for job in jobs:
            if not (job.finished or job.scheduled):
                self.retry_later(job, exc, logged=True)
        self.stop_event.wait(1.0)

    def retry_later(self, job: Job, exc: BaseException, logged: bool = False) -> None:
        """A transient failure of one file, whatever raised; even if recording it
        raises too, the file is retried (from memory) and the thread goes on."""
        if not logged and not isinstance(exc, OSError | Transient):
            log.error("%s: unexpected error; it will be retried", job.source,
                      exc_info=(type(exc), exc, exc.__traceback__))
        try:
            self.dispositions.transient(job, exc)
        except Exception:  # noqa: BLE001 - one file's bookkeeping never stops the service
            log.exception("%s: cannot record the retry; trying again later", job.source)
            if not job.scheduled:
                self.queue.schedule(job, self.dispositions.policy.delay(
                    max(1, job.state.attempts)))

    # -- between batches ------------------------------------------------------------

    def maybe_adopt(self) -> None:
        """At start and every rescan: take over the work folders of dead instances."""
        now = time.monotonic()
        if now < self._next_adopt:
            return
        self._next_adopt = now + self.config.rescan_seconds
        self.work.refresh_known_failed()
        for folder, jobs in adopt(self.work, self.runner.outbox):
            self.queue.recover(jobs)
            self.ledger.expect(folder, len(jobs))

    def maybe_reload(self) -> None:
        recognizer = self.reloader.poll(self.runner.recognizer.name)
        if recognizer is not None:
            self.runner.recognizer = recognizer

    @property
    def waiting(self) -> int:
        """Inputs known but not yet in a batch, or in one."""
        return self.inbox.waiting + self.in_batch + self.queue.recovered

    # -- filling a batch ----------------------------------------------------------------

    def next_batch(self, wait: bool = True, busy: Callable[[], bool] | None = None) -> list[Job]:
        """Up to batch_max jobs: recovered, due for retry, then ready in the inbox
        (waiting up to a tick for one when ``wait``; while ``busy()``, the batch
        before being analysed, for one that comes meanwhile: the workers then
        go on with it rather than wait for that batch to be written)."""
        limit = self.config.batch_max
        jobs = self.queue.take(limit)
        room = limit - len(jobs)
        if room <= 0 or self.stop_event.is_set():
            return jobs
        timeout = 0.0 if jobs or not wait else TICK
        due = self.queue.next_due_in()
        if due is not None:
            timeout = min(timeout, due)
        paths = self.inbox.take(room, timeout)
        while not paths and not jobs and busy is not None and busy() \
                and not self.stop_event.is_set():
            paths = self.inbox.take(room, BUSY_POLL)
        if paths and len(jobs) + len(paths) < limit and self.config.batch_wait_ms > 0:
            # More only while more files are on their way (noticed, not yet ready):
            # a burst fills the batch; under a trickle a file goes at once.
            deadline = time.monotonic() + self.config.batch_wait_ms / 1000.0
            while len(jobs) + len(paths) < limit and self.inbox.arriving():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                paths.extend(self.inbox.take(limit - len(jobs) - len(paths),
                                             min(left, ARRIVING_POLL)))
        for path in paths:
            key = self.inbox.done(path)  # before the claim: see Inbox.done
            if self.stop_event.is_set():
                continue  # stopping: not claimed, it stays in the inbox
            job = self.claim(path, key)
            if job is not None:
                jobs.append(job)
        return jobs

    def claim(self, path: Path, key: FileKey | None) -> Job | None:
        text = os.fspath(path)
        rel = text[len(self._inbox_prefix):] if text.startswith(self._inbox_prefix) \
            else os.path.relpath(text, self.config.inbox)
        now = None
        if key is not None:
            try:
                now = file_key(os.lstat(text))
            except FileNotFoundError:
                log.debug("%s was gone before it could be claimed", rel)
                return None
            except OSError:
                pass
            if now != key:  # replaced or written again since it was judged complete
                log.debug("%s changed since it was complete; settling it again", rel)
                self.inbox.notice(path)
                return None
        if self.work.marked(rel) and self.work.known_failed(
                rel, now if key is not None else _key_of(text)):
            log.debug("%s: known-failed, left alone", rel)
            return None
        try:
            dest = self.work.claim(path, rel)
        except OSError as exc:  # said once per file (the inbox offers it again and again)
            level = logging.DEBUG if rel in self._claim_warned else logging.WARNING
            if len(self._claim_warned) > 10_000:
                self._claim_warned.clear()
            self._claim_warned.add(rel)
            log.log(level, "cannot claim %s: %s (left in the inbox)", rel, describe(exc))
            return None
        if dest is None:
            log.debug("%s was gone before it could be claimed", rel)
            return None
        return Job(path=dest, folder=self.work.folder, state=State(source=rel),
                   record=has_record(dest, rel), key=now)

    # -- one batch ------------------------------------------------------------------------

    def begin(self, jobs: list[Job]) -> Stage | None:
        """Triage a batch (finishing what a crash left half done), reserve and record
        the NAMEs of its fresh inputs, and start analysing them. None when nothing
        is left to recognise."""
        log.debug("batch of %d file(s)", len(jobs))
        fresh: list[Job] = []
        disp = self.dispositions
        for job in jobs:
            self.beat = time.monotonic()
            try:
                phase = triage(job, self.runner.outbox)
                if phase is Phase.GONE:
                    self.gone(job)
                elif phase is Phase.WRITTEN:
                    disp.finish(job, None)
                elif phase is Phase.QUARANTINE:
                    disp.quarantine(job, job.state.reason or "failed")
                else:
                    fresh.append(job)
            except Permanent as exc:
                disp.fail(job, exc.reason)
            except Exception as exc:  # noqa: BLE001 - a bug met on this file: it alone waits
                self.retry_later(job, exc)
        fresh = self.reserve(fresh)
        if not fresh:
            return None
        inputs = [Input(path=j.path, source=j.source, name=j.state.name, redo=j.row_may_exist)
                  for j in fresh]
        return Stage(jobs=fresh, started=self.runner.begin(inputs))

    @staticmethod
    def changed(job: Job | None) -> bool:
        """Whether a file claimed from the inbox was written to after it was claimed
        (so, maybe, after it was read: its bytes and its sha256 would not match)."""
        if job is None or job.key is None:
            return False
        try:
            return file_key(os.lstat(job.path)) != job.key
        except OSError:
            return False  # gone or unreadable: the usual paths deal with it

    def put_back(self, job: Job) -> None:
        """A file still being written: back into the inbox under its name, to settle
        anew (:meth:`Inbox.notice`); nothing of it was written. If that name was
        taken meanwhile, it is kept and read again later instead."""
        dest = os.path.join(os.fspath(self.config.inbox), job.source)
        try:
            if not rename_no_replace(job.path, dest):
                os.link(job.path, dest)
                os.unlink(job.path)
        except OSError as exc:
            log.info("%s changed after it was read; reading it again later (%s)", job.source,
                     describe(exc))
            job.key = None
            self.queue.schedule(job, self.dispositions.policy.delay(1))
            return
        log.info("%s changed after it was read; back to settling", job.source)
        self.let_go(job)
        self.inbox.notice(Path(dest))

    def leave_in_inbox(self, job: Job, reason: str) -> bool:
        """A failed file that cannot be moved to failed/: back into the inbox under its
        own name, marked known-failed (not claimed again while it is unchanged)."""
        dest = os.path.join(os.fspath(self.config.inbox), job.source)
        try:
            key = file_key(os.lstat(job.path))
            if not rename_no_replace(job.path, dest):
                if os.path.lexists(dest):
                    return False
                os.rename(job.path, dest)
            self.work.mark_known_failed(job.source, key, reason)
        except OSError as exc:
            log.debug("%s: cannot put it back into the inbox: %s", job.source, describe(exc))
            return False
        return True

    def gone(self, job: Job) -> None:
        log.warning("%s: claimed file disappeared from %s", job.source, job.folder)
        self.let_go(job)

    def let_go(self, job: Job) -> None:
        """Forget a job that leaves the work folder with nothing written: its NAME
        released, its state record removed, its journal entry done."""
        if job.state.name:
            self.runner.outbox.release(job.state.name)
        if job.record:
            remove_quietly(job.state_file)
        self.ledger.done(job)
        self.dispositions.forget(job)

    def reserve(self, jobs: list[Job]) -> list[Job]:
        """A NAME for each job that has none, recorded - one journal per work folder
        for the batch - before anything is written. Returns the jobs that have one."""
        inputs = [Input(path=j.path, source=j.source, name=j.state.name) for j in jobs]
        named: list[Job] = []
        for job, reserved in zip(jobs, self.runner.reserve(inputs), strict=True):
            if isinstance(reserved, Input):
                new = job.state.name is None
                job.state.name = reserved.name
                if new and job.record:  # its state record, not a journal, holds the NAME
                    try:
                        self.dispositions.save_state(job)
                    except Exception as exc:  # noqa: BLE001
                        self.retry_later(job, exc)
                        continue
                named.append(job)
            else:
                self.retry_later(job, reserved.error)
        unrecorded: dict[Path, list[Job]] = {}
        for job in named:
            if not job.record and job.journal is None:
                unrecorded.setdefault(job.folder, []).append(job)
        failed: set[int] = set()
        for folder, group in unrecorded.items():
            try:
                parts = [(group, write_journal(folder, {j.path.name: j.state for j in group}))]
            except Exception as exc:  # noqa: BLE001 - then one journal each: one file's
                if len(group) == 1 or disk_full(exc):  # bookkeeping never holds the rest
                    parts = [(group, exc)]
                else:
                    parts = []
                    for job in group:
                        try:
                            parts.append(([job], write_journal(folder, {job.path.name: job.state})))
                        except Exception as err:  # noqa: BLE001
                            parts.append(([job], err))
            for part, path in parts:
                if isinstance(path, BaseException):
                    for job in part:
                        failed.add(id(job))
                        self.retry_later(job, path)
                    continue
                journal = Journal(path, len(part))
                for job in part:
                    job.journal = journal
        return [job for job in named if id(job) not in failed]

    def complete(self, stage: Stage) -> None:
        """Classify and commit a begun batch (one model call, one group commit), then
        archive, quarantine or retry each of its inputs."""
        journals = {id(j.journal): j.journal for j in stage.jobs if j.journal is not None}
        by_path = {j.path: j for j in stage.jobs}
        outcomes = self.runner.complete(
            stage.started, sync_paths=[os.fspath(j.path) for j in journals.values()],
            changed=lambda item: self.changed(by_path.get(item.path)))
        disp = self.dispositions
        disp.place([(job, outcome.result) for job, outcome in zip(stage.jobs, outcomes, strict=True)
                    if outcome.result is not None])
        for job, outcome in zip(stage.jobs, outcomes, strict=True):
            self.beat = time.monotonic()
            try:
                if outcome.result is not None:
                    job.state.sha256 = outcome.result.get("sha256")
                    disp.finish(job, outcome.result)
                elif isinstance(outcome.error, Changed):
                    self.put_back(job)
                elif isinstance(outcome.error, (OSError, Transient)):
                    disp.transient(job, outcome.error)
                else:
                    disp.fail(job, describe(outcome.error))
            except Exception as exc:  # noqa: BLE001 - a bug on this file: it alone waits
                if not (job.finished or job.scheduled):
                    self.retry_later(job, exc)


def _key_of(path: str) -> FileKey | None:
    try:
        return file_key(os.lstat(path))
    except OSError:
        return None
