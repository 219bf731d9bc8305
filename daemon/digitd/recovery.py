"""Taking over what a stopped instance left, and telling what is left to do.

:func:`adopt` turns the work folders of dead instances into jobs;
:func:`triage` tells, for any job, the :class:`Phase` it was found in, so the
batch finishes what a crash cut short instead of doing it twice.
"""

from __future__ import annotations

import enum
import logging
import os
import stat
from pathlib import Path

from .errors import describe
from .files import remove_quietly
from .jobs import Job, Journal, Permanent
from .outbox import Outbox
from .workdir import State, WorkArea, source_of, state_path

log = logging.getLogger(__name__)


class Phase(enum.Enum):
    """Where a claimed input stands."""

    GONE = "gone"  # the claimed file disappeared: nothing to do
    WRITTEN = "written"  # its result JSON parses: only the original is left to move
    QUARANTINE = "quarantine"  # it was being quarantined: finish that
    FRESH = "fresh"  # nothing of it is written for sure: recognise it


def triage(job: Job, outbox: Outbox) -> Phase:
    """The phase of ``job``; raises :class:`Permanent` for a link or a non-file."""
    try:
        st = os.lstat(job.path)
    except FileNotFoundError:
        return Phase.GONE
    if job.state.phase == "quarantine":
        return Phase.QUARANTINE
    if job.state.name and outbox.result_complete(job.state.name):
        return Phase.WRITTEN
    if stat.S_ISLNK(st.st_mode):
        try:
            target = os.readlink(job.path)
        except OSError:
            target = "?"
        raise Permanent(f"a symbolic link (to {target}); links are not followed")
    if not stat.S_ISREG(st.st_mode):
        raise Permanent(f"not a regular file ({file_type(st.st_mode)})")
    return Phase.FRESH


def file_type(mode: int) -> str:
    for test, word in ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISDIR, "a folder")):
        if test(mode):
            return word
    return "unknown type"


def adopt(work: WorkArea, outbox: Outbox) -> list[tuple[Path, list[Job]]]:
    """Take over the work folders of dead instances: (folder, its jobs) each.

    A folder that cannot be read now is given back (its lock released) and
    tried again at the next call."""
    taken: list[tuple[Path, list[Job]]] = []
    for folder in work.adopt():
        try:
            jobs = folder_jobs(work, folder, outbox)
        except OSError as exc:
            log.warning("cannot take over %s now (%s); trying again at the next rescan",
                        folder, describe(exc))
            work.finished_with(folder)  # gives its lock back (the folder is not empty)
            continue
        if jobs:
            log.info("taking over %d claimed file(s) from %s", len(jobs), folder.name)
        taken.append((folder, jobs))
    return taken


def folder_jobs(work: WorkArea, folder: Path, outbox: Outbox) -> list[Job]:
    """The jobs of one adopted work folder; records of finished inputs are tidied."""
    leftovers, journal_paths = work.leftovers(folder)
    journals = {path: Journal(path) for path in journal_paths}
    jobs: list[Job] = []
    for left in leftovers:
        if not left.exists:  # only its record is left: the input was finished
            tidy_orphan(left.path, left.state, outbox, record=left.journal is None)
            continue
        state = left.state or State(source=source_of(left.path.name))
        job = Job(path=left.path, folder=folder, state=state, resumed=True,
                  row_may_exist=state.name is not None,
                  record=left.state is not None and left.journal is None)
        if left.journal is not None:
            job.journal = journals[left.journal]
            job.journal.pending += 1
        jobs.append(job)
    for journal in journals.values():
        if journal.pending == 0:
            remove_quietly(journal.path)
    return jobs


def tidy_orphan(path: Path, state: State | None, outbox: Outbox, record: bool = True) -> None:
    """A record whose claimed file is gone: release its NAME, remove the record."""
    if state is not None and state.name:
        done = os.path.exists(outbox.result_path(state.name)) \
            or os.path.exists(outbox.error_path(state.name))
        if not done:
            log.warning("%s: claimed file missing and no result (was it removed by hand?)",
                        state.source)
        outbox.release(state.name)
    if record:
        remove_quietly(state_path(path))
