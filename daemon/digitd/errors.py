"""Errors that end a digitd command, each with its exit code.

Library code raises these; the single handler in :mod:`digitd.cli` turns them
into ``digitd: error: <message>`` on stderr and the exit code, no traceback.
Exit codes are part of the product contract (docs/DESIGN.md):

* 0 success
* 1 some inputs failed (``predict``)          -> :class:`InputsFailed`
* 2 bad config or usage                       -> :class:`ConfigError`, :class:`UsageError`
* 3 the model cannot be loaded                -> :class:`ModelLoadError`
* 70 anything unexpected (a crash; see cli.py)
"""

from __future__ import annotations

import errno


def one_line(text: object) -> str:
    """Collapse any text to a single line (messages must never span lines)."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


_OS_WORDS = {
    errno.ENOENT: "no such file",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EISDIR: "is a folder, not a file",
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EIO: "input/output error",
    errno.ELOOP: "too many levels of symbolic links",
    errno.ENAMETOOLONG: "file name too long",
}


def os_words(exc: OSError) -> str:
    """An OSError as plain words, e.g. ``permission denied``."""
    return _OS_WORDS.get(exc.errno or 0) or one_line(exc.strerror or exc).lower()


class Transient(Exception):
    """A failure worth retrying whose message is already plain words."""


def describe(exc: BaseException) -> str:
    """Any exception as one line for a log or a result: plain words for an OSError
    or a :class:`Transient`, ``Type: message`` for anything else."""
    if isinstance(exc, OSError):
        return os_words(exc)
    if isinstance(exc, Transient):
        return one_line(exc)
    return f"{type(exc).__name__}: {one_line(exc)}"


class DigitdError(Exception):
    """Base class: an expected failure with an actionable one-line message."""

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        self.message = one_line(message)
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class InputsFailed(DigitdError):
    """Some inputs could not be processed (the others were)."""

    exit_code = 1


class ConfigError(DigitdError):
    """The config file is missing, unreadable or invalid; names file and key."""

    exit_code = 2


class UsageError(DigitdError):
    """The command line asks for something that cannot be done."""

    exit_code = 2


class ModelLoadError(DigitdError):
    """The model file is missing or cannot be loaded."""

    exit_code = 3
