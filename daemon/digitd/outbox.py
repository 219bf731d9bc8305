"""The outbox folder: its layout, NAME reservations, and moves that never replace.

``results/.NAME.reserve`` reserves a NAME (``O_EXCL``) and later receives the
JSON, renamed to ``results/NAME.json``; originals go to ``originals/`` or
``failed/`` by link + unlink. Rows go to ``results.csv`` in one locked append,
a form page's rows to ``forms/FORMNAME.csv`` under the same lock, just before
(a CSV whose header is an earlier template's is first renamed aside).
What is written when, and what is fsynced, is :mod:`digitd.writer`'s; the
design is ``docs/DESIGN.md``, "Durability".
"""

from __future__ import annotations

import collections
import csv
import datetime as _dt
import errno
import fcntl
import io
import json
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .files import atomic_write, atomic_write_bytes, fsync_path, fsync_regular, rename_no_replace
from .results import CSV_COLUMNS, json_bytes, printable, utc_timestamp

FormRows = Mapping[str, tuple[Sequence[str], Sequence[Mapping[str, str]]]]  # form -> columns, rows

log = logging.getLogger(__name__)

RESULTS, ANNOTATED, ORIGINALS, FAILED, FORMS = "results", "annotated", "originals", "failed", "forms"
CSV_NAME = "results.csv"
RESERVE_SUFFIX = ".reserve"
MAX_SUFFIX = 100_000
PAGE_TAIL = re.compile(r"\.p[0-9]+$")  # the end of a page picture's stem: NAME.pN.png

_BAD_STEM = re.compile(r"[\x00-\x1f/\\]")


STEM_BYTES = 200  # a NAME's most bytes: with "-N", ".error.json" and a temp's tail < 255
NAME_MAX = 255  # bytes in one file name (Linux file systems)


def cut_bytes(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8, never inside a character."""
    data = os.fsencode(text)
    if len(data) <= limit:
        return text
    return os.fsdecode(data[:limit].decode("utf-8", "ignore").encode("utf-8"))


def safe_stem(stem: str) -> str:
    """A stem usable as a file name in the outbox: valid UTF-8 (undecodable bytes as
    ``_xNN``), no separators, no leading dot, at most STEM_BYTES bytes."""
    stem = _BAD_STEM.sub("_", printable(stem)).strip() or "input"
    stem = stem.lstrip(".") or "input"
    return cut_bytes(stem, STEM_BYTES)


def fit_name(stem: str, tail: str) -> str:
    """``stem + tail`` with the stem cut so that the whole is a legal file name."""
    room = NAME_MAX - len(os.fsencode(tail))
    return cut_bytes(stem, room) + tail


def _split_name(name: str) -> tuple[str, str]:
    """("scan.tar", ".gz") style: stem and the LAST suffix (kept when suffixing)."""
    p = Path(name)
    return (p.stem, p.suffix) if p.stem else (name, "")


_next_suffix: dict[tuple[str, str], int] = {}  # (folder, name) -> suffix to try after the name


def link_no_replace(src: Path, folder: Path, name: str, *, durable: bool = False) -> Path:
    """A second name for ``src`` in ``folder``: ``name``, or ``stem-1.ext``,
    ``stem-2.ext``... if taken; never replaces an existing file; ``src`` stays.

    Across file systems (or where hard links are refused) ``src`` is copied to
    a temp there - fsynced first when ``durable`` - and the temp linked. When
    ``name`` is taken, the search goes on from the suffix after the one this
    process used last for it (a scanner calls every file ``scan.png``: not
    thousands of tries per file); any suffix found free is free."""
    stem, ext = _split_name(name)
    base = os.fspath(folder)
    key = (base, name)
    i = 0
    while i < MAX_SUFFIX:
        dest = f"{base}/{name}" if i == 0 else f"{base}/{fit_name(stem, f'-{i}{ext}')}"
        try:
            os.link(src, dest, follow_symlinks=False)
        except FileExistsError:
            i = max(i + 1, _next_suffix.get(key, 1)) if i == 0 else i + 1
            continue
        except OSError as exc:
            if exc.errno == errno.EPERM:
                # protected_hardlinks: a file this user may not read or write cannot
                # be linked, but it can be renamed (same file system).
                try:
                    renamed = rename_no_replace(src, dest)
                except FileExistsError:
                    i += 1
                    continue
                except OSError:
                    renamed = False  # (another file system: the copy below)
                if renamed:
                    return _remember(key, i, Path(dest))
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK):
                raise
            if os.path.lexists(dest):
                i += 1
                continue
            if not _copy_in(src, dest, base, durable):
                i += 1
                continue
        return _remember(key, i, Path(dest))
    raise FileExistsError(errno.EEXIST, f"no free name for {name} in {folder}")


def _copy_in(src: Path, dest: str, base: str, durable: bool) -> bool:
    """Copy ``src`` to a temp in ``base``, then link it as ``dest``; False if ``dest``
    was taken meanwhile. The temp never outlives the call."""
    tmp = f"{base}/.digitd-move.{os.getpid()}.{threading.get_ident():x}.tmp"
    try:
        shutil.copy2(src, tmp, follow_symlinks=False)
        if durable and not os.path.islink(tmp):
            fsync_path(tmp)  # the copy's bytes on disk before the source can go
        try:
            os.link(tmp, dest)
        except FileExistsError:
            return False
        except OSError:
            if os.path.lexists(dest):
                return False
            os.rename(tmp, dest)  # no hard links at all: best effort
        return True
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def _remember(key: tuple[str, str], i: int, dest: Path) -> Path:
    if i:
        if len(_next_suffix) >= GUESS_MEMORY:
            _next_suffix.clear()
        _next_suffix[key] = i + 1
    return dest


def move_no_replace(src: Path, folder: Path, name: str, *, durable: bool = False) -> Path:
    """Move ``src`` into ``folder`` (:func:`link_no_replace`, then unlink ``src``);
    when ``durable``, ``folder`` is fsynced in between, so a power cut never
    leaves the file in neither place. Returns the new path."""
    dest = link_no_replace(src, folder, name, durable=durable)
    if durable:
        fsync_path(os.fspath(folder), os.O_RDONLY | os.O_DIRECTORY)
    if os.path.lexists(src):
        os.unlink(src)
    return dest


def _last_line_end(fd: int, size: int) -> int:
    """The offset just after the last newline in the first ``size`` bytes (0: none)."""
    pos = size
    while pos > 0:
        start = max(0, pos - 65536)
        at = os.pread(fd, pos - start, start).rfind(b"\n")
        if at >= 0:
            return start + at + 1
        pos = start
    return 0


def _cut_torn_line(fd: int, path: Path) -> int:
    """Remove a last line found without its newline (a crash or a full disk) from an
    open file; its size after."""
    size = os.fstat(fd).st_size
    if size and os.pread(fd, 1, size - 1) != b"\n":
        size = _last_line_end(fd, size)
        log.warning("%s: its last line was cut short (a crash or a full disk); "
                    "removed", path)
        os.ftruncate(fd, size)
    return size


def _encode_csv(rows: Sequence[Sequence[str]]) -> bytes:
    """CSV records as this module writes them: ``\\n``-terminated, UTF-8."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue().encode("utf-8")


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


SYNCFS_HONOURED = frozenset({"ext4", "ext3", "xfs"})  # syncfs(2) writes and commits all
_fs_types: dict[int, str] = {}


def fs_type(dev: int) -> str:
    """The type of the mounted file system with device number ``dev``, from
    ``/proc/self/mountinfo`` ("" when unknown)."""
    if dev not in _fs_types:
        found = ""
        want = f"{os.major(dev)}:{os.minor(dev)}"
        try:
            with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
                for line in f:
                    fields = line.split()
                    if len(fields) > 2 and fields[2] == want and " - " in line:
                        found = line.split(" - ", 1)[1].split()[0]
        except OSError:
            pass
        _fs_types[dev] = found
    return _fs_types[dev]


def make_durable(paths: list[str], folders: list[str] = (), originals: Sequence[str] = ()) -> None:
    """Data and metadata of every file in ``paths``, and the names in every folder
    in ``folders``, on disk; ``originals`` (the inputs) too, best effort. On ext4 and XFS, where ``syncfs`` is known to write
    and commit everything, one ``syncfs`` per file system for more than a few
    files (measured on ext4: 256 small files take ~50 ms one fsync at a time,
    ~5 ms with one syncfs); elsewhere (FUSE, network file systems, unknown) an
    ``fsync`` of each file, then of each folder: syncfs promises nothing there."""
    by_dev: dict[int, str] = {}
    rest: list[str] = []
    if len(paths) > FSYNC_EACH_MAX and _syncfs_call() is not None:
        for path in paths:
            dev = os.stat(path).st_dev
            if fs_type(dev) in SYNCFS_HONOURED:
                by_dev.setdefault(dev, path)
            else:
                rest.append(path)
    else:
        rest = list(paths)
    for path in rest:
        fsync_path(path)
    for path in originals:
        try:
            covered = os.lstat(path).st_dev in by_dev
        except OSError:
            continue
        if not covered:
            fsync_regular(path)
    for folder in folders:
        dev = os.stat(folder).st_dev
        if dev not in by_dev:
            fsync_path(folder, os.O_RDONLY | os.O_DIRECTORY)
    for path in by_dev.values():
        syncfs(os.path.dirname(path) or ".")


FSYNC_EACH_MAX = 4  # make_durable: up to this many files, fsync each; more: syncfs
GUESS_MEMORY = 4096  # stems whose next free suffix Outbox remembers


def complete_rows(path: str | os.PathLike[str], header: bytes | None = None) -> list[list[str]]:
    """A CSV file's rows after its header, read whole; a last line without its
    newline is not a row yet. No file, or one not starting with ``header`` when
    given: no rows."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    if header is not None and not data.startswith(header):
        return []
    data = data[: data.rfind(b"\n") + 1]
    return list(csv.reader(io.StringIO(data.decode("utf-8", "replace"), newline="")))[1:]


class Outbox:
    """The outbox folder; sub-folders are created when first needed."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._made: dict[str, Path] = {}
        self._base = os.fspath(self.root)
        self._next_guess: dict[str, int] = {}  # stem -> suffix after the last one claimed
        # durable: a name made outside a commit's sync (a sub-folder, a forms CSV set
        # aside) is fsynced into its folder at once
        self.sync_new_folders = False
        self.clock: Callable[[], float] = time.time  # the time in a set-aside CSV's name

    # -- layout ------------------------------------------------------------

    def folder(self, name: str) -> Path:
        path = self._made.get(name)
        if path is None:
            path = self.root / name
            try:
                path.mkdir(parents=True)
            except FileExistsError:
                pass
            else:
                if self.sync_new_folders:  # its name durable before anything in it is
                    fsync_path(os.fspath(self.root), os.O_RDONLY | os.O_DIRECTORY)
            self._made[name] = path
        return path

    @property
    def csv_path(self) -> Path:
        return self.root / CSV_NAME

    @staticmethod
    def result_rel(name: str) -> str:
        return f"{RESULTS}/{name}.json"

    @staticmethod
    def annotated_rel(name: str, page: int | None = None) -> str:
        """``annotated/NAME.png``, or ``annotated/NAME.pN.png`` for page N of a document."""
        return f"{ANNOTATED}/{name}.png" if page is None else f"{ANNOTATED}/{name}.p{page}.png"

    def reserve_path(self, name: str) -> str:
        """``results/.NAME.reserve``: the reservation, and later the JSON's temp."""
        return f"{self._base}/{RESULTS}/.{name}{RESERVE_SUFFIX}"

    def result_path(self, name: str) -> str:
        return f"{self._base}/{RESULTS}/{name}.json"

    def result_complete(self, name: str) -> bool:
        """Whether ``results/NAME.json`` exists and parses as a result object (a file
        emptied or cut short by a power cut on a file system that dropped its data
        does not count: its input is redone under the same NAME)."""
        try:
            with open(self.result_path(name), "rb") as f:
                obj = json.loads(f.read())
        except (OSError, ValueError):
            return False
        return isinstance(obj, dict) and "status" in obj

    def error_path(self, name: str) -> str:
        return f"{self._base}/{FAILED}/{name}.error.json"

    def taken(self, name: str) -> bool:
        """Whether an earlier input's files use NAME."""
        base = self._base
        for path in (f"{base}/{RESULTS}/{name}.json", f"{base}/{ANNOTATED}/{name}.png",
                     f"{base}/{ANNOTATED}/{name}.p1.png", f"{base}/{FAILED}/{name}.error.json"):
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
        if PAGE_TAIL.search(stem):  # "x.p2" would share annotated/x.p2.png with page 2 of "x"
            stem += "_"
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

    def write_annotated(self, name: str, png: bytes, page: int | None = None) -> str:
        """``annotated/NAME.png`` (or ``NAME.pN.png``, page N), atomically; its relative path."""
        rel = self.annotated_rel(name, page)
        atomic_write_bytes(self.folder(ANNOTATED) / rel.rpartition("/")[2], png,
                           fsync=False)  # a lost picture is redone with its JSON
        return rel

    def form_csv_path(self, form: str) -> Path:
        """``forms/FORMNAME.csv``: the rows of the pages read as that form."""
        return self.root / FORMS / f"{form}.csv"

    def append_csv_rows(self, rows: list[Mapping[str, str]], *, fsync: bool) -> bool:
        """Rows of results.csv (:meth:`append_rows` without forms); whether its header was written."""
        return self.append_rows(rows, {}, fsync=fsync)[0]

    def append_rows(self, rows: list[Mapping[str, str]], forms: FormRows, *,
                    fsync: bool) -> tuple[bool, list[str]]:
        """Rows of results.csv, and of each form's CSV (``forms``: name -> (columns,
        rows)); each file's header first if it is new or empty. A form's CSV whose
        header is other columns (its template changed) is first set aside as
        ``FORMNAME.until-YYYYMMDDTHHMMSSZ.csv`` and begun anew. Returns whether
        results.csv's header was written and the forms whose CSV got its header.

        Under an exclusive ``flock`` of results.csv: the forms' rows first (one
        ``os.write`` each on an O_APPEND descriptor), then results.csv's (one
        write), so a result with a row in results.csv has its forms rows too, and
        rows from several processes never interleave. A write that fails part-way
        (disk full) is cut back off, and a last line found cut short (a crash) is
        removed first: no torn row stays in any file.
        """
        if not rows and not forms:
            return False, []
        if "" not in self._made:
            self.root.mkdir(parents=True, exist_ok=True)
            self._made[""] = self.root
        # 0o666 here and for the JSONs: the umask decides (the units' UMask=0002
        # keeps results group-writable)
        fd = os.open(self.csv_path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            made = []
            for form, (columns, form_rows) in forms.items():
                if form_rows:
                    self.folder(FORMS)
                    if self._append_file(self.form_csv_path(form), columns, form_rows, fsync):
                        made.append(form)
            header = bool(rows) and self._append(fd, self.csv_path, CSV_COLUMNS, rows, fsync)
            return header, made
        finally:
            os.close(fd)  # also releases the lock

    def _append_file(self, path: Path, columns: Sequence[str], rows: Sequence[Mapping[str, str]],
                     fsync: bool) -> bool:
        fd = self._open_form_csv(path, columns, fsync)
        try:
            return self._append(fd, path, columns, rows, fsync)
        finally:
            os.close(fd)

    def _open_form_csv(self, path: Path, columns: Sequence[str], fsync: bool) -> int:
        """A forms CSV opened to append rows of ``columns``. One whose header is other
        columns (its template's fields changed) is first set aside, and an empty one
        is opened in its place. A header cut short is a last line cut short: removed,
        which leaves an empty file, never a changed one."""
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            head = _encode_csv([columns])
            if not _cut_torn_line(fd, path) or os.pread(fd, len(head), 0) == head:
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
        aside = self._set_aside(path, durable=fsync or self.sync_new_folders)
        log.warning("%s: the template's columns changed (now %s); the file with the old "
                    "columns was renamed to %s, a new %s started", path, ",".join(columns),
                    aside, path.name)
        return os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)

    def _set_aside(self, path: Path, *, durable: bool) -> Path:
        """Rename ``forms/FORM.csv`` to ``FORM.until-YYYYMMDDTHHMMSSZ.csv`` (UTC, now),
        suffixed ``-2``, ``-3``... if taken, never replacing a file
        (``RENAME_NOREPLACE``; link + unlink where there is none). When ``durable``
        the folder is fsynced before the name is free for a new file."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self.clock()))
        folder = os.fspath(path.parent)
        for i in range(1, MAX_SUFFIX):
            suffix = f"-{i}" if i > 1 else ""
            dest = path.with_name(fit_name(path.stem, f".until-{stamp}{suffix}{path.suffix}"))
            try:
                if not rename_no_replace(path, dest):
                    os.link(path, dest)
                    if durable:
                        fsync_path(folder, os.O_RDONLY | os.O_DIRECTORY)
                    os.unlink(path)
            except FileExistsError:
                continue
            if durable:
                fsync_path(folder, os.O_RDONLY | os.O_DIRECTORY)
            return dest
        raise FileExistsError(errno.EEXIST, f"no free name to set {path} aside")

    @staticmethod
    def _append(fd: int, path: Path, columns: Sequence[str], rows: Sequence[Mapping[str, str]],
                fsync: bool) -> bool:
        """Rows appended to an open CSV (the header first when it is empty, a last line
        cut short removed first, a write cut short cut back off); whether the header was."""
        data = _encode_csv([[row.get(c, "") for c in columns] for row in rows])
        size = _cut_torn_line(fd, path)
        header = size == 0
        if header:
            data = _encode_csv([columns]) + data
        try:
            _write_all(fd, data)
        except OSError:
            os.ftruncate(fd, size)  # no torn row (freeing space, this succeeds)
            raise
        if fsync:
            os.fsync(fd)
        return header

    def form_csv_keys(self, form: str,
                      columns: Sequence[str]) -> collections.Counter[tuple[str, str]]:
        """How many complete rows of ``columns`` there are per (file, page) in
        ``forms/FORMNAME.csv`` and the files set aside from it: those whose header is
        ``columns`` (rows under another header were read with another template)."""
        head = _encode_csv([columns])
        path = self.form_csv_path(form)
        keys: collections.Counter[tuple[str, str]] = collections.Counter()
        for each in [path, *sorted(path.parent.glob(f"{form}.until-*.csv"))]:
            keys.update((row[0], row[1]) for row in complete_rows(each, head) if len(row) > 1)
        return keys

    def csv_sources(self) -> dict[str, set[str]]:
        """Per ``source`` in results.csv, the ``result`` of each of its rows."""
        at_source, at_result = CSV_COLUMNS.index("source"), CSV_COLUMNS.index("result")
        out: dict[str, set[str]] = {}
        for row in complete_rows(self.csv_path):
            if len(row) > at_result:
                out.setdefault(row[at_source], set()).add(row[at_result])
        return out

    def csv_results(self) -> dict[str, set[tuple[str, str]]]:
        """Per ``result`` in results.csv, the (page, index) of its complete rows
        (``("", "")``: the input's own row). Columns are taken by position: an
        older version's header lacks the last ones, its rows are its own rows."""
        at = {c: CSV_COLUMNS.index(c) for c in ("result", "page", "index")}
        out: dict[str, set[tuple[str, str]]] = {}
        for row in complete_rows(self.csv_path):
            if len(row) <= at["result"]:
                continue  # an empty line
            page, index = (row[at["page"]], row[at["index"]]) if len(row) > at["index"] \
                else ("", "")
            out.setdefault(row[at["result"]], set()).add((page, index))
        return out

    def sync_folder(self, name: str) -> None:
        """fsync a sub-folder: the renames and links made in it are on disk."""
        fsync_path(os.fspath(self.folder(name)), os.O_RDONLY | os.O_DIRECTORY)

    def note_left_in_inbox(self, name: str, source: str) -> None:
        """``failed/NAME.error.json`` says its original stayed in the inbox."""
        path = self.error_path(name)
        try:
            with open(path, "rb") as f:
                record = json.loads(f.read())
        except (OSError, ValueError):
            return
        record["file"] = None
        record["left_in_inbox"] = printable(source)
        atomic_write(path, lambda f: f.write(json_bytes(record)), fsync=self.sync_new_folders)

    # -- originals -----------------------------------------------------------

    def archive(self, path: str | os.PathLike[str], *, durable: bool = False) -> Path:
        """Move an original into ``originals/`` (suffixed if its name is taken)."""
        path = Path(path)
        return move_no_replace(path, self.folder(ORIGINALS), path.name, durable=durable)

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
            "source": printable(source or path.name),
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
        moved = move_no_replace(path, folder, keep, durable=fsync)
        if moved.name != keep:
            record["file"] = f"{FAILED}/{moved.name}"
            atomic_write(error_path, lambda f: f.write(json_bytes(record)), fsync=fsync)
        return moved
