"""The outbox folder: its layout, NAME reservations, and moves that never replace.

``results/.NAME.reserve`` reserves a NAME (``O_EXCL``) and later receives the
JSON, renamed to ``results/NAME.json``; originals go to ``originals/`` or
``failed/`` by link + unlink. Rows go to ``results.csv`` in one locked append.
What is written when, and what is fsynced, is :mod:`digitd.writer`'s; the
design is ``docs/DESIGN.md``, "Durability".
"""

from __future__ import annotations

import csv
import datetime as _dt
import errno
import fcntl
import io
import os
import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .files import atomic_write, atomic_write_bytes, fsync_path
from .results import CSV_COLUMNS, csv_line, json_bytes, utc_timestamp

RESULTS, ANNOTATED, ORIGINALS, FAILED = "results", "annotated", "originals", "failed"
CSV_NAME = "results.csv"
RESERVE_SUFFIX = ".reserve"
MAX_SUFFIX = 100_000

_BAD_STEM = re.compile(r"[\x00-\x1f/\\]")


def safe_stem(stem: str) -> str:
    """A stem usable as a file name in the outbox (no separators, no leading dot)."""
    stem = _BAD_STEM.sub("_", stem).strip() or "input"
    stem = stem.lstrip(".") or "input"
    return stem[:200]


def _split_name(name: str) -> tuple[str, str]:
    """("scan.tar", ".gz") style: stem and the LAST suffix (kept when suffixing)."""
    p = Path(name)
    return (p.stem, p.suffix) if p.stem else (name, "")


_next_suffix: dict[tuple[str, str], int] = {}  # (folder, name) -> suffix to try after the name


def move_no_replace(src: Path, folder: Path, name: str) -> Path:
    """Move ``src`` into ``folder`` as ``name``, or ``stem-1.ext``, ``stem-2.ext``...
    if taken; never replaces an existing file. Returns the new path.

    When ``name`` is taken, the search goes on from the suffix after the one
    this process used last for it (a scanner calls every file ``scan.png``:
    not thousands of tries per file); any suffix found free is free."""
    stem, ext = _split_name(name)
    base = os.fspath(folder)
    key = (base, name)
    i = 0
    while i < MAX_SUFFIX:
        dest = f"{base}/{name}" if i == 0 else f"{base}/{stem}-{i}{ext}"
        try:
            os.link(src, dest, follow_symlinks=False)
        except FileExistsError:
            i = max(i + 1, _next_suffix.get(key, 1)) if i == 0 else i + 1
            continue
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK):
                raise
            # Another filesystem, or no hard links there: copy to a temp, then link that.
            if os.path.lexists(dest):
                i += 1
                continue
            tmp = f"{base}/.{os.path.basename(dest)}.{os.getpid()}.tmp"
            shutil.copy2(src, tmp, follow_symlinks=False)
            try:
                os.link(tmp, dest)
            except FileExistsError:
                i += 1
                continue
            except OSError:
                if os.path.lexists(dest):
                    i += 1
                    continue
                os.rename(tmp, dest)  # no hard links at all: best effort
            finally:
                if os.path.lexists(tmp):
                    os.unlink(tmp)
        os.unlink(src)
        if i:
            if len(_next_suffix) >= GUESS_MEMORY:
                _next_suffix.clear()
            _next_suffix[key] = i + 1
        return Path(dest)
    raise FileExistsError(errno.EEXIST, f"no free name for {name} in {folder}")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:  # a single write in practice; loop only on a short write
        n = os.write(fd, view)
        view = view[n:]


_SYNCFS: Any = None


def _syncfs_call() -> Callable[[int], int] | None:
    """libc's ``syncfs`` (Linux), or None where there is none."""
    global _SYNCFS
    if _SYNCFS is None:
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            fn = libc.syncfs
            fn.argtypes = [ctypes.c_int]
            fn.restype = ctypes.c_int
            _SYNCFS = fn
        except (OSError, AttributeError):
            _SYNCFS = False
    return _SYNCFS or None


def syncfs(folder: str | os.PathLike[str]) -> None:
    """Write everything cached for the filesystem holding ``folder`` to disk
    (``syncfs(2)``; every file's data and metadata, one journal commit)."""
    fn = _syncfs_call()
    if fn is None:
        os.sync()
        return
    import ctypes

    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if fn(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), os.fspath(folder))
    finally:
        os.close(fd)


def make_durable(paths: list[str]) -> None:
    """Data and metadata of every file in ``paths`` on disk: an fsync each for a
    few files, else one ``syncfs`` per filesystem (measured on ext4: 256 small
    files take ~50 ms one fsync at a time, ~5 ms with one syncfs; for one or two
    files an fsync is cheaper and does not wait for other programs' writes)."""
    if len(paths) <= FSYNC_EACH_MAX or _syncfs_call() is None:
        for path in paths:
            fsync_path(path)
        return
    seen: set[int] = set()
    for folder in {os.path.dirname(p) or "." for p in paths}:
        dev = os.stat(folder).st_dev
        if dev not in seen:
            seen.add(dev)
            syncfs(folder)


FSYNC_EACH_MAX = 4  # make_durable: up to this many files, fsync each; more: syncfs
GUESS_MEMORY = 4096  # stems whose next free suffix Outbox remembers


class Outbox:
    """The outbox folder; sub-folders are created when first needed."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._made: dict[str, Path] = {}
        self._base = os.fspath(self.root)
        self._next_guess: dict[str, int] = {}  # stem -> suffix after the last one claimed

    # -- layout ------------------------------------------------------------

    def folder(self, name: str) -> Path:
        path = self._made.get(name)
        if path is None:
            path = self.root / name
            path.mkdir(parents=True, exist_ok=True)
            self._made[name] = path
        return path

    @property
    def csv_path(self) -> Path:
        return self.root / CSV_NAME

    @staticmethod
    def result_rel(name: str) -> str:
        return f"{RESULTS}/{name}.json"

    @staticmethod
    def annotated_rel(name: str) -> str:
        return f"{ANNOTATED}/{name}.png"

    def reserve_path(self, name: str) -> str:
        """``results/.NAME.reserve``: the reservation, and later the JSON's temp."""
        return f"{self._base}/{RESULTS}/.{name}{RESERVE_SUFFIX}"

    def result_path(self, name: str) -> str:
        return f"{self._base}/{RESULTS}/{name}.json"

    def error_path(self, name: str) -> str:
        return f"{self._base}/{FAILED}/{name}.error.json"

    def taken(self, name: str) -> bool:
        """Whether an earlier input's files use NAME."""
        base = self._base
        for path in (f"{base}/{RESULTS}/{name}.json", f"{base}/{ANNOTATED}/{name}.png",
                     f"{base}/{FAILED}/{name}.error.json"):
            try:
                os.lstat(path)
                return True
            except (FileNotFoundError, NotADirectoryError):
                pass
        return False

    # -- naming ------------------------------------------------------------

    def claim_name(self, stem: str) -> str:
        """Reserve a NAME for one input: ``stem``, else ``stem-1``, ``stem-2``, ...

        The reservation is ``results/.NAME.reserve`` made with O_CREAT|O_EXCL;
        the name's files are checked after it is held (see the module doc).
        The JSON is later written into that same file and renamed to
        ``NAME.json``, which ends the reservation; :meth:`release` drops a
        reservation that will not be used.
        """
        stem = safe_stem(stem)
        self.folder(RESULTS)
        # A stem not seen before is most likely free: straight to the O_EXCL
        # (no look-ups first); a stem seen before, or found taken, starts from
        # the galloping guess.
        searched = stem in self._next_guess
        i = self._first_free_guess(stem) if searched else 0
        while i < MAX_SUFFIX:
            name = stem if i == 0 else f"{stem}-{i}"
            try:
                fd = os.open(self.reserve_path(name),
                             os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o666)
            except FileExistsError:
                pass  # reserved by another input
            else:
                os.close(fd)
                if not self.taken(name):
                    if len(self._next_guess) >= GUESS_MEMORY:
                        self._next_guess.clear()
                    self._next_guess[stem] = i + 1
                    return name
                self.release(name)  # used by an earlier input's files
            if searched:
                i += 1
            else:
                searched = True
                i = max(i + 1, self._first_free_guess(stem))
        raise FileExistsError(errno.EEXIST, f"no free result name for {stem!r} in {self.root}")

    def _first_free_guess(self, stem: str) -> int:
        """A suffix number worth trying first, in O(log n) look-ups.

        Scanners name every file ``scan.png``: after thousands of inputs,
        trying ``scan``, ``scan-1``, ``scan-2``... one by one would cost
        thousands of look-ups per file. Suffixes are used from 1 upwards, so a
        galloping then binary search finds the end of the used run - starting
        from where this process's last claim of the stem ended, when that is
        still used. Only a hint: the claim itself still goes through O_EXCL
        and the check.
        """

        def used(i: int) -> bool:
            name = stem if i == 0 else f"{stem}-{i}"
            return os.path.lexists(self.reserve_path(name)) or self.taken(name)

        if not used(0):
            return 0
        lo = 0  # used(lo)
        hint = self._next_guess.get(stem)
        if hint is not None and 0 < hint < MAX_SUFFIX and used(hint - 1):
            lo = hint - 1
        step = 1
        hi = lo + 1
        while hi < MAX_SUFFIX and used(hi):
            lo, step = hi, step * 2
            hi = lo + step
        hi = min(hi, MAX_SUFFIX)
        while hi - lo > 1:  # used(lo), free(hi) (or the limit)
            mid = (lo + hi) // 2
            if used(mid):
                lo = mid
            else:
                hi = mid
        return hi

    def release(self, name: str) -> None:
        """Drop the reservation of NAME (its files, if any, keep the name taken)."""
        try:
            os.unlink(self.reserve_path(name))
        except FileNotFoundError:
            pass

    # -- writing -----------------------------------------------------------

    def stage_json(self, name: str, obj: Any, *, fsync: bool = False) -> str:
        """Write ``obj`` into NAME's reservation file (created if missing), not yet
        renamed into place; returns that file's path. A failed write leaves the
        file (still the reservation) for the next attempt to overwrite."""
        data = json_bytes(obj)
        self.folder(RESULTS)
        tmp = self.reserve_path(name)
        # No O_TRUNC: the reservation is normally empty, and truncating costs a
        # journal transaction even then; what an earlier attempt left is cut below.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            _write_all(fd, data)
            if os.fstat(fd).st_size > len(data):
                os.ftruncate(fd, len(data))
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        return tmp

    def publish_json(self, name: str) -> str:
        """Rename NAME's staged JSON to ``results/NAME.json`` (ends the reservation)."""
        path = self.result_path(name)
        os.replace(self.reserve_path(name), path)
        return path

    def write_annotated(self, name: str, png: bytes) -> str:
        """``annotated/NAME.png``, atomically; its relative path."""
        path = self.folder(ANNOTATED) / f"{name}.png"
        atomic_write_bytes(path, png, fsync=False)  # a lost picture is redone with its JSON
        return self.annotated_rel(name)

    def append_csv_rows(self, rows: list[Mapping[str, str]], *, fsync: bool) -> None:
        """Rows of results.csv; the header first if the file is new or empty.

        One ``os.write`` on an O_APPEND descriptor under an exclusive
        ``flock``: rows from several processes never interleave, and the header
        is written exactly once. A last line cut short (disk full, crash) is
        ended first so the new rows start on their own line.
        """
        if not rows:
            return
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerows([row.get(c, "") for c in CSV_COLUMNS] for row in rows)
        data = buf.getvalue().encode("utf-8")
        if "" not in self._made:
            self.root.mkdir(parents=True, exist_ok=True)
            self._made[""] = self.root
        # 0o666 here and for the JSONs: the umask decides (the units' UMask=0002
        # keeps results group-writable)
        fd = os.open(self.csv_path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if size == 0:
                data = csv_line() + data
            elif os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data
            _write_all(fd, data)
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)  # also releases the lock

    def csv_results(self) -> set[str]:
        """The ``result`` column of every row in results.csv (reads the whole file)."""
        try:
            with open(self.csv_path, newline="", encoding="utf-8", errors="replace") as f:
                return {row.get("result") or "" for row in csv.DictReader(f)}
        except FileNotFoundError:
            return set()

    def sync_folder(self, name: str) -> None:
        """fsync a sub-folder: the renames and links made in it are on disk."""
        fsync_path(os.fspath(self.folder(name)), os.O_RDONLY | os.O_DIRECTORY)

    # -- originals -----------------------------------------------------------

    def archive(self, path: str | os.PathLike[str]) -> Path:
        """Move an original into ``originals/`` (suffixed if its name is taken)."""
        path = Path(path)
        return move_no_replace(path, self.folder(ORIGINALS), path.name)

    def quarantine(self, path: str | os.PathLike[str], name: str, reason: str, attempts: int, *,
                   source: str | None = None, sha256: str | None = None,
                   when: _dt.datetime | None = None, fsync: bool = True) -> Path:
        """Move an original into ``failed/`` (its own name, suffixed if taken) and
        write ``failed/NAME.error.json`` {source, reason, time, attempts, sha256, file}.

        The error record is written first: a crash in between leaves the
        record and the original still in place, and redoing it is harmless.
        """
        path = Path(path)
        folder = self.folder(FAILED)
        record: dict[str, Any] = {
            "source": source or path.name,
            "reason": reason,
            "time": utc_timestamp(when),
            "attempts": int(attempts),
        }
        if sha256 is not None:
            record["sha256"] = sha256
        keep = safe_stem(source or path.name)  # the original's own name
        record["file"] = f"{FAILED}/{keep}"  # where it lands; corrected below if suffixed
        error_path = folder / f"{name}.error.json"
        atomic_write(error_path, lambda f: f.write(json_bytes(record)), fsync=fsync)
        moved = move_no_replace(path, folder, keep)
        if moved.name != keep:
            record["file"] = f"{FAILED}/{moved.name}"
            atomic_write(error_path, lambda f: f.write(json_bytes(record)), fsync=fsync)
        return moved
