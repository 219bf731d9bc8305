"""Analysis functions that fail on purpose, for :func:`digitd.analyse.analyse_all`
(module-level so spawned worker processes can import them by name)."""

from __future__ import annotations

import os
from pathlib import Path

from digitd.analyse import analyse


def dies_on_poison(path, **options):
    """:func:`analyse`, except that a file whose name holds "poison" kills the
    worker process on the spot, as a decoder crash would."""
    if "poison" in Path(path).name:
        os._exit(11)
    return analyse(path, **options)


def start_when(path: str, deadline: float = 60.0) -> None:
    """A pool initializer that holds its worker until ``path`` exists (a slow start)."""
    import time

    end = time.monotonic() + deadline
    while not os.path.exists(path) and time.monotonic() < end:
        time.sleep(0.01)
