"""Claiming inbox files, and the journals and state records that make a crash harmless.

Inside the inbox (so every rename stays on its filesystem), instance ``<id>``
holds ``.digitd/<id>.lock`` and claims files by renaming them into
``.digitd/work/<id>/``, where one journal per batch records each file's NAME
and a per-file state record appears only for a retry or a quarantine. A work
folder whose lock can be taken belongs to a dead instance and is adopted.
The design is ``docs/DESIGN.md``, "Durability".
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import itertools
import json
import logging
import os
import secrets
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .files import atomic_write, fsync_path

log = logging.getLogger(__name__)

HIDDEN = ".digitd"
STATE_SUFFIX = ".state.json"
JOURNAL_SUFFIX = ".batch.json"
KNOWN_FAILED = "known-failed"  # .digitd/known-failed/: failed files left in the inbox
_counter = itertools.count()


WORK_NAME_MAX = 255 - len(STATE_SUFFIX)  # a claimed file's name, with room for its record


def _cut(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes, never inside a character."""
    data = os.fsencode(text)
    if len(data) <= limit:
        return text
    data = data[:limit]
    while data and (data[-1] & 0xC0) == 0x80:  # a continuation byte: drop the character
        data = data[:-1]
    if data and data[-1] >= 0xC0:
        data = data[:-1]
    return os.fsdecode(data)


def has_record(work_file: Path, source: str) -> bool:
    """Whether a claim of ``source`` as ``work_file`` came with a state record (a
    name too long to carry the source)."""
    return source_of(work_file.name) != source


def escape(rel: str) -> str:
    """A relative inbox path as one file name (``%`` and ``/`` escaped). Pure."""
    return rel.replace("%", "%25").replace("/", "%2F")


def unescape(name: str) -> str:
    return name.replace("%2F", "/").replace("%25", "%")


def new_token() -> str:
    return f"{time.time_ns():x}{next(_counter):x}"


def source_of(work_name: str) -> str:
    """The relative inbox path a claimed file came from, from its work name."""
    _token, _, rest = work_name.partition("_")
    return unescape(rest or work_name)


@dataclass
class State:
    """What survives a crash about one claimed input (``<work file>.state.json``)."""

    source: str  # relative path in the inbox
    name: str | None = None  # reserved output NAME
    sha256: str | None = None
    attempts: int = 0  # failed attempts so far (transient errors)
    waits: int = 0  # attempts that found the outbox full (never counted as failures)
    phase: str = "recognise"  # recognise | quarantine
    reason: str | None = None  # why it is being quarantined
    last_error: str | None = None
    claimed_at: float = field(default_factory=time.time)

    @classmethod
    def load(cls, path: Path) -> State | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
            return cls(**known)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            log.warning("unreadable state record %s (%s): starting that file over", path, exc)
            return None

    def save(self, path: Path) -> None:
        data = json.dumps(asdict(self)).encode("ascii")  # \u escapes: any name round-trips
        atomic_write(path, lambda f: f.write(data), fsync=False)


def state_path(work_file: Path) -> Path:
    return work_file.with_name(work_file.name + STATE_SUFFIX)


def write_journal(folder: Path, states: dict[str, State]) -> Path:
    """A batch's journal in ``folder``: claimed file name -> its source and NAME.
    Atomic (hidden temp + rename), not fsynced here; returns its path."""
    path = folder / f"{new_token()}{JOURNAL_SUFFIX}"
    files = {work_name: {"source": st.source, "name": st.name, "claimed_at": st.claimed_at}
             for work_name, st in states.items()}
    data = json.dumps({"files": files}).encode("ascii")  # \u escapes: any name round-trips
    atomic_write(path, lambda f: f.write(data), fsync=False)
    return path


def read_journal(path: Path) -> dict[str, State]:
    """The entries of a journal; {} (with a warning) if it cannot be read."""
    try:
        files = json.loads(path.read_text(encoding="utf-8"))["files"]
        return {work_name: State(source=e["source"], name=e.get("name"),
                                 claimed_at=e.get("claimed_at") or time.time())
                for work_name, e in files.items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        log.warning("unreadable journal %s (%s): its files start over", path, exc)
        return {}


@dataclass
class Leftover:
    """A file found in a work folder at start or adoption: what is known about it."""

    path: Path  # the claimed file (may no longer exist if only its record is left)
    state: State | None
    exists: bool
    journal: Path | None = None  # the journal ``state`` came from (None: a state record, or none)


class WorkArea:
    """This instance's lock and work folder, and the folders it adopted."""

    def __init__(self, inbox: Path, instance_id: str | None = None) -> None:
        self.inbox = Path(inbox)
        self.base = self.inbox / HIDDEN
        self.id = instance_id or f"{_safe(socket.gethostname())}-{os.getpid()}-{secrets.token_hex(3)}"
        self.folder = self.base / "work" / self.id
        self._locks: dict[str, int] = {}  # instance id -> lock fd (ours and adopted)
        self._known: dict[str, tuple[int, ...]] = {}  # known-failed: rel -> its key

    # -- life -------------------------------------------------------------

    def open(self) -> None:
        """Take our own lock and make our work folder."""
        (self.base / "work").mkdir(parents=True, exist_ok=True)
        fd = self._try_lock(self.id)
        if fd is None:
            raise RuntimeError(f"instance id {self.id} is already in use")
        self.folder.mkdir(exist_ok=True)
        # The folders' names durable before any claim into them is (a claim made
        # durable by the journal's fsync must not hang from a folder lost in a
        # power cut); once per start.
        for folder in (self.inbox, self.base, self.base / "work"):
            fsync_path(folder, os.O_RDONLY | os.O_DIRECTORY)

    def close(self) -> None:
        """Give up every lock; remove our folder (and lock file) if it is empty."""
        for ident in list(self._locks):
            self._release(ident)

    def _lock_path(self, ident: str) -> Path:
        return self.base / f"{ident}.lock"

    def _try_lock(self, ident: str) -> int | None:
        fd = os.open(self._lock_path(ident), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None
            raise
        self._locks[ident] = fd
        return fd

    def _release(self, ident: str) -> None:
        """Remove the folder of ``ident`` if empty, then its lock file; unlock."""
        fd = self._locks.pop(ident, None)
        if fd is None:
            return
        folder = self.base / "work" / ident
        try:
            folder.rmdir()
            removed = True
        except FileNotFoundError:
            removed = True
        except OSError:
            removed = False  # not empty: files wait for the next adopter
        if removed:
            try:
                os.unlink(self._lock_path(ident))
            except FileNotFoundError:
                pass
        os.close(fd)

    # -- claiming ---------------------------------------------------------

    def claim(self, src: Path, rel: str | None = None) -> Path | None:
        """Rename ``src`` (in the inbox; ``rel`` its path relative to the inbox, if
        known) into our work folder; None if it is gone."""
        if rel is None:
            rel = os.path.relpath(src, self.inbox)
        token = new_token()
        name = f"{token}_{escape(rel)}"
        record = None
        if len(os.fsencode(name)) > WORK_NAME_MAX:
            # A name near 255 bytes: the work name is cut, and the full source is
            # in a state record written before the claim (an orphan record, if the
            # claim then fails, is tidied like any other).
            name = f"{token}_{_cut(escape(rel), WORK_NAME_MAX - len(token) - 2)}~"
            record = state_path(self.folder / name)
            State(source=rel).save(record)
        dest = self.folder / name
        try:
            os.rename(src, dest)
        except BaseException as exc:
            if record is not None:
                try:
                    os.unlink(record)
                except OSError:
                    pass
            if isinstance(exc, FileNotFoundError):
                return None  # another instance (or a person) took it first
            raise
        return dest

    # -- files failed that could not be moved ----------------------------------

    @property
    def _known_folder(self) -> Path:
        return self.base / KNOWN_FAILED

    def _known_path(self, rel: str) -> Path:
        return self._known_folder / f"{hashlib.sha1(os.fsencode(rel)).hexdigest()}.json"

    def mark_known_failed(self, rel: str, key: tuple[int, int, int], reason: str) -> None:
        """``rel`` (back in the inbox) failed and cannot be moved: not to be claimed
        again while its key (size, mtime, inode) stays ``key``."""
        self._known_folder.mkdir(exist_ok=True)
        data = json.dumps({"source": rel, "key": list(key), "reason": reason}).encode("ascii")
        atomic_write(self._known_path(rel), lambda f: f.write(data), fsync=False)
        self._known[rel] = tuple(key)

    def refresh_known_failed(self) -> None:
        """Read the known-failed marks (every instance's) from the inbox."""
        known: dict[str, tuple[int, ...]] = {}
        try:
            names = os.listdir(self._known_folder)
        except FileNotFoundError:
            names = []
        for name in names:
            try:
                entry = json.loads((self._known_folder / name).read_text("ascii"))
                known[entry["source"]] = tuple(entry["key"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
        self._known = known

    def marked(self, rel: str) -> bool:
        """Whether ``rel`` has a known-failed mark (cheap: in memory)."""
        return rel in self._known

    def known_failed(self, rel: str, key: tuple[int, int, int] | None) -> bool:
        """Whether ``rel`` is marked known-failed with this very key; a mark whose
        file changed (a new file of that name) is removed."""
        mark = self._known.get(rel)
        if mark is None:
            return False
        if key is not None and tuple(key) == mark:
            return True
        del self._known[rel]
        try:
            os.unlink(self._known_path(rel))
        except OSError:
            pass
        return False

    # -- recovery -----------------------------------------------------------

    def adopt(self) -> list[Path]:
        """Take over the work folders of dead instances; returns them (locks held)."""
        work = self.base / "work"
        taken: list[Path] = []
        try:
            entries = sorted(os.scandir(work), key=lambda e: e.name)
        except FileNotFoundError:
            return taken
        for entry in entries:
            ident = entry.name
            if ident in self._locks or not entry.is_dir(follow_symlinks=False):
                continue
            if self._try_lock(ident) is None:
                continue  # its instance is alive, or another one adopted it
            log.info("adopting the work folder of stopped instance %s", ident)
            taken.append(Path(entry.path))
        return taken

    def leftovers(self, folder: Path) -> tuple[list[Leftover], list[Path]]:
        """Claimed files (and orphan records) in one work folder, and its journals.

        A file's state record, if any, wins over its journal entry (it is
        written later, for a retry or quarantine)."""
        files: set[str] = set()
        with_state: set[str] = set()
        journals: list[Path] = []
        try:
            listing = os.listdir(folder)
        except FileNotFoundError:
            return [], []
        for name in listing:
            if name.startswith("."):
                # a temp file of an interrupted state or journal write
                try:
                    os.unlink(folder / name)
                except OSError:
                    pass
            elif name.endswith(JOURNAL_SUFFIX):
                journals.append(folder / name)
            elif name.endswith(STATE_SUFFIX):
                with_state.add(name[: -len(STATE_SUFFIX)])
            else:
                files.add(name)
        journaled: dict[str, tuple[State, Path]] = {}
        for journal in sorted(journals):
            for work_name, state in read_journal(journal).items():
                journaled[work_name] = (state, journal)
        out = []
        for name in sorted(files | with_state | set(journaled)):
            path = folder / name
            state = State.load(state_path(path)) if name in with_state else None
            journal = None
            if state is None and name in journaled:
                state, journal = journaled[name]
            out.append(Leftover(path=path, state=state, exists=name in files, journal=journal))
        return out, sorted(journals)

    def finished_with(self, folder: Path) -> None:
        """An adopted folder has been emptied: remove it and drop its lock."""
        ident = folder.name
        if ident != self.id:
            self._release(ident)

    @property
    def adopted(self) -> list[Path]:
        return [self.base / "work" / i for i in self._locks if i != self.id]


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in text)[:40] or "host"
