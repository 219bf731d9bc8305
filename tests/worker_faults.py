"""Analysis functions that fail on purpose, for :class:`digitd.workers.Workers`
(module-level so spawned worker processes can import them by name)."""

from __future__ import annotations

import os
from pathlib import Path

from digitd.workers import analyse_file


def dies_on_poison(path, **options):
    """:func:`analyse_file`, except that a file whose name holds "poison" kills the
    worker process on the spot, as a decoder crash would."""
    if "poison" in Path(path).name:
        os._exit(11)
    return analyse_file(path, **options)
