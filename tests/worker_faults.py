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
