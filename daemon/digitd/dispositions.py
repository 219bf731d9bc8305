"""What becomes of a claimed input once its fate is known.

archive (its result is written: the original to ``originals/`` or deleted),
fail (a permanent failure: a failed result as a one-record commit, then
quarantine), quarantine (the original to ``failed/`` with ``NAME.error.json``)
and transient (keep it claimed and retry later; after the last attempt, fail).
Every step may be redone after a crash; ``docs/DESIGN.md``, "Recovery".
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import describe
from .files import remove_quietly, sha256_file
from .jobs import Job, JobQueue, RetryPolicy
from .outbox import FAILED, ORIGINALS, link_no_replace, move_no_replace, safe_stem
from .results import failed_result, human_line
from .writer import Record, Writer

log = logging.getLogger(__name__)

DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
FULL_RETRY_MAX = 30.0  # an input waiting for space is tried again at least this often, s
FULL_WARN_EVERY = 60.0  # one warning a minute while the outbox is full


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk (or the user's quota) is full."""
    return isinstance(exc, OSError) and exc.errno in DISK_FULL


def linked_copy(path: Path, folder: Path) -> Path | None:
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
                if entry.inode() == st.st_ino and os.lstat(entry.path).st_dev == st.st_dev:
                    return Path(entry.path)
    except FileNotFoundError:
        pass
    return None


def copied_already(path: Path, folder: Path, name: str, sha256: str | None) -> Path | None:
    """A copy of ``path`` already in ``folder`` under ``name`` or a suffixed form of it,
    with the same size and sha256: a move across file systems cut between the
    copy and the unlink. None if there is none (or no sha256 to tell)."""
    if not sha256:
        return None
    try:
        size = os.lstat(path).st_size
    except FileNotFoundError:
        return None
    stem, ext = os.path.splitext(name)
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                n = entry.name
                if n != name and not (n.startswith(stem[:100]) and n.endswith(ext)):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode) and st.st_size == size \
                        and sha256_file(entry.path) == sha256:
                    return Path(entry.path)
    except FileNotFoundError:
        pass
    return None


class Ledger:
    """Which journals and adopted work folders still have unfinished jobs."""

    def __init__(self, finished_with: Callable[[Path], None]) -> None:
        self._finished_with = finished_with  # WorkArea.finished_with: drop an adopted folder
        self._outstanding: dict[Path, int] = {}

    def expect(self, folder: Path, jobs: int) -> None:
        """An adopted ``folder`` holds ``jobs`` jobs to finish."""
        if jobs:
            self._outstanding[folder] = jobs
        else:
            self._finished_with(folder)

    @staticmethod
    def unjournal(job: Job) -> None:
        """The job no longer needs its batch journal; the last one out removes it."""
        journal, job.journal = job.journal, None
        if journal is not None:
            journal.pending -= 1
            if journal.pending <= 0:
                remove_quietly(journal.path)

    def done(self, job: Job) -> None:
        """The input is finished: its journal and an adopted folder may now be empty."""
        job.finished = True
        self.unjournal(job)
        folder = job.folder
        if folder in self._outstanding:
            self._outstanding[folder] -= 1
            if self._outstanding[folder] <= 0:
                del self._outstanding[folder]
                self._finished_with(folder)


class Dispositions:
    """Archive, fail, quarantine or retry one job; counts go to ``counters``."""

    def __init__(self, writer: Writer, queue: JobQueue, policy: RetryPolicy, ledger: Ledger,
                 counters: Any, *, on_success: str, model_name: Callable[[], str]) -> None:
        self.writer = writer
        self.outbox = writer.outbox
        self.queue = queue
        self.policy = policy
        self.ledger = ledger
        self.counters = counters
        self.on_success = on_success
        self.model_name = model_name
        self._full: set[int] = set()  # id() of the jobs waiting for space in the outbox
        # (job, reason) -> whether the claimed file was put back into the inbox as
        # known-failed; set by the batch thread, which knows the inbox
        self.leave_in_inbox: Callable[[Job, str], bool] | None = None
        self._full_warned = -FULL_WARN_EVERY

    def save_state(self, job: Job) -> None:
        """The per-file state record (then the batch journal no longer holds this job)."""
        job.state.save(job.state_file)
        job.record = True
        self.ledger.unjournal(job)

    def place(self, done: list[tuple[Job, dict[str, Any]]]) -> None:
        """Before any source of a committed batch goes: link its originals into
        ``originals/`` and (durable) fsync that folder once for all of them; the
        sources are unlinked by :meth:`finish`. A job not placed here is moved
        by :meth:`finish` alone."""
        if self.on_success != "archive":
            return
        placed: list[Job] = []
        for job, result in done:
            if result.get("status") == "failed" or job.redone:
                continue
            try:
                job.placed = link_no_replace(job.path, self.outbox.folder(ORIGINALS),
                                             os.path.basename(job.source),
                                             durable=self.writer.durable)
            except OSError:
                continue  # finish() tries again and handles the error
            placed.append(job)
        if placed and self.writer.durable:
            try:
                self.outbox.sync_folder(ORIGINALS)
            except OSError:
                for job in placed:  # finish() finds the link, fsyncs and unlinks
                    job.placed = None
                    job.resumed = True

    def finish(self, job: Job, result: dict[str, Any] | None) -> None:
        """Whatever happens to a job whose result was committed (None: found written
        after a restart), with permanent and transient errors handled."""
        try:
            self.conclude(job, result)
        except OSError as exc:
            self.transient(job, exc)

    def conclude(self, job: Job, result: dict[str, Any] | None = None) -> None:
        """The result JSON exists: archive (or delete) the original, or quarantine it."""
        redone = result is None
        if redone:
            try:
                with open(self.outbox.result_path(job.state.name), encoding="utf-8") as f:
                    result = json.load(f)
            except (OSError, ValueError):
                result = {"status": "?", "error": None}
        if result.get("status") == "failed":
            self.quarantine(job, result.get("error") or "failed")
            return
        again = job.redone or redone  # anything may be done already
        if not again or os.path.lexists(job.path):
            durable = self.writer.durable
            if self.on_success == "delete":
                os.unlink(job.path)
            elif job.placed is not None and os.path.lexists(job.placed):
                os.unlink(job.path)
            elif again and (linked_copy(job.path, self.outbox.folder(ORIGINALS)) or copied_already(
                    job.path, self.outbox.folder(ORIGINALS), os.path.basename(job.source),
                    result.get("sha256"))) is not None:
                if durable:
                    self.outbox.sync_folder(ORIGINALS)
                os.unlink(job.path)
            else:
                move_no_replace(job.path, self.outbox.folder(ORIGINALS),
                                os.path.basename(job.source), durable=durable)
        if again:
            self.outbox.release(job.state.name)  # a marker of an older version, if any
        if job.record:
            remove_quietly(job.state_file)
        self.ledger.done(job)
        self.forget(job)
        self.counters.add(processed=1)
        if redone or "elapsed_ms" not in result:
            log.info("%s -> finished (its result was written before a restart)", job.source)
        else:
            log.info("%s", human_line(job.source, result))

    def fail(self, job: Job, reason: str) -> None:
        """A permanent failure found before a result was written: the failed result
        (JSON and CSV row, as predict writes them) as a one-record commit, then
        quarantine."""
        try:
            if job.state.name is None:
                job.state.name = self.outbox.claim_name(Path(job.source).stem)
                self.save_state(job)
            result = failed_result(job.source, reason, model=self.model_name(),
                                   sha256=job.state.sha256)
            record = Record(job.state.name, result, row_may_exist=job.row_may_exist)
            job.row_may_exist = True
            (error,) = self.writer.commit([record])
            if error is not None:
                raise error
            self.quarantine(job, reason)
        except OSError as exc:
            self.transient(job, exc, giving_up=reason)

    def quarantine(self, job: Job, reason: str) -> None:
        """The original (a file, or a link itself) to failed/ with NAME.error.json."""
        state = job.state
        try:
            if state.name is None:
                state.name = self.outbox.claim_name(Path(job.source).stem)
            state.phase, state.reason = "quarantine", reason
            self.save_state(job)
            if os.path.lexists(job.path):
                folder = self.outbox.folder(FAILED)
                if job.redone and (linked_copy(job.path, folder) or copied_already(
                        job.path, folder, safe_stem(Path(job.source).name),
                        state.sha256)) is not None:
                    if self.writer.durable:
                        self.outbox.sync_folder(FAILED)
                    os.unlink(job.path)
                else:
                    try:
                        self.writer.quarantine(job.path, state.name, reason, state.attempts + 1,
                                               source=Path(job.source).name,
                                               sha256=state.sha256)
                    except PermissionError as exc:
                        # Neither linked, renamed nor copied there (another file system, a
                        # file this user may not read): left in the inbox, known-failed.
                        if self.leave_in_inbox is None or not self.leave_in_inbox(job, reason):
                            raise
                        self.outbox.note_left_in_inbox(state.name, job.source)
                        reason = f"{reason} (it cannot be moved to failed/: " \
                                 f"{describe(exc)}; left in the inbox, marked known-failed)"
            self.outbox.release(state.name)
            remove_quietly(job.state_file)
        except OSError as exc:
            self.transient(job, exc, giving_up=reason)
            return
        self.ledger.done(job)
        self.forget(job)
        self.counters.add(failed=1, error=f"{job.source}: {reason}")
        log.warning("%s -> failed: %s", job.source, reason)

    def forget(self, job: Job) -> None:
        """The job no longer waits for space (finished, gone, or another error)."""
        if id(job) in self._full:
            self._full.discard(id(job))
            self.counters.waiting_for_space = len(self._full)
            if not self._full:
                log.info("the outbox has room again")

    def wait_for_space(self, job: Job, exc: OSError) -> None:
        """The outbox is full: keep the file claimed and try again, without limit
        (a full disk is never the file's fault); one warning a minute for all."""
        state = job.state
        state.waits += 1
        state.last_error = describe(exc)
        job.row_may_exist = job.row_may_exist or state.name is not None
        if id(job) not in self._full:
            self._full.add(id(job))
            self.counters.waiting_for_space = len(self._full)
        delay = min(self.policy.delay(state.waits), FULL_RETRY_MAX)
        try:
            self.save_state(job)
        except Exception as err:  # noqa: BLE001 - the wait goes on in memory
            log.debug("%s: state record not saved: %s", job.source, describe(err))
        now = time.monotonic()
        if now - self._full_warned >= FULL_WARN_EVERY:
            self._full_warned = now
            log.warning("outbox full (%s): %d file(s) waiting for space, kept claimed and "
                        "tried again every %.0f s at most", state.last_error, len(self._full),
                        FULL_RETRY_MAX)
        else:
            log.debug("%s: %s, trying again in %.1f s", job.source, state.last_error, delay)
        self.counters.add(error=f"outbox full: {state.last_error}")
        self.queue.schedule(job, delay)

    def transient(self, job: Job, exc: BaseException, giving_up: str | None = None) -> None:
        """Keep the file claimed and try again later; after the last attempt, fail it.
        A full outbox is waited for instead (:meth:`wait_for_space`)."""
        if disk_full(exc):
            self.wait_for_space(job, exc)
            return
        self.forget(job)
        state = job.state
        state.attempts += 1
        state.last_error = describe(exc)
        job.row_may_exist = job.row_may_exist or state.name is not None
        if giving_up is None and self.policy.gives_up(state.attempts):
            reason = f"gave up after {state.attempts} attempts: {state.last_error}"
            log.error("%s: %s", job.source, reason)
            self.fail(job, reason)  # may come back here with giving_up set
            return
        delay = self.policy.delay(state.attempts)
        try:
            self.save_state(job)
        except Exception as err:  # noqa: BLE001 - the attempt count survives a crash only
            log.debug("%s: state record not saved: %s", job.source, describe(err))  # if saved
        what = f"cannot fail it either ({giving_up})" if giving_up else \
            f"attempt {state.attempts} of {self.policy.max_attempts}"
        log.warning("%s: %s; %s, trying again in %.1f s", job.source, state.last_error, what,
                    delay)
        self.counters.add(error=f"{job.source}: {state.last_error}")
        self.queue.schedule(job, delay)
