"""The outbox: result records and the files that hold them.

Pure part: :func:`result_dict` and :func:`csv_row` turn a reading into the
contract's JSON object and CSV row (DESIGN.md, "Outbox").

File part: :class:`Outbox` owns the folder layout and writes every file so
that a reader never sees half of one and two processes never clash:

* ``results/NAME.json`` - written to a hidden temp in the same folder,
  fsynced, then ``os.replace``d into place. Written LAST for each input, so its
  presence means the result is complete.
* ``Outbox(root, fsync=False)`` skips the fsyncs of the JSON and CSV: files
  are still complete or absent for any reader and after any process crash
  (``kill -9`` leaves the page cache intact); only a power cut could then lose
  the last results. An fsync costs 0.1-2 ms (far more on a busy disk), more
  than everything else per input; ``digitd predict`` (rerun it after a power
  cut) uses fsync=False, the service keeps the default.
* ``annotated/NAME.png`` - the same temp + rename.
* ``results.csv`` - one row per input, appended with a single ``os.write`` on
  an ``O_APPEND`` descriptor while holding ``fcntl.flock``, the header written
  under the same lock when the file is empty. Rows never interleave, even from
  several processes.
* ``failed/`` and ``originals/`` - originals moved without ever replacing a
  file already there (``os.link`` + unlink, which fails instead of
  overwriting), suffixed ``-1``, ``-2``, ... when the name is taken.

Naming: ``NAME`` is the input's stem. :meth:`Outbox.claim_name` reserves it by
creating ``results/.NAME.reserve`` with ``O_CREAT | O_EXCL`` (atomic, so two
processes cannot both win) and only THEN checks that no earlier input's files
use NAME (``results/NAME.json``, ``annotated/NAME.png``,
``failed/NAME.error.json``); a taken name moves on to ``NAME-1``, ``NAME-2``...
The holder writes its files and calls :meth:`Outbox.release` after the JSON,
which removes the marker. Because a name is checked only after its marker is
held, and released only after the JSON exists, a later claimant always sees
the earlier result. A marker left by a crash only makes the next input take a
suffix; nothing is overwritten.

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


def atomic_write(path: Path, write: Callable[[BinaryIO], Any], *, fsync: bool = True) -> None:
    """Write ``path`` via a hidden temp in the same folder and ``os.replace``.

    A reader sees the old file or the complete new one, never a part; the temp
    is removed if anything fails.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _split_name(name: str) -> tuple[str, str]:
    """("scan.tar", ".gz") style: stem and the LAST suffix (kept when suffixing)."""
    p = Path(name)
    return (p.stem, p.suffix) if p.stem else (name, "")


def move_no_replace(src: Path, folder: Path, name: str) -> Path:
    """Move ``src`` into ``folder`` as ``name``, or ``stem-1.ext``, ``stem-2.ext``...
    if taken; never replaces an existing file. Returns the new path."""
    stem, ext = _split_name(name)
    for i in range(MAX_SUFFIX):
        dest = folder / (name if i == 0 else f"{stem}-{i}{ext}")
        try:
            os.link(src, dest, follow_symlinks=False)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK):
                raise
            # Another filesystem, or no hard links there: copy to a temp, then link that.
            if dest.exists():
                continue
            tmp = folder / f".{dest.name}.{os.getpid()}.tmp"
            shutil.copy2(src, tmp, follow_symlinks=False)
            try:
                os.link(tmp, dest)
            except FileExistsError:
                continue
            except OSError:
                if dest.exists():
                    continue
                os.rename(tmp, dest)  # no hard links at all: best effort
            finally:
                if tmp.exists():
                    os.unlink(tmp)
        os.unlink(src)
        return dest
    raise FileExistsError(errno.EEXIST, f"no free name for {name} in {folder}")


class Outbox:
    """The outbox folder; sub-folders are created when first needed."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.root = Path(root)
        self.fsync = fsync
        self._made: set[str] = set()

    # -- layout ------------------------------------------------------------

    def folder(self, name: str) -> Path:
        path = self.root / name
        if name not in self._made:
            path.mkdir(parents=True, exist_ok=True)
            self._made.add(name)
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

    def _reserve_path(self, name: str) -> Path:
        return self.folder(RESULTS) / f".{name}{RESERVE_SUFFIX}"

    def _taken(self, name: str) -> bool:
        return any(p.exists() or p.is_symlink() for p in (
            self.root / RESULTS / f"{name}.json",
            self.root / ANNOTATED / f"{name}.png",
            self.root / FAILED / f"{name}.error.json",
        ))

    # -- naming ------------------------------------------------------------

    def claim_name(self, stem: str) -> str:
        """Reserve a NAME for one input: ``stem``, else ``stem-1``, ``stem-2``, ...

        The reservation is ``results/.NAME.reserve`` made with O_CREAT|O_EXCL;
        the name's files are checked after it is held (see the module doc).
        Call :meth:`release` once the result JSON is written.
        """
        stem = safe_stem(stem)
        self.folder(RESULTS)
        for i in range(self._first_free_guess(stem), MAX_SUFFIX):
            name = stem if i == 0 else f"{stem}-{i}"
            try:
                fd = os.open(self._reserve_path(name), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                continue
            os.write(fd, f"{os.getpid()}\n".encode())
            os.close(fd)
            if self._taken(name):
                self.release(name)
                continue
            return name
        raise FileExistsError(errno.EEXIST, f"no free result name for {stem!r} in {self.root}")

    def _first_free_guess(self, stem: str) -> int:
        """A suffix number worth trying first, in O(log n) look-ups.

        Scanners name every file ``scan.png``: after thousands of inputs,
        trying ``scan``, ``scan-1``, ``scan-2``... one by one would cost
        thousands of look-ups per file. Suffixes are used from 1 upwards, so a
        galloping then binary search finds the end of the used run. Only a
        hint: the claim itself still goes through O_EXCL and the check.
        """

        def used(i: int) -> bool:
            name = stem if i == 0 else f"{stem}-{i}"
            return self._reserve_path(name).exists() or self._taken(name)

        if not used(0):
            return 0
        lo, hi = 0, 1  # used(lo); hi unknown
        while hi < MAX_SUFFIX and used(hi):
            lo, hi = hi, hi * 2
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
            os.unlink(self._reserve_path(name))
        except FileNotFoundError:
            pass

    # -- writing -----------------------------------------------------------

    def write_json(self, name: str, obj: Any) -> Path:
        """``results/NAME.json``, atomically (temp, fsync, rename)."""
        path = self.folder(RESULTS) / f"{name}.json"
        data = json_bytes(obj)
        atomic_write(path, lambda f: f.write(data), fsync=self.fsync)
        return path

    def write_annotated(self, name: str, render: Callable[[BinaryIO], Any]) -> str:
        """``annotated/NAME.png`` from ``render(file)``, atomically; its relative path."""
        path = self.folder(ANNOTATED) / f"{name}.png"
        atomic_write(path, render, fsync=False)  # a picture lost in a crash is redone with its JSON
        return self.annotated_rel(name)

    def append_csv(self, row: Mapping[str, str]) -> None:
        """One row of results.csv; the header first if the file is new or empty.

        One ``os.write`` on an O_APPEND descriptor under an exclusive
        ``flock``: rows from several processes never interleave, and the header
        is written exactly once. A last line cut short (disk full, crash) is
        ended first so the new row starts on its own line.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.csv_path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            data = csv_line(row)
            if size == 0:
                data = csv_line() + data
            elif os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data
            view = memoryview(data)
            while view:  # a single write in practice; loop only on a short write
                n = os.write(fd, view)
                view = view[n:]
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)  # also releases the lock

    def csv_has_row(self, result_rel: str) -> bool:
        """Whether results.csv already has a row for ``results/NAME.json`` (reads the
        whole file: for redoing an interrupted input, not for every input)."""
        try:
            with open(self.csv_path, newline="", encoding="utf-8") as f:
                return any(row.get("result") == result_rel for row in csv.DictReader(f))
        except FileNotFoundError:
            return False

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

