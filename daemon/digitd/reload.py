"""Model hot reload: notice that the model file was replaced, and load the new one.

:class:`ModelReloader` is polled between batches; a new file is loaded once it
has stayed the same for one check, and a model that fails to load is never
retried until the file changes again. The old model keeps serving meanwhile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import describe
from .files import FileKey, path_key

log = logging.getLogger(__name__)

CHECK_SECONDS = 1.0


def model_key(path: Path) -> FileKey | None:
    """The model file's key, through a symbolic link (``models/current.keras``)."""
    return path_key(path, follow_symlinks=True)


class ModelReloader:
    """``poll(current)`` returns a newly loaded recognizer, or None."""

    def __init__(self, path: Path, load: Callable[[], Any], *,
                 clock: Callable[[], float] = time.monotonic,
                 key: Callable[[Path], FileKey | None] | None = None,
                 on_error: Callable[[str], None] = lambda message: None) -> None:
        self.path = path
        self._load = load
        self._clock = clock
        self._key = key or model_key
        self._on_error = on_error
        self.loaded_key = self._key(path)  # the file the current model came from
        self._candidate: FileKey | None = None
        self._bad_key: FileKey | None = None
        self._missing_said = False
        self._next_check = 0.0

    def poll(self, current_name: str) -> Any:
        now = self._clock()
        if now < self._next_check:
            return None
        self._next_check = now + CHECK_SECONDS
        key = self._key(self.path)
        if key is None:
            if not self._missing_said:
                log.warning("model file %s is gone; still serving with %s", self.path,
                            current_name)
                self._missing_said = True
            return None
        self._missing_said = False
        if key in (self.loaded_key, self._bad_key):
            self._candidate = None
            return None
        if key != self._candidate:  # changed: wait until it stays the same for a check
            self._candidate = key
            return None
        log.info("model file %s changed: loading it", self.path)
        try:
            recognizer = self._load()
        except Exception as exc:  # noqa: BLE001 - a bad new model must not stop the service
            self._bad_key = key
            message = getattr(exc, "message", None) or describe(exc)
            log.error("new model not loaded, still serving with %s: %s", current_name, message)
            self._on_error(f"model: {message}")
            return None
        self.loaded_key = key
        log.info("model reloaded: %s (was %s)", recognizer.name, current_name)
        return recognizer
