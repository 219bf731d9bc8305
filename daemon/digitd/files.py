"""Small file-system helpers every other module shares: atomic writes, fsyncs,
hashes and the key that tells whether a file changed."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

FileKey = tuple[int, int, int]  # size, mtime_ns, inode


def file_key(st: os.stat_result) -> FileKey:
    """What must not change while a file settles or is being read: size, mtime, inode."""
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def path_key(path: str | os.PathLike[str], *, follow_symlinks: bool = False) -> FileKey | None:
    """:func:`file_key` of ``path``, or None if it cannot be seen."""
    try:
        return file_key(os.stat(path, follow_symlinks=follow_symlinks))
    except OSError:
        return None


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], Any], *,
                 fsync: bool = True) -> None:
    """Write ``path`` via a hidden temp in the same folder and ``os.replace``.

    A reader sees the old file or the complete new one, never a part; the temp
    is removed if anything fails.
    """
    path = Path(path)
    tail = f".{os.getpid()}.tmp"
    if len(os.fsencode(path.name)) + len(tail) + 1 > 255:  # a long name: a short temp
        tmp = path.with_name(f".digitd-{threading.get_ident():x}{tail}")
    else:
        tmp = path.with_name(f".{path.name}{tail}")
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


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, fsync: bool = True) -> None:
    atomic_write(path, lambda f: f.write(data), fsync=fsync)


def fsync_path(path: str | os.PathLike[str], flags: int = os.O_RDONLY) -> None:
    """fsync a file or a folder by name."""
    fd = os.open(path, flags | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_regular(path: str | os.PathLike[str]) -> None:
    """fsync a regular file by name, best effort: nothing for a link, a FIFO, a
    device, or a file this process may not open (it could not read it either)."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def remove_quietly(path: str | os.PathLike[str]) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


_RENAME_NOREPLACE = 1
_RENAMEAT2: Any = None


def rename_no_replace(src: str | os.PathLike[str], dest: str | os.PathLike[str]) -> bool:
    """``renameat2(RENAME_NOREPLACE)``: True when renamed; raises FileExistsError if
    ``dest`` exists; False where the system or file system has no such call."""
    global _RENAMEAT2
    if _RENAMEAT2 is None:
        try:
            import ctypes

            fn = ctypes.CDLL(None, use_errno=True).renameat2
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                           ctypes.c_uint]
            fn.restype = ctypes.c_int
            _RENAMEAT2 = fn
        except (OSError, AttributeError):
            _RENAMEAT2 = False
    if not _RENAMEAT2:
        return False
    import ctypes

    at_fdcwd = -100
    if _RENAMEAT2(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dest), _RENAME_NOREPLACE) == 0:
        return True
    err = ctypes.get_errno()
    if err == errno.EEXIST:
        raise FileExistsError(err, os.strerror(err), os.fspath(dest))
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), os.fspath(src))
