"""Result files take their mode from the umask, as the units' UMask=0002 promises:
group-writable results under 0002, 0644 under the usual 022."""

from __future__ import annotations

import os
import stat

import pytest
from digitd.outbox import Outbox
from digitd.results import failed_result
from digitd.writer import Record, Writer


@pytest.mark.parametrize(("umask", "mode"), [(0o002, 0o664), (0o022, 0o644), (0o077, 0o600)])
def test_results_json_csv_and_picture_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        box = Outbox(tmp_path / "out")
        name = box.claim_name("scan")
        errors = Writer(box, durable=True).commit(
            [Record(name, failed_result("scan.png", "x", model="m"), picture=b"\x89PNG")])
    finally:
        os.umask(old)
    assert errors == [None]
    files = [box.root / "results" / "scan.json", box.root / "results.csv",
             box.root / "annotated" / "scan.png"]
    assert {f.name: oct(stat.S_IMODE(f.stat().st_mode)) for f in files} == \
        {f.name: oct(mode) for f in files}
