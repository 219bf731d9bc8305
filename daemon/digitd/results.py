"""The outbox: result records and the files that hold them.

Pure part: :func:`result_dict` and :func:`csv_row` turn a reading into the
contract's JSON object and CSV row (DESIGN.md, "Outbox").

File part: :class:`Outbox` owns the folder layout and writes every file so
that a reader never sees half of one and two processes never clash:

* ``results/NAME.json`` - written into the NAME's reservation file
  ``results/.NAME.reserve`` (hidden), fsynced, then ``os.replace``d into
  place. Written LAST for each input, so its presence means the result is
  complete.
* ``Outbox(root, fsync=False)`` skips the fsyncs of the JSON and CSV: files
  are still complete or absent for any reader and after any process crash
  (``kill -9`` leaves the page cache intact); only a power cut could then lose
  the last results. An fsync costs 0.1-2 ms (far more on a busy disk), more
  than everything else per input; ``digitd predict`` (rerun it after a power
  cut) uses fsync=False, the service keeps the default.
* :class:`Batch` - the service's group commit: a micro-batch's rows in one
  write, its JSONs staged, ONE sync for all of them, the renames, one fsync of
  ``results/``; the originals are moved only after that.
* ``annotated/NAME.png`` - the same temp + rename (never fsynced: a picture
  lost in a power cut is drawn again with its JSON).
* ``results.csv`` - one row per input, appended with a single ``os.write`` on
  an ``O_APPEND`` descriptor while holding ``fcntl.flock`` (a batch's rows
  together), the header written under the same lock when the file is empty.
  Rows never interleave, even from several processes.
* ``failed/`` and ``originals/`` - originals moved without ever replacing a
  file already there (``os.link`` + unlink, which fails instead of
  overwriting), suffixed ``-1``, ``-2``, ... when the name is taken.

Naming: ``NAME`` is the input's stem. :meth:`Outbox.claim_name` reserves it by
creating ``results/.NAME.reserve`` with ``O_CREAT | O_EXCL`` (atomic, so two
processes cannot both win) and only THEN checks that no earlier input's files
use NAME (``results/NAME.json``, ``annotated/NAME.png``,
``failed/NAME.error.json``); a taken name moves on to ``NAME-1``, ``NAME-2``...
The reservation file later receives the JSON and is renamed to
``NAME.json``: the rename ends the reservation and publishes the result in
one atomic step, so at every moment either the marker or the result holds
the name, and a later claimant always sees one of them. Per input that is
one file created, no marker to remove. :meth:`Outbox.release` drops a
reservation that will not be used. A marker left by a crash only makes the
next input take a suffix (or is finished by the redo that recorded it);
nothing is overwritten.

Timestamps are ISO 8601 UTC with milliseconds and a ``Z``:
``2024-05-01T12:34:56.789Z``.
"""

from __future__ import annotations

import csv
import datetime as _dt
import errno
import fcntl
import io
import json
import os
import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from . import __version__
from .files import atomic_write, fsync_path
from .records import Reading, Scan

RESULT_KEYS = ("source", "status", "number", "digits", "confidence", "model", "sha256",
               "processed_at", "elapsed_ms", "annotated", "error")
CSV_COLUMNS = ("processed_at", "source", "status", "number", "confidence", "model", "sha256",
               "result", "error")
DIGITS = 6  # decimals kept for confidences and probabilities

RESULTS, ANNOTATED, ORIGINALS, FAILED = "results", "annotated", "originals", "failed"
CSV_NAME = "results.csv"
RESERVE_SUFFIX = ".reserve"
MAX_SUFFIX = 100_000


# ---------------------------------------------------------------------------
# Pure: records


def utc_timestamp(when: _dt.datetime | None = None) -> str:
    """ISO 8601 UTC with milliseconds and 'Z', e.g. ``2024-05-01T12:34:56.789Z``."""
    when = _dt.datetime.now(_dt.UTC) if when is None else when
    if when.tzinfo is None:
        raise ValueError("processed_at must be timezone-aware")
    return when.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _round(x: float | None) -> float | None:
    return None if x is None else round(float(x), DIGITS)


def result_dict(source: str, reading: Reading | None, *, sha256: str | None, model: str,
                processed_at: str | _dt.datetime, elapsed_ms: float, annotated: str | None,
                error: str | None = None, image: Scan | None = None) -> dict[str, Any]:
    """The result JSON object for one input, contract keys first and in order.

    ``reading`` None (or ``error`` given) means the input failed: status
    ``failed``, number null, digits [], confidence null, ``error`` the reason.
    Extra keys after the contract's: ``polarity``, ``image`` ({width, height,
    mode} when decoded), ``digitd_version``.
    """
    if isinstance(processed_at, _dt.datetime):
        processed_at = utc_timestamp(processed_at)
    failed = reading is None or error is not None or reading.status == "failed"
    if failed:
        reason = error or (reading.error if reading is not None else None) or "failed"
        status, number, digits, confidence = "failed", None, [], None
    else:
        reason = None
        status, number, confidence = reading.status, reading.number, _round(reading.confidence)
        digits = [
            {
                "digit": int(d.digit),
                "confidence": _round(d.confidence),
                "box": [int(v) for v in d.box],
                "probabilities": [_round(p) for p in d.probabilities],
            }
            for d in reading.digits
        ]
    out: dict[str, Any] = {
        "source": source,
        "status": status,
        "number": number,
        "digits": digits,
        "confidence": confidence,
        "model": model,
        "sha256": sha256,
        "processed_at": processed_at,
        "elapsed_ms": round(float(elapsed_ms), 1),
        "annotated": None if failed else annotated,
        "error": reason,
        # extras
        "polarity": None if reading is None else reading.polarity,
        "image": None if image is None else {"width": image.width, "height": image.height,
                                             "mode": image.mode},
        "digitd_version": __version__,
    }
    return out


def csv_row(result: Mapping[str, Any], result_path: str) -> dict[str, str]:
    """The results.csv row for a result object; ``result_path`` is its JSON, relative."""

    def text(v: Any) -> str:
        return "" if v is None else str(v)

    return {
        "processed_at": text(result["processed_at"]),
        "source": text(result["source"]),
        "status": text(result["status"]),
        "number": text(result["number"]),
        "confidence": "" if result["confidence"] is None else f"{result['confidence']:.{DIGITS}f}",
        "model": text(result["model"]),
        "sha256": text(result["sha256"]),
        "result": result_path,
        "error": text(result["error"]),
    }


def csv_line(values: Mapping[str, str] | None = None) -> bytes:
    """One CSV record (the header when ``values`` is None), ``\\n``-terminated, UTF-8."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS if values is None else [values.get(c, "") for c in CSV_COLUMNS])
    return buf.getvalue().encode("utf-8")


def json_bytes(obj: Any) -> bytes:
    """One line of JSON and a newline (the C encoder: indenting costs 4x the time)."""
    return (json.dumps(obj, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


# ---------------------------------------------------------------------------
# Files

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

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.root = Path(root)
        self.fsync = fsync
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

    def _marker(self, name: str) -> str:
        """``results/.NAME.reserve``: the reservation, and later the JSON's temp."""
        return f"{self._base}/{RESULTS}/.{name}{RESERVE_SUFFIX}"

    def _reserve_path(self, name: str) -> Path:
        return Path(self._marker(name))

    def _result(self, name: str) -> str:
        return f"{self._base}/{RESULTS}/{name}.json"

    def _taken(self, name: str) -> bool:
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
                fd = os.open(self._marker(name),
                             os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o644)
            except FileExistsError:
                pass  # reserved by another input
            else:
                os.close(fd)
                if not self._taken(name):
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
            return os.path.lexists(self._marker(name)) or self._taken(name)

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
            os.unlink(self._marker(name))
        except FileNotFoundError:
            pass

    # -- writing -----------------------------------------------------------

    def stage_json(self, name: str, obj: Any, *, fsync: bool = False) -> str:
        """Write ``obj`` into NAME's reservation file (created if missing), not yet
        renamed into place; returns that file's path. A failed write leaves the
        file (still the reservation) for the next attempt to overwrite."""
        data = json_bytes(obj)
        self.folder(RESULTS)
        tmp = self._marker(name)
        # No O_TRUNC: the reservation is normally empty, and truncating costs a
        # journal transaction even then; what an earlier attempt left is cut below.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
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
        path = self._result(name)
        os.replace(self._marker(name), path)
        return path

    def write_json(self, name: str, obj: Any) -> Path:
        """``results/NAME.json``, atomically: written into the reservation file,
        then renamed into place; unless ``fsync=False`` the file is fsynced
        before the rename and ``results/`` after it (durable on return)."""
        self.stage_json(name, obj, fsync=self.fsync)
        path = Path(self.publish_json(name))
        if self.fsync:
            self.sync_folder(RESULTS)
        return path

    def write_annotated(self, name: str, render: Callable[[BinaryIO], Any]) -> str:
        """``annotated/NAME.png`` from ``render(file)``, atomically; its relative path."""
        path = self.folder(ANNOTATED) / f"{name}.png"
        atomic_write(path, render, fsync=False)  # a picture lost in a crash is redone with its JSON
        return self.annotated_rel(name)

    def append_csv(self, row: Mapping[str, str]) -> None:
        """One row of results.csv (see :meth:`append_csv_rows`)."""
        self.append_csv_rows([row])

    def append_csv_rows(self, rows: list[Mapping[str, str]], *, fsync: bool | None = None) -> None:
        """Rows of results.csv; the header first if the file is new or empty.

        One ``os.write`` on an O_APPEND descriptor under an exclusive
        ``flock``: rows from several processes never interleave, and the header
        is written exactly once. A last line cut short (disk full, crash) is
        ended first so the new rows start on their own line. ``fsync`` None:
        as the Outbox was made.
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
        fd = os.open(self.csv_path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            if size == 0:
                data = csv_line() + data
            elif os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data
            _write_all(fd, data)
            if self.fsync if fsync is None else fsync:
                os.fsync(fd)
        finally:
            os.close(fd)  # also releases the lock

    def csv_has_row(self, result_rel: str) -> bool:
        """Whether results.csv already has a row for ``results/NAME.json`` (reads the
        whole file: for redoing an interrupted input, not for every input)."""
        return result_rel in self.csv_results()

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
                   when: _dt.datetime | None = None) -> Path:
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
        atomic_write(error_path, lambda f: f.write(json_bytes(record)), fsync=self.fsync)
        moved = move_no_replace(path, folder, keep)
        if moved.name != keep:
            record["file"] = f"{FAILED}/{moved.name}"
            atomic_write(error_path, lambda f: f.write(json_bytes(record)), fsync=self.fsync)
        return moved



class Batch:
    """The result files of one micro-batch, made durable together (group commit).

    It stands in for the :class:`Outbox` that :func:`digitd.pipeline.finish`
    writes to: pictures are written at once; CSV rows are kept; each JSON is
    written into its NAME's reservation file but not renamed. :meth:`commit`
    then, for the whole batch:

    1. appends every row in ONE locked write (rows of JSONs that could not be
       written are left out: their input is tried again);
    2. makes the rows, the JSON temps and ``sync_paths`` durable with one
       :func:`make_durable` (not when the Outbox was made with ``fsync=False``);
    3. renames every JSON into place - the JSON still comes last;
    4. fsyncs ``results/``, so the renames are durable too.

    Only after ``commit`` may the caller move the originals: after a power
    cut no original has left the work folder without its result on disk.

    ``names`` were reserved by the caller: :meth:`release` keeps them (a
    failed attempt keeps its NAME for the retry). ``rows_written`` holds the
    ``results/NAME.json`` of rows results.csv already has (a redo): not
    appended twice.
    """

    def __init__(self, outbox: Outbox, names: set[str] | frozenset[str] = frozenset(), *,
                 rows_written: set[str] | frozenset[str] = frozenset(),
                 sync_paths: list[str] | tuple[str, ...] = ()) -> None:
        self.outbox = outbox
        self.names = names
        self.rows_written = rows_written
        self.sync_paths = list(sync_paths)
        self.staged: list[str] = []
        self._rows: list[Mapping[str, str]] = []

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.outbox, attr)

    def release(self, name: str) -> None:
        if name not in self.names:
            self.outbox.release(name)

    def csv_has_row(self, result_rel: str) -> bool:
        return result_rel in self.rows_written

    def append_csv(self, row: Mapping[str, str]) -> None:
        if row.get("result") not in self.rows_written:
            self._rows.append(row)

    def write_json(self, name: str, obj: Any) -> None:
        self.outbox.stage_json(name, obj)
        self.staged.append(name)

    def commit(self) -> list[str]:
        """Steps 1-4 above; returns the NAMEs now in ``results/``. Raises OSError
        if any step fails (then any of the batch's rows may be written, any of
        its JSONs renamed)."""
        box = self.outbox
        if not self.staged:
            return []
        staged = {box.result_rel(name) for name in self.staged}
        rows = [row for row in self._rows if row.get("result") in staged]
        box.append_csv_rows(rows, fsync=False)
        if box.fsync:
            paths = [box._marker(name) for name in self.staged]
            # (a journal removed by hand is no reason to fail the batch)
            paths += [p for p in self.sync_paths if os.path.lexists(p)]
            if rows:
                paths.append(os.fspath(box.csv_path))
            make_durable(paths)
        for name in self.staged:
            box.publish_json(name)
        if box.fsync:
            box.sync_folder(RESULTS)
        return list(self.staged)
