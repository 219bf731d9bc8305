"""Which names in the inbox are inputs. Pure: no file system, no threads.

:func:`skip_reason` is the one rule for a file name (``predict`` uses it too);
:class:`NameFilter` adds the inbox's own rules for paths (sub-folders, the
service's hidden folder).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".jpe", ".tif", ".tiff", ".bmp", ".dib",
                              ".webp"})
DOCUMENT_EXTENSIONS = frozenset({".pdf"})  # read page by page (a multi-page TIFF too)
INPUT_EXTENSIONS = IMAGE_EXTENSIONS | DOCUMENT_EXTENSIONS
TEMP_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload", ".download", ".swp")
SYSTEM_NAMES = frozenset({"thumbs.db", "desktop.ini", ".ds_store"})
SERVICE_FOLDER = ".digitd"


def skip_reason(name: str) -> str | None:
    """Why a file name is left alone, or None if it may be an input."""
    lower = name.lower()
    if lower in SYSTEM_NAMES:
        return "system file"
    if name.startswith(".~lock"):
        return "temporary name (lock file)"
    if name.startswith("."):
        return "hidden name"
    if name.startswith("~$"):
        return "temporary name (lock file)"
    if lower.endswith(TEMP_SUFFIXES) or name.endswith("~"):
        return "temporary name (still being written?)"
    ext = os.path.splitext(lower)[1]
    if ext not in INPUT_EXTENSIONS:
        return f"not an image type ({ext or 'no extension'})"
    return None


@dataclass(frozen=True)
class Skip:
    """A path left alone: ``reason`` is logged once for ``rel``; None means silently."""

    rel: str | None
    reason: str | None


SILENTLY = Skip(None, None)


class NameFilter:
    """Judges paths under ``root``: outside it, in the service's folder (or
    ``ignore``), in a hidden or temporary folder, nested when not ``recursive``,
    or with a name :func:`skip_reason` refuses."""

    def __init__(self, root: str | os.PathLike[str], *, recursive: bool = False,
                 ignore: str | os.PathLike[str] | None = None) -> None:
        self.root = os.fspath(root)
        self.recursive = recursive
        self._prefix = os.path.join(self.root, "")
        self._ignore = os.fspath(ignore) if ignore else None

    def relative(self, path: str) -> str | None:
        """``path`` relative to the root, or None if outside it (or the root itself)."""
        if path.startswith(self._prefix):
            return path[len(self._prefix):] or None
        try:
            rel = os.path.relpath(path, self.root)
        except ValueError:
            return None
        if rel in (".", "..") or rel.startswith(".." + os.sep):
            return None
        return rel

    def skip(self, path: str, is_folder: bool = False) -> Skip | None:
        """None if ``path`` may be an input (or, for a folder, be looked into)."""
        rel = self.relative(path)
        if rel is None:
            return SILENTLY
        parts = rel.split(os.sep)
        if parts[0] == SERVICE_FOLDER or self._ignored(path):
            return SILENTLY
        if not self.recursive and len(parts) > 1:
            return SILENTLY
        if any(folder.startswith((".", "~$")) for folder in parts[:-1]):
            return SILENTLY
        if is_folder:
            return None
        reason = skip_reason(parts[-1])
        return None if reason is None else Skip(rel, reason)

    def _ignored(self, path: str) -> bool:
        return self._ignore is not None and (
            path == self._ignore or path.startswith(os.path.join(self._ignore, "")))
